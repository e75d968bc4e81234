"""Retention on SQLite and Postgres: what it deletes, and everything it must leave alone.

Interactions by age and by row cap with per-feature overrides, the raw
results of old runs except the detector's baselines (the newest history a
next run reads, and the frozen baseline runs of an open incident), and the
scheduled tick: under the lock, counted, never raising.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from continuous_eval.adapters.db.interactions import SqlInteractionStore
from continuous_eval.adapters.db.locks import make_suite_locks
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.adapters.metrics import RetentionMetrics
from continuous_eval.core.decisions import Decision, RegressionPolicy
from continuous_eval.core.interactions import NewFeedback, RetentionOutcome, RetentionRule
from continuous_eval.core.models import RunRecord, ScoreAggregate
from continuous_eval.core.retention import RetentionPolicy
from continuous_eval.service.detection import decide_finished_run
from continuous_eval.service.retention import RETENTION_LOCK, RetentionJob, RetentionTick
from continuous_eval.testing import FakeClock
from continuous_eval.testing.builders import SLOT, add_finished_run, pass_fail
from tests.fixtures.interactions import interaction, trace_id

DETECTOR = RegressionPolicy(baseline_window=2, excursion_limit=1, drift_reference_runs=1)
"""A short memory: the next run reads the newest 5 scheduled runs (1 + 2 + 2)."""

RULES = RetentionPolicy(
    RetentionRule(max_age_days=90, max_rows=50),
    {"capped": RetentionRule(None, 3), "brief": RetentionRule(max_age_days=1, max_rows=None)},
)
KEY = ("answers", "regex")


@dataclass
class World:
    runs: SqlRunStore
    interactions: SqlInteractionStore
    clock: FakeClock
    engine: Engine

    def job(
        self, *, batch: int = 100, max_batches: int = 10, events: RetentionMetrics | None = None
    ) -> RetentionJob:
        return RetentionJob(
            self.interactions,
            self.runs,
            RULES,
            {"support": DETECTOR},
            events=events,
            batch=batch,
            max_batches=max_batches,
        )


@pytest.fixture
def world(db_engine: Engine, clock: FakeClock) -> World:
    # One engine for both stores, as serve wires them; the fixture disposes of it.
    return World(
        SqlRunStore(db_engine, clock), SqlInteractionStore(db_engine, clock), clock, db_engine
    )


def add_run(world: World, n: int, fallen: int, *, suite: str = "support") -> None:
    world.clock.advance(timedelta(hours=1))

    def detect(run: RunRecord, aggregates: Sequence[ScoreAggregate]) -> list[Decision]:
        return list(decide_finished_run(world.runs, run, aggregates, DETECTOR).decisions)

    add_finished_run(
        world.runs,
        f"{suite}-{n:02d}",
        {KEY: pass_fail(20, fallen)},
        suite=suite,
        slot=SLOT + timedelta(hours=n),
        decide=detect,
    )


def cases_of(world: World, run_id: str) -> int:
    return len(list(world.runs.iter_scores(run_id)))


# --------------------------------------------------------------- interactions


def test_interactions_go_by_age_and_by_cap_per_feature_and_nothing_else(world: World) -> None:
    now = world.clock.now()
    days = [timedelta(days=d) for d in (100, 80, 2, 0.5)]
    world.interactions.add_interactions(
        [interaction(n, feature="support", started_at=now - days[n % 4]) for n in range(8)]
        + [interaction(100 + n, feature="capped", started_at=now - days[n % 4]) for n in range(8)]
        + [interaction(200 + n, feature="brief", started_at=now - days[n % 4]) for n in range(8)]
    )
    outcome = world.job(batch=2).run_once(now)

    left = {
        feature: sorted(
            s.interaction.span_id for s in world.interactions.list_interactions(feature)
        )
        for feature in ("support", "capped", "brief")
    }
    # support: older than 90 days (n = 0, 4) go; under the cap of 50.
    assert left["support"] == sorted(interaction(n).span_id for n in (1, 2, 3, 5, 6, 7))
    # capped: 90 days (global), then the newest 3 ids of what is left.
    assert left["capped"] == sorted(interaction(100 + n).span_id for n in (5, 6, 7))
    # brief: older than a day goes, no cap.
    assert left["brief"] == sorted(interaction(200 + n).span_id for n in (3, 7))
    assert outcome == RetentionOutcome(interactions_by_age=2 + 2 + 6, interactions_by_cap=3)
    assert world.job().run_once(now) == RetentionOutcome()


def test_a_pass_is_bounded_and_the_next_one_carries_on(world: World) -> None:
    now = world.clock.now()
    world.interactions.add_interactions(
        [interaction(n, started_at=now - timedelta(days=100)) for n in range(7)]
        + [interaction(10, started_at=now)]
    )
    job = world.job(batch=2, max_batches=2)
    assert job.run_once(now).interactions_by_age == 4
    assert job.run_once(now).interactions_by_age == 3
    assert job.run_once(now).interactions_by_age == 0
    assert world.interactions.interaction_features() == {"support": 1}


def test_a_pass_stops_when_told(world: World) -> None:
    now = world.clock.now()
    world.interactions.add_interactions(
        [interaction(n, started_at=now - timedelta(days=100)) for n in range(6)]
    )
    answers = iter([True, False])
    outcome = world.job(batch=2).run_once(now, keep_going=lambda: next(answers, False))
    assert outcome.interactions_by_age == 2


def test_feedback_goes_with_its_trace(world: World) -> None:
    now = world.clock.now()
    world.interactions.add_interactions(
        [interaction(1, started_at=now - timedelta(days=100)), interaction(2, started_at=now)]
    )
    world.interactions.add_feedback(NewFeedback(trace_id(1), "ana", score=0.0))
    kept = world.interactions.add_feedback(NewFeedback(trace_id(2), "ana", score=1.0))
    world.job().run_once(now)
    assert world.interactions.feedback_since() == [kept]


# -------------------------------------------------------------------- results


def test_old_results_go_except_the_runs_the_detector_still_reads(world: World) -> None:
    # Six good runs, then an incident opened by run 7 against runs 5 and 6, still open.
    for n, fallen in enumerate([0] * 6 + [8] * 7, start=1):
        add_run(world, n, fallen)
    add_run(world, 1, 0, suite="billing")
    opened = world.runs.get_decisions("support-07")[0]
    assert opened.transition == "opened"
    decisions_before = {
        f"support-{n:02d}": world.runs.get_decisions(f"support-{n:02d}") for n in range(1, 14)
    }

    world.clock.advance(timedelta(days=100))
    outcome = world.job(batch=7, max_batches=100).run_once(world.clock.now())

    # The next run reads runs 9-13 and the incident's frozen baseline, runs 5 and 6.
    kept = {5, 6, 9, 10, 11, 12, 13}
    assert {n: cases_of(world, f"support-{n:02d}") for n in range(1, 14)} == {
        n: 20 if n in kept else 0 for n in range(1, 14)
    }
    # billing has the default detector policy, whose history is far longer: all kept.
    assert cases_of(world, "billing-01") == 20
    assert outcome.results_by_age == 20 * 6
    # Runs, aggregates and decisions all stay.
    for n in range(1, 14):
        run_id = f"support-{n:02d}"
        assert world.runs.get_run(run_id).cases_done == 20
        assert len(world.runs.get_aggregates(run_id)) == 1
        assert world.runs.get_decisions(run_id) == decisions_before[run_id]
    # What the detector needs is still there: the next run decides as it would have.
    add_run(world, 14, 8)
    assert world.runs.get_decisions("support-14")[0].kind == decisions_before["support-13"][0].kind


# ----------------------------------------------------------------------- tick


class BrokenInteractions(SqlInteractionStore):
    def interaction_features(self) -> dict[str, int]:
        raise RuntimeError("the database went away")


def tick(world: World, job: RetentionJob, metrics: RetentionMetrics) -> RetentionTick:
    locks = make_suite_locks(world.engine, lease_seconds=30)
    return RetentionTick(job, locks, "replica-a", world.clock.now, events=metrics)


def test_the_tick_deletes_under_the_lock_and_counts(world: World) -> None:
    registry = CollectorRegistry()
    metrics = RetentionMetrics(registry)
    old = world.clock.now() - timedelta(days=100)
    world.interactions.add_interactions(
        [interaction(n, started_at=old) for n in range(3)]
        + [interaction(9, feature="brief", started_at=world.clock.now())]
    )
    scheduled = tick(world, world.job(events=metrics), metrics)
    try:
        outcome = asyncio.run(scheduled())
    finally:
        scheduled.close()
    assert outcome == RetentionOutcome(interactions_by_age=3)
    labels = {"kind": "interactions", "feature": "support"}
    assert registry.get_sample_value("continuous_eval_retention_deleted_total", labels) == 3
    stored = "continuous_eval_interactions_stored"
    assert registry.get_sample_value(stored, {"feature": "support"}) == 0
    assert registry.get_sample_value(stored, {"feature": "brief"}) == 1


def test_the_tick_skips_while_another_replica_holds_the_lock(world: World) -> None:
    old = world.clock.now() - timedelta(days=100)
    world.interactions.add_interactions([interaction(1, started_at=old)])
    other = make_suite_locks(world.engine, lease_seconds=30)
    held = other.try_acquire(RETENTION_LOCK, "replica-b")
    assert held is not None
    scheduled = tick(world, world.job(), RetentionMetrics(CollectorRegistry()))
    try:
        assert asyncio.run(scheduled()) is None
        assert world.interactions.interaction_features() == {"support": 1}
        held.release()
        assert asyncio.run(scheduled()) == RetentionOutcome(interactions_by_age=1)
    finally:
        scheduled.close()
        other.close()


def test_a_failing_pass_is_logged_and_counted_and_never_raises(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    metrics = RetentionMetrics(registry)
    broken = BrokenInteractions(world.engine, world.clock)
    job = RetentionJob(broken, world.runs, RULES, events=metrics)
    scheduled = tick(world, job, metrics)
    try:
        assert asyncio.run(scheduled()) is None
        assert asyncio.run(scheduled()) is None  # the lock was released: it ran again
    finally:
        scheduled.close()
    assert registry.get_sample_value("continuous_eval_retention_failures_total") == 2
    assert "retention failed" in caplog.text
