"""Replay a suite's stored scheduled history through the detector: what would a policy have alerted?

Tuning the false discovery rate, the minimum effect or the baseline window
on a live suite means waiting weeks to learn whether the new setting pages
people for noise or sleeps through a real fall. The stored history already
holds every scheduled run's per-case scores, so this replays them, oldest
first, through ``core.regression.decide_run`` with the policy to try, and
collects the incident and recovery reports (``core.alerting.reports``) the
service would have sent.

The stored decisions are ignored on purpose: they say what the policy in
force at the time concluded. Each replayed run's own decisions are fed back
as its ``states`` instead, exactly as the service stores them, so incidents
open, worsen and recover as they would have under the policy tried. Nothing
is written and nothing is sent.

Memory stays bounded whatever the history's length: only run ids are listed
up front, each run's scores are read once when it is replayed, and the
detector's history keeps the newest ``history_limit(policy)`` runs (what the
live detector reads) plus the frozen known-good runs of incidents still
open (which the live detector reads back too, however old).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from continuous_eval.core.alerting import IncidentReport, reports
from continuous_eval.core.baselines import incident_baselines
from continuous_eval.core.error_control import Correction
from continuous_eval.core.models import RunRecord
from continuous_eval.core.regression import (
    DecisionKind,
    RegressionPolicy,
    RunDecision,
    RunScores,
    ScoreKey,
    ScorerPolicy,
    decide_run,
    split_anchors,
)
from continuous_eval.errors import RunNotFound
from continuous_eval.ports import HistoryReader
from continuous_eval.service.detection import history_limit

PAGE = 500
"""Run ids listed per query while the history is read, newest first."""


def with_overrides(
    policy: RegressionPolicy,
    *,
    fdr: float | None = None,
    correction: Correction | None = None,
    baseline_runs: int | None = None,
    min_effect: float | None = None,
) -> RegressionPolicy:
    """Return ``policy`` with the given knobs replaced.

    ``min_effect`` replaces every scorer's minimum fall (the judge and pass
    rate defaults and every per-scorer setting): one number to try, so the
    question "what if we only cared about falls of X" has one answer.

    Raises:
        ValueError: a value the policy refuses (``fdr`` outside (0, 0.5), ...).
    """
    changes: dict[str, object] = {}
    if fdr is not None:
        changes["fdr"] = fdr
    if correction is not None:
        changes["correction"] = correction
    if baseline_runs is not None:
        changes["baseline_window"] = baseline_runs
    if min_effect is not None:
        every = ScorerPolicy(min_effect=min_effect)
        changes.update(judge=every, pass_rate=every, scorers=dict.fromkeys(policy.scorers, every))
    return replace(policy, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ReplayedRun:
    """A replayed run that would have sent something."""

    run_id: str
    started_at: datetime | None
    reports: tuple[IncidentReport, ...]
    """Its incident report, its recovery report, or both."""


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """What a policy would have alerted over a suite's whole scheduled history."""

    suite: str
    policy: RegressionPolicy
    runs_replayed: int
    alerted: tuple[ReplayedRun, ...]
    """Runs with a report, oldest first."""
    first_started_at: datetime | None = None
    last_started_at: datetime | None = None

    def _items(self, kind: str) -> list[tuple[ScoreKey, str | None, DecisionKind]]:
        return [
            (item.key, item.transition, item.kind)
            for run in self.alerted
            for report in run.reports
            if report.kind == kind
            for item in report.items
        ]

    @property
    def incidents_opened(self) -> int:
        """Keys whose incident (regression or judge drift) opened."""
        return sum(t == "opened" for _, t, _ in self._items("regression"))

    @property
    def judge_drift_opened(self) -> int:
        """Of the incidents opened, those where the judge moved."""
        return sum(
            t == "opened" and k is DecisionKind.JUDGE_DRIFT for _, t, k in self._items("regression")
        )

    @property
    def worsened(self) -> int:
        """Keys already in an incident that fell further (alerted again)."""
        return sum(t == "worsened" for _, t, _ in self._items("regression"))

    @property
    def recoveries(self) -> int:
        """Keys whose incident closed because the score came back."""
        return len(self._items("recovery"))

    @property
    def incident_reports(self) -> int:
        """Incident emails the suite would have received (one per run at most)."""
        return sum(r.kind == "regression" for run in self.alerted for r in run.reports)

    @property
    def keys_alerted(self) -> tuple[ScoreKey, ...]:
        """Every (feature, scorer) that appeared in an incident report, sorted."""
        return tuple(sorted({key for key, _, _ in self._items("regression")}))


class Replay:
    """The detector's memory across a replay: each run is decided, then remembered with its states.

    Pure (no store): ``decide`` takes runs oldest first, as the service sees
    them finish.
    """

    def __init__(self, policy: RegressionPolicy) -> None:
        self.policy = policy
        self._recent: deque[RunScores] = deque(maxlen=history_limit(policy))
        """Newest first: what the live detector reads."""
        self._pinned: OrderedDict[str, RunScores] = OrderedDict()
        """Older runs an open incident is still measured against, oldest first."""

    def history(self) -> list[RunScores]:
        """The earlier runs the next decision reads, newest first."""
        return [*self._recent, *reversed(self._pinned.values())]

    def decide(self, current: RunScores) -> RunDecision:
        """Decide ``current`` against the runs replayed so far, then remember it.

        Raises:
            ValueError: ``current`` was replayed already or belongs to another suite.
        """
        decision = decide_run(current, self.history(), self.policy, candidate=False)
        states = {d.key: d.state() for d in decision.decisions}
        full = len(self._recent) == self._recent.maxlen
        evicted = self._recent[-1] if full else None
        self._recent.appendleft(replace(current, states=states))
        if evicted is not None:
            self._pinned[evicted.run_id] = evicted
        self._unpin()
        return decision

    def _unpin(self) -> None:
        """Forget older runs no open incident refers to (the newest state of each key decides)."""
        if not self._pinned:
            return
        wanted = incident_baselines(run.states or {} for run in self._recent)
        for run_id in [r for r in self._pinned if r not in wanted]:
            del self._pinned[run_id]


def scheduled_run_ids(store: HistoryReader, suite: str, *, page: int = PAGE) -> list[str]:
    """Every succeeded scheduled run of the suite, oldest first (ids only, paged).

    Pages overlap by the oldest start time of the page before, so runs that
    started in the same instant across a page boundary are not lost.
    """
    before = store.db_now() + timedelta(days=1)
    seen: dict[str, datetime] = {}
    while True:
        rows = store.scheduled_history(suite, before=before, limit=page)
        fresh = [r for r in rows if r.id not in seen]
        for r in fresh:
            seen[r.id] = r.started_at or before
        if len(rows) < page or not fresh:
            break
        oldest = rows[-1].started_at
        if oldest is None:  # pragma: no cover - a scheduled run in history has started
            break
        before = oldest + timedelta(microseconds=1)
    return sorted(seen, key=lambda run_id: (seen[run_id], run_id))


def run_scores(store: HistoryReader, run: RunRecord) -> RunScores:
    """One stored run as the detector sees it, anchors split off, without stored states."""
    own, cases, anchors = split_anchors(store.get_aggregates(run.id), store.case_scores(run.id))
    return RunScores.build(
        run.id, run.suite, run.run_type, run.completeness, own, cases, anchor_scores=anchors
    )


def replayed(store: HistoryReader, suite: str) -> Iterator[tuple[RunRecord, RunScores]]:
    """Yield the suite's scheduled history oldest first, each run read when it is reached."""
    for run_id in scheduled_run_ids(store, suite):
        try:
            run = store.get_run(run_id)
        except RunNotFound:
            continue  # deleted since it was listed
        yield run, run_scores(store, run)


def backtest(store: HistoryReader, suite: str, policy: RegressionPolicy) -> BacktestResult:
    """Replay every succeeded scheduled run of ``suite`` with ``policy``: what would it alert?

    Reads the store only; writes and sends nothing.
    """
    replay = Replay(policy)
    alerted: list[ReplayedRun] = []
    count = 0
    first: datetime | None = None
    last: datetime | None = None
    for run, scores in replayed(store, suite):
        found = tuple(reports(replay.decide(scores)))
        count += 1
        first = first or run.started_at
        last = run.started_at
        if found:
            alerted.append(ReplayedRun(run.id, run.started_at, found))
    return BacktestResult(suite, policy, count, tuple(alerted), first, last)
