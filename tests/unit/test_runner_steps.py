"""The runner stores an agent's steps as they arrive and scores the trajectory they make."""

from __future__ import annotations

import asyncio

import pytest

from continuous_eval.core.models import ResultStatus, RunStatus, TargetOutput
from continuous_eval.core.scorers import DeterministicScorer
from continuous_eval.core.suite import Case, TrajectoryScorer
from continuous_eval.core.trajectory import Step, ToolCall
from continuous_eval.errors import TargetError
from continuous_eval.ports import StepListener, StreamingTarget
from continuous_eval.service.runner import Runner
from continuous_eval.testing import FakeClock, InMemoryRunStore
from continuous_eval.testing.builders import plan_run
from tests.unit.runner_doubles import echo_plan

LOOKUP = Step(kind="tool_call", name="lookup", arguments={"order": 7}, id="t1")
FOUND = Step(kind="tool_result", id="t1", content="delivered")
REFUND = Step(kind="tool_call", name="refund", arguments={"order": 7}, id="t2")
EXPECTED = (ToolCall(name="lookup", arguments={"order": 7}), ToolCall(name="refund"))


class ScriptedAgent:
    """Streams each case's scripted steps; holds case ``held`` after its first step."""

    def __init__(self, steps: dict[str, tuple[Step, ...]], held: str | None = None) -> None:
        self.steps = steps
        self.held = held
        self.first_sent = asyncio.Event()
        self.release = asyncio.Event()

    async def answer(self, case: Case) -> TargetOutput:
        raise AssertionError("the runner must stream a streaming target")

    async def answer_streaming(self, case: Case, on_step: StepListener) -> TargetOutput:
        for index, step in enumerate(self.steps[case.id]):
            await on_step(case.id, index, step)
            if case.id == self.held and index == 0:
                self.first_sent.set()
                await self.release.wait()
        if case.input == "cut":
            raise TargetError("the agent's stream ended before its final event (after 2 steps)")
        return TargetOutput("done", steps=self.steps[case.id])

    async def aclose(self) -> None:
        return None


class CollectedAgent:
    """Returns its steps only with the answer, like a recorded interaction."""

    async def answer(self, case: Case) -> TargetOutput:
        return TargetOutput("done", steps=(LOOKUP, FOUND, REFUND))

    async def aclose(self) -> None:
        return None


@pytest.fixture
def store() -> InMemoryRunStore:
    return InMemoryRunStore(FakeClock())


def trajectory_cases(*ids_and_inputs: tuple[str, str]) -> list[Case]:
    return [Case(id=i, input=text, expected_trajectory=EXPECTED) for i, text in ids_and_inputs]


async def test_steps_are_stored_while_the_case_runs_then_scored(store: InMemoryRunStore) -> None:
    agent = ScriptedAgent({"c1": (LOOKUP, FOUND, REFUND)}, held="c1")
    assert isinstance(agent, StreamingTarget)
    scorer = DeterministicScorer(TrajectoryScorer(type="trajectory", match="in_order"))
    plan = echo_plan(trajectory_cases(("c1", "refund 7")), target=agent, scorers=[scorer])
    runner = Runner(store, max_concurrency=2)
    running = asyncio.create_task(runner.execute(plan_run(store, plan), plan))

    await agent.first_sent.wait()
    # The case is still answering: its first step is stored, no result yet.
    assert store.case_steps("r1", "f", "c1") == [LOOKUP]
    assert store.results.get("r1", {}) == {}
    agent.release.set()
    done = await running
    runner.close()

    assert done.status is RunStatus.SUCCEEDED
    assert store.case_steps("r1", "f", "c1") == [LOOKUP, FOUND, REFUND]
    (result,) = store.results["r1"].values()
    assert (result.status, result.score, result.passed) == (ResultStatus.OK, 1.0, True)


async def test_a_cut_stream_errors_the_case_and_keeps_the_steps_it_sent(
    store: InMemoryRunStore,
) -> None:
    agent = ScriptedAgent({"c1": (LOOKUP, FOUND), "c2": (LOOKUP, REFUND)})
    scorer = DeterministicScorer(TrajectoryScorer(type="trajectory", match="exact"))
    plan = echo_plan(
        trajectory_cases(("c1", "cut"), ("c2", "fine")), target=agent, scorers=[scorer]
    )
    runner = Runner(store, max_concurrency=2, completeness_floor=0.0)
    await runner.execute(plan_run(store, plan), plan)
    runner.close()

    by_case = {r.case_id: r for r in store.results["r1"].values()}
    assert by_case["c1"].status is ResultStatus.ERROR
    assert "ended before its final event" in (by_case["c1"].error or "")
    assert store.case_steps("r1", "f", "c1") == [LOOKUP, FOUND]
    assert (by_case["c2"].status, by_case["c2"].score) == (ResultStatus.OK, 1.0)


async def test_steps_returned_with_the_answer_are_stored_once_it_answers(
    store: InMemoryRunStore,
) -> None:
    scorer = DeterministicScorer(TrajectoryScorer(type="trajectory", match="recall"))
    plan = echo_plan(trajectory_cases(("c1", "x")), target=CollectedAgent(), scorers=[scorer])
    runner = Runner(store, max_concurrency=2)
    await runner.execute(plan_run(store, plan), plan)
    runner.close()

    assert store.case_steps("r1", "f", "c1") == [LOOKUP, FOUND, REFUND]
    (result,) = store.results["r1"].values()
    assert result.score == 1.0


async def test_a_target_without_steps_stores_none(store: InMemoryRunStore) -> None:
    plan = echo_plan([Case(id="c1", input="plain")])
    runner = Runner(store, max_concurrency=2)
    await runner.execute(plan_run(store, plan), plan)
    runner.close()
    assert store.steps == {}
