"""What a run executes: the clock, targets, scorers, and the plan that joins them.

The runner sees only these; the plans are built in ``app.plans`` from the
suite file, and a test builds them by hand over fakes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from continuous_eval.core.models import (
    ScoreOutcome,
    TargetOutput,
)
from continuous_eval.core.suite import Case
from continuous_eval.core.trajectory import Step


class Clock(Protocol):
    """Where the service reads the time; tests inject a fake one."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware, in UTC."""
        ...


class Target(Protocol):
    """The system under test for one feature."""

    async def answer(self, case: Case) -> TargetOutput:
        """Return the system's answer for one case; raise ``TargetError`` on failure."""
        ...

    async def aclose(self) -> None:
        """Release connections; called once when the run ends."""
        ...


StepListener = Callable[[str, int, Step], Awaitable[None]]
"""Told of each step of a case as it arrives: ``(case_id, index, step)``, index from 0."""


@runtime_checkable
class StreamingTarget(Target, Protocol):
    """A target whose answer comes step by step (an agent): it can report each step live."""

    async def answer_streaming(self, case: Case, on_step: StepListener) -> TargetOutput:
        """Answer one case, awaiting ``on_step`` for each step before reading the next.

        The returned output's ``steps`` are the same steps, in the same order.
        """
        ...


class CaseScorer(Protocol):
    """One configured scorer, ready to grade outputs."""

    name: str

    async def score(self, output: str, case: Case) -> ScoreOutcome:
        """Grade one output; raise ``ScorerError`` (never return 0) when it cannot."""
        ...


@dataclass(frozen=True)
class FeaturePlan:
    """One feature, ready to run: a re-openable case stream, its target and scorers."""

    name: str
    cases: Callable[[], Iterator[Case]]
    """Opens the dataset again from the start; called once per run."""
    case_count: int
    target: Target
    scorers: Sequence[CaseScorer]
    budgeted: frozenset[str] = frozenset()
    """Names of the scorers that spend the judge budget (the LLM judges)."""


@dataclass(frozen=True)
class RunPlan:
    """A suite, resolved: what to run and what the results will be compared as."""

    suite: str
    features: Sequence[FeaturePlan]
    concurrency: int
    """Cases of this suite in flight at once."""
    fingerprint: str
    fingerprint_parts: dict[str, str] = field(default_factory=dict)
    pair_fingerprints: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def cases_total(self) -> int:
        """Cases across the selected features."""
        return sum(f.case_count for f in self.features)

    @property
    def results_total(self) -> int:
        """Expected case x scorer results."""
        return sum(f.case_count * len(f.scorers) for f in self.features)


class PlanSource(Protocol):
    """Builds a runnable plan for a suite (reading its datasets anew each time)."""

    def plan(self, suite: str, features: Sequence[str], as_of: datetime | None = None) -> RunPlan:
        """Validate and fingerprint the suite's datasets and return the plan.

        ``as_of`` is where an online feature's window of recorded traffic ends:
        the run's scheduled time (a manual run: its creation), so a retry or a
        takeover samples the same interactions; none: now.
        """
        ...


class RunObserver(Protocol):
    """Told about progress; the CLI draws a bar with it, the API streams it."""

    def case_finished(self, feature: str, case_id: str, errors: int) -> None:
        """One case is done (its results are queued for storage); ``errors`` of its
        case x scorer results errored."""
        ...
