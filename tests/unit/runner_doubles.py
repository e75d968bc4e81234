"""The runner's test doubles: a target and a scorer that fail on cue, and a plan over them.

Shared by the runner's tests (``test_runner.py``) and the circuit breaker's
(``test_breaker.py``); the cases and the run a plan fills are built with
``continuous_eval.testing.builders``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

from continuous_eval.core.models import ScoreOutcome, TargetOutput, Usage
from continuous_eval.core.suite import Case
from continuous_eval.errors import ScorerError, TargetError
from continuous_eval.ports import CaseScorer, FeaturePlan, RunPlan, Target


class EchoTarget:
    """Answers the input; fails for inputs starting with 'boom'; tracks concurrency.

    ``fill``: hold every call until that many are in flight at once, then let
    them all go (and every later call straight through). Where a delay only
    makes overlapping cases likely, this makes the runner prove it lets
    ``fill`` cases run together; any it starts beyond its bound meanwhile
    shows in ``max_in_flight``. A runner that never gets there hangs the
    call, so tests using it run under ``asyncio.timeout``. ``delay`` is
    simulated latency; no test waits on it.
    """

    def __init__(
        self, delay: float = 0.0, gate: asyncio.Event | None = None, fill: int | None = None
    ) -> None:
        self.delay = delay
        self.gate = gate
        self.fill = fill
        self.filled = asyncio.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls = 0

    async def answer(self, case: Case) -> TargetOutput:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.fill is not None:
                if self.in_flight >= self.fill:
                    self.filled.set()
                await self.filled.wait()
            if self.gate is not None and case.id == "last":
                await self.gate.wait()
            await asyncio.sleep(self.delay)
            text = str(case.input)
            if text.startswith("boom"):
                raise TargetError("the service answered 503")
            return TargetOutput(text, Usage(10, 5, 0.001))
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        return None


class LengthScorer:
    """Scores the output length; fails for outputs containing 'judge-down'."""

    def __init__(self, name: str = "length") -> None:
        self.name = name

    async def score(self, output: str, case: Case) -> ScoreOutcome:
        if "judge-down" in output:
            err = ScorerError("judge unavailable")
            err.usage = Usage(7, 0, 0.0005)  # type: ignore[attr-defined]
            raise err
        return ScoreOutcome(float(len(output)), passed=True, usage=Usage(3, 1, 0.0001))


def echo_plan(
    cases: Sequence[Case] | None = None,
    *,
    target: Target | None = None,
    scorers: Sequence[CaseScorer] | None = None,
    concurrency: int = 4,
    stream: Iterator[Case] | None = None,
) -> RunPlan:
    """Suite ``s``, one feature ``f`` over ``cases``: an ``EchoTarget`` and a ``LengthScorer``.

    ``stream``, when given, is what the feature's cases open to instead
    (one pass, for tests that watch how far ahead the runner reads).
    """
    items = list(cases or [])

    def open_cases() -> Iterator[Case]:
        return iter(items) if stream is None else stream

    return RunPlan(
        suite="s",
        features=[
            FeaturePlan(
                name="f",
                cases=open_cases,
                case_count=len(items),
                target=target or EchoTarget(),
                scorers=list(scorers or [LengthScorer()]),
            )
        ],
        concurrency=concurrency,
        fingerprint="fp",
        pair_fingerprints={("f", "length"): "pair-fp"},
    )
