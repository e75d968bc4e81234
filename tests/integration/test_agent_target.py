"""The agent target against the local fake agent: steps live and collected, every failure."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from continuous_eval.adapters.targets.agent_target import AgentTargetAdapter
from continuous_eval.core.suite import AgentTarget, Case
from continuous_eval.core.trajectory import Step, tool_calls
from continuous_eval.errors import TargetError
from continuous_eval.fakes.agent_server import (
    AgentScript,
    Comment,
    FakeAgentServer,
    Raw,
    Send,
    Wait,
    final,
    step,
)

CASE = Case(id="c1", input="refund order 7")
CALL = Step(kind="tool_call", name="lookup", arguments={"order": 7}, id="t1")
RESULT = Step(kind="tool_result", id="t1", content={"status": "delivered"})


@pytest.fixture(scope="module")
def agent_session() -> Iterator[FakeAgentServer]:
    with FakeAgentServer() as server:
        yield server


@pytest.fixture
def agent(agent_session: FakeAgentServer) -> FakeAgentServer:
    agent_session.reset()
    return agent_session


@pytest.fixture
async def make_target(agent: FakeAgentServer) -> AsyncIterator[Any]:
    made: list[AgentTargetAdapter] = []

    def build(**config: Any) -> AgentTargetAdapter:
        values = {"type": "agent", "url": agent.url, **config}
        target = AgentTargetAdapter(AgentTarget.model_validate(values), env={"TOKEN": "s3cret"})
        made.append(target)
        return target

    yield build
    for target in made:
        await target.aclose()


async def test_the_default_answer_echoes_the_input(
    agent: FakeAgentServer, make_target: Any
) -> None:
    output = await make_target(headers={"Authorization": "Bearer ${TOKEN}"}).answer(CASE)

    assert output.text == "echo: refund order 7"
    assert [s.kind for s in output.steps] == ["tool_call", "tool_result"]
    (request,) = agent.requests
    assert request.body == {"input": "refund order 7"}
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["accept"] == "text/event-stream"


async def test_steps_are_reported_as_they_arrive(agent: FakeAgentServer, make_target: Any) -> None:
    gate = threading.Event()
    message = Step(kind="message", role="assistant", content="Refunded.")
    agent.script(
        AgentScript(
            [
                step(CALL),
                Wait(gate),
                Comment(),
                Send("progress", "{}"),
                step(RESULT),
                step(message),
                final({"answer": "refunded"}),
                step(message),
            ]
        )
    )
    seen: list[tuple[str, int, Step]] = []
    first = asyncio.Event()

    async def on_step(case_id: str, index: int, value: Step) -> None:
        seen.append((case_id, index, value))
        first.set()

    answering = asyncio.create_task(make_target().answer_streaming(CASE, on_step))
    await first.wait()
    # The agent holds its stream after its first step; the target has it already.
    assert seen == [("c1", 0, CALL)]
    gate.set()
    output = await answering

    assert output.text == '{"answer":"refunded"}'
    assert output.steps == (CALL, RESULT, message)  # nothing after ``final`` is read
    assert [index for _, index, _ in seen] == [0, 1, 2]
    (call,) = tool_calls(output.steps)
    assert call.result == {"status": "delivered"}


async def test_multi_line_step_data_and_the_answer_synonym(
    agent: FakeAgentServer, make_target: Any
) -> None:
    pretty = '{\n  "kind": "message",\n  "content": "hi"\n}'
    agent.script(AgentScript([Send("step", pretty), Send("answer", '{"output": "ok"}')]))
    output = await make_target().answer(CASE)
    assert (output.text, output.steps) == ("ok", (Step(kind="message", content="hi"),))


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (AgentScript(status=500, body="agent crashed"), r"HTTP 500 from .*: agent crashed"),
        (AgentScript(status=401, body="no key"), r"HTTP 401 from .*: no key"),
        (AgentScript([final("x")], content_type="application/json"), "not text/event-stream"),
        (AgentScript([Send("step", "{not json")]), r"malformed step event #1 .*: "),
        (AgentScript([step(CALL), step({"kind": "dance"})]), r"malformed step event #2 .*kind"),
        (AgentScript([Send("final", "done")]), "malformed final event .*not JSON"),
        (AgentScript([Send("final", '{"text": "x"}')]), "no 'output' field"),
        (AgentScript([step(CALL)]), r"ended before its final event \(after 1 steps\)"),
        (AgentScript([step(CALL), Raw('event: final\ndata: {"output": 1}')]), "ended before"),
        (AgentScript([Send("error", '{"message": "tool down"}')]), "reported an error: tool down"),
        (AgentScript([Send("error", "plain words")]), "reported an error: plain words"),
    ],
)
async def test_each_failure_is_a_clear_target_error(
    agent: FakeAgentServer, make_target: Any, script: AgentScript, message: str
) -> None:
    agent.script(script)
    with pytest.raises(TargetError, match=message) as caught:
        await make_target().answer(CASE)
    assert (caught.value.refusal is not None) == (script.status == 401)


async def test_too_many_steps(agent: FakeAgentServer, make_target: Any) -> None:
    agent.script(AgentScript([step(CALL)] * 3 + [final("x")]))
    with pytest.raises(TargetError, match="more than 2 steps"):
        await make_target(max_steps=2).answer(CASE)


async def test_a_silent_agent_hits_the_idle_timeout(
    agent: FakeAgentServer, make_target: Any
) -> None:
    agent.script(AgentScript([step(CALL), Wait(threading.Event())]))
    with pytest.raises(TargetError, match=r"sent nothing for 0.2s"):
        await make_target(idle_timeout_s=0.2).answer(CASE)


async def test_an_agent_that_keeps_talking_hits_the_overall_timeout(
    agent: FakeAgentServer, make_target: Any
) -> None:
    # Keep-alives reset the idle timer, never the overall one.
    agent.script(AgentScript([Comment()] * 2 + [Wait(threading.Event())]))
    with pytest.raises(TargetError, match=r"did not finish within 0.3s"):
        await make_target(timeout_s=0.3, idle_timeout_s=5).answer(CASE)


async def test_a_refused_connection_and_a_missing_header_variable() -> None:
    refused = AgentTargetAdapter(AgentTarget(type="agent", url="http://127.0.0.1:9/agent"))
    with pytest.raises(TargetError, match="ConnectError calling"):
        await refused.answer(CASE)
    await refused.aclose()
    config = AgentTarget(type="agent", url="http://127.0.0.1:9/a", headers={"X": "${NOPE}"})
    missing = AgentTargetAdapter(config, env={})
    with pytest.raises(TargetError, match="NOPE"):
        await missing.answer(CASE)
    await missing.aclose()


async def test_unicode_line_breaks_inside_json_are_data_and_crlf_ends_lines(
    agent: FakeAgentServer, make_target: Any
) -> None:
    # U+2028 and U+0085 are legal unescaped in JSON strings; only CR, LF and
    # CRLF end a line of an event stream.
    text = "a\u2028b\u0085c"
    agent.script(
        AgentScript(
            [
                Raw(
                    'event: step\r\ndata: {"kind": "message", "role": "assistant", '
                    f'"content": "{text}"}}\r\n\r\n'
                ),
                Raw(f'event: final\rdata: {{"output": "{text}"}}\r\r'),
            ]
        )
    )
    output = await make_target().answer(CASE)
    assert output.text == text
    assert [s.content for s in output.steps] == [text]
