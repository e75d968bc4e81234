"""The runner over the in-memory store: failures per case, bounds, streaming, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import pytest

from continuous_eval.core.models import (
    CaseResult,
    Fence,
    ProgressDelta,
    ResultStatus,
    RunStatus,
    ScoreOutcome,
    Usage,
)
from continuous_eval.core.suite import Case
from continuous_eval.errors import StoreError
from continuous_eval.service.runner import Runner
from continuous_eval.testing import FakeClock, InMemoryRunStore
from continuous_eval.testing.builders import cases, plan_run
from tests.unit.runner_doubles import EchoTarget, LengthScorer, echo_plan


@pytest.fixture
def store() -> InMemoryRunStore:
    return InMemoryRunStore(FakeClock())


async def test_every_case_scored_and_aggregated(store: InMemoryRunStore) -> None:
    plan = echo_plan(cases(["a", "bb", "ccc", "dddd"]))
    runner = Runner(store, max_concurrency=8)
    done = await runner.execute(plan_run(store, plan), plan)
    runner.close()

    assert done.status is RunStatus.SUCCEEDED
    assert (done.cases_done, done.scored, done.errored, done.total) == (4, 4, 0, 4)
    [agg] = store.get_aggregates("r1")
    assert agg.mean == pytest.approx(2.5)
    assert agg.n == 4
    assert agg.errors == 0
    assert agg.fingerprint == "pair-fp"
    assert done.judge_usage == Usage(12, 4, pytest.approx(0.0004))  # type: ignore[arg-type]
    assert done.target_usage.input_tokens == 40


async def test_failures_are_errors_never_zeros_and_the_run_goes_on(
    store: InMemoryRunStore,
) -> None:
    plan = echo_plan(
        cases(["boom one", "ok", "judge-down", "fine"]),
        scorers=[LengthScorer("length"), LengthScorer("length2")],
    )
    runner = Runner(store, max_concurrency=8)
    done = await runner.execute(plan_run(store, plan), plan)
    runner.close()

    # Every case ran; half the results are errors: below the floor, not a success.
    assert done.status is RunStatus.INCONCLUSIVE
    assert done.status_reason == (
        "inconclusive: 4 of 8 results scored, 4 errors (the completeness floor is 90%)"
    )
    assert done.cases_done == 4
    # 4 cases x 2 scorers: the target failure errors both, the judge outage errors both.
    assert (done.total, done.scored, done.errored) == (8, 4, 4)
    by_name = {a.scorer: a for a in store.get_aggregates("r1")}
    assert by_name["length"].mean == pytest.approx((2 + 4) / 2)  # "ok", "fine"
    assert by_name["length"].n == 2
    assert by_name["length"].errors == 2
    rows = {(r.case_id, r.scorer): r for r in store.worst_results("r1", limit=100)}
    target_failure = rows[("c0", "length")]
    assert target_failure.status is ResultStatus.ERROR
    assert target_failure.score is None
    assert target_failure.error == "target failed: the service answered 503"
    judge_failure = rows[("c2", "length2")]
    assert judge_failure.status is ResultStatus.ERROR
    assert "scorer failed" in (judge_failure.error or "")
    assert judge_failure.usage.input_tokens == 7  # spent even though it failed


async def test_unexpected_exceptions_in_user_code_are_case_errors(
    store: InMemoryRunStore,
) -> None:
    class Broken:
        name = "broken"

        async def score(self, output: str, case: Case) -> ScoreOutcome:
            raise ZeroDivisionError("division by zero")

    plan = echo_plan(cases(["a", "b"]), scorers=[Broken()])
    runner = Runner(store, max_concurrency=2)
    done = await runner.execute(plan_run(store, plan), plan)
    runner.close()
    assert done.status is RunStatus.INCONCLUSIVE  # nothing scored: quality unknown
    assert done.errored == 2
    [agg] = store.get_aggregates("r1")
    assert agg.mean is None
    assert agg.n == 0
    assert agg.errors == 2


async def test_suite_and_global_limits_bound_cases_in_flight(store: InMemoryRunStore) -> None:
    target = EchoTarget(fill=5)
    plan = echo_plan(cases([f"x{i}" for i in range(40)]), target=target, concurrency=5)
    runner = Runner(store, max_concurrency=64)
    async with asyncio.timeout(10):
        await runner.execute(plan_run(store, plan), plan)
    assert target.max_in_flight == 5

    shared = EchoTarget(fill=6)
    plan_a = echo_plan(cases([f"a{i}" for i in range(30)]), target=shared, concurrency=8)
    plan_b = echo_plan(cases([f"b{i}" for i in range(30)]), target=shared, concurrency=8)
    limited = Runner(store, max_concurrency=6)
    async with asyncio.timeout(10):
        await asyncio.gather(
            limited.execute(plan_run(store, plan_a, "ra"), plan_a),
            limited.execute(plan_run(store, plan_b, "rb"), plan_b),
        )
    assert shared.max_in_flight == 6
    runner.close()
    limited.close()


async def test_the_dataset_is_pulled_lazily(store: InMemoryRunStore) -> None:
    target = EchoTarget(fill=3)  # the first three cases wait for each other
    pulled = 0

    def stream() -> Iterator[Case]:
        nonlocal pulled
        for i in range(200):
            pulled += 1
            # Never more than the in-flight cases plus the one being handed out.
            assert pulled - store_done() <= 3 + 1
            yield Case(id=f"c{i}", input=f"x{i}")

    def store_done() -> int:
        return target.calls - target.in_flight

    cases_stream = stream()
    plan = echo_plan(
        [Case(id="unused", input="x")], target=target, concurrency=3, stream=cases_stream
    )
    runner = Runner(store, max_concurrency=64)
    async with asyncio.timeout(10):
        done = await runner.execute(plan_run(store, plan), plan)
    runner.close()
    assert pulled == 200
    assert done.cases_done == 200


async def test_results_are_stored_while_the_run_is_going(store: InMemoryRunStore) -> None:
    gate = asyncio.Event()
    target = EchoTarget(gate=gate)
    items = [*cases(["a", "b", "c"]), Case(id="last", input="z")]
    plan = echo_plan(items, target=target)
    runner = Runner(store, max_concurrency=8)
    task = asyncio.create_task(runner.execute(plan_run(store, plan), plan))
    await asyncio.to_thread(store.wait_until, lambda: store.get_run("r1").cases_done == 3)
    assert store.get_run("r1").status is RunStatus.RUNNING
    assert store.get_run("r1").cases_done == 3
    gate.set()
    done = await task
    runner.close()
    assert done.cases_done == 4


async def test_cancellation_keeps_finished_results_and_ends_cancelled(
    store: InMemoryRunStore,
) -> None:
    gate = asyncio.Event()  # never set: the 'last' case hangs
    plan = echo_plan([*cases(["a", "b"]), Case(id="last", input="z")], target=EchoTarget(gate=gate))
    runner = Runner(store, max_concurrency=8)
    task = asyncio.create_task(runner.execute(plan_run(store, plan), plan))
    await asyncio.to_thread(store.wait_until, lambda: store.get_run("r1").cases_done == 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    runner.close()
    run = store.get_run("r1")
    assert run.status is RunStatus.CANCELLED
    assert run.cases_done == 2
    [agg] = store.get_aggregates("r1")
    assert agg.n == 2


async def test_a_failing_store_fails_the_run_with_its_reason(store: InMemoryRunStore) -> None:
    class FailingStore(InMemoryRunStore):
        def save_results(
            self,
            run_id: str,
            results: Sequence[CaseResult],
            delta: ProgressDelta,
            *,
            fence: Fence | None = None,
        ) -> None:
            raise StoreError("disk full")

    failing = FailingStore(FakeClock())
    plan = echo_plan(cases([f"x{i}" for i in range(50)]), target=EchoTarget(delay=0.001))
    runner = Runner(failing, max_concurrency=4)
    with pytest.raises(StoreError, match="disk full"):
        await runner.execute(plan_run(failing, plan), plan)
    runner.close()
    run = failing.get_run("r1")
    assert run.status is RunStatus.FAILED
    assert "disk full" in (run.status_reason or "")


async def test_every_result_keeps_its_case_input_and_expected_answer_capped(
    store: InMemoryRunStore,
) -> None:
    asked = [
        Case(id="text", input="a question", expected="an answer"),
        Case(id="json", input={"q": "où?", "n": [1, 2]}),
        Case(id="long", input="x" * 50, expected="y" * 50),
        Case(id="boom", input="boom: the target fails", expected=7),
    ]
    plan = echo_plan(asked)
    runner = Runner(store, max_concurrency=8, excerpt_chars=20)
    await runner.execute(plan_run(store, plan), plan)
    runner.close()

    rows = {r.case_id: r for r in store.worst_results("r1", limit=10)}
    assert (rows["text"].input_excerpt, rows["text"].expected_excerpt) == (
        "a question",
        "an answer",
    )
    # Any other JSON value is kept as JSON text, non-ASCII as it is.
    assert rows["json"].input_excerpt == '{"q": "où?", "n": [1'
    assert rows["json"].expected_excerpt is None
    assert (rows["long"].input_excerpt, rows["long"].expected_excerpt) == ("x" * 20, "y" * 20)
    # A case whose target failed still says what it asked.
    assert rows["boom"].status is ResultStatus.ERROR
    assert (rows["boom"].input_excerpt, rows["boom"].expected_excerpt) == (
        "boom: the target fai",
        "7",
    )
