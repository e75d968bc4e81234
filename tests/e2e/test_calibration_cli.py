"""Judge calibration as a user meets it: labels imported, ``run``, then ``agreement``.

The real process path: ``continuous-eval run`` judges the eval set's labelled
cases with the feature's judge (the real SDK against the fake Anthropic API,
which scores what a ``[[score:N]]`` marker asks), stores the agreement on the
SQLite file, and ``continuous-eval agreement`` reads it back. The figures are
checked against scikit-learn on the same pairs.
"""

from __future__ import annotations

import json
from pathlib import Path

from sklearn.metrics import cohen_kappa_score  # type: ignore[import-untyped]

from continuous_eval.fakes.anthropic_server import FakeAnthropicServer
from tests.e2e.cli_harness import cli
from tests.fixtures.anthropic import FAKE_API_KEY

SUITE = """
suites:
  support:
    features:
      replies:
        dataset:
          cases:
            - {id: a, input: 'hello', output: 'Hi there [[score:5]]'}
        target: {type: frozen}
        scorers:
          - {type: llm_judge, name: polite, rubric: 'Is the reply polite?'}
        calibration: {eval_set: gold, min_kappa: 0.5, min_cases: 5}
"""

# (judge's score, people's label): people pass what the judge scores 4-5, except
# on two cases where the judge passes what people failed, and one the reverse.
PAIRS = [(5, "pass")] * 8 + [(1, "fail")] * 8 + [(4, "fail"), (5, "fail"), (2, "pass")]


def test_run_measures_the_judge_against_the_labels(tmp_path: Path) -> None:
    rows = [
        {
            "case_id": f"c{i}",
            "input": f"question {i}",
            "output": f"answer {i} [[score:{score}]]",
            "label": label,
            "author": "ann",
        }
        for i, (score, label) in enumerate(PAIRS)
    ]
    (tmp_path / "gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "suites.yaml").write_text(SUITE)
    env = {"CONTINUOUS_EVAL_DATABASE_URL": f"sqlite:///{tmp_path / 'ce.db'}"}
    imported = cli(
        "eval-sets", "import", "gold.jsonl", "--eval-set", "gold", "--create", cwd=tmp_path, env=env
    )
    assert imported.returncode == 0, imported.stderr

    with FakeAnthropicServer(api_key=FAKE_API_KEY) as claude:
        judge_env = {
            **env,
            "ANTHROPIC_API_KEY": FAKE_API_KEY,
            "ANTHROPIC_BASE_URL": claude.base_url,
        }
        ran = cli("run", "--config", "suites.yaml", cwd=tmp_path, env=judge_env)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        judged = len(claude.requests)
    assert judged == 1 + len(PAIRS)  # the feature's case and every labelled case

    shown = cli("agreement", "--suite", "support", "--json", cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    [judge] = json.loads(shown.stdout)["judges"]
    latest = judge["latest"]
    assert latest["feature"] == "replies"
    assert latest["scorer"] == "polite"
    figures = latest
    assert figures["n"] == len(PAIRS)
    judge_passed = [int(score >= 4) for score, _ in PAIRS]
    people_passed = [int(label == "pass") for _, label in PAIRS]
    assert figures["kappa"] == cohen_kappa_score(people_passed, judge_passed)
    assert figures["exact"] == 16 / 19
    worst = [c["case_id"] for c in figures["contradictions"]]
    assert set(worst) == {"c16", "c17", "c18"}

    text = cli("agreement", "--suite", "support", cwd=tmp_path, env=env)
    assert text.returncode == 0, text.stderr
    assert "support/replies judge polite: eval set gold" in text.stdout
