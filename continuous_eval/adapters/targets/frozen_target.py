"""A target that answers each case with its stored ``output``: anchors, or outputs made elsewhere.

Nothing is called, so the scores of frozen outputs move only when the judge
does: the premise of a judge canary.
"""

from __future__ import annotations

from continuous_eval.core.models import TargetOutput
from continuous_eval.core.suite import Case
from continuous_eval.errors import TargetError

__all__ = ["FrozenOutputTarget"]


class FrozenOutputTarget:
    """The ``Target`` protocol over ``Case.output``."""

    async def answer(self, case: Case) -> TargetOutput:
        """Return the case's frozen output.

        Raises:
            TargetError: the case has no ``output``.
        """
        if case.output is None:
            raise TargetError(f"case {case.id!r} has no frozen 'output' to score")
        return TargetOutput(text=case.output)

    async def aclose(self) -> None:
        """Nothing to close."""
