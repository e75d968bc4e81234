"""The job routes in process: list, read, cancel, and the replay of a job's steps over SSE."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from continuous_eval.core.jobs import JobEvent, JobStatus
from tests.fixtures.api_suite import expect_error
from tests.fixtures.asgi import InProcessApi

LEASE = 30.0


def _sse(text: str) -> list[dict[str, Any]]:
    """The events of a whole SSE body: {event, id?, data (decoded)}; comments skipped."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event: dict[str, Any] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")
        if "data" in event:
            event["data"] = json.loads(event["data"])
            events.append(event)
    return events


def _finished_job(asgi: InProcessApi, steps: int = 3) -> int:
    now = asgi.clock.now()
    asgi.jobs.enqueue("generate_evaluator", {"eval_set": 4}, now)
    job = asgi.jobs.claim_next("replica-a", now, LEASE)
    assert job is not None
    for n in range(steps):
        asgi.jobs.add_event(job.id, job.fence, f"step {n + 1}", (n + 1) / steps, f"m{n}", now)
    asgi.jobs.finish(job.id, job.fence, JobStatus.SUCCEEDED, now, result={"version": 3})
    return job.id


async def test_a_job_is_read_with_its_result(asgi: InProcessApi) -> None:
    job_id = _finished_job(asgi)
    response = await asgi.client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == job_id
    assert body["kind"] == "generate_evaluator"
    assert body["params"] == {"eval_set": 4}
    assert body["status"] == "succeeded"
    assert body["result"] == {"version": 3}
    assert (body["step"], body["progress"], body["attempt"]) == ("step 3", 1.0, 1)


async def test_a_missing_job_is_404_job_not_found(asgi: InProcessApi) -> None:
    expect_error(await asgi.client.get("/api/jobs/41"), 404, "job_not_found")
    expect_error(await asgi.client.post("/api/jobs/41/cancel"), 404, "job_not_found")
    expect_error(await asgi.client.get("/api/jobs/41/events"), 404, "job_not_found")
    expect_error(await asgi.client.get("/api/jobs/0"), 422, "validation_error")


async def test_the_list_is_newest_first_filtered_and_paged(asgi: InProcessApi) -> None:
    now = asgi.clock.now()
    ids = [asgi.jobs.enqueue("a" if n % 2 else "b", {}, now).id for n in range(5)]
    asgi.jobs.request_cancel(ids[0], now)
    first = (await asgi.client.get("/api/jobs", params={"limit": 2})).json()
    assert [j["id"] for j in first["items"]] == [ids[4], ids[3]]
    rest = await asgi.client.get("/api/jobs", params={"limit": 5, "cursor": first["next_cursor"]})
    assert [j["id"] for j in rest.json()["items"]] == [ids[2], ids[1], ids[0]]
    assert rest.json()["next_cursor"] is None
    kind_a = (await asgi.client.get("/api/jobs", params={"kind": "a"})).json()
    assert [j["id"] for j in kind_a["items"]] == [ids[3], ids[1]]
    cancelled = (await asgi.client.get("/api/jobs", params={"status": "cancelled"})).json()
    assert [j["id"] for j in cancelled["items"]] == [ids[0]]
    bad = await asgi.client.get("/api/jobs", params={"cursor": "nonsense"})
    expect_error(bad, 422, "validation_error")


async def test_cancel_is_202_and_a_finished_job_is_409(asgi: InProcessApi) -> None:
    queued = asgi.jobs.enqueue("generate_evaluator", {}, asgi.clock.now())
    response = await asgi.client.post(f"/api/jobs/{queued.id}/cancel")
    assert response.status_code == 202
    assert response.headers["location"] == f"/api/jobs/{queued.id}"
    assert response.json()["status"] == "cancelled"
    error = expect_error(
        await asgi.client.post(f"/api/jobs/{queued.id}/cancel"), 409, "job_finished"
    )
    assert error["details"] == {"job_id": queued.id, "status": "cancelled"}


async def test_cancel_of_a_running_job_is_asked_for_and_shown(asgi: InProcessApi) -> None:
    asgi.jobs.enqueue("generate_evaluator", {}, asgi.clock.now())
    job = asgi.jobs.claim_next("replica-a", asgi.clock.now(), LEASE)
    assert job is not None
    response = await asgi.client.post(f"/api/jobs/{job.id}/cancel")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "running"
    assert body["cancel_requested_at"] is not None


async def test_the_stream_of_a_finished_job_replays_every_step_then_ends(
    asgi: InProcessApi,
) -> None:
    job_id = _finished_job(asgi)
    response = await asgi.client.get(f"/api/jobs/{job_id}/events")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _sse(response.text)
    assert [e["event"] for e in events] == ["snapshot", "step", "step", "step", "end"]
    assert events[0]["data"]["status"] == "succeeded"
    assert [e["id"] for e in events[1:4]] == ["1", "2", "3"]
    assert [e["data"]["step"] for e in events[1:4]] == ["step 1", "step 2", "step 3"]
    assert events[2]["data"]["message"] == "m1"
    end = events[-1]["data"]
    assert end["status"] == "succeeded"
    assert end["job"]["result"] == {"version": 3}


async def test_last_event_id_replays_only_the_steps_after_it(asgi: InProcessApi) -> None:
    job_id = _finished_job(asgi)
    response = await asgi.client.get(f"/api/jobs/{job_id}/events", headers={"Last-Event-ID": "2"})
    events = _sse(response.text)
    assert [(e["event"], e.get("id")) for e in events] == [
        ("snapshot", None),
        ("step", "3"),
        ("end", None),
    ]


async def test_the_stream_follows_a_job_live_until_it_ends(
    asgi: InProcessApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = asgi.jobs.enqueue("generate_evaluator", {}, asgi.clock.now())
    polled = threading.Event()
    read_events = asgi.jobs.events

    def spy(job_id: int, after_seq: int = 0, limit: int = 500) -> list[JobEvent]:
        found = read_events(job_id, after_seq, limit)
        polled.set()
        return found

    monkeypatch.setattr(asgi.jobs, "events", spy)
    # The in-process transport hands the body over once the stream ends: the job
    # is driven to its end once the stream has looked at it queued.
    request = asyncio.create_task(asgi.client.get(f"/api/jobs/{job.id}/events"))
    assert await asyncio.to_thread(polled.wait, 30)
    now = asgi.clock.now()
    claimed = asgi.jobs.claim_next("replica-a", now, LEASE)
    assert claimed is not None
    asgi.jobs.add_event(job.id, claimed.fence, "calling the model", 0.4, "", now)
    asgi.jobs.add_event(job.id, claimed.fence, "validating", 0.8, "", now)
    asgi.jobs.finish(job.id, claimed.fence, JobStatus.FAILED, now, error="ValueError: no code")
    response = await asyncio.wait_for(request, 30)
    events = _sse(response.text)
    assert events[0]["event"] == "snapshot"
    assert events[0]["data"]["status"] == "queued"
    steps = [(e["id"], e["data"]["step"]) for e in events if e["event"] == "step"]
    assert steps == [("1", "calling the model"), ("2", "validating")]
    statuses = [e["data"]["status"] for e in events if e["event"] == "status"]
    assert statuses[-1] == "failed"
    assert events[-1]["event"] == "end"
    assert events[-1]["data"]["status"] == "failed"
    assert events[-1]["data"]["error"] == "ValueError: no code"
