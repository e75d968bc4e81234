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
    RunRecord,
    RunStatus,
    ScoreAggregate,
)
from continuous_eval.core.regression import Decision, DecisionKind, Incident, RunDecision
from continuous_eval.ports import HistoryReader
from continuous_eval.service.alerts import AlertDispatcher, AlertPlanner, backoff_s
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


def _regressed(run_id: str, feature: str = "f", diff: float = -0.6) -> Decision:
    return Decision(
        feature=feature,
        scorer="judge",
        kind=DecisionKind.REGRESSED,
        message="fell",
        rule="drop",
        current=4.1 + diff,
        baseline=4.1,
        mean_difference=diff,
        p_value=0.0001,
        p_adjusted=0.001,
        n_paired=100,
        baseline_run_ids=("earlier",),
        fallen=(CaseDrop("c1", 5.0, 1.0),),
        incident=Incident(run_id, "regression", diff),
        transition="opened",
    )


def _still(run_id: str, feature: str = "f") -> Decision:
    return Decision(
        feature, "judge", DecisionKind.STILL_REGRESSED, "still down",
        incident=Incident(run_id, "regression", -0.6),
    )  # fmt: skip


def _recovered(feature: str = "f") -> Decision:
    return Decision(
        feature, "judge", DecisionKind.RECOVERED, "back", transition="recovered", known_good=True
    )


class Scripted:
    """A detector that answers what the test says, per run id."""

    def __init__(self) -> None:
        self.decisions: dict[str, list[Decision]] = {}

    def __call__(
        self, store: HistoryReader, run: RunRecord, aggregates: Sequence[ScoreAggregate]
    ) -> RunDecision:
        decided = tuple(self.decisions.get(run.id, []))
        candidate = run.run_type != "scheduled"
        return RunDecision(run.suite, run.id, candidate, "bh", len(decided), decided)


def _finish(store: InMemoryRunStore, planner: AlertPlanner, run: RunRecord) -> RunRecord:
    # The planner sees the run as it ends: with its final status.
    final = dataclasses.replace(run, status=RunStatus.SUCCEEDED)
    planned = planner.plan(store, final, [], store.db_now())
    return store.finish_run(
        run.id, RunStatus.SUCCEEDED, None, [], alerts=planned.alerts, decisions=planned.decisions
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> InMemoryRunStore:
    return InMemoryRunStore(clock)


def test_no_channel_records_the_report_as_suppressed(store: InMemoryRunStore) -> None:
    detect = Scripted()
    planner = AlertPlanner(detect, {})
    run = _run(store, "r1")
    detect.decisions["r1"] = [_regressed("r1")]
    _finish(store, planner, run)
    [alert] = store.list_alerts()
    assert alert.status == "suppressed"
    assert alert.channel == "none"
    assert alert.key == "s:r1:regression"
    items = alert.summary["items"]
    assert isinstance(items, list)
    [item] = items
    assert item["mean_difference"] == -0.6
    assert [d.kind for d in store.get_decisions("r1")] == [DecisionKind.REGRESSED]


def test_manual_runs_store_decisions_but_never_alert(store: InMemoryRunStore) -> None:
    detect = Scripted()
    planner = AlertPlanner(detect, {"email": lambda r: "{}"})
    run = _run(store, "m1", "manual")
    detect.decisions["m1"] = [dataclasses.replace(_regressed("m1"), transition=None, incident=None)]
    _finish(store, planner, run)
    assert store.list_alerts() == []
    assert len(store.get_decisions("m1")) == 1


def test_one_report_per_run_then_silence_then_one_recovery(store: InMemoryRunStore) -> None:
    detect = Scripted()
    planner = AlertPlanner(
        detect, {"email": lambda r: f'{{"run":"{r.run_id}","n":{len(r.items)}}}'}
    )

    detect.decisions["r1"] = [_regressed("r1", "a", -0.3), _regressed("r1", "b", -0.9)]
    detect.decisions["r2"] = [_still("r1", "a"), _still("r1", "b")]
    detect.decisions["r3"] = [_recovered("a"), _recovered("b")]
    for run_id in ("r1", "r2", "r3"):
        _finish(store, planner, _run(store, run_id))
    alerts = sorted(store.list_alerts(limit=10), key=lambda a: a.id)
    assert [(a.kind, a.run_id, a.status) for a in alerts] == [
        ("regression", "r1", "pending"),
        ("recovery", "r3", "pending"),
    ]
    assert alerts[0].payload == '{"run":"r1","n":2}'
    # Worst feature first in the report.
    assert [i["feature"] for i in alerts[0].summary["items"]] == ["b", "a"]  # type: ignore[attr-defined]


def test_planning_twice_writes_each_report_once(store: InMemoryRunStore) -> None:
    detect = Scripted()
    planner = AlertPlanner(detect, {"email": lambda r: "{}"})
    run = _run(store, "r1")
    detect.decisions["r1"] = [_regressed("r1")]
    final = dataclasses.replace(run, status=RunStatus.SUCCEEDED)
    first = planner.plan(store, final, [], store.db_now())
    second = planner.plan(store, final, [], store.db_now())
    assert [a.key for a in first.alerts] == [a.key for a in second.alerts] == ["s:r1:regression"]


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

    async def aclose(self) -> None:
        """Nothing to close."""


def _pending(store: InMemoryRunStore, run_id: str = "r1", feature: str = "f") -> None:
    detect = Scripted()
    detect.decisions[run_id] = [_regressed(run_id, feature)]
    planner = AlertPlanner(detect, {"email": lambda r: '{"a":1}'})
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
    assert [c for c in channel.calls] == [
        ("s:r1:regression", '{"a":1}')
    ] * 2  # same key, same bytes


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

        async def aclose(self) -> None:
            """Nothing to close."""

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


def test_a_run_where_only_the_judge_moved_is_its_own_kind(store: InMemoryRunStore) -> None:
    detect = Scripted()
    planner = AlertPlanner(detect, {"email": lambda r: "{}"})
    drift = Decision(
        "f", "judge", DecisionKind.JUDGE_DRIFT, "the judge moved", transition="opened",
        incident=Incident("r1", "judge_drift", -0.3),
    )  # fmt: skip
    detect.decisions["r1"] = [drift]
    _finish(store, planner, _run(store, "r1"))
    [alert] = store.list_alerts()
    assert (alert.kind, alert.key) == ("judge_drift", "s:r1:judge_drift")
