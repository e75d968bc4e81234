"""The ``anthropic`` target: a Claude model answering each case through the Messages API."""

from __future__ import annotations

from collections.abc import Mapping

from anthropic import APIError, AsyncAnthropic, omit
from anthropic.types import TextBlock

from continuous_eval.adapters.anthropic_client import (
    describe_api_error,
    message_usage,
    refusal_of,
    sampling_extras,
)
from continuous_eval.core.models import TargetOutput
from continuous_eval.core.pricing import PriceLike
from continuous_eval.core.suite import AnthropicTarget, Case
from continuous_eval.core.templating import TemplateError, render_text
from continuous_eval.errors import TargetError


class AnthropicTargetAdapter:
    """Answer cases with one non-streaming ``messages.create`` call each.

    The client is shared with the judge and every other feature (one
    connection pool, one retry policy), so this adapter never closes it.
    """

    def __init__(
        self, config: AnthropicTarget, client: AsyncAnthropic, prices: Mapping[str, PriceLike]
    ) -> None:
        self._config = config
        self._client = client
        self._prices = prices

    async def answer(self, case: Case) -> TargetOutput:
        """Return the model's text for one case, with usage and cost.

        Raises:
            TargetError: when the prompt template does not fit the case, or
                the call fails after the SDK's retries (the message names the
                status and error type, never the key or the prompt).
        """
        config = self._config
        try:
            prompt = render_text(config.prompt_template, case)
        except TemplateError as exc:
            raise TargetError(f"prompt_template: {exc}") from exc
        try:
            message = await self._client.messages.create(
                model=config.model,
                max_tokens=config.max_tokens,
                system=config.system if config.system is not None else omit,
                messages=[{"role": "user", "content": prompt}],
                extra_body=sampling_extras(config),
            )
        except APIError as exc:
            raise TargetError(describe_api_error(exc), refusal=refusal_of(exc)) from exc
        # A reply cut at max_tokens is still the system's answer and is graded
        # as such; the scorers, not the transport, decide whether it is good.
        text = "".join(block.text for block in message.content if isinstance(block, TextBlock))
        return TargetOutput(text=text, usage=message_usage(config.model, message, self._prices))

    async def aclose(self) -> None:
        """Do nothing: the shared client is closed by whoever built it."""
