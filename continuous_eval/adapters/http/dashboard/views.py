"""What each dashboard page shows, built from the read side: plain records for templates.

No HTTP here and no SQL: the functions take a ``RunReader`` (and a store for
single runs and alerts) and return frozen records the Jinja templates
render. The decisions themselves are the detector's (``core.health`` only
names their state); the comparison is ``core.compare``'s.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from continuous_eval.core.compare import CaseChange, Change, compare_runs, counts
from continuous_eval.core.decisions import Decision
from continuous_eval.core.health import SEVERITY, Health, health, sparkline
from continuous_eval.core.models import (
    AlertRecord,
    ResultRecord,
    RunRecord,
    ScoreAggregate,
)
from continuous_eval.core.reads import KeyVerdict, RunKey, TrendPoint
from continuous_eval.ports import RunReader, RunStore, SuiteSchedule

SPARK_RUNS = 30
"""Scheduled runs in an overview sparkline."""

RESULTS_CAP = 20_000
"""Results read per run for a comparison: bounds the page's memory on a huge run."""

_PAGE = 1000


@dataclass(frozen=True, slots=True)
class KeyRow:
    """One feature x scorer on the overview."""

    suite: str
    feature: str
    scorer: str
    health: Health
    score: float | None
    n: int
    errors: int
    run_id: str | None
    last_at: datetime | None
    spark: str
    """SVG polyline points of the last scheduled scores, oldest first."""
    message: str | None


@dataclass(frozen=True, slots=True)
class SuiteBlock:
    """One suite on the overview: its keys, worst first, and when it runs."""

    name: str
    keys: list[KeyRow]
    last_at: datetime | None
    next_at: datetime | None
    scheduled: bool


@dataclass(frozen=True, slots=True)
class Overview:
    """The overview: open incidents on top, then every suite."""

    incidents: list[KeyVerdict]
    suites: list[SuiteBlock]


def _points_by_key(points: Sequence[TrendPoint]) -> dict[tuple[str, str, str], list[TrendPoint]]:
    by_key: dict[tuple[str, str, str], list[TrendPoint]] = {}
    for p in points:
        by_key.setdefault((p.suite, p.feature, p.scorer), []).append(p)
    return by_key


def _key_row(
    key: tuple[str, str, str], points: list[TrendPoint], verdict: Decision | None
) -> KeyRow:
    newest = points[0] if points else None
    return KeyRow(
        suite=key[0],
        feature=key[1],
        scorer=key[2],
        health=health(verdict, has_runs=bool(points)),
        score=newest.score if newest else None,
        n=newest.n if newest else 0,
        errors=newest.errors if newest else 0,
        run_id=newest.run_id if newest else None,
        last_at=newest.at if newest else None,
        spark=sparkline([p.score for p in reversed(points)]),
        message=verdict.message if verdict else None,
    )


def overview(
    reader: RunReader,
    suites: Mapping[str, Sequence[str]],
    schedules: Mapping[str, SuiteSchedule],
) -> Overview:
    """Every suite's keys with their newest score, sparkline and state; open incidents first."""
    by_key = _points_by_key(reader.recent_scores(runs=SPARK_RUNS))
    verdicts = reader.latest_verdicts()
    by_verdict = {(v.suite, v.decision.feature, v.decision.scorer): v for v in verdicts}
    keys_of: dict[str, set[tuple[str, str, str]]] = {}
    for key in (*by_key, *by_verdict):
        keys_of.setdefault(key[0], set()).add(key)
    blocks = []
    for name in sorted(set(suites) | set(keys_of)):
        keys = sorted(keys_of.get(name, ()))
        rows = [_key_row(k, by_key.get(k, []), _decision(by_verdict.get(k))) for k in keys]
        seen = {r.feature for r in rows}
        rows += [_key_row((name, f, "-"), [], None) for f in suites.get(name, ()) if f not in seen]
        rows.sort(key=lambda r: (SEVERITY[r.health], r.feature, r.scorer))
        last = max((r.last_at for r in rows if r.last_at is not None), default=None)
        schedule = schedules.get(name)
        scheduled = schedule is not None and schedule.enabled
        next_at = last + schedule.interval if scheduled and schedule and last else None
        blocks.append(SuiteBlock(name, rows, last, next_at, scheduled))
    incidents = [v for v in verdicts if v.decision.incident is not None]
    return Overview(incidents, blocks)


def _decision(verdict: KeyVerdict | None) -> Decision | None:
    return verdict.decision if verdict is not None else None


# ---------------------------------------------------------------------- trend


@dataclass(frozen=True, slots=True)
class Trend:
    """One key's trend page: the chart's data, and the same points as a table."""

    suite: str
    feature: str
    scorer: str
    points: list[TrendPoint]
    """Newest first."""
    marks: list[KeyVerdict]
    chart: dict[str, object]
    """The chart's data, serialised into the page as JSON (see static/trend.js)."""
    days: int
    manual: bool


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _band(p: TrendPoint) -> tuple[float | None, float | None]:
    if p.score is None or p.stderr is None:
        return (None, None)
    return (p.score - 1.96 * p.stderr, p.score + 1.96 * p.stderr)


MARK_KIND = {"opened": "alert", "worsened": "alert", "recovered": "recovery", "reset": "reset"}


def trend(
    reader: RunReader,
    suite: str,
    feature: str,
    scorer: str,
    *,
    now: datetime,
    days: int,
    manual: bool,
) -> Trend:
    """A key's scheduled points (with a 95% band), manual marks, markers and resets."""
    since = now - timedelta(days=days) if days > 0 else None
    points = reader.key_trend(suite, feature, scorer, since=since, manual=manual)
    marks = reader.key_marks(suite, feature, scorer, since=since)
    scheduled = [p for p in reversed(points) if p.run_type == "scheduled"]
    resets = [
        _epoch(b.at)
        for a, b in itertools.pairwise(scheduled)
        if a.fingerprint and b.fingerprint and a.fingerprint != b.fingerprint
    ]
    # A mark stands on its run's point: a decision is stored when the run ends,
    # which is after the run's slot, and would sit right of its point (past the
    # plot's edge for the newest run). Runs not drawn keep the decision's time.
    drawn = {p.run_id: _epoch(p.at) for p in points}
    chart: dict[str, object] = {
        "scheduled": [
            [_epoch(p.at), p.score, *_band(p), p.run_id, p.n, p.errors, p.status.value]
            for p in scheduled
        ],
        "manual": [
            [_epoch(p.at), p.score, p.run_id, p.n, p.errors]
            for p in reversed(points)
            if p.run_type == "manual"
        ],
        "marks": [
            [
                drawn.get(m.run_id, _epoch(m.decided_at)),
                MARK_KIND.get(m.decision.transition or "", "alert"),
                m.run_id,
            ]
            for m in marks
        ],
        "resets": resets,
    }
    return Trend(suite, feature, scorer, points, marks, chart, days, manual)


# ---------------------------------------------------------------------- run


@dataclass(frozen=True, slots=True)
class RunView:
    """A run page: the run, its scores per feature, its decisions, its baseline."""

    run: RunRecord
    aggregates: list[ScoreAggregate]
    decisions: list[Decision]
    baseline_id: str | None
    cost_usd: float
    duration_s: float | None


def run_view(store: RunStore, reader: RunReader, run_id: str) -> RunView:
    """Read one run for its page (RunNotFound when there is none)."""
    run = store.get_run(run_id)
    decisions = store.get_decisions(run_id)
    duration = None
    if run.started_at is not None and run.finished_at is not None:
        duration = (run.finished_at - run.started_at).total_seconds()
    return RunView(
        run,
        store.get_aggregates(run_id),
        decisions,
        baseline_of(reader, run, decisions),
        run.judge_usage.cost_usd + run.target_usage.cost_usd,
        duration,
    )


def baseline_of(reader: RunReader, run: RunRecord, decisions: Sequence[Decision]) -> str | None:
    """The run a comparison starts from: the newest known-good run the detector paired
    with, else the suite's previous scheduled run."""
    for decision in decisions:
        if decision.baseline_run_ids:
            return decision.baseline_run_ids[0]
    before = reader.list_runs_page(
        suite=run.suite, run_type="scheduled", before=RunKey(run.created_at, run.id), limit=1
    )
    return before[0].id if before else None


# ---------------------------------------------------------------------- compare


@dataclass(frozen=True, slots=True)
class Comparison:
    """Two runs case by case, filtered to one kind of change (or all)."""

    run: RunRecord
    base: RunRecord
    changes: list[CaseChange]
    counts: dict[Change, int]
    show: Change | None
    truncated: bool


def all_results(reader: RunReader, run_id: str) -> tuple[list[ResultRecord], bool]:
    """A run's results (up to ``RESULTS_CAP``), and whether some were left out."""
    found: list[ResultRecord] = []
    after = 0
    while len(found) < RESULTS_CAP:
        page = reader.list_results_page(run_id, after_id=after, limit=_PAGE)
        found.extend(page)
        if len(page) < _PAGE:
            return found, False
        after = page[-1].id
    return found[:RESULTS_CAP], True


def comparison(
    store: RunStore, reader: RunReader, run_id: str, base_id: str, show: Change | None
) -> Comparison:
    """Compare ``run_id`` against ``base_id`` (RunNotFound for either missing)."""
    run, base = store.get_run(run_id), store.get_run(base_id)
    after, cut_a = all_results(reader, run_id)
    before, cut_b = all_results(reader, base_id)
    changes = compare_runs(before, after)
    shown = [c for c in changes if show is None or c.change is show]
    return Comparison(run, base, shown, counts(changes), show, cut_a or cut_b)


# ---------------------------------------------------------------------- alerts


@dataclass(frozen=True, slots=True)
class AlertsView:
    """Open incidents, and every delivery newest first with why a dead one died."""

    incidents: list[KeyVerdict]
    deliveries: list[AlertRecord] = field(default_factory=list)


def alerts_view(store: RunStore, reader: RunReader, *, limit: int = 200) -> AlertsView:
    """The alerts page."""
    incidents = [v for v in reader.latest_verdicts() if v.decision.incident is not None]
    deliveries = sorted(store.list_alerts(limit=limit), key=lambda a: a.id, reverse=True)
    return AlertsView(incidents, deliveries)
