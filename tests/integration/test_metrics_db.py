"""The database collector on SQLite and Postgres: its numbers agree with the tables.

State is built through the real ``SqlRunStore`` (runs, results, aggregates,
the alerts outbox), the registry is scraped with ``generate_latest`` and the
text parsed back with prometheus_client's parser, as Prometheus would. The
expected values come from plain SQL over the same tables, written
independently of the collector's queries (``metrics_harness``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter as Tally
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.adapters.metrics import DaemonMetrics
from continuous_eval.adapters.metrics_db import DatabaseCollector
from continuous_eval.core.models import RunStatus
from continuous_eval.ports import SuiteSchedule, TickOutcome
from continuous_eval.testing import FakeClock
from tests.conftest import PostgresDatabases
from tests.integration.metrics_harness import (
    Samples,
    assert_agrees,
    regression,
    results,
    run,
    save,
    scrape,
    series,
    start,
    value,
)


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Iterator[SqlRunStore]:
    """The SQL store only (overrides the conftest's, which includes the in-memory fake)."""
    run_store = SqlRunStore(make_engine(db_url), clock)
    try:
        yield run_store
    finally:
        run_store.close()


SCHEDULES = {
    "support": SuiteSchedule(
        enabled=True, interval=timedelta(hours=24), watchdog_s=600, max_attempts=3
    ),
    "billing": SuiteSchedule(
        enabled=False, interval=timedelta(hours=6), watchdog_s=600, max_attempts=3
    ),
}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> DaemonMetrics:
    return DaemonMetrics(registry, SCHEDULES)


# -------------------------------------------------------------------- tests


def test_the_scrape_agrees_with_the_database_after_runs_regressions_and_skips(
    store: SqlRunStore, clock: FakeClock, registry: CollectorRegistry, metrics: DaemonMetrics
) -> None:
    registry.register(DatabaseCollector(store.engine, suites=SCHEDULES, clock=clock))
    first = scrape(registry)
    assert value(first, "continuous_eval_db_up") == 1
    # Configured suites show zeros before anything ran, and nothing per suite yet.
    assert (
        value(
            first,
            "continuous_eval_runs_total",
            suite="billing",
            run_type="scheduled",
            status="failed",
        )
        == 0
    )
    assert series(first, "continuous_eval_last_scheduled_run_timestamp_seconds") == {}

    run(store, "r1", [4, 5, 4, 5], [1, 1, 1, 0], clock=clock)
    clock.advance(seconds=3600)
    run(store, "r2", [2, 2, None, 3], [1, 0, None, 0], clock=clock, alerts=[regression("r2")])
    clock.advance(seconds=60)
    run(store, "m1", [5, 5, 5, 5], [1, 1, 1, 1], clock=clock, run_type="manual")
    clock.advance(seconds=3600)
    start(store, "skip", clock=clock, status=RunStatus.SKIPPED)  # a budget-skipped slot
    metrics.tick("support", TickOutcome.BUDGET_SKIPPED)
    clock.advance(seconds=60)
    start(store, "r3", clock=clock)  # still running
    save(store, "r3", results("refunds", "judge", [1, None], judge=True))

    samples = scrape(registry)
    assert_agrees(samples, store.engine)
    support = {"suite": "support"}
    runs = "continuous_eval_runs_total"
    assert value(samples, runs, **support, run_type="scheduled", status="succeeded") == 2
    assert value(samples, runs, **support, run_type="scheduled", status="skipped") == 1
    assert value(samples, runs, **support, run_type="manual", status="succeeded") == 1
    assert value(samples, runs, **support, run_type="manual", status="failed") == 0
    unfinished = "continuous_eval_unfinished_runs"
    assert value(samples, unfinished, **support, run_type="scheduled", status="running") == 1
    # r2 is the newest succeeded scheduled run: its scores, not the manual run's.
    assert value(
        samples,
        "continuous_eval_last_scheduled_score",
        **support,
        feature="refunds",
        scorer="judge",
    ) == pytest.approx(7 / 3)
    assert value(
        samples,
        "continuous_eval_last_scheduled_score",
        **support,
        feature="refunds",
        scorer="exact",
    ) == pytest.approx(1 / 3)
    # The newest scheduled run is r3 (running); the newest success is r2.
    r2, r3 = store.get_run("r2"), store.get_run("r3")
    assert r2.started_at is not None
    assert r3.started_at is not None
    last_run = "continuous_eval_last_scheduled_run_timestamp_seconds"
    last_ok = "continuous_eval_last_scheduled_success_timestamp_seconds"
    assert value(samples, last_run, **support) == r3.started_at.timestamp()
    assert value(samples, last_ok, **support) == r2.started_at.timestamp()
    regressions = "continuous_eval_regressions_total"
    assert value(samples, regressions, **support, feature="refunds", scorer="judge") == 1
    assert value(samples, regressions, **support, feature="refunds", scorer="exact") == 0
    outbox = "continuous_eval_outbox_alerts"
    assert value(samples, outbox, channel="email", kind="regression", status="pending") == 1
    assert value(samples, outbox, channel="email", kind="regression", status="dead") == 0
    # Judge: r1 4 calls, r2 3 (one errored case), m1 4, r3 1 so far.
    judge_requests = "continuous_eval_judge_requests_total"
    assert value(samples, judge_requests, **support, run_type="scheduled") == 8
    assert value(samples, judge_requests, **support, run_type="manual") == 4
    assert value(samples, "continuous_eval_case_errors_total", **support, run_type="scheduled") == 3
    # The process's own counters share the registry: the skipped tick, zeros for the rest.
    ticks = "continuous_eval_scheduler_ticks_total"
    assert value(samples, ticks, suite="support", outcome="budget_skipped") == 1
    for outcome in TickOutcome:
        assert value(samples, ticks, suite="billing", outcome=outcome.value) == 0
    assert value(samples, "continuous_eval_schedule_interval_seconds", suite="billing") == 6 * 3600
    assert value(samples, "continuous_eval_schedule_enabled", suite="billing") == 0
    assert value(samples, "continuous_eval_lock_held", suite="support") == 0


def test_dead_and_sent_alerts_are_counted_by_channel_and_status(
    store: SqlRunStore, clock: FakeClock, registry: CollectorRegistry
) -> None:
    registry.register(DatabaseCollector(store.engine, clock=clock))
    run(store, "r1", [5, 5], [1, 1], clock=clock)
    clock.advance(seconds=60)
    alerts = [regression("r2", "email"), regression("r2", "webhook")]
    run(store, "r2", [1, 1], [0, 0], clock=clock, alerts=alerts)
    before = scrape(registry)
    claimed = {a.channel: a for a in store.claim_due_alerts("worker", 30.0, 10)}
    assert store.settle_alert(claimed["email"].id, "worker", status="sent", provider_id="e-1")
    assert store.settle_alert(claimed["webhook"].id, "worker", status="dead", error="HTTP 410")
    after = scrape(registry)
    assert_agrees(after, store.engine)
    outbox = "continuous_eval_outbox_alerts"
    assert value(before, outbox, channel="webhook", kind="regression", status="dead") == 0
    assert value(after, outbox, channel="webhook", kind="regression", status="dead") == 1
    assert value(after, outbox, channel="email", kind="regression", status="sent") == 1
    assert value(after, outbox, channel="email", kind="regression", status="pending") == 0
    # Two channels, one regression.
    regressions = "continuous_eval_regressions_total"
    assert value(after, regressions, suite="support", feature="refunds", scorer="judge") == 1


def test_the_incremental_counts_match_a_full_recount_as_runs_settle(
    store: SqlRunStore, clock: FakeClock, db_url: str
) -> None:
    """Runs cross the settle watermark while running, paused in between, and after finishing."""
    warm = CollectorRegistry()
    warm.register(DatabaseCollector(store.engine, settle_s=60, clock=clock))

    def check() -> Samples:
        samples = scrape(warm)
        assert_agrees(samples, store.engine)
        cold = CollectorRegistry()  # a replica that starts now sums the history at once
        cold.register(DatabaseCollector(store.engine, settle_s=60, clock=clock))
        fresh = scrape(cold)
        for key in ("continuous_eval_db_scrape_duration_seconds",):
            samples.pop((key, frozenset()), None)
            fresh.pop((key, frozenset()), None)
        assert fresh == samples
        return samples

    start(store, "a", clock=clock)
    save(store, "a", results("refunds", "judge", [3, 4], judge=True))
    run(store, "b", [5], [1], clock=clock, run_type="manual")
    check()
    clock.advance(seconds=120)  # a and b fall behind the watermark: b settles, a stays open
    store.finish_run("a", RunStatus.SUCCEEDED, None, [])
    start(store, "c", clock=clock)
    check()
    clock.advance(seconds=120)  # a settles late; c passes the watermark still running
    start(store, "d", clock=clock, status=RunStatus.SKIPPED)
    check()
    save(store, "c", results("refunds", "judge", [None, 2, 2], judge=True))
    clock.advance(seconds=600)
    check()
    store.finish_run("c", RunStatus.FAILED, "judge unavailable", [])
    samples = check()
    assert (
        value(
            samples,
            "continuous_eval_runs_total",
            suite="support",
            run_type="scheduled",
            status="failed",
        )
        == 1
    )
    clock.advance(seconds=600)
    run(store, "e", [1, 2], [0, 1], clock=clock, alerts=[regression("e")])
    check()


def test_a_database_that_is_not_there_reports_db_up_0_and_the_process_metrics(
    tmp_path: Path, registry: CollectorRegistry, metrics: DaemonMetrics
) -> None:
    unmigrated = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables
    closed_port = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    try:
        for engine in (unmigrated, closed_port):
            local = CollectorRegistry()
            DaemonMetrics(local, SCHEDULES).tick("support", TickOutcome.ERROR)
            local.register(DatabaseCollector(engine, timeout_s=5))
            samples = scrape(local)
            assert value(samples, "continuous_eval_db_up") == 0
            assert value(samples, "continuous_eval_db_scrape_duration_seconds") is not None
            assert series(samples, "continuous_eval_runs_total") == {}
            ticks = "continuous_eval_scheduler_ticks_total"
            assert value(samples, ticks, suite="support", outcome="error") == 1
    finally:
        unmigrated.dispose()
        closed_port.dispose()


@pytest.mark.postgres
def test_a_dropped_postgres_database_reports_db_up_0_then_recovers_nothing(
    postgres_url: str,
    postgres_databases: PostgresDatabases,
    clock: FakeClock,
    registry: CollectorRegistry,
    metrics: DaemonMetrics,
) -> None:
    store = SqlRunStore(make_engine(postgres_url), clock)
    try:
        registry.register(DatabaseCollector(store.engine, clock=clock))
        run(store, "r1", [5], [1], clock=clock)
        assert value(scrape(registry), "continuous_eval_db_up") == 1
        postgres_databases.drop(sa.make_url(postgres_url).database or "")
        samples = scrape(registry)
        assert value(samples, "continuous_eval_db_up") == 0
        assert series(samples, "continuous_eval_runs_total") == {}
        assert value(samples, "continuous_eval_lock_held", suite="support") == 0
    finally:
        store.close()


@pytest.mark.postgres
def test_a_hung_database_costs_one_timeout_then_nothing_until_it_answers(
    postgres_url: str, clock: FakeClock, registry: CollectorRegistry
) -> None:
    store = SqlRunStore(make_engine(postgres_url), clock)
    locker = sa.create_engine(postgres_url, poolclass=sa.NullPool)
    try:
        run(store, "r1", [5], [1], clock=clock)
        registry.register(DatabaseCollector(store.engine, timeout_s=0.5, clock=clock))
        with locker.connect() as conn:
            conn.exec_driver_sql("LOCK TABLE eval_runs IN ACCESS EXCLUSIVE MODE")
            began = time.monotonic()
            assert value(scrape(registry), "continuous_eval_db_up") == 0
            assert 0.4 < time.monotonic() - began < 3
            began = time.monotonic()
            assert value(scrape(registry), "continuous_eval_db_up") == 0  # not waited for again
            assert time.monotonic() - began < 0.3
            conn.rollback()  # the lock goes; the stuck query finishes
        deadline = time.monotonic() + 10
        while value(scrape(registry), "continuous_eval_db_up") != 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert_agrees(scrape(registry), store.engine)
    finally:
        locker.dispose()
        store.close()


def test_concurrent_scrapes_share_one_query(
    store: SqlRunStore, clock: FakeClock, registry: CollectorRegistry
) -> None:
    run(store, "r1", [5], [1], clock=clock)
    registry.register(DatabaseCollector(store.engine, clock=clock))
    ups: list[float | None] = []

    def one() -> None:
        ups.append(value(scrape(registry), "continuous_eval_db_up"))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ups == [1] * 8


def test_registering_runs_no_query_and_no_name_clashes(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    DaemonMetrics(registry, SCHEDULES)
    nowhere = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    try:
        collector = DatabaseCollector(nowhere)
        registry.register(collector)  # describe() only: no connection attempted
        described = {family.name for family in collector.describe()}
        counted = Tally(family.name for family in collector.describe())
        assert max(counted.values()) == 1
        assert "continuous_eval_runs" in described  # exposed as continuous_eval_runs_total
    finally:
        nowhere.dispose()


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with pytest.raises(ValueError, match="timeout_s"):
            DatabaseCollector(engine, timeout_s=0)
    finally:
        engine.dispose()
