"""The outbox's two halves over the in-memory store: planning rows and delivering them."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import timedelta

import pytest

from continuous_eval.core.models import (
    CaseDrop,
    DeliveryResult,
    NewRun,
    Regression,
    RunRecord,
    RunStatus,
    ScoreAggregate,
)
from continuous_eval.ports import RunStore
from continuous_eval.service.alerts import AlertDispatcher, AlertPlanner, Detection, backoff_s
from continuous_eval.testing import FakeClock, InMemoryRunStore


def _run(store: InMemoryRunStore, run_id: str, run_type: str = "scheduled") -> RunRecord:
    run = store.create_run(
        NewRun(
            id=run_id,
            suite="s",
            run_type=run_type,  # type: ignore[arg-type]
            features=("f",),
            cases_total=1,
            total=1,
            fingerprint="fp",
        )
    )
    return run


def _regression(run_id: str, feature: str = "f") -> Regression:
    return Regression(
        suite="s",
        feature=feature,
        scorer="judge",
        rule="drop",
        run_id=run_id,
        baseline_run_id="earlier",
        baseline=4.1,
        current=3.5,
        delta=-0.6,
        p_value=0.001,
        cases_paired=100,
        worst_cases=(CaseDrop("c1", 5.0, 1.0),),
    )


class Scripted:
    """A detector that answers what the test says."""

    def __init__(self) -> None:
        self.regressions: list[Regression] = []
        self.healthy: list[tuple[str, str]] = []

    def __call__(
        self, store: RunStore, run: RunRecord, aggregates: Sequence[ScoreAggregate]
    ) -> Detection:
        return Detection([r for r in self.regressions if r.run_id == run.id], self.healthy, [])


def _finish(store: InMemoryRunStore, planner: AlertPlanner, run: RunRecord) -> RunRecord:
    # The planner sees the run as it ends: with its final status.
    final = dataclasses.replace(run, status=RunStatus.SUCCEEDED)
    alerts = planner.plan(store, final, [], store.db_now())
    return store.finish_run(run.id, RunStatus.SUCCEEDED, None, [], alerts=alerts)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> InMemoryRunStore:
    return InMemoryRunStore(clock)


def test_no_channel_records_the_alert_as_suppressed(store: InMemoryRunStore) -> None:
    detect = Scripted()
    planner = AlertPlanner(detect, {}, timedelta(hours=24))
    run = _run(store, "r1")
    detect.regressions = [_regression("r1")]
    _finish(store, planner, run)
    [alert] = store.list_alerts()
    assert alert.status == "suppressed"
    assert alert.channel == "none"
    assert alert.key == "s:f:judge:r1"
    assert alert.summary["delta"] == -0.6


def test_manual_runs_never_alert(store: InMemoryRunStore) -> None:
    detect = Scripted()
    planner = AlertPlanner(detect, {"email": lambda r: "{}"}, timedelta(hours=24))
    run = _run(store, "m1", "manual")
    detect.regressions = [_regression("m1")]
    assert planner.plan(store, run, [], store.db_now()) == []


def test_cooldown_then_renotify_and_recovery(store: InMemoryRunStore, clock: FakeClock) -> None:
    detect = Scripted()
    planner = AlertPlanner(
        detect, {"email": lambda r: f'{{"run":"{r.run_id}"}}'}, timedelta(hours=24)
    )

    detect.regressions = [_regression("r1"), _regression("r2"), _regression("r3")]
    _finish(store, planner, _run(store, "r1"))
    clock.advance(timedelta(hours=6))
    _finish(store, planner, _run(store, "r2"))  # still regressing, inside the cooldown
    clock.advance(timedelta(hours=19))
    _finish(store, planner, _run(store, "r3"))  # still regressing, cooldown over
    by_run = {a.run_id: a for a in store.list_alerts(limit=10)}
    assert by_run["r1"].status == "pending"
    assert by_run["r1"].payload == '{"run":"r1"}'
    assert by_run["r2"].status == "suppressed"
    assert "cooldown" in (by_run["r2"].reason or "")
    assert by_run["r3"].status == "pending"

    detect.healthy = [("f", "judge")]
    _finish(store, planner, _run(store, "r4"))
    _finish(store, planner, _run(store, "r5"))  # recovered already: recorded once
    recoveries = [a for a in store.list_alerts(limit=10) if a.kind == "recovery"]
    assert [a.run_id for a in recoveries] == ["r4"]
    assert recoveries[0].status == "suppressed"


class Channel:
    name = "email"

    def __init__(self, *results: DeliveryResult) -> None:
        self.results = list(results)
        self.calls: list[tuple[str, str]] = []

    async def deliver(
        self, key: str, payload: str, destination: str | None = None
    ) -> DeliveryResult:
        self.calls.append((key, payload))
        return self.results.pop(0) if self.results else DeliveryResult("sent", "id-1")


def _pending(store: InMemoryRunStore, run_id: str = "r1", feature: str = "f") -> None:
    detect = Scripted()
    detect.regressions = [_regression(run_id, feature)]
    planner = AlertPlanner(detect, {"email": lambda r: '{"a":1}'}, timedelta(hours=24))
    _finish(store, planner, _run(store, run_id))


async def test_delivery_retries_with_backoff_then_sends(
    store: InMemoryRunStore, clock: FakeClock
) -> None:
    _pending(store)
    channel = Channel(DeliveryResult("retry", reason="HTTP 500", retry_after_s=None))
    dispatcher = AlertDispatcher(store, {"email": channel}, "me", max_attempts=5)
    assert await dispatcher.deliver_due() == 1
    [alert] = store.list_alerts()
    assert alert.status == "pending"
    assert alert.attempts == 1
    assert alert.last_error == "HTTP 500"
    assert await dispatcher.deliver_due() == 0  # not due before the backoff
    clock.advance(timedelta(seconds=backoff_s(1) + 1))
    assert await dispatcher.deliver_due() == 1
    [alert] = store.list_alerts()
    assert alert.status == "sent"
    assert alert.provider_id == "id-1"
    assert [c for c in channel.calls] == [("s:f:judge:r1", '{"a":1}')] * 2  # same key, same bytes


async def test_retry_after_from_the_provider_is_honoured(
    store: InMemoryRunStore, clock: FakeClock
) -> None:
    _pending(store)
    channel = Channel(DeliveryResult("retry", reason="429", retry_after_s=600))
    dispatcher = AlertDispatcher(store, {"email": channel}, "me", max_attempts=5)
    await dispatcher.deliver_due()
    clock.advance(timedelta(seconds=599))
    assert await dispatcher.deliver_due() == 0
    clock.advance(timedelta(seconds=2))
    assert await dispatcher.deliver_due() == 1


async def test_dead_answers_and_exhausted_attempts_end_dead(
    store: InMemoryRunStore, clock: FakeClock
) -> None:
    _pending(store, "r1")
    _pending(store, "r2", feature="g")  # another feature: no cooldown between them
    channel = Channel(
        DeliveryResult("dead", reason="422 validation_error"),
        DeliveryResult("retry", reason="timeout"),
        DeliveryResult("retry", reason="timeout"),
    )
    dispatcher = AlertDispatcher(store, {"email": channel}, "me", max_attempts=2)
    await dispatcher.deliver_due()
    clock.advance(timedelta(hours=2))
    await dispatcher.deliver_due()
    by_run = {a.run_id: a for a in store.list_alerts()}
    assert by_run["r1"].status == "dead"
    assert by_run["r1"].last_error == "422 validation_error"
    assert by_run["r2"].status == "dead"
    assert "gave up after 2 attempts" in (by_run["r2"].last_error or "")


async def test_a_raising_channel_or_a_missing_one_never_escapes(store: InMemoryRunStore) -> None:
    _pending(store)

    class Broken:
        name = "email"

        async def deliver(
            self, key: str, payload: str, destination: str | None = None
        ) -> DeliveryResult:
            raise RuntimeError("bug")

    dispatcher = AlertDispatcher(store, {"email": Broken()}, "me", max_attempts=3)
    assert await dispatcher.deliver_due() == 1
    [alert] = store.list_alerts()
    assert alert.status == "pending"
    assert "RuntimeError" in (alert.last_error or "")

    gone = AlertDispatcher(store, {}, "me", max_attempts=3)
    store.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    await gone.deliver_due()
    [alert] = store.list_alerts()
    assert alert.status == "dead"
    assert "no longer configured" in (alert.last_error or "")


async def test_two_dispatchers_never_deliver_the_same_alert_at_once(
    store: InMemoryRunStore,
) -> None:
    _pending(store)
    first, second = Channel(), Channel()
    a = AlertDispatcher(store, {"email": first}, "a", max_attempts=3)
    b = AlertDispatcher(store, {"email": second}, "b", max_attempts=3)
    await asyncio.gather(a.deliver_due(), b.deliver_due())
    assert len(first.calls) + len(second.calls) == 1
