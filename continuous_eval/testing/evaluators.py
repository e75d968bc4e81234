"""``InMemoryEvaluatorStore``: the ``EvaluatorStore`` port in a dictionary.

It keeps the SQL store's semantics (``adapters.db.evaluators``): versions count
up from 1 per name, ``created_at`` and ``promoted_at`` come from the injected
clock, and promotion under the floor is refused with the core's reason.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from continuous_eval.core.evaluators import LearnedEvaluator, NewEvaluator, promotion_problem
from continuous_eval.ports import Clock
from continuous_eval.testing.clock import FakeClock


class InMemoryEvaluatorStore:
    """Learned evaluators in memory, thread-safe through one lock."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or FakeClock()
        self.versions: dict[tuple[str, int], LearnedEvaluator] = {}
        self._lock = threading.Lock()

    def add_evaluator(self, new: NewEvaluator) -> LearnedEvaluator:
        """Store the next version of the name."""
        with self._lock:
            version = 1 + max((v for n, v in self.versions if n == new.name), default=0)
            made = LearnedEvaluator(version=version, evaluator=new, created_at=self.clock.now())
            self.versions[(new.name, version)] = made
            return made

    def evaluator(self, name: str, version: int) -> LearnedEvaluator | None:
        """One version, if stored."""
        return self.versions.get((name, version))

    def list_evaluators(self, name: str | None = None) -> list[LearnedEvaluator]:
        """Every version (of one name), by name then version."""
        keys = sorted(k for k in self.versions if name is None or k[0] == name)
        return [self.versions[k] for k in keys]

    def promote(self, name: str, version: int, floor: float) -> LearnedEvaluator:
        """Mark promoted, unless under the floor."""
        with self._lock:
            found = self.versions.get((name, version))
            if found is None:
                raise LookupError(f"no evaluator {name}@{version}")
            problem = promotion_problem(found.evaluator.metrics, floor)
            if problem is not None:
                raise ValueError(f"{name}@{version} cannot be promoted: {problem}")
            if found.promoted_at is None:
                found = replace(found, promoted_at=self.clock.now())
                self.versions[(name, version)] = found
            return found
