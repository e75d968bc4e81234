"""Online evaluation end to end: SDK traffic ingested by ``serve``, then a scheduled run scores it.

A separate process traces agent turns with the real OpenTelemetry SDK and
exports them (each batch twice) to a ``serve`` that schedules nothing. A
second ``serve`` on the same database then runs the suite on its schedule:
its online feature samples the recorded traces, scores what was answered
with the LLM judge (the fake Messages API) and a deterministic scorer, and
every result keeps its trace id, readable through the API.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from continuous_eval.fakes.anthropic_server import FakeAnthropicServer
from tests.e2e.cli_harness import REPO
from tests.e2e.daemon_harness import Cluster, database, runs, wait_for
from tests.fixtures.anthropic import FAKE_API_KEY

pytestmark = pytest.mark.slow

ADMIN = "admin-token-online"
INGEST = "ingest-token-online"

SUITE = """
suites:
  online:
    features:
      support:
        dataset:
          source: traces
          feature: support-bot
          window_hours: 48
          sample: {max: 10, rate: 1.0}
        target: recorded
        scorers:
          - {type: contains, value: "14 days"}
          - {type: llm_judge, name: helpful, rubric: "Is the answer helpful?", trajectory: true}
"""


def _get(port: int, path: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


def _send(port: int) -> str:
    """One agent turn from the SDK in its own process; returns its trace id."""
    sent = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.e2e.otlp_sender",
            f"http://127.0.0.1:{port}/v1/traces",
            INGEST,
            "support-bot",
            # Yesterday's traffic: a daily suite's first slot is today's midnight
            # (UTC), and its window is the day before it.
            "25",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(sent.stdout.strip().splitlines()[-1])
    assert report["results"] == ["SUCCESS", "SUCCESS"], sent.stderr
    trace_id: str = report["trace_id"]
    return trace_id


def test_a_scheduled_online_run_scores_the_ingested_traces_and_keeps_their_ids(
    tmp_path: Path, migrated_sqlite_url: str
) -> None:
    (tmp_path / "suites.yaml").write_text(SUITE)
    env = {
        "CONTINUOUS_EVAL_API_TOKENS": json.dumps([ADMIN]),
        "CONTINUOUS_EVAL_INGEST_TOKENS": json.dumps([INGEST]),
    }
    cluster = Cluster(tmp_path, migrated_sqlite_url, env=env)
    with FakeAnthropicServer(api_key=FAKE_API_KEY) as judge:
        try:
            ingest = cluster.start("ingest", CONTINUOUS_EVAL_SCHEDULE_ENABLED="false")
            traces = {_send(ingest.port) for _ in range(3)}
            stored = _get(ingest.port, "/api/interactions?feature=support-bot&limit=100")
            assert len(stored["items"]) == 9  # three turns of three GenAI spans, once each
            assert ingest.stop() == 0

            scheduler = cluster.start(
                "scheduler", ANTHROPIC_API_KEY=FAKE_API_KEY, ANTHROPIC_BASE_URL=judge.base_url
            )
            with database(migrated_sqlite_url) as engine:
                wait_for(
                    lambda: any(r["status"] == "succeeded" for r in runs(engine, "online")), 60
                )
                [run] = runs(engine, "online")
            assert run["run_type"] == "scheduled"
            page = _get(scheduler.port, f"/api/runs/{run['id']}/results?limit=100")
            results = page["items"]
        finally:
            cluster.stop_all()

    assert len(results) == 6  # one case per trace, two scorers
    assert {r["trace_id"] for r in results} == traces
    assert all(r["case_id"] == r["trace_id"] for r in results)
    assert all(r["status"] == "ok" for r in results), results
    assert {r["input_excerpt"] for r in results} == {"Refund?"}
    assert {r["score"] for r in results if r["scorer"] == "contains"} == {1.0}
    # The judge was asked about what production answered, with its tool calls.
    prompts = [json.dumps(r.body) for r in judge.requests]
    assert len(prompts) == 3
    assert all("Yes, 14 days." in p and "lookup_order" in p for p in prompts)
