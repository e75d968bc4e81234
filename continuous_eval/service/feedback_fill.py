"""Fill eval sets from production feedback: each set that names a feature reads the
feedback on that feature's traces, from where it left off, into cases and labels.

Each set keeps its own cursor (the last feedback id it read) in the store,
and each batch of feedback is written with the cursor's move in one
transaction (``FeedbackFillStore.record_fill``), guarded by the cursor: a
fill cut short resumes where it stopped, never labels one piece of feedback
twice, and two replicas filling at once write each batch once (the loser
stops for this round). The mapping itself is ``core.feedback_labels``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from continuous_eval.core.feedback_labels import feedback_label, judged_interaction
from continuous_eval.core.interactions import StoredInteraction
from continuous_eval.core.labels import EvalCase, EvalSet, NewLabel
from continuous_eval.ports.interactions import InteractionStore
from continuous_eval.ports.labels import FeedbackFillStore
from continuous_eval.service.blocking import run_blocking

log = logging.getLogger(__name__)

BATCH = 200
"""Feedback read (and written, with the cursor) per transaction."""


@dataclass(frozen=True, slots=True)
class SetFill:
    """What one fill did to one set."""

    eval_set: str
    labels: int = 0
    """Labels added: one per piece of feedback that fit."""
    cases: int = 0
    """Distinct cases written (new or refreshed)."""
    skipped: int = 0
    """Feedback on the feature whose value is off the set's scale."""
    missing: int = 0
    """Feedback whose trace (or named span) is no longer stored."""
    contended: bool = False
    """Another replica moved the cursor first; it fills the rest."""


@dataclass(frozen=True, slots=True)
class FillOutcome:
    """What one fill did, by set."""

    sets: tuple[SetFill, ...] = ()

    @property
    def labels(self) -> int:
        """Labels added in all."""
        return sum(s.labels for s in self.sets)

    @property
    def skipped(self) -> int:
        """Feedback off its set's scale, in all."""
        return sum(s.skipped for s in self.sets)


def fill_from_feedback(
    store: FeedbackFillStore,
    traffic: InteractionStore,
    *,
    only: str | None = None,
    batch: int = BATCH,
) -> FillOutcome:
    """Fill every set that names a feature (or only the set ``only``) up to the newest feedback.

    Raises:
        LookupError: ``only`` names no set.
        ValueError: ``only`` names a set without a feature.
    """
    sets = [s for s in store.list_eval_sets() if s.feature is not None]
    if only is not None:
        chosen = store.eval_set(only)
        if chosen is None:
            raise LookupError(f"no eval set {only!r}")
        if chosen.feature is None:
            raise ValueError(f"eval set {only!r} names no feature to fill it from")
        sets = [chosen]
    return FillOutcome(tuple(_fill_one(store, traffic, s, batch) for s in sets))


def _fill_one(
    store: FeedbackFillStore, traffic: InteractionStore, eval_set: EvalSet, batch: int
) -> SetFill:
    assert eval_set.feature is not None
    cursor = store.feedback_cursor(eval_set.id)
    labels = skipped = missing = 0
    written: set[str] = set()
    while True:
        feedback = traffic.feedback_since(cursor, limit=batch)
        if not feedback:
            break
        traces: dict[str, list[StoredInteraction]] = {}
        cases: dict[str, EvalCase] = {}
        new: list[NewLabel] = []
        for item in feedback:
            trace_id = item.feedback.trace_id
            if trace_id not in traces:
                traces[trace_id] = traffic.trace(trace_id)
            trace = traces[trace_id]
            if trace and not any(r.interaction.feature == eval_set.feature for r in trace):
                continue  # another feature's traffic
            judged = judged_interaction(item, trace, eval_set.feature)
            if judged is None:
                missing += 1
                continue
            mapped = feedback_label(item, judged, eval_set.scale)
            if mapped is None:
                skipped += 1
                continue
            cases[mapped.case.case_id] = mapped.case
            new.append(mapped.label)
        moved_to = feedback[-1].id
        if not store.record_fill(
            eval_set.id, list(cases.values()), new, after=cursor, cursor=moved_to
        ):
            return SetFill(eval_set.name, labels, len(written), skipped, missing, contended=True)
        labels += len(new)
        written.update(cases)
        cursor = moved_to
        if len(feedback) < batch:
            break
    return SetFill(eval_set.name, labels, len(written), skipped, missing)


class FeedbackFillTick:
    """The scheduled job: one fill of every set, off the event loop; never raises.

    Args:
        fill: One fill (``fill_from_feedback`` over the stores).
        io_executor: Where the blocking fill runs (the loop's default when None).
    """

    def __init__(
        self, fill: Callable[[], FillOutcome], *, io_executor: Executor | None = None
    ) -> None:
        self._fill = fill
        self._io = io_executor

    async def __call__(self) -> FillOutcome | None:
        """Run one fill; None when it failed (logged)."""
        try:
            outcome = await run_blocking(self._io, self._fill)
        except Exception:
            log.exception("filling eval sets from feedback failed", extra={"event": "fill_failed"})
            return None
        if outcome.labels or outcome.skipped:
            log.info(
                "eval sets filled from feedback: %d labels, %d skipped off the scale",
                outcome.labels,
                outcome.skipped,
                extra={"event": "feedback_fill"},
            )
        return outcome


FillJob = Callable[[], Awaitable[FillOutcome | None]]
"""What ``serve`` schedules."""
