"""The run-completion notice's rows and body, from the run as it ends (pure)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from continuous_eval.core.models import Callback, RunRecord, RunStatus, Usage
from continuous_eval.core.run_notice import completion_notices, completion_payload

START = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
RUN = RunRecord(
    id="r1",
    suite="support",
    run_type="scheduled",
    status=RunStatus.FAILED,
    status_reason="watchdog",
    attempt=2,
    features=("refunds",),
    created_at=START,
    started_at=START,
    finished_at=START.replace(minute=5),
    scheduled_for=START,
    cases_total=10,
    cases_done=4,
    total=20,
    scored=7,
    errored=1,
    judge_usage=Usage(10, 5, 0.0125),
    target_usage=Usage(3, 3, 0.0025),
    fingerprint="fp",
    fingerprint_parts={},
)
HOOKS = (Callback("callback", "https://a.example/h"), Callback("run_webhook", "https://b.example"))


def test_one_pending_row_per_callback_with_one_body() -> None:
    rows = completion_notices(RUN, HOOKS, [])
    assert [(r.channel, r.destination, r.status, r.kind) for r in rows] == [
        ("callback", "https://a.example/h", "pending", "run_finished"),
        ("run_webhook", "https://b.example", "pending", "run_finished"),
    ]
    assert rows[0].payload == rows[1].payload == completion_payload(RUN, [])
    assert {r.key for r in rows} == {"run:r1:finished"}


def test_the_body_says_what_automation_needs() -> None:
    body = json.loads(completion_payload(RUN, []))
    assert body["type"] == "run.finished"
    assert body["timestamp"] == "2026-12-01T06:05:00+00:00"
    data = body["data"]
    assert (data["status"], data["status_reason"], data["attempt"]) == ("failed", "watchdog", 2)
    assert (data["cases_done"], data["scored"], data["errored"]) == (4, 7, 1)
    assert data["cost_usd"] == 0.015
    assert data["scheduled_for"] == "2026-12-01T06:00:00+00:00"


def test_the_body_is_the_same_bytes_every_time() -> None:
    assert completion_payload(RUN, []) == completion_payload(replace(RUN), [])


def test_a_run_still_going_or_without_callbacks_has_no_notice() -> None:
    assert completion_notices(replace(RUN, status=RunStatus.RUNNING), HOOKS, []) == []
    assert completion_notices(replace(RUN, status=RunStatus.PAUSED), HOOKS, []) == []
    assert completion_notices(RUN, (), []) == []
