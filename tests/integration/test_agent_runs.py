"""A whole run of an agent feature through the daemon and the API, on SQLite and Postgres.

The fake agent streams its steps over SSE; the runner stores each as it
arrives and the run's event stream shows it before its case's results; the
trajectory scorers grade the calls, the judge reads them in its prompt
(the fake Messages API); the steps route reads them back.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from continuous_eval.adapters.http.events import StreamSettings
from continuous_eval.core.trajectory import Step
from continuous_eval.fakes.agent_server import AgentScript, FakeAgentServer, Wait, final, step
from continuous_eval.fakes.anthropic_server import FakeAnthropicServer
from tests.fixtures.anthropic import FAKE_API_KEY
from tests.integration.api_server import ApiServer, SseReader, make_settings, running

LOOKUP = Step(kind="tool_call", name="lookup", arguments={"order": 7, "user": "u1"}, id="t1")
FOUND = Step(kind="tool_result", id="t1", content={"status": "delivered"})
REFUND = Step(kind="tool_call", name="refund", arguments={"order": 7}, id="t2")


@pytest.fixture
def agent() -> Iterator[FakeAgentServer]:
    with FakeAgentServer() as server:
        yield server


def _suite(directory: Path, agent_url: str) -> Path:
    feature = {
        "dataset": {
            "cases": [
                {
                    "id": "refund",
                    "input": "refund order 7",
                    "expected_trajectory": [
                        {"name": "lookup", "arguments": {"order": 7}},
                        {"name": "refund"},
                    ],
                },
                {
                    "id": "echo",
                    "input": "hello",
                    "expected_trajectory": [{"name": "echo", "arguments": {"text": "hello"}}],
                },
            ]
        },
        "target": {"type": "agent", "url": agent_url, "timeout_s": 30},
        "scorers": [
            {"type": "trajectory", "name": "calls", "match": "in_order"},
            {"type": "trajectory", "name": "calls_f1", "match": "f1", "arguments": "exact"},
            {"type": "contains", "value": "refunded"},
            {"type": "llm_judge", "rubric": "Looked the order up first.", "trajectory": True},
        ],
    }
    path = directory / "suites.yaml"
    suites = {"agents": {"concurrency": 1, "features": {"support": feature}}}
    path.write_text(json.dumps({"suites": suites}))
    return path


def test_an_agent_run_streams_stores_and_scores_its_steps(
    db_url: str, tmp_path: Path, agent: FakeAgentServer, fake_anthropic: FakeAnthropicServer
) -> None:
    gate = threading.Event()
    agent.script(
        AgentScript([Wait(gate), step(LOOKUP), step(FOUND), step(REFUND), final("refunded")])
    )
    stream = StreamSettings(poll_s=0.05, keepalive_s=0.2)
    settings = make_settings(
        db_url,
        anthropic_api_key=SecretStr(FAKE_API_KEY),
        anthropic_base_url=fake_anthropic.base_url,
        anthropic_max_retries=0,
    )
    server = ApiServer(settings, _suite(tmp_path, agent.url), stream=stream)
    with running(server) as srv, srv.client() as client:
        started = client.post("/api/runs", json={"suite": "agents", "run_id": "agent-run"})
        assert started.status_code == 202, started.text
        with client.stream("GET", "/api/runs/agent-run/events") as response:
            events = SseReader(response)
            assert events.take(1)[0]["event"] == "snapshot"
            gate.set()  # the agent waited until the stream was open
            rest = events.rest()
        steps_of_refund = client.get("/api/runs/agent-run/cases/refund/steps").json()
        results = client.get("/api/runs/agent-run/results").json()["items"]

    names = [e["event"] for e in rest]
    step_events = [e["data"] for e in rest if e["event"] == "step"]
    assert [(s["case_id"], s["index"], s["step"]["kind"]) for s in step_events] == [
        ("refund", 0, "tool_call"),
        ("refund", 1, "tool_result"),
        ("refund", 2, "tool_call"),
        ("echo", 0, "tool_call"),
        ("echo", 1, "tool_result"),
    ]
    # Each case's steps come before its results.
    cases = [e["data"]["case_id"] for e in rest if e["event"] == "case"]
    assert cases == ["refund", "echo"]
    assert names.index("case") > names.index("step")
    assert names[-1] == "end"
    assert rest[-1]["data"]["status"] == "succeeded"

    assert [Step.model_validate(s) for s in steps_of_refund["steps"]] == [LOOKUP, FOUND, REFUND]
    judged = {r["case_id"]: r for r in results if r["scorer"] == "llm_judge"}
    assert {case: r["status"] for case, r in judged.items()} == {"refund": "ok", "echo": "ok"}
    prompts = [str(r.body["messages"][0]["content"]) for r in fake_anthropic.requests]
    (refund_prompt,) = [p for p in prompts if "refund order 7" in p]
    assert '2. tool result [id t1]: {"status": "delivered"}' in refund_prompt
    assert '3. tool call refund [id t2]: {"order": 7}' in refund_prompt
    scores = {
        (r["case_id"], r["scorer"]): r["score"] for r in results if r["scorer"] != "llm_judge"
    }
    assert scores == {
        ("refund", "calls"): 1.0,  # in order, extra argument "user" allowed by keys
        ("refund", "calls_f1"): 0.0,  # exact arguments: {"order": 7} matches neither call
        ("refund", "contains"): 1.0,
        ("echo", "calls"): 1.0,
        ("echo", "calls_f1"): 1.0,
        ("echo", "contains"): 0.0,
    }
