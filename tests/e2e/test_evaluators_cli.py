"""``continuous-eval evaluators list|show|promote`` as a user runs them, on a SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.evaluators import SqlEvaluatorStore
from continuous_eval.core.evaluators import Contradiction, EvaluatorMetrics, NewEvaluator
from continuous_eval.fakes.evaluator_codes import GOOD
from tests.e2e.cli_harness import cli


def _store(url: str, accuracy: float) -> None:
    store = SqlEvaluatorStore(make_engine(url))
    try:
        metrics = EvaluatorMetrics(
            accuracy=accuracy,
            precision=0.75,
            recall=None,
            train_cases=14,
            test_cases=6,
            errors=1,
            contradictions=(Contradiction("fail-2", 0.0, True),),
        )
        store.add_evaluator(NewEvaluator("says-yes", "answers", GOOD, "claude-x", "p", metrics))
    finally:
        store.close()


def test_list_show_and_promote_with_the_floor(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ce.db'}"
    env = {"CONTINUOUS_EVAL_DATABASE_URL": url}
    empty = cli("evaluators", "list", cwd=tmp_path, env=env)  # migrates the embedded database
    assert empty.returncode == 0, empty.stderr
    assert "no learned evaluators yet" in empty.stdout
    _store(url, 0.5)
    _store(url, 5 / 6)

    listed = cli("evaluators", "list", "--json", cwd=tmp_path, env=env)
    assert [(d["ref"], d["metrics"]["accuracy"]) for d in json.loads(listed.stdout)] == [
        ("says-yes@1", 0.5),
        ("says-yes@2", 5 / 6),
    ]
    table = cli("evaluators", "list", cwd=tmp_path, env=env)
    assert "says-yes@2" in table.stdout
    assert "83.3%" in table.stdout

    shown = cli("evaluators", "show", "says-yes", cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    for expected in (
        "evaluator says-yes@2 (eval set answers)",
        "model:          claude-x",
        "accuracy:       83.3% on 6 held-out cases (14 trained on, 1 errored)",
        "precision:      75.0%",
        "recall:         -",
        "contradictions: 1",
        "fail-2: label 0, got True",
        "promoted:       no",
        "def score(output, case):",
    ):
        assert expected in shown.stdout

    refused = cli("evaluators", "promote", "says-yes@1", cwd=tmp_path, env=env)
    assert refused.returncode == 2
    assert "held-out accuracy 0.500 is under the floor 0.800" in refused.stderr
    floor = cli(
        "evaluators",
        "promote",
        "says-yes@1",
        cwd=tmp_path,
        env={**env, "CONTINUOUS_EVAL_EVALUATOR_MIN_ACCURACY": "0.4"},
    )
    assert floor.returncode == 0, floor.stderr

    promoted = cli("evaluators", "promote", "says-yes@2", cwd=tmp_path, env=env)
    assert promoted.returncode == 0, promoted.stderr
    assert "says-yes@2 promoted (held-out accuracy 83.3%)" in promoted.stdout
    shown_again = cli("evaluators", "show", "says-yes@2", "--json", cwd=tmp_path, env=env)
    document = json.loads(shown_again.stdout)
    assert document["promoted_at"] is not None
    assert document["code"] == GOOD

    for args in (("show", "says-yes@9"), ("show", "bad@ref@"), ("promote", "says-yes")):
        bad = cli("evaluators", *args, cwd=tmp_path, env=env)
        assert bad.returncode == 2, (args, bad.stderr)
        assert "error:" in bad.stderr
