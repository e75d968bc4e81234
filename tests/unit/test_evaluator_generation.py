"""The generation job over in-memory stores, a scripted author and the in-process sandbox."""

from __future__ import annotations

import pytest

from continuous_eval.errors import (
    EvaluatorAuthorError,
    EvaluatorGenerationError,
    SandboxUnavailable,
)
from continuous_eval.fakes.evaluator_codes import CODES, GOOD
from continuous_eval.ports.jobs import JobCancelled
from continuous_eval.service.evaluator_generation import STEPS, EvaluatorGeneration
from continuous_eval.testing import FakeClock
from continuous_eval.testing.evaluators import InMemoryEvaluatorStore
from continuous_eval.testing.generation import RecordingProgress, ScriptedAuthor, fill_yes_no_set
from continuous_eval.testing.labels import InMemoryEvalSetStore
from continuous_eval.testing.sandbox import InProcessSandbox


class World:
    def __init__(self, *codes: str, retry_invalid: bool = True) -> None:
        self.clock = FakeClock()
        self.eval_sets = InMemoryEvalSetStore(self.clock)
        self.evaluators = InMemoryEvaluatorStore(self.clock)
        self.author = ScriptedAuthor(codes)
        self.sandbox = InProcessSandbox()
        self.handler = EvaluatorGeneration(
            self.eval_sets,
            self.evaluators,
            self.author,
            self.sandbox,
            self.clock,
            allow_unisolated=True,
            retry_invalid=retry_invalid,
        )


async def test_good_code_is_tested_on_the_held_out_split_and_stored() -> None:
    world = World(GOOD)
    fill_yes_no_set(world.eval_sets, "answers", wrong=["pass-3", "fail-7"])
    progress = RecordingProgress()
    result = await world.handler({"eval_set": "answers", "seed": 3, "job_id": 41}, progress)

    assert progress.names == list(STEPS)
    assert isinstance(result, dict)
    stored = world.evaluators.evaluator("answers", 1)
    assert stored is not None
    assert stored.evaluator.code == GOOD
    metrics = stored.evaluator.metrics
    assert (metrics.train_cases, metrics.test_cases) == (14, 6)
    assert world.sandbox.calls == 6
    held_out = stored.evaluator.details["held_out"]
    assert isinstance(held_out, list)
    flipped = {"pass-3", "fail-7"} & set(held_out)
    assert metrics.accuracy == pytest.approx((6 - len(flipped)) / 6)
    assert {c.case_id for c in metrics.contradictions} == flipped
    assert stored.evaluator.job_id == 41
    assert stored.evaluator.model == "claude-test-author"
    assert "## Example" in stored.evaluator.prompt
    assert "[system]" in stored.evaluator.prompt
    assert result == {
        "name": "answers",
        "version": 1,
        "ref": "answers@1",
        "eval_set": "answers",
        "model": "claude-test-author",
        "accuracy": metrics.accuracy,
        "precision": metrics.precision,
        "recall": metrics.recall,
        "train_cases": 14,
        "test_cases": 6,
        "errors": 0,
        "contradictions": len(flipped),
    }
    # The training examples shown are never the held-out ones.
    shown = world.author.prompts[0].user
    assert all(f'"case_id": "{case_id}"' not in shown for case_id in held_out)


async def test_a_second_generation_is_the_next_version_under_the_given_name() -> None:
    world = World(GOOD, GOOD)
    fill_yes_no_set(world.eval_sets, "answers")
    await world.handler({"eval_set": "answers", "name": "says-yes"}, RecordingProgress())
    second = await world.handler(
        {"eval_set": 1, "name": "says-yes", "model": "claude-other"}, RecordingProgress()
    )
    assert isinstance(second, dict)
    assert second["version"] == 2
    assert second["accuracy"] == 1.0
    assert second["model"] == "claude-other"
    assert world.author.models == [None, "claude-other"]


async def test_invalid_code_is_retried_once_with_the_problems_then_fails_unstored() -> None:
    world = World(CODES["socket"], CODES["subprocess"])
    fill_yes_no_set(world.eval_sets)
    progress = RecordingProgress()
    with pytest.raises(EvaluatorGenerationError, match="failed validation after 2") as caught:
        await world.handler({"eval_set": "answers"}, progress)
    assert any("'subprocess' is not allowed" in p for p in caught.value.problems)
    assert "importing 'socket' is not allowed" in world.author.prompts[1].user
    assert world.evaluators.list_evaluators() == []
    assert world.sandbox.calls == 0
    assert "testing" not in progress.names


async def test_a_fixed_retry_is_stored_with_its_attempts() -> None:
    world = World(CODES["socket"], GOOD)
    fill_yes_no_set(world.eval_sets)
    result = await world.handler({"eval_set": "answers"}, RecordingProgress())
    assert isinstance(result, dict)
    assert result["accuracy"] == 1.0
    stored = world.evaluators.evaluator("answers", 1)
    assert stored is not None
    assert stored.evaluator.details["attempts"] == 2
    assert "previous code was rejected" in stored.evaluator.prompt


async def test_without_retry_invalid_code_fails_at_once() -> None:
    world = World(CODES["socket"], GOOD, retry_invalid=False)
    fill_yes_no_set(world.eval_sets)
    with pytest.raises(EvaluatorGenerationError, match="after 1 attempt"):
        await world.handler({"eval_set": "answers"}, RecordingProgress())


async def test_code_that_raises_on_a_case_counts_as_a_disagreement() -> None:
    flaky = (
        "def score(output, case):\n"
        "    if 'Yes' in output:\n"
        "        return 1 / 0\n"
        "    return False\n"
    )
    world = World(flaky)
    fill_yes_no_set(world.eval_sets)
    await world.handler({"eval_set": "answers"}, RecordingProgress())
    stored = world.evaluators.evaluator("answers", 1)
    assert stored is not None
    metrics = stored.evaluator.metrics
    assert metrics.errors == 3
    assert metrics.accuracy == pytest.approx(0.5)
    assert all(
        str(c.value).startswith("exception: ZeroDivisionError") for c in metrics.contradictions
    )


async def test_too_few_labels_unknown_sets_and_bad_params_fail_with_a_reason() -> None:
    world = World(GOOD)
    fill_yes_no_set(world.eval_sets, "tiny", passes=1, fails=0)
    with pytest.raises(EvaluatorGenerationError, match="needs at least 2"):
        await world.handler({"eval_set": "tiny"}, RecordingProgress())
    with pytest.raises(LookupError, match="no eval set 'nope'"):
        await world.handler({"eval_set": "nope"}, RecordingProgress())
    for params, problem in [
        ({}, "'eval_set'"),
        ({"eval_set": "tiny", "name": "a b"}, "'name'"),
        ({"eval_set": "tiny", "seed": "1"}, "'seed'"),
        ({"eval_set": "tiny", "model": 3}, "'model'"),
    ]:
        with pytest.raises(ValueError, match=problem):
            await world.handler(params, RecordingProgress())  # type: ignore[arg-type]


async def test_an_unisolated_sandbox_is_refused_unless_allowed() -> None:
    world = World(GOOD)
    fill_yes_no_set(world.eval_sets)
    strict = EvaluatorGeneration(
        world.eval_sets, world.evaluators, world.author, world.sandbox, world.clock
    )
    with pytest.raises(SandboxUnavailable, match="without isolation"):
        await strict({"eval_set": "answers"}, RecordingProgress())
    assert world.author.prompts == []


async def test_cancel_stops_at_the_next_step_and_stores_nothing() -> None:
    world = World(GOOD)
    fill_yes_no_set(world.eval_sets)
    with pytest.raises(JobCancelled):
        await world.handler({"eval_set": "answers"}, RecordingProgress(cancel_at="testing"))
    assert world.evaluators.list_evaluators() == []
    assert world.sandbox.calls == 0


async def test_author_failures_fail_the_job() -> None:
    world = World()
    fill_yes_no_set(world.eval_sets)
    with pytest.raises(EvaluatorAuthorError):
        await world.handler({"eval_set": "answers"}, RecordingProgress())
