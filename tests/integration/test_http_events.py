"""Live progress over Server-Sent Events: a real run, real HTTP, SQLite and Postgres.

The tests wait on conditions, never for a while: events read, the server's
count of open streams (``CountedStreams.wait_open``), a held case begun
(``api_target.wait_held``), the daemon's work ended (``ApiServer.settled``),
each with a generous timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from continuous_eval.adapters.http.events import StreamSettings
from tests.fixtures import api_target
from tests.integration.api_server import ApiServer, SseReader, make_settings, running, suite_file

STREAM = StreamSettings(poll_s=0.05, keepalive_s=0.2)


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[ApiServer]:
    """A daemon with its API, polling every 50 ms and keeping alive every 200 ms."""
    with running(ApiServer(make_settings(db_url), suite_file(tmp_path), stream=STREAM)) as srv:
        yield srv


def _start(client: httpx.Client, suite: str, run_id: str) -> str:
    response = client.post("/api/runs", json={"suite": suite, "run_id": run_id})
    assert response.status_code == 202, response.text
    return run_id


def _names(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events]


def _cases(events: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(e["id"], e["data"]) for e in events if e["event"] == "case"]


async def _tasks() -> list[str]:
    """The names of the server loop's tasks but the caller's."""
    current = asyncio.current_task()
    return sorted(
        t.get_coro().__qualname__  # type: ignore[union-attr]
        for t in asyncio.all_tasks()
        if t is not current
    )


async def _task_set() -> set[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t is not current}


def _tasks_once_newer_ended(server: ApiServer, baseline: set[asyncio.Task[Any]]) -> list[str]:
    """Wait until every task started since ``baseline`` ended; return the tasks' names then."""

    async def settle() -> list[str]:
        newer = await _task_set() - baseline
        if newer:
            await asyncio.wait(newer, timeout=30)
        return await _tasks()

    return server.call(settle, timeout=40)


def test_two_subscribers_see_the_same_events_of_a_real_run(server: ApiServer) -> None:
    with server.client() as one, server.client() as two:
        run_id = _start(one, "slow", "watched")
        url = f"/api/runs/{run_id}/events"
        with one.stream("GET", url) as a, two.stream("GET", url) as b:
            assert a.headers["content-type"].startswith("text/event-stream")
            assert a.headers["x-request-id"]
            first, second = SseReader(a), SseReader(b)
            snap_a, snap_b = first.take(1)[0], second.take(1)[0]
            api_target.RELEASE.set()  # the cases were held until both listened
            events_a, events_b = first.rest(), second.rest()

    for snap in (snap_a, snap_b):
        assert snap["event"] == "snapshot"
        assert snap["id"] == "0"
        assert snap["retry"] == "2000"
        assert snap["data"]["id"] == run_id
        assert snap["data"]["status"] == "running"
        assert snap["data"]["position"]["done"] == 0
    assert events_a == events_b
    assert len(events_a) == 9 * 2 + 2
    # Each case is followed by the progress after it; then the final status, then the end.
    assert _names(events_a) == ["case", "progress"] * 9 + ["status", "end"]
    ids = [int(e["id"]) for e in events_a if e["event"] == "case"]
    assert ids == sorted(ids)
    assert len(set(ids)) == 9
    progress = [e["data"] for e in events_a if e["event"] == "progress"]
    assert [p["done"] for p in progress] == list(range(1, 10))
    assert progress[-1] == {"done": 9, "total": 9, "errors": 0, "scored": 17, "results_total": 17}
    case = events_a[0]["data"]
    assert case["feature"] in ("answers", "extra")
    assert {r["scorer"] for r in case["results"]} <= {"regex", "contains"}
    assert events_a[-2]["data"] == {"status": "succeeded", "reason": None, "attempt": 1}
    assert events_a[-1]["data"]["status"] == "succeeded"
    assert events_a[-1]["data"]["run"]["progress"]["cases_done"] == 9


def test_last_event_id_resumes_without_losing_or_repeating(server: ApiServer) -> None:
    with server.client() as client:
        run_id = _start(client, "steady", "resumable")
        url = f"/api/runs/{run_id}/events"
        with client.stream("GET", url, headers={"Last-Event-ID": "0"}) as live:
            part1 = SseReader(live).take(4, "case")
        last_id = [e for e in part1 if e["event"] == "case"][-1]["id"]
        # Disconnected mid-run; reconnect where we left off, as EventSource does.
        with client.stream("GET", url, headers={"Last-Event-ID": last_id}) as resumed:
            part2 = SseReader(resumed).rest()
        assert part2[0]["event"] == "snapshot"
        assert part2[0]["id"] == last_id
        assert part2[0]["data"]["position"]["done"] == 4

        # The reference: everything replayed from the start once the run is over.
        with client.stream("GET", url, headers={"Last-Event-ID": "0"}) as replay:
            everything = SseReader(replay).rest()
        # And a new subscriber after the end hears only the snapshot and the end.
        with client.stream("GET", url) as late:
            assert _names(SseReader(late).rest()) == ["snapshot", "end"]

    resumed_cases = _cases(part1) + _cases(part2)
    assert resumed_cases == _cases(everything)
    assert len(resumed_cases) == 13
    # The progress after the last case read before leaving is the resumed snapshot's position.
    progress = [e["data"] for e in part1 if e["event"] == "progress"]
    progress += [part2[0]["data"]["position"]]
    progress += [e["data"] for e in part2 if e["event"] == "progress"]
    assert progress == [e["data"] for e in everything if e["event"] == "progress"]
    assert everything[-1]["event"] == "end"


def test_a_subscriber_that_leaves_mid_run_leaks_nothing_and_the_run_goes_on(
    server: ApiServer,
) -> None:
    streams = server.streams
    assert streams is not None

    with server.client() as client:
        # Warm up: sse-starlette starts one shutdown watcher per event loop, once.
        warm = _start(client, "fast", "warm-up")
        with client.stream("GET", f"/api/runs/{warm}/events") as first:
            SseReader(first).rest()
        streams.wait_open(0)
        server.settled()
        assert client.get("/healthz").json()["running"] == []
        baseline = server.call(_tasks)
        baseline_tasks = server.call(_task_set)

        run_id = _start(client, "steady", "left-behind")
        with client.stream("GET", f"/api/runs/{run_id}/events") as stream:
            reader = SseReader(stream)  # held: dropping it would close the connection early
            reader.take(2, "case")
            # Cases not begun yet wait, so the run cannot end before the check below.
            api_target.QUICK.clear()
            assert streams.open == 1
        # The client is gone; the server notices and drops the stream.
        streams.wait_open(0)
        run = client.get(f"/api/runs/{run_id}").json()
        assert run["status"] == "running"

        api_target.QUICK.set()
        server.settled()
        run = client.get(f"/api/runs/{run_id}").json()
        assert run["status"] == "succeeded"
        assert run["progress"]["cases_done"] == run["progress"]["cases_total"] == 13
        assert client.get("/healthz").json()["running"] == []
        assert _tasks_once_newer_ended(server, baseline_tasks) == baseline


def test_keepalive_comments_and_status_changes(server: ApiServer) -> None:
    with server.client() as client:
        run_id = _start(client, "slow", "paused-live")
        api_target.wait_held(1)  # the worker executes the run
        assert run_id in client.get("/healthz").json()["running"]
        with client.stream("GET", f"/api/runs/{run_id}/events") as stream:
            reader = SseReader(stream)
            reader.take(1)
            reader.until_comments(2)  # nothing happens: the held cases only produce keep-alives
            assert client.post(f"/api/runs/{run_id}/pause").json()["status"] == "paused"
            paused = reader.take(1, "status")
            assert paused[-1]["data"]["status"] == "paused"
            assert reader.comments >= 2
            api_target.RELEASE.set()
            server.settled()  # the worker stored what it had in flight and let the run go
            assert client.get(f"/api/runs/{run_id}").json()["lease_owner"] is None
            assert client.post(f"/api/runs/{run_id}/resume").status_code == 200
            rest = reader.rest()
    statuses = [e["data"] for e in rest if e["event"] == "status"]
    assert statuses[-1] == {"status": "succeeded", "reason": None, "attempt": 2}
    assert rest[-1]["event"] == "end"
    assert [e["data"]["done"] for e in paused + rest if e["event"] == "progress"][-1] == 9


def test_closing_the_streams_ends_them_for_shutdown(server: ApiServer) -> None:
    assert server.streams is not None
    with server.client() as client:
        run_id = _start(client, "slow", "shutting-down")
        with client.stream("GET", f"/api/runs/{run_id}/events") as stream:
            reader = SseReader(stream)
            reader.take(1)
            server.streams.close()
            assert reader.rest() == []  # no `end`: the run is not over, the client reconnects


def test_event_stream_errors_use_the_envelope(server: ApiServer) -> None:
    with server.client() as client:
        missing = client.get("/api/runs/no-such-run/events")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        run_id = _start(client, "fast", "bad-resume")
        bad = client.get(f"/api/runs/{run_id}/events", headers={"Last-Event-ID": "abc"})
        assert bad.status_code == 422
        assert bad.json()["error"]["code"] == "validation_error"
