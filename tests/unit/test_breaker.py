"""The circuit breaker: pure rules, and a run that stops spending on a provider that refuses."""

from __future__ import annotations

import asyncio

import pytest

from continuous_eval.core.breaker import Breaker
from continuous_eval.core.models import RunStatus, ScoreOutcome, TargetOutput
from continuous_eval.core.suite import Case
from continuous_eval.errors import ScorerError, TargetError
from continuous_eval.service.runner import Runner
from continuous_eval.testing import InMemoryRunStore
from continuous_eval.testing.builders import cases, plan_run
from tests.unit.runner_doubles import echo_plan

REFUSAL = "Anthropic 401 authentication_error"


def test_a_streak_of_refusals_trips_and_one_success_resets_it() -> None:
    breaker = Breaker(3)
    for _ in range(2):
        breaker.record(REFUSAL)
    breaker.record(None)
    assert (breaker.consecutive, breaker.tripped, breaker.confirmed) == (0, False, True)
    for _ in range(3):
        breaker.record(REFUSAL)
    assert breaker.tripped
    assert breaker.reason() == (
        f"stopped after 3 cases in a row were refused by the provider: {REFUSAL}"
    )


def test_until_confirmed_no_more_cases_start_than_the_threshold() -> None:
    breaker = Breaker(3)
    assert [breaker.may_start(n) for n in range(5)] == [True, True, True, False, False]
    breaker.record(None)
    assert breaker.may_start(1000)


def test_a_zero_threshold_turns_it_off() -> None:
    breaker = Breaker(0)
    for _ in range(100):
        breaker.record(REFUSAL)
    assert not breaker.tripped
    assert breaker.may_start(10_000)
    with pytest.raises(ValueError, match="threshold"):
        Breaker(-1)


class RefusingTarget:
    """A target whose provider refuses every call, or (``ok``) answers some.

    ``fill``: no call is answered until that many are in flight at once, so
    the runner must have started them all before it hears any refusal.
    """

    def __init__(self, ok: set[str] | None = None, fill: int = 1) -> None:
        self.calls = 0
        self.ok = ok or set()
        self.fill = fill
        self.in_flight = 0
        self.filled = asyncio.Event()

    async def answer(self, case: Case) -> TargetOutput:
        self.calls += 1
        self.in_flight += 1
        if self.in_flight >= self.fill:
            self.filled.set()
        await self.filled.wait()
        self.in_flight -= 1
        if case.id in self.ok:
            return TargetOutput("fine")
        raise TargetError("HTTP 401 from https://llm.example.com", refusal="HTTP 401")

    async def aclose(self) -> None:
        return None


async def test_a_provider_refusing_from_the_start_costs_the_threshold_of_calls() -> None:
    store = InMemoryRunStore()
    target = RefusingTarget(fill=4)  # the four calls the breaker allows are in flight together
    plan = echo_plan(cases([f"q{i}" for i in range(40)]), target=target, concurrency=16)
    runner = Runner(store, max_concurrency=64, breaker_refusals=4)
    async with asyncio.timeout(10):
        done = await runner.execute(plan_run(store, plan), plan)
    runner.close()

    assert target.calls == 4
    assert done.status is RunStatus.FAILED
    assert done.status_reason == (
        "stopped after 4 cases in a row were refused by the provider: HTTP 401"
    )
    assert done.cases_done == 4  # what ran is kept


async def test_refusals_between_successes_never_trip_it() -> None:
    store = InMemoryRunStore()
    target = RefusingTarget(ok={f"c{i}" for i in range(0, 40, 3)})  # every third answers
    plan = echo_plan(cases([f"q{i}" for i in range(40)]), target=target, concurrency=1)
    runner = Runner(store, max_concurrency=8, breaker_refusals=4, completeness_floor=0.0)
    done = await runner.execute(plan_run(store, plan), plan)
    runner.close()
    assert target.calls == 40
    assert done.status is RunStatus.SUCCEEDED


async def test_a_judge_that_starts_refusing_mid_run_trips_it() -> None:
    class Judge:
        name = "judge"

        def __init__(self) -> None:
            self.calls = 0

        async def score(self, output: str, case: Case) -> ScoreOutcome:
            self.calls += 1
            if self.calls > 5:
                raise ScorerError("key revoked", refusal="Anthropic 403 permission_error")
            return ScoreOutcome(4.0)

    store = InMemoryRunStore()
    judge = Judge()
    plan = echo_plan(cases([f"q{i}" for i in range(50)]), scorers=[judge], concurrency=1)
    runner = Runner(store, max_concurrency=8, breaker_refusals=3)
    done = await runner.execute(plan_run(store, plan), plan)
    runner.close()
    assert judge.calls == 8  # 5 scored, then 3 refused in a row
    assert done.status is RunStatus.FAILED
    assert "Anthropic 403 permission_error" in (done.status_reason or "")


async def test_plain_errors_are_no_refusals() -> None:
    store = InMemoryRunStore()

    class Broken:
        async def answer(self, case: Case) -> TargetOutput:
            raise TargetError("the service answered 503")

        async def aclose(self) -> None:
            return None

    plan = echo_plan(cases([f"q{i}" for i in range(20)]), target=Broken(), concurrency=4)
    runner = Runner(store, max_concurrency=8, breaker_refusals=2)
    done = await runner.execute(plan_run(store, plan), plan)
    runner.close()
    assert done.cases_done == 20  # every case ran: a 503 may pass
    assert done.status is RunStatus.INCONCLUSIVE
