"""The daily judge budget: a cap in USD on what the LLM judge may spend per UTC day.

Two decisions, both pure:

- before a scheduled run: skip it when today's spend is at or over the cap;
  when the spend cannot be read, go ahead (fail open) and say so, because a
  monitoring outage must not silently stop quality monitoring;
- during a run: a tracker that the judge consults before each call, so a run
  that reaches the cap mid-way stops calling the judge and ends incomplete.
  Calls already in flight when the cap is reached still finish, so the
  overshoot is at most the cost of the calls in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class BudgetDecision:
    """Whether a scheduled run may start, given the cap and today's spend."""

    allowed: bool
    reason: str
    spend_unreadable: bool = False


def day_start(now: datetime) -> datetime:
    """Return the start of ``now``'s UTC day: spend is counted per UTC day."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    utc = now.astimezone(UTC)
    return utc.replace(hour=0, minute=0, second=0, microsecond=0)


def check_budget(cap_usd: float | None, spent_usd: float | None) -> BudgetDecision:
    """Decide whether a run may start.

    Args:
        cap_usd: the daily cap, or None for no cap.
        spent_usd: today's judge spend, or None when it could not be read.
    """
    if cap_usd is None:
        return BudgetDecision(True, "no daily judge budget set")
    if spent_usd is None:
        return BudgetDecision(
            True, "today's judge spend could not be read; going ahead (fail-open)", True
        )
    if spent_usd >= cap_usd:
        return BudgetDecision(
            False, f"daily judge budget reached: ${spent_usd:.4f} spent of ${cap_usd:.4f}"
        )
    return BudgetDecision(True, f"${spent_usd:.4f} of ${cap_usd:.4f} spent today")


class BudgetTracker:
    """Running spend of one run against what was left of the day's cap at its start.

    Not thread-safe by design: the runner uses it from its event loop only.
    """

    def __init__(self, cap_usd: float | None, spent_before_usd: float) -> None:
        self._cap = cap_usd
        self._spent = spent_before_usd

    @property
    def exhausted(self) -> bool:
        """Whether the cap is reached: no further judge call may start."""
        return self._cap is not None and self._spent >= self._cap

    def add(self, cost_usd: float) -> None:
        """Record the cost of a finished judge call."""
        self._spent += cost_usd

    def describe(self) -> str:
        """Explain the state for a run's status reason."""
        if self._cap is None:
            return "no daily judge budget set"
        return f"${self._spent:.4f} spent of a ${self._cap:.4f} daily judge budget"
