"""``InMemoryEvalSetStore``: the ``EvalSetStore`` port in dictionaries.

It keeps the SQL store's semantics (``adapters.db.labels``): names are
unique, ids count up from 1, ``created_at`` comes from the injected clock,
labels are only ever added, and ``labelled_cases`` reads them as of a time.
The eval-set contract tests run one suite against both.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from datetime import datetime

from continuous_eval.core.labels import (
    EvalCase,
    EvalSet,
    Label,
    LabelledCase,
    LabelScale,
    NewLabel,
    labels_as_of,
    valid_label_value,
)
from continuous_eval.errors import EvalSetExists
from continuous_eval.ports import Clock
from continuous_eval.testing.clock import FakeClock


class InMemoryEvalSetStore:
    """Eval sets in memory, thread-safe through one lock; see ``SqlEvalSetStore``.

    Args:
        clock: Source of every ``created_at``.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or FakeClock()
        self.sets: dict[int, EvalSet] = {}
        self.cases: dict[int, dict[str, EvalCase]] = {}
        """By set id, then case id."""
        self.labels: dict[int, list[Label]] = {}
        """By set id, in id order."""
        self.cursors: dict[int, int] = {}
        """The feedback fill's cursor, by set id."""
        self._lock = threading.Lock()
        self._set_ids = itertools.count(1)
        self._label_ids = itertools.count(1)

    def create_eval_set(
        self,
        name: str,
        scale: LabelScale,
        description: str | None = None,
        feature: str | None = None,
    ) -> EvalSet:
        """Create a set; a taken name raises ``EvalSetExists``."""
        with self._lock:
            if any(s.name == name for s in self.sets.values()):
                raise EvalSetExists(f"eval set {name!r} exists already")
            made = EvalSet(
                id=next(self._set_ids),
                name=name,
                scale=scale,
                created_at=self.clock.now(),
                description=description,
                feature=feature,
            )
            self.sets[made.id] = made
            self.cases[made.id] = {}
            self.labels[made.id] = []
            return made

    def eval_set(self, name: str) -> EvalSet | None:
        """The set of that name, if any."""
        return next((s for s in self.sets.values() if s.name == name), None)

    def eval_set_by_id(self, eval_set_id: int) -> EvalSet | None:
        """The set of that id, if any."""
        return self.sets.get(eval_set_id)

    def list_eval_sets(self) -> list[EvalSet]:
        """Every set, by name."""
        return sorted(self.sets.values(), key=lambda s: s.name)

    def put_cases(self, eval_set_id: int, cases: Sequence[EvalCase]) -> int:
        """Add or replace cases by id; return how many were new."""
        with self._lock:
            stored = self._cases(eval_set_id)
            new = sum(1 for c in {c.case_id for c in cases} if c not in stored)
            for case in cases:
                stored[case.case_id] = case
            return new

    def add_labels(self, eval_set_id: int, labels: Sequence[NewLabel]) -> list[Label]:
        """Store all the labels or none."""
        with self._lock:
            stored = self._cases(eval_set_id)
            scale = self.sets[eval_set_id].scale
            for item in labels:
                if item.case_id not in stored:
                    raise LookupError(f"eval set has no case {item.case_id!r}")
                if not valid_label_value(scale, item.value):
                    raise ValueError(f"label {item.value} is not on the {scale} scale")
            now = self.clock.now()
            made = [Label(id=next(self._label_ids), label=item, created_at=now) for item in labels]
            self.labels[eval_set_id].extend(made)
            return made

    def labelled_cases(self, eval_set_id: int, as_of: datetime | None = None) -> list[LabelledCase]:
        """Cases with a label at ``as_of``, with each author's latest then."""
        with self._lock:
            stored = self._cases(eval_set_id)
            out: list[LabelledCase] = []
            for case_id in sorted(stored):
                mine = [x for x in self.labels[eval_set_id] if x.label.case_id == case_id]
                current = labels_as_of(mine, as_of)
                if current:
                    out.append(LabelledCase(case=stored[case_id], labels=current))
            return out

    def label_history(self, eval_set_id: int, case_id: str) -> list[Label]:
        """Every label of one case, oldest first."""
        return [x for x in self.labels.get(eval_set_id, []) if x.label.case_id == case_id]

    def feedback_cursor(self, eval_set_id: int) -> int | None:
        """The id of the last feedback the set was filled from."""
        return self.cursors.get(eval_set_id)

    def record_fill(
        self,
        eval_set_id: int,
        cases: Sequence[EvalCase],
        labels: Sequence[NewLabel],
        *,
        after: int | None,
        cursor: int,
    ) -> bool:
        """Cases, labels and the cursor's move at once, unless the cursor moved first."""
        with self._lock:
            stored = self._cases(eval_set_id)
            if self.cursors.get(eval_set_id) != after:
                return False
            scale = self.sets[eval_set_id].scale
            known = set(stored) | {c.case_id for c in cases}
            for item in labels:
                if item.case_id not in known:
                    raise LookupError(f"eval set has no case {item.case_id!r}")
                if not valid_label_value(scale, item.value):
                    raise ValueError(f"label {item.value} is not on the {scale} scale")
            for case in cases:
                stored[case.case_id] = case
            now = self.clock.now()
            made = [Label(id=next(self._label_ids), label=item, created_at=now) for item in labels]
            self.labels[eval_set_id].extend(made)
            self.cursors[eval_set_id] = cursor
            return True

    def _cases(self, eval_set_id: int) -> dict[str, EvalCase]:
        if eval_set_id not in self.cases:
            raise LookupError(f"no eval set with id {eval_set_id}")
        return self.cases[eval_set_id]
