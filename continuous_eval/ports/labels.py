"""The store of eval sets and their labels: what imports, the API, calibration and
learned evaluators need.

``adapters.db.labels`` implements it on SQLite and Postgres and
``testing.labels`` in memory; the same contract tests run on all three.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from continuous_eval.core.labels import (
    EvalCase,
    EvalSet,
    Label,
    LabelledCase,
    LabelScale,
    NewLabel,
)


class EvalSetStore(Protocol):
    """Eval sets, their cases, and labels versioned by time."""

    def create_eval_set(
        self,
        name: str,
        scale: LabelScale,
        description: str | None = None,
        feature: str | None = None,
    ) -> EvalSet:
        """Create a set; raises ``continuous_eval.errors.EvalSetExists`` when the name is taken."""
        ...

    def eval_set(self, name: str) -> EvalSet | None:
        """The set of that name, if any."""
        ...

    def eval_set_by_id(self, eval_set_id: int) -> EvalSet | None:
        """The set of that id, if any."""
        ...

    def list_eval_sets(self) -> list[EvalSet]:
        """Every set, by name."""
        ...

    def put_cases(self, eval_set_id: int, cases: Sequence[EvalCase]) -> int:
        """Add cases, or replace the input and output of cases already there (by case id);
        return how many were new. One transaction."""
        ...

    def add_labels(self, eval_set_id: int, labels: Sequence[NewLabel]) -> list[Label]:
        """Store labels (all or none); raises ``LookupError`` naming an unknown case and
        ``ValueError`` for a value off the set's scale."""
        ...

    def labelled_cases(self, eval_set_id: int, as_of: datetime | None = None) -> list[LabelledCase]:
        """Every case with at least one label at ``as_of`` (now when none), with the latest
        label of each author then, by case id."""
        ...

    def label_history(self, eval_set_id: int, case_id: str) -> list[Label]:
        """Every label of one case, oldest first."""
        ...


class FeedbackFillStore(EvalSetStore, Protocol):
    """An ``EvalSetStore`` that also fills sets from production feedback
    (``service.feedback_fill``): how far each set has read, and one atomic step."""

    def feedback_cursor(self, eval_set_id: int) -> int | None:
        """The id of the last feedback the set was filled from (none yet: None)."""
        ...

    def record_fill(
        self,
        eval_set_id: int,
        cases: Sequence[EvalCase],
        labels: Sequence[NewLabel],
        *,
        after: int | None,
        cursor: int,
    ) -> bool:
        """Put the cases, add the labels and move the cursor from ``after`` to ``cursor``,
        in one transaction; False (nothing written) when the cursor is no longer ``after``
        (another replica filled that feedback first). Raises as ``put_cases``/``add_labels``."""
        ...
