"""``LearnedCaseScorer``: sandbox outcomes become scores or errors with their reason."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from pydantic import JsonValue, ValidationError

from continuous_eval.adapters.learned_scorer import LearnedCaseScorer, describe_failure
from continuous_eval.core.evaluators import EvaluatorMetrics, LearnedEvaluator, NewEvaluator
from continuous_eval.core.models import ScoreOutcome
from continuous_eval.core.sandboxing import SandboxLimits, SandboxOutcome, SandboxProgram
from continuous_eval.core.suite import Case, LearnedScorer, format_location, parse_suite_file
from continuous_eval.errors import ScorerError

LIMITS = SandboxLimits(cpu_s=2.0, memory_mb=256, wall_s=5.0, output_bytes=65_536)


class ScriptedSandbox:
    """Answers every call with the next scripted outcome and records what it was given."""

    isolated = True

    def __init__(self, *outcomes: SandboxOutcome) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[SandboxProgram, str, Mapping[str, JsonValue]]] = []

    async def score(
        self, program: SandboxProgram, output: str, case: Mapping[str, JsonValue]
    ) -> SandboxOutcome:
        self.calls.append((program, output, case))
        return self.outcomes.pop(0)

    async def aclose(self) -> None:
        return None


def _evaluator(code: str = "def score(o, c):\n    return True\n") -> LearnedEvaluator:
    metrics = EvaluatorMetrics(accuracy=1.0, precision=1.0, recall=1.0, train_cases=1, test_cases=1)
    new = NewEvaluator(name="tone", eval_set="s", code=code, model="m", prompt="p", metrics=metrics)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return LearnedEvaluator(version=3, evaluator=new, created_at=now, promoted_at=now)


def _scorer(sandbox: ScriptedSandbox, threshold: float = 0.5) -> LearnedCaseScorer:
    config = LearnedScorer(type="learned", evaluator="tone@3", pass_threshold=threshold)
    return LearnedCaseScorer(config, _evaluator(), sandbox, LIMITS)


CASE = Case(id="c1", input="hi", expected="hello")


@pytest.mark.parametrize(
    ("value", "threshold", "expected"),
    [
        (True, 0.5, ScoreOutcome(1.0, True)),
        (False, 0.5, ScoreOutcome(0.0, False)),
        (0.7, 0.5, ScoreOutcome(0.7, True)),
        (0.7, 0.8, ScoreOutcome(0.7, False)),
        (3, 0.5, ScoreOutcome(3.0, True)),
        ({"score": 0.2, "passed": True, "reason": "kind"}, 0.5, ScoreOutcome(0.2, True, "kind")),
        ({"score": 0.9, "rationale": "r"}, 0.5, ScoreOutcome(0.9, True, "r")),
    ],
)
async def test_values_map_as_a_python_scorers_do(
    value: JsonValue, threshold: float, expected: ScoreOutcome
) -> None:
    sandbox = ScriptedSandbox(SandboxOutcome("ok", value=value))
    assert await _scorer(sandbox, threshold).score("out", CASE) == expected
    program, output, case = sandbox.calls[0]
    assert program.source == _evaluator().evaluator.code
    assert output == "out"
    assert case["id"] == "c1"
    assert case["expected"] == "hello"


async def test_a_dict_with_unknown_keys_is_an_error() -> None:
    sandbox = ScriptedSandbox(SandboxOutcome("ok", value={"score": 1, "why": "x"}))
    with pytest.raises(
        ScorerError, match=r"learned evaluator tone@3 returned unknown keys \['why'\]"
    ):
        await _scorer(sandbox).score("out", CASE)


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        (SandboxOutcome("memory"), "learned evaluator tone@3 hit its memory limit (256 MB)"),
        (SandboxOutcome("cpu"), "learned evaluator tone@3 hit its CPU time limit (2 s)"),
        (SandboxOutcome("timeout"), "learned evaluator tone@3 hit its wall time limit (5 s)"),
        (
            SandboxOutcome("output"),
            "learned evaluator tone@3 exceeded its output limit (65536 bytes)",
        ),
        (
            SandboxOutcome("exception", error="KeyError: 'x'"),
            "learned evaluator tone@3 raised KeyError: 'x'",
        ),
        (
            SandboxOutcome("invalid", error="returned str"),
            "learned evaluator tone@3 returned no score: returned str",
        ),
        (
            SandboxOutcome("crash", error="exit 3"),
            "learned evaluator tone@3 crashed: exit 3",
        ),
        (
            SandboxOutcome("refused", error="closed"),
            "learned evaluator tone@3 was not run: closed",
        ),
    ],
)
async def test_a_failed_call_is_a_scorer_error_with_its_reason(
    outcome: SandboxOutcome, message: str
) -> None:
    assert describe_failure("tone@3", outcome, LIMITS) == message
    with pytest.raises(ScorerError) as failed:
        await _scorer(ScriptedSandbox(outcome)).score("out", CASE)
    assert str(failed.value) == message


def test_the_code_hash_is_the_sha256_of_the_code() -> None:
    scorer = _scorer(ScriptedSandbox())
    code = _evaluator().evaluator.code.encode()
    assert scorer.code_sha256 == hashlib.sha256(code).hexdigest()
    assert scorer.name == "learned"


def test_a_suite_file_takes_a_learned_scorer_by_name_and_version() -> None:
    suite = parse_suite_file(
        {
            "suites": {
                "s": {
                    "features": {
                        "f": {
                            "dataset": {"cases": [{"input": "q"}]},
                            "target": {"type": "frozen"},
                            "scorers": [{"type": "learned", "evaluator": "tone@3"}],
                        }
                    }
                }
            }
        }
    )
    scorer = suite.suites["s"].features["f"].scorers[0]
    assert isinstance(scorer, LearnedScorer)
    assert scorer.ref == ("tone", 3)
    assert scorer.pass_threshold == 0.5


@pytest.mark.parametrize("ref", ["tone", "tone@0", "tone@x", "@3", "tone@3@4"])
def test_a_bad_ref_names_the_expected_form_at_its_key(ref: str) -> None:
    with pytest.raises(ValidationError) as bad:
        LearnedScorer.model_validate({"type": "learned", "evaluator": ref})
    error = bad.value.errors()[0]
    assert format_location(error["loc"]) == "evaluator"
    assert "is not NAME@VERSION (e.g. tone@3)" in error["msg"]
