"""The ``llm_judge`` scorer: Claude grades an output against a rubric through a forced tool call.

The prompt and the strict parsing live in ``continuous_eval.core.judge``;
this module makes the call and translates SDK failures. Every failure is a
``JudgeCallError`` carrying the usage already spent, since a judge that
answered garbage was still paid for and the run's judge budget must see it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from anthropic import APIError, AsyncAnthropic
from anthropic.types import ContentBlock, TextBlock, ToolChoiceToolParam, ToolParam, ToolUseBlock

from continuous_eval.adapters.anthropic_client import (
    describe_api_error,
    message_usage,
    refusal_of,
    sampling_extras,
)
from continuous_eval.core.judge import (
    RECORD_SCORE_TOOL,
    RECORD_SCORE_TOOL_NAME,
    build_judge_messages,
    parse_judge_answer,
)
from continuous_eval.core.models import NO_USAGE, ScoreOutcome, Usage
from continuous_eval.core.pricing import PriceLike
from continuous_eval.core.suite import Case, LlmJudgeScorer, scorer_name
from continuous_eval.errors import JudgeError

_TOOL: ToolParam = {
    "name": RECORD_SCORE_TOOL["name"],
    "description": RECORD_SCORE_TOOL["description"],
    "input_schema": RECORD_SCORE_TOOL["input_schema"],
}
# Forcing the tool means the answer is a tool call, never prose; one call only,
# since the parser refuses several.
_TOOL_CHOICE: ToolChoiceToolParam = {
    "type": "tool",
    "name": RECORD_SCORE_TOOL_NAME,
    "disable_parallel_tool_use": True,
}


class JudgeCallError(JudgeError):
    """A judge failure, with the usage the failed call spent (``NO_USAGE`` if no answer came)."""

    def __init__(
        self, message: str, usage: Usage = NO_USAGE, *, refusal: str | None = None
    ) -> None:
        super().__init__(message, refusal=refusal)
        self.usage = usage
        """Tokens and cost the failed call spent; the runner adds them to the judge usage."""


def _plain_blocks(content: Sequence[ContentBlock]) -> list[dict[str, object]]:
    """Content blocks as plain data, the form the pure parser takes."""
    blocks: list[dict[str, object]] = []
    for block in content:
        if isinstance(block, ToolUseBlock):
            blocks.append({"type": "tool_use", "name": block.name, "input": block.input})
        elif isinstance(block, TextBlock):
            blocks.append({"type": "text", "text": block.text})
        else:
            blocks.append({"type": block.type})
    return blocks


class LlmJudge:
    """Grade outputs from 1 to 5 with a Claude model, one call per output."""

    def __init__(
        self,
        config: LlmJudgeScorer,
        client: AsyncAnthropic,
        default_model: str,
        prices: Mapping[str, PriceLike],
    ) -> None:
        self.name = scorer_name(config)
        """Name the results are stored under."""
        self.model = config.model or default_model
        """The judge model; part of a run's fingerprint, as a new judge changes scores."""
        self._config = config
        self._client = client
        self._prices = prices

    async def score(self, output: str, case: Case) -> ScoreOutcome:
        """Grade one output against the rubric.

        Raises:
            JudgeCallError: when the call fails after the SDK's retries, or the
                answer is not exactly one valid ``record_score`` call; carries
                the usage spent so far.
        """
        config = self._config
        system, user = build_judge_messages(
            config.rubric, case, output, trajectory=config.trajectory
        )
        try:
            message = await self._client.messages.create(
                model=self.model,
                max_tokens=config.max_tokens,
                system=system,
                messages=[{"role": "user", "content": user}],
                extra_body=sampling_extras(config),
                tools=[_TOOL],
                tool_choice=_TOOL_CHOICE,
            )
        except APIError as exc:
            raise JudgeCallError(
                f"judge call failed: {describe_api_error(exc)}", refusal=refusal_of(exc)
            ) from exc
        usage = message_usage(self.model, message, self._prices)
        try:
            verdict = parse_judge_answer(message.stop_reason, _plain_blocks(message.content))
        except JudgeError as exc:
            raise JudgeCallError(f"unusable judge answer: {exc}", usage) from exc
        return ScoreOutcome(
            score=float(verdict.score),
            passed=verdict.score >= config.pass_threshold,
            rationale=verdict.rationale,
            usage=usage,
        )
