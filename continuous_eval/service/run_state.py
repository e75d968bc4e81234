"""What one execution of a run carries, and how it grades one output.

What belongs here: ``RunState`` (the run, its plan, fence, budget, breaker
and stop signal, shared by the producer, the cases and the finish), the
scoring of one output against the day's judge budget, and ``describe``, the
error text stored for a failure. The cases are run in ``run_cases``; the
runner (``runner``) owns the tasks around them.
"""

from __future__ import annotations

import asyncio

from continuous_eval.core.breaker import Breaker
from continuous_eval.core.budget import BudgetTracker
from continuous_eval.core.models import (
    NO_USAGE,
    Fence,
    ResultStatus,
    RunRecord,
    ScoreOutcome,
    Usage,
)
from continuous_eval.core.secrets import Scrubber
from continuous_eval.core.suite import Case
from continuous_eval.errors import CaseError, ContinuousEvalError
from continuous_eval.ports import CaseScorer, FeaturePlan, RunPlan
from continuous_eval.service.run_control import RunControl, StopReason
from continuous_eval.service.run_steps import StepRecorder


def describe(exc: BaseException) -> str:
    """Return the stored text of a failure: its message, with the class name unless it is ours."""
    message = str(exc).strip()
    if isinstance(exc, ContinuousEvalError) and message:
        # Our adapters already describe the cause; the class name adds nothing.
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class RunState:
    """What one execution of a run carries: its fence, its budget, what it skipped."""

    def __init__(
        self,
        run: RunRecord,
        plan: RunPlan,
        fence: Fence | None,
        budget: BudgetTracker | None,
        scrub: Scrubber,
        breaker: Breaker,
        control: RunControl,
        steps: StepRecorder | None = None,
    ) -> None:
        self.scrub = scrub
        self.breaker = breaker
        self.control = control
        self._changed = asyncio.Event()
        self.run = run
        self.plan = plan
        self.fence = fence
        self.budget = budget
        self.budget_skipped = 0
        self.steps = steps
        """Stores the cases' agent steps; None keeps them only on the case being scored."""

    def record(self, refusal: str | None) -> None:
        """Note a finished case for the breaker; stop the run when it trips."""
        self.breaker.record(refusal)
        if self.breaker.tripped:
            self.control.stop(StopReason.BREAKER)
        self._changed.set()

    async def breaker_changed(self) -> None:
        """Wait until the breaker's state moves (a case finished)."""
        self._changed.clear()
        await self._changed.wait()

    async def score(
        self, feature: FeaturePlan, scorer: CaseScorer, output: str, case: Case
    ) -> ScoreOutcome | tuple[ResultStatus, str, Usage, str | None]:
        """Grade one output; a failure becomes (status, reason, usage spent, refusal)."""
        budgeted = self.budget is not None and scorer.name in feature.budgeted
        if budgeted and self.budget is not None and self.budget.exhausted:
            self.budget_skipped += 1
            return ResultStatus.SKIPPED, "skipped: the daily judge budget is spent", NO_USAGE, None
        try:
            outcome = await scorer.score(output, case)
        except Exception as exc:
            usage = getattr(exc, "usage", NO_USAGE)
            usage = usage if isinstance(usage, Usage) else NO_USAGE
            if budgeted and self.budget is not None:
                self.budget.add(usage.cost_usd)
            refusal = exc.refusal if isinstance(exc, CaseError) else None
            message = self.scrub(f"scorer failed: {describe(exc)}")
            return ResultStatus.ERROR, message, usage, refusal
        if budgeted and self.budget is not None:
            self.budget.add(outcome.usage.cost_usd)
        return outcome
