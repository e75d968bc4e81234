"""Faults seen from the API: secrets a provider echoes, and clients retrying at once.

The in-process server (daemon, uvicorn, a real database) with the real
Anthropic SDK against the fake Messages API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from continuous_eval.fakes.anthropic_server import FakeAnthropicServer, ScriptedError
from tests.integration.api_server import ApiServer, SseReader, make_settings, running

ECHOED_KEY = "sk-ant-api03-Zq7xEchoedByAGateway0123456789"
"""The configured key, in the form a real one has, which a gateway echoes back."""


def llm_suite(directory: Path, cases: int = 3) -> Path:
    dataset = [{"id": f"c{i}", "input": f"q{i}"} for i in range(cases)]
    path = directory / "llm.yaml"
    path.write_text(
        json.dumps(
            {
                "suites": {
                    "llm": {
                        "concurrency": 1,
                        "features": {
                            "answers": {
                                "dataset": {"cases": dataset},
                                "target": {"type": "anthropic", "model": "claude-haiku-4-5"},
                                "scorers": [{"type": "contains", "value": "q"}],
                            }
                        },
                    }
                }
            }
        )
    )
    return path


@pytest.fixture
def provider() -> Iterator[FakeAnthropicServer]:
    """A fake Messages API that accepts only ``ECHOED_KEY``."""
    with FakeAnthropicServer(api_key=ECHOED_KEY, retry_after_ms=1) as server:
        yield server


def test_an_error_echoing_the_key_is_stored_served_and_streamed_without_it(
    db_url: str, tmp_path: Path, provider: FakeAnthropicServer
) -> None:
    echo = f"invalid request (received x-api-key: {ECHOED_KEY})"
    provider.script(*[ScriptedError(400, message=echo)] * 3)
    settings = make_settings(
        db_url,
        anthropic_api_key=SecretStr(ECHOED_KEY),
        anthropic_base_url=provider.base_url,
        anthropic_max_retries=0,
    )
    server = ApiServer(settings, llm_suite(tmp_path))
    with running(server), server.client() as client:
        assert client.post("/api/runs", json={"suite": "llm", "run_id": "leaky"}).status_code == 202
        with client.stream("GET", "/api/runs/leaky/events") as stream:
            events = SseReader(stream).rest()
        run = server.wait_run(client, "leaky", lambda r: r["progress"]["cases_done"] == 3)
        results = client.get("/api/runs/leaky/results").text
        listed = client.get("/api/runs/leaky").text

    streamed = json.dumps(events)
    for served in (results, streamed, listed, json.dumps(run)):
        assert ECHOED_KEY not in served
    assert "[redacted]" in results
    with sa.create_engine(db_url, poolclass=sa.pool.NullPool).connect() as conn:
        stored = conn.execute(sa.text("select error from eval_results")).scalars().all()
        reasons = conn.execute(sa.text("select status_reason from eval_runs")).scalars().all()
    assert stored
    assert all(error and ECHOED_KEY not in error and "400" in error for error in stored)
    assert all(ECHOED_KEY not in (reason or "") for reason in reasons)
    assert [r.status for r in provider.requests] == [400, 400, 400]
