"""Targets that call nothing: they answer each case with the output it already has.

``FrozenOutputTarget`` serves anchors and outputs made elsewhere: nothing is
called, so the scores of frozen outputs move only when the judge does (the
premise of a judge canary). ``RecordedOutputTarget`` serves online features:
each case is a recorded interaction, and what production answered, with the
tool calls it made on the way, is what gets scored.
"""

from __future__ import annotations

from continuous_eval.core.models import TargetOutput
from continuous_eval.core.suite import Case
from continuous_eval.errors import TargetError

__all__ = ["FrozenOutputTarget", "RecordedOutputTarget"]


class FrozenOutputTarget:
    """The ``Target`` protocol over ``Case.output``."""

    what = "frozen 'output'"

    async def answer(self, case: Case) -> TargetOutput:
        """Return the case's stored output and its steps.

        Raises:
            TargetError: the case has no output.
        """
        if case.output is None:
            raise TargetError(f"case {case.id!r} has no {self.what} to score")
        return TargetOutput(text=case.output, steps=case.steps)

    async def aclose(self) -> None:
        """Nothing to close."""


class RecordedOutputTarget(FrozenOutputTarget):
    """The ``Target`` protocol over a recorded interaction's answer (``target: recorded``)."""

    what = "recorded answer"
