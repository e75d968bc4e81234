"""The store of learned evaluators: ``adapters.db.evaluators`` on SQLite and Postgres,
``testing.evaluators`` in memory; the same contract tests run on both. And the author
that writes them: ``adapters.evaluator_author`` (Claude), scripted fakes in tests."""

from __future__ import annotations

from typing import Protocol

from continuous_eval.core.evaluator_prompt import AuthoredCode, EvaluatorPrompt
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


class EvaluatorAuthor(Protocol):
    """A model that writes evaluator code from a prompt."""

    @property
    def default_model(self) -> str:
        """The model used when a generation names none."""
        ...

    async def write_evaluator(
        self, prompt: EvaluatorPrompt, model: str | None = None
    ) -> AuthoredCode:
        """Ask for one evaluator; raises ``errors.EvaluatorAuthorError`` when no code comes."""
        ...
