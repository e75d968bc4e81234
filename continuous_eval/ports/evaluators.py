"""The store of learned evaluators: ``adapters.db.evaluators`` on SQLite and Postgres,
``testing.evaluators`` in memory; the same contract tests run on both."""

from __future__ import annotations

from typing import Protocol

from continuous_eval.core.evaluators import LearnedEvaluator, NewEvaluator


class EvaluatorStore(Protocol):
    """Versions of learned evaluators, and which are promoted."""

    def add_evaluator(self, new: NewEvaluator) -> LearnedEvaluator:
        """Store the next version of ``new.name`` (1 for a new name), not promoted."""
        ...

    def evaluator(self, name: str, version: int) -> LearnedEvaluator | None:
        """One version, if stored."""
        ...

    def list_evaluators(self, name: str | None = None) -> list[LearnedEvaluator]:
        """Every version (of one name), by name then version."""
        ...

    def promote(self, name: str, version: int, floor: float) -> LearnedEvaluator:
        """Mark a version promoted; raises ``LookupError`` when unknown and ``ValueError``
        with ``core.evaluators.promotion_problem``'s reason when it is under ``floor``."""
        ...
