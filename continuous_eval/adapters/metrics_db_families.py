"""The metric families a database scrape exposes, built from one snapshot.

What belongs here: every family's name, help and labels (``describe`` and
``collect`` share them) and the zero-filling that turns a ``DbSnapshot`` into
samples. Pure: no query and no clock, so what a scrape shows depends on the
snapshot alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from continuous_eval.adapters.metrics_db_records import (
    ALERT_KINDS,
    ALERT_STATUSES,
    RUN_TYPES,
    TERMINAL_STATUSES,
    UNFINISHED_STATUSES,
    DbSnapshot,
    RunTotals,
)

_Family = CounterMetricFamily | GaugeMetricFamily


def empty_families() -> dict[str, _Family]:
    """Every family the collector can expose, empty; ``describe`` and ``collect`` share it."""
    by_run = ["suite", "run_type"]
    families: list[_Family] = [
        GaugeMetricFamily(
            "continuous_eval_db_up",
            "1 when the last scrape's database queries succeeded in time, else 0.",
        ),
        GaugeMetricFamily(
            "continuous_eval_db_scrape_duration_seconds",
            "Time this scrape spent on (or waiting for) the database queries.",
        ),
        CounterMetricFamily(
            "continuous_eval_runs",
            "Runs in a terminal status (succeeded, failed, cancelled, skipped, inconclusive).",
            labels=[*by_run, "status"],
        ),
        GaugeMetricFamily(
            "continuous_eval_unfinished_runs",
            "Runs stored in a non-terminal status (queued, running, paused, interrupted).",
            labels=[*by_run, "status"],
        ),
        CounterMetricFamily(
            "continuous_eval_case_errors",
            "Stored results with status error (eval_runs.errored, summed).",
            labels=by_run,
        ),
        CounterMetricFamily(
            "continuous_eval_judge_requests",
            "Stored results that recorded judge usage (input or output tokens above zero).",
            labels=by_run,
        ),
        CounterMetricFamily(
            "continuous_eval_judge_tokens",
            "Judge tokens recorded on runs (eval_runs.judge_*_tokens).",
            labels=[*by_run, "token_type"],
        ),
        CounterMetricFamily(
            "continuous_eval_judge_cost_usd",
            "Judge cost recorded on runs, in US dollars (eval_runs.judge_cost_usd).",
            labels=by_run,
        ),
        CounterMetricFamily(
            "continuous_eval_target_tokens",
            "Tokens the targets under test recorded (eval_runs.target_*_tokens).",
            labels=[*by_run, "token_type"],
        ),
        CounterMetricFamily(
            "continuous_eval_target_cost_usd",
            "Cost the targets under test recorded, in US dollars.",
            labels=by_run,
        ),
        GaugeMetricFamily(
            "continuous_eval_last_scheduled_run_timestamp_seconds",
            "Start (unix time) of the suite's newest scheduled run, any status.",
            labels=["suite"],
        ),
        GaugeMetricFamily(
            "continuous_eval_last_scheduled_success_timestamp_seconds",
            "Start (unix time) of the suite's newest succeeded scheduled run.",
            labels=["suite"],
        ),
        GaugeMetricFamily(
            "continuous_eval_last_scheduled_score",
            "Mean score per feature and scorer of the suite's newest succeeded scheduled run.",
            labels=["suite", "feature", "scorer"],
        ),
        CounterMetricFamily(
            "continuous_eval_regressions",
            "Regressions detected (regression alerts, one per run whatever the channels).",
            labels=["suite", "feature", "scorer"],
        ),
        GaugeMetricFamily(
            "continuous_eval_outbox_alerts",
            "Alerts in the outbox by channel, kind and delivery status.",
            labels=["channel", "kind", "status"],
        ),
    ]
    return {family.name: family for family in families}


def build_families(snapshot: DbSnapshot, suites: Iterable[str]) -> list[Metric]:
    """Turn a snapshot into metric families, with zeros where a label set has no rows yet.

    Zeros matter to alert rules: ``increase()`` cannot see a series go from
    absent to 1, only from 0 to 1. Runs are zero-filled for every suite known
    (configured or stored) x run type x status; regressions for every feature
    x scorer of the suites' newest succeeded scheduled runs; the outbox for
    every kind x status of each channel seen.
    """
    families = empty_families()

    def add(name: str, labels: Sequence[str], value: float) -> None:
        families[name].add_metric(list(labels), value)

    _add_runs(add, snapshot, set(suites) | {suite for suite, _, _ in snapshot.runs})
    _add_scores(add, snapshot)
    for channel in sorted({channel for channel, _, _ in snapshot.alerts}):
        for kind in ALERT_KINDS:
            for status in ALERT_STATUSES:
                n = snapshot.alerts.get((channel, kind, status), 0)
                add("continuous_eval_outbox_alerts", (channel, kind, status), n)
    return list(families.values())


_Add = Callable[[str, Sequence[str], float], None]


def _add_runs(add: _Add, snapshot: DbSnapshot, known: set[str]) -> None:
    """Run counts by status, and the cases, tokens and cost they spent, per suite x run type."""
    by_run: dict[tuple[str, str], RunTotals] = defaultdict(RunTotals)
    for (suite, run_type, _status), totals in snapshot.runs.items():
        by_run[(suite, run_type)] += totals
    for suite in sorted(known):
        for run_type in RUN_TYPES:
            for status in TERMINAL_STATUSES + UNFINISHED_STATUSES:
                n = snapshot.runs.get((suite, run_type, status), RunTotals()).runs
                name = (
                    "continuous_eval_runs"
                    if status in TERMINAL_STATUSES
                    else "continuous_eval_unfinished_runs"
                )
                add(name, (suite, run_type, status), n)
            _add_spend(add, (suite, run_type), by_run.get((suite, run_type), RunTotals()))


def _add_spend(add: _Add, labels: tuple[str, str], t: RunTotals) -> None:
    add("continuous_eval_case_errors", labels, t.errored)
    add("continuous_eval_judge_requests", labels, t.judge_requests)
    add("continuous_eval_judge_tokens", (*labels, "input"), t.judge_input_tokens)
    add("continuous_eval_judge_tokens", (*labels, "output"), t.judge_output_tokens)
    add("continuous_eval_judge_cost_usd", labels, t.judge_cost_usd)
    add("continuous_eval_target_tokens", (*labels, "input"), t.target_input_tokens)
    add("continuous_eval_target_tokens", (*labels, "output"), t.target_output_tokens)
    add("continuous_eval_target_cost_usd", labels, t.target_cost_usd)


def _add_scores(add: _Add, snapshot: DbSnapshot) -> None:
    """The newest scheduled runs' times, scores and regressions."""
    for suite, at in sorted(snapshot.last_run_at.items()):
        add("continuous_eval_last_scheduled_run_timestamp_seconds", (suite,), at.timestamp())
    for suite, at in sorted(snapshot.last_success_at.items()):
        add("continuous_eval_last_scheduled_success_timestamp_seconds", (suite,), at.timestamp())
    for key, mean in sorted(snapshot.last_scores.items()):
        if mean is not None:
            add("continuous_eval_last_scheduled_score", key, mean)
    for key in sorted(set(snapshot.regressions) | set(snapshot.last_scores)):
        add("continuous_eval_regressions", key, snapshot.regressions.get(key, 0))
