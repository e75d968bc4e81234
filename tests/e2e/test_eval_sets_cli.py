"""``continuous-eval eval-sets`` as a user runs it: import, a refused file, list, show, fill."""

from __future__ import annotations

import json
from pathlib import Path

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.interactions import SqlInteractionStore
from continuous_eval.adapters.db.labels import SqlEvalSetStore
from continuous_eval.core.interactions import NewFeedback
from tests.e2e.cli_harness import cli

CSV = """\
case_id,input,output,label,author,comment
c1,Where is my refund?,On its way,pass,ann,
c1,Where is my refund?,On its way,fail,bob,vague
c2,Cancel please,Done,pass,ann,
"""


def test_import_list_show_and_fill(tmp_path: Path) -> None:
    env = {"CONTINUOUS_EVAL_DATABASE_URL": f"sqlite:///{tmp_path / 'ce.db'}"}
    good = tmp_path / "labels.csv"
    good.write_text(CSV)

    missing = cli("eval-sets", "import", str(good), "--eval-set", "support", cwd=tmp_path, env=env)
    assert missing.returncode == 2
    assert "pass --create" in missing.stderr

    made = cli(
        "eval-sets", "import", str(good), "--eval-set", "support", "--create", cwd=tmp_path, env=env
    )
    assert made.returncode == 0, made.stderr
    assert "3 rows into support (created): 2 new cases, 0 updated, 3 labels" in made.stdout

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "c9", "input": "q", "output": "a", "label": 7, "author": "ann"}\n')
    refused = cli(
        "eval-sets",
        "import",
        str(bad),
        "--eval-set",
        "support",
        "--scale",
        "1-5",
        cwd=tmp_path,
        env=env,
    )
    assert refused.returncode == 2
    assert "labelled pass_fail, not 1-5" in refused.stderr
    refused = cli("eval-sets", "import", str(bad), "--eval-set", "support", cwd=tmp_path, env=env)
    assert refused.returncode == 2
    assert f"{bad}: line 1: label: 7 is not pass/fail" in refused.stderr

    listed = cli("eval-sets", "list", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "support (id 1): pass_fail" in listed.stdout

    shown = cli("eval-sets", "show", "support", "--json", cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["authors"] == {"ann": 2, "bob": 1}
    assert document["consensus"] == {"none": 1, "pass": 1}
    assert [c["labels"] for c in document["cases"]] == [2, 1]
    text = cli("eval-sets", "show", "support", cwd=tmp_path, env=env)
    assert "c1: 2 labels (ann, bob), consensus none" in text.stdout

    unfillable = cli("eval-sets", "fill", "support", cwd=tmp_path, env=env)
    assert unfillable.returncode == 2
    assert "names no feature" in unfillable.stderr


def test_fill_labels_a_feature_s_feedback_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ce.db'}"
    env = {"CONTINUOUS_EVAL_DATABASE_URL": url}
    traffic = tmp_path / "traffic.jsonl"
    span = {
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
        "feature": "support-bot",
        "input": "Where is my refund?",
        "output": "On its way",
        "started_at": "2026-03-01T12:00:00Z",
    }
    traffic.write_text(json.dumps(span) + "\n")
    assert cli("traces", "import", str(traffic), cwd=tmp_path, env=env).returncode == 0
    engine = make_engine(url)
    try:
        SqlEvalSetStore(engine).create_eval_set("support", "pass_fail", feature="support-bot")
        feedback = SqlInteractionStore(engine)
        feedback.add_feedback(NewFeedback(span["trace_id"], "ann", label="thumbs_up"))
        feedback.add_feedback(NewFeedback(span["trace_id"], "bob", score=0.4))
    finally:
        engine.dispose()

    filled = cli("eval-sets", "fill", "support", cwd=tmp_path, env=env)
    assert filled.returncode == 0, filled.stderr
    assert "support: 1 labels on 1 cases from feedback; 1 skipped (off the scale)" in filled.stdout
    again = cli("eval-sets", "fill", "support", "--json", cwd=tmp_path, env=env)
    assert json.loads(again.stdout)["labels"] == 0
    shown = cli("eval-sets", "show", "support", "--json", cwd=tmp_path, env=env)
    [case] = json.loads(shown.stdout)["cases"]
    assert (case["case_id"], case["authors"], case["consensus"]) == (span["trace_id"], ["ann"], 1.0)
    unknown = cli("eval-sets", "fill", "nope", cwd=tmp_path, env=env)
    assert unknown.returncode == 2
    assert "no eval set 'nope'" in unknown.stderr
