"""OTLP ingestion end to end: the OpenTelemetry SDK in another process exports to ``serve``.

The sender (``tests.e2e.otlp_sender``) records an agent turn with the real
SDK and exports the batch twice with the SDK's OTLP/HTTP exporter and an
ingest-only token; each GenAI span is stored once, the HTTP span is skipped,
and the interactions are read back by feature through the admin API.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cli_harness import REPO
from tests.e2e.daemon_harness import Cluster, suite_yaml

pytestmark = pytest.mark.slow

ADMIN = "admin-token-e2e"
INGEST = "ingest-token-e2e"


def _get(port: int, path: str, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _metrics(port: int) -> dict[str, float]:
    """The scraped samples by name and labels, as ``name{label="value"}``."""
    from prometheus_client.parser import text_string_to_metric_families

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def test_sdk_spans_are_stored_once_and_queryable_by_feature(
    tmp_path: Path, migrated_sqlite_url: str
) -> None:
    (tmp_path / "suites.yaml").write_text(suite_yaml({"idle": (1, 0.0)}))
    (tmp_path / "slow_app.py").write_text("def answer(q):\n    return q\n")
    cluster = Cluster(
        tmp_path,
        migrated_sqlite_url,
        env={
            "CONTINUOUS_EVAL_SCHEDULE_ENABLED": "false",
            "CONTINUOUS_EVAL_API_TOKENS": json.dumps([ADMIN]),
            "CONTINUOUS_EVAL_INGEST_TOKENS": json.dumps([INGEST]),
        },
    )
    try:
        serve = cluster.start("ingest-1")
        sent = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.e2e.otlp_sender",
                f"http://127.0.0.1:{serve.port}/v1/traces",
                INGEST,
                "support-bot",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        report = json.loads(sent.stdout.strip().splitlines()[-1])
        assert report["results"] == ["SUCCESS", "SUCCESS"], sent.stderr

        status, page = _get(serve.port, "/api/interactions?feature=support-bot", ADMIN)
        assert status == 200
        items = page["items"]
        assert len(items) == 3  # agent, chat, tool: once each, the HTTP span skipped
        assert {i["trace_id"] for i in items} == {report["trace_id"]}
        assert {i["span_id"] for i in items} < set(report["span_ids"])
        by_operation = {i["operation"]: i for i in items}
        assert set(by_operation) == {"invoke_agent", "chat", "execute_tool"}
        chat = by_operation["chat"]
        assert (chat["input"], chat["output"]) == ("Refund?", "Yes, 14 days.")
        assert (chat["model"], chat["input_tokens"], chat["output_tokens"]) == (
            "claude-haiku-4-5",
            31,
            7,
        )
        assert chat["parent_span_id"] == by_operation["invoke_agent"]["span_id"]
        tool_steps = by_operation["execute_tool"]["steps"]
        assert [s["kind"] for s in tool_steps] == ["tool_call", "tool_result"]
        assert by_operation["invoke_agent"]["metadata"] == {"app.user": "u-42"}

        assert _get(serve.port, "/api/interactions?feature=other", ADMIN)[1]["items"] == []
        status, trace = _get(serve.port, f"/api/traces/{report['trace_id']}", ADMIN)
        assert status == 200
        assert len(trace["interactions"]) == 3
        assert _get(serve.port, "/api/interactions", INGEST)[0] == 403
        metrics = _metrics(serve.port)
        assert metrics['continuous_eval_interactions_ingested_total{feature="support-bot"}'] == 3
        assert metrics["continuous_eval_spans_skipped_total"] == 2
    finally:
        cluster.stop_all()
