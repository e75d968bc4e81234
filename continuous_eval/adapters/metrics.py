"""Prometheus metrics on an injected registry.

Tests build a fresh ``CollectorRegistry`` and read sample values; the
process builds one in ``bootstrap`` and serves it at ``/metrics``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from continuous_eval.core.models import Regression, RunRecord
from continuous_eval.service.daemon import TickOutcome


class DaemonMetrics:
    """The daemon's counters and gauges (implements ``DaemonEvents`` and ``JobEvents``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
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
        self.runs = Counter(
            "continuous_eval_runs",
            "Runs this process ended, by suite, run type and status.",
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
            "continuous_eval_regressions",
            "Regressions the detector found in runs this process finished.",
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

    def alert(self, channel: str, status: str) -> None:
        """Count an alert reaching a status on a channel."""
        self.alerts.labels(channel=channel, status=status).inc()

    def regression(self, regression: Regression) -> None:
        """Count a regression the detector found."""
        self.regressions.labels(
            suite=regression.suite,
            feature=regression.feature,
            scorer=regression.scorer,
            rule=regression.rule,
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
