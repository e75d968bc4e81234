"""A target that is an agent endpoint streaming its steps over Server-Sent Events.

The protocol, small on purpose so any agent framework can speak it:

- Request: ``POST url`` with the config's JSON body template rendered for the
  case (as the ``http`` target), ``Accept: text/event-stream`` and the
  configured headers.
- Response: status 2xx, ``Content-Type: text/event-stream``, then events:

  - ``event: step``, ``data:`` one ``Step`` as JSON, e.g.
    ``{"kind": "tool_call", "name": "search", "arguments": {"q": "refunds"}, "id": "c1"}``,
    ``{"kind": "tool_result", "id": "c1", "content": "..."}`` or
    ``{"kind": "message", "role": "assistant", "content": "..."}``; as many
    as the agent takes, in the order they happened;
  - ``event: final`` (``answer`` is accepted as a synonym), ``data:``
    ``{"output": ...}``: the answer (a string, or any JSON value, stored as
    compact JSON). The stream is done: nothing after it is read;
  - ``event: error``, ``data:`` ``{"message": "..."}`` (or plain text): the
    agent gave up; the case errors with that message.

  Comments (``: keep-alive``) and events of other names are ignored, so an
  agent may send progress of its own; unnamed events too.

Every failure is a ``TargetError`` whose message is safe to store: an HTTP
error status (with an excerpt of the body), a response that is not an event
stream, a malformed ``step`` or ``final`` event, more steps than
``max_steps``, a stream that ends before its ``final`` event, silence longer
than ``idle_timeout_s`` (no byte, not even a comment) and an answer longer
than ``timeout_s`` from the request on. Nothing waits forever.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping

import httpx
from httpx_sse import EventSource, ServerSentEvent
from pydantic import JsonValue, ValidationError

from continuous_eval.adapters.targets.http_target import body_excerpt, resolve_headers
from continuous_eval.core.models import TargetOutput
from continuous_eval.core.suite import AgentTarget, Case
from continuous_eval.core.templating import TemplateError, as_text, render_json
from continuous_eval.core.trajectory import Step
from continuous_eval.errors import REFUSED_STATUSES, TargetError
from continuous_eval.ports import StepListener

__all__ = ["AgentTargetAdapter"]

_FINAL_EVENTS = frozenset({"final", "answer"})


async def _ignore(_case_id: str, _index: int, _step: Step) -> None:
    return None


class AgentTargetAdapter:
    """POST each case to an agent and read its steps and answer from an event stream.

    Owns the ``httpx.AsyncClient`` it creates; ``transport`` lets tests answer
    without a network. ``answer_streaming`` reports each step as it arrives
    (the runner stores and publishes them); ``answer`` only collects them.
    """

    def __init__(
        self,
        config: AgentTarget,
        env: Mapping[str, str] | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Prepare the headers, the timeouts and the client.

        Args:
            config: The target's config.
            env: Where ``${NAME}`` in header values is looked up; defaults to
                ``os.environ``.
            transport: The transport of the client this adapter creates.
        """
        self.config = config
        headers, self._header_error = resolve_headers(
            config.headers, os.environ if env is None else env
        )
        self._headers = {"Accept": "text/event-stream", **headers}
        self._client = httpx.AsyncClient(transport=transport)
        # The read timeout bounds each wait for the next bytes: the idle limit.
        self._timeout = httpx.Timeout(config.idle_timeout_s)

    async def answer(self, case: Case) -> TargetOutput:
        """Answer one case, collecting its steps."""
        return await self.answer_streaming(case, _ignore)

    async def answer_streaming(self, case: Case, on_step: StepListener) -> TargetOutput:
        """Answer one case, awaiting ``on_step`` for each step as it arrives."""
        if self._header_error is not None:
            raise TargetError(self._header_error)
        try:
            body = render_json(self.config.body, case)
        except TemplateError as exc:
            raise TargetError(f"cannot render the request body: {exc}") from exc
        url, limit = self.config.url, self.config.timeout_s
        try:
            async with asyncio.timeout(limit):
                return await self._stream(case, body, on_step)
        except TimeoutError as exc:
            raise TargetError(f"the agent at {url} did not finish within {limit:g}s") from exc
        except httpx.TimeoutException as exc:
            raise TargetError(
                f"the agent at {url} sent nothing for {self.config.idle_timeout_s:g}s "
                f"({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise TargetError(f"{type(exc).__name__} calling {url}: {exc}") from exc

    async def _stream(self, case: Case, body: JsonValue, on_step: StepListener) -> TargetOutput:
        url = self.config.url
        request = self._client.build_request(
            "POST", url, json=body, headers=self._headers, timeout=self._timeout
        )
        response = await self._client.send(request, stream=True)
        try:
            await _check_response(response, url)
            steps: list[Step] = []
            # httpx-sse splits lines on CR, LF and CRLF only, as the SSE spec says
            # (a U+2028 inside a step's JSON is data, not a line break).
            async for event in EventSource(response).aiter_sse():
                if event.event == "step":
                    step = self._step(event, len(steps))
                    await on_step(case.id, len(steps), step)
                    steps.append(step)
                elif event.event in _FINAL_EVENTS:
                    return TargetOutput(text=_final_text(event, url), steps=tuple(steps))
                elif event.event == "error":
                    message = _message(event)
                    raise TargetError(f"the agent at {url} reported an error: {message}")
            raise TargetError(
                f"the agent's stream from {url} ended before its final event "
                f"(after {len(steps)} steps)"
            )
        finally:
            await response.aclose()

    def _step(self, event: ServerSentEvent, index: int) -> Step:
        if index >= self.config.max_steps:
            raise TargetError(
                f"the agent at {self.config.url} sent more than {self.config.max_steps} steps"
            )
        try:
            return Step.model_validate_json(event.data)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "the event"
            raise TargetError(
                f"malformed step event #{index + 1} from {self.config.url}: "
                f"{where}: {problem['msg']}"
            ) from exc

    async def aclose(self) -> None:
        """Close the client."""
        await self._client.aclose()

    def __repr__(self) -> str:
        return f"AgentTargetAdapter({self.config.url!r})"


async def _check_response(response: httpx.Response, url: str) -> None:
    status = response.status_code
    if not response.is_success:
        text = body_excerpt((await response.aread()).decode("utf-8", "replace"))
        raise TargetError(
            f"HTTP {status} from {url}" + (f": {text}" if text else ""),
            refusal=f"HTTP {status}" if status in REFUSED_STATUSES else None,
        )
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "text/event-stream":
        raise TargetError(
            f"the agent at {url} answered {kind or 'no content type'}, not text/event-stream"
        )


def _final_text(event: ServerSentEvent, url: str) -> str:
    try:
        document = json.loads(event.data)
    except ValueError as exc:
        raise TargetError(
            f"malformed final event from {url}: not JSON: {body_excerpt(event.data)!r}"
        ) from exc
    output = document.get("output") if isinstance(document, dict) else None
    if output is None:
        raise TargetError(f"malformed final event from {url}: no 'output' field")
    return as_text(output)


def _message(event: ServerSentEvent) -> str:
    try:
        document = json.loads(event.data)
    except ValueError:
        return body_excerpt(event.data)
    if isinstance(document, dict) and isinstance(document.get("message"), str):
        return body_excerpt(document["message"])
    return body_excerpt(event.data)
