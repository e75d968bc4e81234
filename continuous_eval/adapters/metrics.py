"""Prometheus metrics on an injected registry: what this process did.

Tests build a fresh ``CollectorRegistry`` and read sample values; the
process builds one in ``app.container`` and serves it at ``/metrics``.

These counters are per replica and start from zero when the process starts.
The fleet-wide numbers that the database holds (runs by status, scores,
regressions, the outbox, judge usage) come from ``metrics_db.DatabaseCollector``
on the same registry; where both exist, the per-replica one carries
``process`` in its name (``continuous_eval_process_runs_total``,
``continuous_eval_process_regressions_total``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from continuous_eval.adapters.user_code import UserCodePool
from continuous_eval.core.models import RunRecord
from continuous_eval.core.regression import Decision
from continuous_eval.ports import SuiteSchedule, TickOutcome

JOB_EVENT_KINDS = ("missed", "error", "max_instances")
"""The scheduler job mishaps ``adapters.scheduler`` reports; each starts at 0."""


class DaemonMetrics:
    """The daemon's counters and gauges (implements ``DaemonEvents`` and ``JobEvents``).

    Args:
        registry: Where the metrics are registered.
        schedules: The configured suites' schedules. Each suite's tick
            outcomes and lock gauge start at 0 (so ``increase()`` sees the
            first tick of each outcome), and its schedule is exposed for
            alert rules (``continuous_eval_schedule_*``).
    """

    def __init__(
        self, registry: CollectorRegistry, schedules: Mapping[str, SuiteSchedule] | None = None
    ) -> None:
        self.registry = registry
        self.ticks = Counter(
            "continuous_eval_scheduler_ticks",
            "Scheduler checks per suite, by outcome.",
            ["suite", "outcome"],
            registry=registry,
        )
        self.job_events = Counter(
            "continuous_eval_scheduler_job_events",
            "Scheduler job mishaps: missed, error, max_instances.",
            ["kind"],
            registry=registry,
        )
        self.lock_held_gauge = Gauge(
            "continuous_eval_lock_held",
            "1 while this process holds the suite's lock.",
            ["suite"],
            registry=registry,
        )
        self.budget_unreadable_total = Counter(
            "continuous_eval_budget_unreadable",
            "Times today's judge spend could not be read and a run went ahead (fail-open).",
            registry=registry,
        )
        # "process" in the name: the database collector exposes the fleet-wide
        # continuous_eval_runs_total.
        self.runs = Counter(
            "continuous_eval_process_runs",
            "Runs this process ended, by suite, run type and status (per replica).",
            ["suite", "run_type", "status"],
            registry=registry,
        )
        self.alerts = Counter(
            "continuous_eval_alerts",
            "Alert deliveries settled by this process, by channel and status.",
            ["channel", "status"],
            registry=registry,
        )
        self.regressions = Counter(
            "continuous_eval_process_regressions",
            "Incidents opened or worsened in runs this process finished (per replica).",
            ["suite", "feature", "scorer", "rule"],
            registry=registry,
        )
        self.run_duration = Histogram(
            "continuous_eval_run_duration_seconds",
            "Wall time of runs this process ended.",
            ["suite", "run_type"],
            buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, float("inf")),
            registry=registry,
        )
        self.schedule_enabled = Gauge(
            "continuous_eval_schedule_enabled",
            "1 when the suite is scheduled to run on its own, else 0.",
            ["suite"],
            registry=registry,
        )
        self.schedule_interval = Gauge(
            "continuous_eval_schedule_interval_seconds",
            "The suite's configured interval between scheduled runs.",
            ["suite"],
            registry=registry,
        )
        for kind in JOB_EVENT_KINDS:
            self.job_events.labels(kind=kind)
        for suite, schedule in (schedules or {}).items():
            for outcome in TickOutcome:
                self.ticks.labels(suite=suite, outcome=outcome.value)
            self.lock_held_gauge.labels(suite=suite).set(0)
            self.schedule_enabled.labels(suite=suite).set(1 if schedule.enabled else 0)
            self.schedule_interval.labels(suite=suite).set(schedule.interval.total_seconds())

    def alert(self, channel: str, status: str) -> None:
        """Count an alert reaching a status on a channel."""
        self.alerts.labels(channel=channel, status=status).inc()

    def regression(self, suite: str, decision: Decision) -> None:
        """Count a regression (drop, drift or judge drift) that opened or worsened an incident."""
        self.regressions.labels(
            suite=suite,
            feature=decision.feature,
            scorer=decision.scorer,
            rule=decision.rule or decision.kind.value,
        ).inc()

    def tick(self, suite: str, outcome: TickOutcome) -> None:
        """Count one suite's tick."""
        self.ticks.labels(suite=suite, outcome=outcome.value).inc()

    def job_event(self, kind: str) -> None:
        """Count a scheduler job mishap."""
        self.job_events.labels(kind=kind).inc()

    def lock_held(self, suite: str, held: bool) -> None:
        """Track whether this process holds the suite's lock."""
        self.lock_held_gauge.labels(suite=suite).set(1 if held else 0)

    def budget_unreadable(self) -> None:
        """Count a fail-open budget check."""
        self.budget_unreadable_total.inc()

    def run_finished(self, run: RunRecord) -> None:
        """Count a run that ended here and observe its duration."""
        self.runs.labels(suite=run.suite, run_type=run.run_type, status=run.status.value).inc()
        if run.started_at and run.finished_at:
            seconds = (run.finished_at - run.started_at).total_seconds()
            self.run_duration.labels(suite=run.suite, run_type=run.run_type).observe(seconds)


class UserCodeCollector:
    """The user-code thread pools of this process, read at each scrape.

    ``continuous_eval_user_code_abandoned`` is the number of threads still
    running a call that its run gave up on (the watchdog, a cancel, a
    shutdown): leaked threads, which only return when the user's code does.
    """

    def __init__(self, pools: Callable[[], Iterable[UserCodePool]]) -> None:
        self._pools = pools

    def collect(self) -> Iterator[Metric]:
        """Yield the pools' gauges and counter."""
        threads = GaugeMetricFamily(
            "continuous_eval_user_code_threads",
            "Threads of a suite's sync targets and scorers, busy or idle.",
            labels=["suite", "state"],
        )
        abandoned = GaugeMetricFamily(
            "continuous_eval_user_code_abandoned",
            "Threads still running user code whose run stopped waiting (leaked).",
            labels=["suite"],
        )
        abandoned_total = CounterMetricFamily(
            "continuous_eval_user_code_abandoned_calls",
            "User-code calls abandoned while running.",
            labels=["suite"],
        )
        for pool in self._pools():
            busy = pool.busy
            threads.add_metric([pool.name, "busy"], busy)
            threads.add_metric([pool.name, "idle"], max(0, pool.threads - busy))
            abandoned.add_metric([pool.name], pool.abandoned)
            abandoned_total.add_metric([pool.name], pool.abandoned_total)
        yield threads
        yield abandoned
        yield abandoned_total

    def describe(self) -> list[Metric]:
        """Nothing up front: the samples depend on the pools made so far."""
        return []


class RetentionMetrics:
    """The retention job's deletes and failures (implements ``RetentionEvents``).

    Per replica, like the daemon's counters: only the replica holding the
    retention lock deletes, so the fleet's total is the sum over replicas.
    ``feature`` is empty for results, which are deleted per run.

    ``continuous_eval_interactions_stored{feature}`` is the rows per feature
    as of this replica's last pass (counted at its start, less what it
    deleted): counting a million-row table on every scrape would not be
    cheap, and retention counts them anyway. Take ``max`` over replicas;
    a replica that never ran a pass has none.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deleted = Counter(
            "continuous_eval_retention_deleted",
            "Rows deleted by retention: interactions (by feature) and raw results of old runs.",
            ["kind", "feature"],
            registry=registry,
        )
        self.failures = Counter(
            "continuous_eval_retention_failures",
            "Retention passes that raised (logged; the daemon carries on).",
            registry=registry,
        )
        self.stored = Gauge(
            "continuous_eval_interactions_stored",
            "Interactions stored per feature, as of this replica's last retention pass.",
            ["feature"],
            registry=registry,
        )

    def retention_deleted(self, kind: str, feature: str, count: int) -> None:
        """Add ``count`` deleted rows of ``kind`` (``interactions`` or ``results``)."""
        self.deleted.labels(kind=kind, feature=feature).inc(count)

    def retention_failed(self) -> None:
        """Count one failed pass."""
        self.failures.inc()

    def interactions_stored(self, counts: Mapping[str, int]) -> None:
        """Set each feature's gauge; features gone since the last pass are dropped."""
        self.stored.clear()
        for feature, rows in counts.items():
            self.stored.labels(feature=feature).set(rows)
