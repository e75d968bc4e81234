"""``AnthropicEvaluatorAuthor``: Claude writes evaluators through a forced ``write_evaluator`` call.

The prompt and the tool are ``core.evaluator_prompt``'s; this module makes
the call on the process's shared ``AsyncAnthropic`` client (retries are the
SDK's, see ``adapters.anthropic_client``), reads the one tool call, and
turns SDK failures and unusable answers into ``EvaluatorAuthorError``.
"""

from __future__ import annotations

from anthropic import APIError, AsyncAnthropic
from anthropic.types import ToolChoiceToolParam, ToolParam, ToolUseBlock

from continuous_eval.adapters.anthropic_client import describe_api_error
from continuous_eval.core.evaluator_prompt import (
    WRITE_EVALUATOR_TOOL,
    WRITE_EVALUATOR_TOOL_NAME,
    AuthoredCode,
    EvaluatorPrompt,
)
from continuous_eval.errors import EvaluatorAuthorError

_TOOL: ToolParam = {
    "name": WRITE_EVALUATOR_TOOL_NAME,
    "description": str(WRITE_EVALUATOR_TOOL["description"]),
    "input_schema": WRITE_EVALUATOR_TOOL["input_schema"],  # type: ignore[typeddict-item]
}
# Forced, and one call only: the answer is the tool's input, never prose.
_TOOL_CHOICE: ToolChoiceToolParam = {
    "type": "tool",
    "name": WRITE_EVALUATOR_TOOL_NAME,
    "disable_parallel_tool_use": True,
}

DEFAULT_MAX_TOKENS = 4096
"""Room for a few hundred lines of code and the explanation."""


class AnthropicEvaluatorAuthor:
    """Write evaluators with a Claude model.

    Args:
        client: The shared client (``make_anthropic_client``); not closed here.
        default_model: ``CONTINUOUS_EVAL_EVALUATOR_MODEL`` (the judge model unless set).
        max_tokens: Cap of one answer; an answer cut off by it is an error.
    """

    def __init__(
        self, client: AsyncAnthropic, default_model: str, max_tokens: int = DEFAULT_MAX_TOKENS
    ) -> None:
        self._client = client
        self._default_model = default_model
        self._max_tokens = max_tokens

    @property
    def default_model(self) -> str:
        """The model used when a generation names none."""
        return self._default_model

    async def write_evaluator(
        self, prompt: EvaluatorPrompt, model: str | None = None
    ) -> AuthoredCode:
        """Ask for one evaluator.

        Raises:
            EvaluatorAuthorError: the call failed after the SDK's retries, or the
                answer is not one ``write_evaluator`` call with string ``code``.
        """
        chosen = model or self._default_model
        try:
            message = await self._client.messages.create(
                model=chosen,
                max_tokens=self._max_tokens,
                system=prompt.system,
                messages=[{"role": "user", "content": prompt.user}],
                tools=[_TOOL],
                tool_choice=_TOOL_CHOICE,
            )
        except APIError as exc:
            raise EvaluatorAuthorError(
                f"the evaluator model call failed: {describe_api_error(exc)}"
            ) from exc
        if message.stop_reason == "max_tokens":
            raise EvaluatorAuthorError(
                f"the evaluator model's answer was cut off at max_tokens ({self._max_tokens})"
            )
        calls = [b for b in message.content if isinstance(b, ToolUseBlock)]
        if len(calls) != 1 or calls[0].name != WRITE_EVALUATOR_TOOL_NAME:
            raise EvaluatorAuthorError(
                f"the evaluator model answered {len(calls)} tool calls "
                f"(stop reason {message.stop_reason!r}), not one write_evaluator call"
            )
        tool_input = calls[0].input
        code = tool_input.get("code") if isinstance(tool_input, dict) else None
        if not isinstance(code, str) or not code.strip():
            raise EvaluatorAuthorError("the evaluator model's write_evaluator call had no code")
        explanation = tool_input.get("explanation") if isinstance(tool_input, dict) else None
        return AuthoredCode(
            code=code,
            explanation=explanation if isinstance(explanation, str) else "",
            model=chosen,
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
        )
