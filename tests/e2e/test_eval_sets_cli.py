"""``continuous-eval eval-sets`` as a user runs it: import, a refused file, list, show, fill."""

from __future__ import annotations

import json
from pathlib import Path

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
