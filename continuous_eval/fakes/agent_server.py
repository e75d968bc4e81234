"""A fake agent endpoint that streams scripted steps over Server-Sent Events.

It speaks the ``agent`` target's protocol (``adapters.targets.agent_target``):
``POST /agent`` with a JSON body answers ``text/event-stream`` with ``step``
events and a ``final`` one. Tests script each answer, in order, as a list of
actions (``AgentScript``); an unscripted request gets the default answer: one
``echo`` tool call with the request's ``input``, its result, and
``final`` with ``{"output": "echo: <input>"}``.

Actions: ``Send`` (a step, or any named event with raw data), ``Comment`` (a
keep-alive line), ``Raw`` (bytes as they are, for malformed streams),
``Wait`` (hold the stream until a ``threading.Event`` is set: how a test
makes the agent pause between steps without sleeping, or go silent to hit a
timeout). A stream ends after its last action; without a ``final`` action
that is a cut stream. ``AgentScript.status`` other than 200 answers that
status with ``body`` instead of a stream.

Every request is recorded (``requests``: body and headers). ``reset`` and
``stop`` set every ``Wait`` gate, so no stream outlives its test.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from pydantic import JsonValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from continuous_eval.core.trajectory import Step
from continuous_eval.fakes.server import LOCALHOST, FakeServer

__all__ = [
    "AgentScript",
    "Comment",
    "FakeAgentServer",
    "FakeAgentState",
    "Raw",
    "RecordedAgentRequest",
    "Send",
    "Wait",
    "final",
    "step",
]


@dataclass(frozen=True)
class Send:
    """One event: its name and its data (one ``data:`` line per line of text)."""

    event: str
    data: str


@dataclass(frozen=True)
class Comment:
    """A comment line (``: text``), as a keep-alive."""

    text: str = "keep-alive"


@dataclass(frozen=True)
class Raw:
    """Text written as it is: lines without their blank line, broken fields."""

    text: str


@dataclass(frozen=True)
class Wait:
    """Hold the stream until ``gate`` is set (by the test, or by ``reset``)."""

    gate: threading.Event


Action = Send | Comment | Raw | Wait


def step(value: Step | dict[str, Any]) -> Send:
    """A ``step`` event carrying one step."""
    document = (
        value.model_dump(mode="json", exclude_none=True) if isinstance(value, Step) else value
    )
    return Send("step", json.dumps(document))


def final(output: JsonValue) -> Send:
    """The ``final`` event with the answer."""
    return Send("final", json.dumps({"output": output}))


@dataclass(frozen=True)
class AgentScript:
    """One scripted answer: a stream of actions, or an error status."""

    actions: Sequence[Action] = ()
    status: int = 200
    body: str = ""
    """The body of a non-200 answer."""
    content_type: str = "text/event-stream"


@dataclass(frozen=True)
class RecordedAgentRequest:
    """What one request carried."""

    body: JsonValue
    headers: dict[str, str]


@dataclass
class FakeAgentState:
    """The script queue, the records and the gates of open waits."""

    scripts: deque[AgentScript] = field(default_factory=deque)
    requests: list[RecordedAgentRequest] = field(default_factory=list)
    gates: list[threading.Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        """Release every waiting stream; forget the script and the records."""
        with self.lock:
            for gate in self.gates:
                gate.set()
            self.gates.clear()
            self.scripts.clear()
            self.requests.clear()

    def next_script(self, body: JsonValue, headers: dict[str, str]) -> AgentScript:
        with self.lock:
            self.requests.append(RecordedAgentRequest(body, headers))
            if self.scripts:
                script = self.scripts.popleft()
                self.gates.extend(a.gate for a in script.actions if isinstance(a, Wait))
                return script
        return _echo(body)


def _echo(body: JsonValue) -> AgentScript:
    value = body.get("input") if isinstance(body, dict) else body
    text = value if isinstance(value, str) else json.dumps(value)
    return AgentScript(
        [
            step(Step(kind="tool_call", name="echo", arguments={"text": text}, id="echo-1")),
            step(Step(kind="tool_result", id="echo-1", content=text)),
            final(f"echo: {text}"),
        ]
    )


def _encode(action: Send | Comment | Raw) -> bytes:
    if isinstance(action, Comment):
        return f": {action.text}\n\n".encode()
    if isinstance(action, Raw):
        return action.text.encode()
    lines = "".join(f"data: {line}\n" for line in action.data.split("\n"))
    return f"event: {action.event}\n{lines}\n".encode()


async def _play(actions: Sequence[Action]) -> AsyncIterator[bytes]:
    for action in actions:
        if isinstance(action, Wait):
            # A worker thread waits on the gate, so the server's loop stays free.
            await anyio.to_thread.run_sync(action.gate.wait, abandon_on_cancel=True)
            continue
        yield _encode(action)


def create_app(state: FakeAgentState) -> Starlette:
    """The fake agent's ASGI app over ``state``."""

    async def agent(request: Request) -> Response:
        raw = await request.body()
        try:
            body: JsonValue = json.loads(raw) if raw else None
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        script = state.next_script(body, dict(request.headers))
        if script.status != 200:
            return Response(script.body, status_code=script.status, media_type="text/plain")
        return StreamingResponse(_play(script.actions), media_type=script.content_type)

    return Starlette(routes=[Route("/agent", agent, methods=["POST"])])


class FakeAgentServer(FakeServer[FakeAgentState]):
    """The fake agent in a background thread on a free local port.

    ``url`` is the endpoint an ``agent`` target posts to; ``script`` queues
    answers; ``requests`` lists what arrived.
    """

    def __init__(self, host: str = LOCALHOST) -> None:
        state = FakeAgentState()
        super().__init__(state, create_app(state), name="fake-agent", host=host)

    @property
    def url(self) -> str:
        """The agent endpoint, ``http://127.0.0.1:PORT/agent``."""
        return f"{self.base_url}/agent"

    def script(self, *scripts: AgentScript) -> None:
        """Queue answers for the next requests, in order."""
        with self.state.lock:
            self.state.scripts.extend(scripts)

    @property
    def requests(self) -> list[RecordedAgentRequest]:
        """Every request so far, in order."""
        with self.state.lock:
            return list(self.state.requests)

    def stop(self) -> None:
        """Release waiting streams, then stop serving."""
        self.state.reset()
        super().stop()
