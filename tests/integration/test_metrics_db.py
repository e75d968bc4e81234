"""The database collector on SQLite and Postgres: its numbers agree with the tables.

State is built through the real ``SqlRunStore`` (runs, results, aggregates,
the alerts outbox), the registry is scraped with ``generate_latest`` and the
text parsed back with prometheus_client's parser, as Prometheus would. The
expected values come from plain SQL over the same tables, written
independently of the collector's queries.
"""

from __future__ import annotations

import threading
import time
from collections import Counter as Tally
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.adapters.metrics import DaemonMetrics
from continuous_eval.adapters.metrics_db import (
    TERMINAL_STATUSES,
    UNFINISHED_STATUSES,
    DatabaseCollector,
)
from continuous_eval.core.models import (
    CaseResult,
    NewAlert,
    NewRun,
    ProgressDelta,
    ResultStatus,
    RunStatus,
    RunType,
    ScoreAggregate,
    Usage,
)
from continuous_eval.ports import SuiteSchedule, TickOutcome
from continuous_eval.testing import FakeClock
from tests.conftest import PostgresDatabases

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# ------------------------------------------------------------------ helpers


def scrape(registry: CollectorRegistry) -> Samples:
    """Render the registry as ``/metrics`` does and parse it back."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The sample with exactly these labels, or None when it is not exposed."""
    return samples.get((name, frozenset(labels.items())))


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample of one name, by label set."""
    return {labels: v for (n, labels), v in samples.items() if n == name}


def labelled(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def results(
    feature: str,
    scorer: str,
    scores: Sequence[float | None],
    *,
    judge: bool = False,
) -> list[CaseResult]:
    """One result per case; None is an errored case. Judge results carry usage."""
    made = []
    for i, score in enumerate(scores):
        usage = Usage(100 + i, 10, 0.002) if judge and score is not None else Usage()
        made.append(
            CaseResult(
                feature=feature,
                case_id=f"c{i}",
                scorer=scorer,
                status=ResultStatus.ERROR if score is None else ResultStatus.OK,
                score=score,
                error="target timed out" if score is None else None,
                usage=usage,
            )
        )
    return made


def save(store: SqlRunStore, run_id: str, rows: Sequence[CaseResult]) -> None:
    """Store results with the counters the runner would add for them."""
    judge = Usage()
    for row in rows:
        judge = judge + row.usage
    delta = ProgressDelta(
        cases_done=len({(r.feature, r.case_id) for r in rows}),
        scored=sum(r.status is ResultStatus.OK for r in rows),
        errored=sum(r.status is ResultStatus.ERROR for r in rows),
        judge_usage=judge,
        target_usage=Usage(5 * len(rows), 7 * len(rows), 0.0005 * len(rows)),
    )
    store.save_results(run_id, rows, delta)


def aggregates(rows: Sequence[CaseResult]) -> list[ScoreAggregate]:
    by_pair: dict[tuple[str, str], list[CaseResult]] = {}
    for row in rows:
        by_pair.setdefault((row.feature, row.scorer), []).append(row)
    made = []
    for (feature, scorer), pair in sorted(by_pair.items()):
        scored = [r.score for r in pair if r.score is not None]
        mean = sum(scored) / len(scored) if scored else None
        made.append(
            ScoreAggregate(feature, scorer, mean, None, len(scored), len(pair) - len(scored))
        )
    return made


def start(
    store: SqlRunStore,
    run_id: str,
    suite: str = "support",
    run_type: RunType = "scheduled",
    *,
    clock: FakeClock,
    status: RunStatus = RunStatus.RUNNING,
) -> None:
    store.create_run(
        NewRun(
            id=run_id,
            suite=suite,
            run_type=run_type,
            features=("refunds",),
            cases_total=4,
            total=8,
            fingerprint="f" * 64,
            scheduled_for=clock.now() if run_type == "scheduled" else None,
            reason="judge budget spent" if status is RunStatus.SKIPPED else None,
        ),
        status=status,
    )


def run(
    store: SqlRunStore,
    run_id: str,
    judge: Sequence[float | None],
    exact: Sequence[float | None],
    *,
    clock: FakeClock,
    suite: str = "support",
    run_type: RunType = "scheduled",
    status: RunStatus = RunStatus.SUCCEEDED,
    alerts: Sequence[NewAlert] = (),
) -> None:
    """A whole run: created, two scorers' results stored, finished with its aggregates."""
    start(store, run_id, suite, run_type, clock=clock)
    rows = results("refunds", "judge", judge, judge=True) + results("refunds", "exact", exact)
    save(store, run_id, rows)
    store.finish_run(run_id, status, None, aggregates(rows), alerts=alerts)


def regression(run_id: str, channel: str = "email", suite: str = "support") -> NewAlert:
    return NewAlert(
        key=f"{suite}:refunds:judge:{run_id}",
        channel=channel,
        kind="regression",
        run_id=run_id,
        suite=suite,
        feature="refunds",
        scorer="judge",
        rule="drop",
        status="pending",
        payload="{}",
        summary={"delta": -1.0},
    )


def truth(engine: sa.Engine) -> dict[str, dict[Any, float]]:
    """The values the collector must expose, by plain SQL over the whole tables."""

    def rows(sql: str) -> list[Any]:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql)))

    runs = rows("select suite, run_type, status, count(*) from eval_runs group by 1, 2, 3")
    sums = rows(
        "select suite, run_type, sum(judge_input_tokens), sum(judge_output_tokens), "
        "sum(judge_cost_usd), sum(target_input_tokens), sum(target_output_tokens), "
        "sum(target_cost_usd) from eval_runs group by 1, 2"
    )
    per_result = (
        "select r.suite, r.run_type, count(*) from eval_results x "
        "join eval_runs r on r.id = x.run_id where {} group by 1, 2"
    )
    requests = rows(per_result.format("x.input_tokens > 0 or x.output_tokens > 0"))
    errors = rows(per_result.format("x.status = 'error'"))
    regressions = rows(
        "select suite, feature, scorer, count(distinct run_id) from alerts "
        "where kind = 'regression' group by 1, 2, 3"
    )
    outbox = rows("select channel, kind, status, count(*) from alerts group by 1, 2, 3")
    return {
        "runs": {tuple(r[:3]): r[3] for r in runs},
        "judge_in": {tuple(r[:2]): r[2] for r in sums},
        "judge_out": {tuple(r[:2]): r[3] for r in sums},
        "judge_cost": {tuple(r[:2]): r[4] for r in sums},
        "target_in": {tuple(r[:2]): r[5] for r in sums},
        "target_out": {tuple(r[:2]): r[6] for r in sums},
        "target_cost": {tuple(r[:2]): r[7] for r in sums},
        "requests": {tuple(r[:2]): r[2] for r in requests},
        "errors": {tuple(r[:2]): r[2] for r in errors},
        "regressions": {tuple(r[:3]): r[3] for r in regressions},
        "outbox": {tuple(r[:3]): r[3] for r in outbox},
    }


def assert_agrees(samples: Samples, engine: sa.Engine) -> None:
    """Every database-derived series equals the plain-SQL count (zero where there is none)."""
    expected = truth(engine)
    assert value(samples, "continuous_eval_db_up") == 1
    for name, statuses in (
        ("continuous_eval_runs_total", TERMINAL_STATUSES),
        ("continuous_eval_unfinished_runs", UNFINISHED_STATUSES),
    ):
        exposed = series(samples, name)
        for labels, v in exposed.items():
            d = dict(labels)
            assert d["status"] in statuses
            assert v == expected["runs"].get((d["suite"], d["run_type"], d["status"]), 0), d
        for (suite, run_type, status), n in expected["runs"].items():
            if status in statuses:
                assert value(samples, name, suite=suite, run_type=run_type, status=status) == n

    def per_run(name: str, key: str, **extra: str) -> None:
        for suite, run_type in {k[:2] for k in expected["runs"]}:
            got = value(samples, name, suite=suite, run_type=run_type, **extra)
            assert got == pytest.approx(float(expected[key].get((suite, run_type), 0))), (
                name,
                suite,
                run_type,
            )

    per_run("continuous_eval_judge_tokens_total", "judge_in", token_type="input")
    per_run("continuous_eval_judge_tokens_total", "judge_out", token_type="output")
    per_run("continuous_eval_judge_cost_usd_total", "judge_cost")
    per_run("continuous_eval_target_tokens_total", "target_in", token_type="input")
    per_run("continuous_eval_target_tokens_total", "target_out", token_type="output")
    per_run("continuous_eval_target_cost_usd_total", "target_cost")
    per_run("continuous_eval_judge_requests_total", "requests")
    per_run("continuous_eval_case_errors_total", "errors")
    regressions = series(samples, "continuous_eval_regressions_total")
    for (suite, feature, scorer), n in expected["regressions"].items():
        assert regressions[labelled(feature=feature, scorer=scorer, suite=suite)] == n
    assert sum(regressions.values()) == sum(expected["regressions"].values())
    outbox = series(samples, "continuous_eval_outbox_alerts")
    for (channel, kind, status), n in expected["outbox"].items():
        assert outbox[labelled(channel=channel, kind=kind, status=status)] == n
    assert sum(outbox.values()) == sum(expected["outbox"].values())


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
