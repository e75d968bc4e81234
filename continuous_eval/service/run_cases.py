"""One case: call the target once, then every scorer, and say what it produced.

What belongs here: ``run_case`` and the ``CaseOutcome`` it returns, the
results and progress of one case before storage. Any failure becomes that
case's error results (a failed target, one per scorer; a failed scorer, its
own), so the run goes on; a provider's refusal is passed on for the breaker.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, replace

from pydantic import JsonValue

from continuous_eval.core.models import (
    NO_USAGE,
    CaseResult,
    ProgressDelta,
    ResultStatus,
    ScoreOutcome,
    TargetOutput,
)
from continuous_eval.core.suite import Case
from continuous_eval.errors import CaseError
from continuous_eval.ports import FeaturePlan, StreamingTarget
from continuous_eval.service.run_state import RunState, describe


@dataclass(frozen=True, slots=True)
class CaseOutcome:
    """What one case produced, before storage."""

    results: list[CaseResult]
    delta: ProgressDelta
    refusal: str | None = None
    """A provider's refusal the case met (its target's or a scorer's), for the breaker."""


def _excerpt(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]


def case_text(value: JsonValue, limit: int) -> str | None:
    """A case's input or expected answer as stored with its results: a string as
    is, any other JSON value as JSON text, capped at ``limit`` characters."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return _excerpt(text, limit)


async def run_case(
    state: RunState, feature: FeaturePlan, case: Case, excerpt_chars: int
) -> CaseOutcome:
    """Run one case of ``feature``; never raises for the target's or a scorer's failure.

    Every result carries the case's input and expected answer (capped like
    the output), so a comparison of two runs shows what was asked even after
    the dataset file changed.

    Args:
        state: the run's state (its attempt, scrubber, budget).
        feature: the case's feature: its target and scorers.
        case: the case.
        excerpt_chars: characters of the output, input and expected answer
            kept with each result.
    """
    outcome = await _answer_and_score(state, feature, case, excerpt_chars)
    asked = case_text(case.input, excerpt_chars)
    expected = case_text(case.expected, excerpt_chars)
    results = [
        replace(r, input_excerpt=asked, expected_excerpt=expected, trace_id=case.trace_id)
        for r in outcome.results
    ]
    return CaseOutcome(results, outcome.delta, outcome.refusal)


async def _answer(state: RunState, feature: FeaturePlan, case: Case) -> tuple[TargetOutput, Case]:
    """Call the target and return its output and the case as the scorers see it.

    A target that streams its steps has each stored as it arrives; any
    other's steps are stored once it answers. The case carries the answer's
    steps, so the trajectory scorers and the judge read them from it.
    """
    target = feature.target
    if state.steps is None:
        output = await target.answer(case)
    else:
        writer = state.steps.for_case(feature.name, case.id)
        if isinstance(target, StreamingTarget):
            output = await target.answer_streaming(case, writer.on_step)
        else:
            output = await target.answer(case)
        await writer.finish(output.steps)
    if output.steps:
        case = case.model_copy(update={"steps": output.steps})
    return output, case


async def _answer_and_score(
    state: RunState, feature: FeaturePlan, case: Case, excerpt_chars: int
) -> CaseOutcome:
    """Call the target, then every scorer: the results without the case's texts."""
    attempt = state.run.attempt
    started = time.perf_counter()
    try:
        output, case = await _answer(state, feature, case)
    except Exception as exc:
        latency_ms = (time.perf_counter() - started) * 1000
        refusal = exc.refusal if isinstance(exc, CaseError) else None
        reason = state.scrub(f"target failed: {describe(exc)}")
        results = [
            CaseResult(
                feature.name,
                case.id,
                scorer.name,
                ResultStatus.ERROR,
                error=reason,
                latency_ms=latency_ms,
                attempt=attempt,
            )
            for scorer in feature.scorers
        ]
        delta = ProgressDelta(cases_done=1, errored=len(results))
        return CaseOutcome(results, delta, refusal)
    latency_ms = (time.perf_counter() - started) * 1000
    excerpt = _excerpt(output.text, excerpt_chars)
    scorers = feature.scorers
    if len(scorers) == 1:
        outcomes = [await state.score(feature, scorers[0], output.text, case)]
    else:
        outcomes = list(
            await asyncio.gather(*(state.score(feature, s, output.text, case) for s in scorers))
        )
    results = []
    scored = errored = 0
    judge_usage = NO_USAGE
    refusal = None
    for scorer, outcome in zip(scorers, outcomes, strict=True):
        if isinstance(outcome, ScoreOutcome):
            scored += 1
            judge_usage = judge_usage + outcome.usage
            results.append(
                CaseResult(
                    feature.name,
                    case.id,
                    scorer.name,
                    ResultStatus.OK,
                    score=outcome.score,
                    passed=outcome.passed,
                    rationale=outcome.rationale,
                    usage=outcome.usage,
                    output_excerpt=excerpt,
                    latency_ms=latency_ms,
                    attempt=attempt,
                )
            )
        else:
            status, message, usage, refused = outcome
            refusal = refusal or refused
            errored += status is ResultStatus.ERROR
            judge_usage = judge_usage + usage
            results.append(
                CaseResult(
                    feature.name,
                    case.id,
                    scorer.name,
                    status,
                    error=message,
                    usage=usage,
                    output_excerpt=excerpt,
                    latency_ms=latency_ms,
                    attempt=attempt,
                )
            )
    delta = ProgressDelta(
        cases_done=1,
        scored=scored,
        errored=errored,
        judge_usage=judge_usage,
        target_usage=output.usage,
    )
    return CaseOutcome(results, delta, refusal)
