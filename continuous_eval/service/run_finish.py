"""The end of a run: its aggregates, its final status and its alerts, in one write.

What belongs here: the rules a run's end applies before it is stored (a
spent judge budget makes the run incomplete; less scored than the
completeness floor makes it ``inconclusive``), the alert planning whose
failure must never cost the run its results, and the quiet finish on the way
out of a failure or a cancellation. Scores are streamed back from the store
and aggregated one feature x scorer at a time.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from continuous_eval.core.models import RunRecord, RunStatus, ScoreAggregate
from continuous_eval.core.scoring import aggregate_rows
from continuous_eval.ports import RunPlan, RunStore
from continuous_eval.service.alerts import FinishPlan
from continuous_eval.service.run_state import RunState

# Logged under the runner's name, as before the split: operators filter on it.
log = logging.getLogger("continuous_eval.service.runner")

PlanAlerts = Callable[[RunStore, RunRecord, Sequence[ScoreAggregate], datetime], FinishPlan]
"""Decides the decisions and outbox rows of a run about to end (``AlertPlanner.plan``)."""


class RunFinisher:
    """Finish runs in a store: aggregate, apply the end-of-run rules, plan alerts, write.

    Args:
        store: where the run's results are and its final state goes.
        completeness_floor: a run that scores less than this share of its
            results ends ``inconclusive``, not ``succeeded``.
        plan_alerts: decides the outbox rows of a run about to end.
    """

    def __init__(
        self, store: RunStore, *, completeness_floor: float, plan_alerts: PlanAlerts | None
    ) -> None:
        self._store = store
        self._floor = completeness_floor
        self._plan_alerts = plan_alerts

    def finish(self, state: RunState, status: RunStatus, reason: str | None) -> RunRecord:
        """Store the run's end; ``status`` is what the run reached, before the rules."""
        if status is RunStatus.SUCCEEDED and state.budget_skipped:
            reason = (
                f"incomplete: the daily judge budget ran out "
                f"({state.budget_skipped} judge scores skipped; "
                f"{state.budget.describe() if state.budget else ''})"
            )
        aggregates = self._aggregate(state.run.id, state.plan)
        current = self._store.get_run(state.run.id)
        if status is RunStatus.SUCCEEDED and current.completeness < self._floor:
            # Too little was scored to say anything about quality: not a success.
            status = RunStatus.INCONCLUSIVE
            counted = (
                f"{current.scored} of {current.total} results scored, "
                f"{current.errored} errors (the completeness floor is {self._floor:.0%})"
            )
            reason = f"inconclusive: {counted}" + (f"; {reason}" if reason else "")
        planned = FinishPlan()
        if self._plan_alerts is not None:
            try:
                final = dataclasses.replace(current, status=status, status_reason=reason)
                planned = self._plan_alerts(self._store, final, aggregates, self._store.db_now())
            except Exception:
                # Detection must never cost the run its results; the failure is
                # logged loudly, and the next scheduled run is compared again.
                log.exception(
                    "regression detection failed",
                    extra={"event": "detection_failed", "run_id": state.run.id},
                )
        return self._store.finish_run(
            state.run.id,
            status,
            reason,
            aggregates,
            fence=state.fence,
            alerts=planned.alerts,
            decisions=planned.decisions,
        )

    def finish_quietly(self, state: RunState, status: RunStatus, reason: str) -> None:
        """Store what can be stored of the run's end; never raises."""
        # Runs on the way out of a failure or a cancellation: record what we can
        # synchronously (no awaiting while cancelled) and never mask the cause.
        # The aggregates of what did finish are kept, so a partial run still shows.
        try:
            try:
                aggregates = self._aggregate(state.run.id, state.plan)
            except Exception:
                aggregates = []
            self._store.finish_run(state.run.id, status, reason, aggregates, fence=state.fence)
        except Exception:
            log.exception(
                "could not record the end of a run",
                extra={"event": "run_finish_failed", "run_id": state.run.id, "status": str(status)},
            )

    def _aggregate(self, run_id: str, plan: RunPlan) -> list[ScoreAggregate]:
        expected = [(f.name, s.name) for f in plan.features for s in f.scorers]
        return aggregate_rows(self._store.iter_scores(run_id), expected, plan.pair_fingerprints)
