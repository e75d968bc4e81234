"""The run's circuit breaker: stop a run whose provider refuses every call.

A judge answering 401 to every call used to cost one request per case and
end the run ``succeeded`` with nothing scored. A refusal (a bad or revoked
key, no access, no such model, a request the API rejects: ``CaseError.refusal``)
repeats for every case, so after ``threshold`` cases in a row refused, the
run stops and ends ``failed`` naming the refusal.

Until the run has seen one case go through without a refusal, it starts no
more than ``threshold`` cases: with a bad key from the start, at most
``threshold`` requests are spent, however high the concurrency. After the
first case that is not refused, the run goes at full speed, and a refusal
streak must be consecutive to trip it.

Pure: the runner records each finished case's refusal (or its absence) and
asks what to do.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Breaker:
    """Counts consecutive refused cases of one run.

    Args:
        threshold: refused cases in a row that stop the run; 0 turns the breaker off.
    """

    threshold: int
    consecutive: int = 0
    """Cases refused in a row, the latest last."""
    last_refusal: str | None = None
    """The latest refusal, for the run's reason."""
    confirmed: bool = False
    """A case went through without a refusal: the provider accepts this run's calls."""

    def __post_init__(self) -> None:
        if self.threshold < 0:
            raise ValueError("threshold must be 0 (off) or more")

    @property
    def tripped(self) -> bool:
        """Whether the run must stop."""
        return self.threshold > 0 and self.consecutive >= self.threshold

    def record(self, refusal: str | None) -> None:
        """Note one finished case: the refusal it met, or None when it met none."""
        if refusal is None:
            self.consecutive = 0
            self.confirmed = True
        else:
            self.consecutive += 1
            self.last_refusal = refusal

    def may_start(self, started: int) -> bool:
        """Whether another case may start, ``started`` cases into the run."""
        if self.threshold == 0 or self.confirmed:
            return not self.tripped
        return started < self.threshold and not self.tripped

    def reason(self) -> str:
        """The run's failure reason once tripped."""
        return (
            f"stopped after {self.consecutive} cases in a row were refused by the provider: "
            f"{self.last_refusal}"
        )
