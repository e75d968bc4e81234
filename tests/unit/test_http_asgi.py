"""The admin API in process: httpx's ASGI transport over the in-memory store and reader.

No socket, no database, no server thread: each test builds the app on
``continuous_eval.testing``'s fakes and calls it directly, so the routes'
contract (status codes, error codes, pages and cursors, schemas) is checked in
milliseconds. What needs a real socket (live streams, auth at the socket,
shutdown) stays in ``tests/integration`` with a real server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from continuous_eval.adapters.http.app import create_app
from continuous_eval.core.models import (
    ControlAction,
    ProgressDelta,
    RunRecord,
    RunStatus,
    ScoreAggregate,
)
from continuous_eval.errors import GateBusy
from continuous_eval.settings import Settings
from continuous_eval.testing import FakeClock, InMemoryRunReader, InMemoryRunStore
from continuous_eval.testing.builders import failed, new_run, ok

TOKEN = "asgi-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SLOT = datetime(2026, 3, 1, 6, tzinfo=UTC)


class Launcher:
    """The ``RunLauncher`` the API drives: it records what it was asked and stores the run."""

    def __init__(self, store: InMemoryRunStore) -> None:
        self.store = store
        self.started: list[tuple[str, tuple[str, ...]]] = []
        self.busy: set[str] = set()

    async def start_manual(
        self,
        suite: str,
        features: Sequence[str] = (),
        *,
        run_id: str | None = None,
        idempotency_key: str | None = None,
        spec_hash: str | None = None,
        callback_url: str | None = None,
    ) -> RunRecord:
        if suite in self.busy:
            raise GateBusy(f"suite {suite!r} is already running in this process")
        self.started.append((suite, tuple(features)))
        new = new_run(run_id or f"manual-{len(self.started)}", suite=suite, spec_hash=spec_hash)
        return self.store.create_run(new, status=RunStatus.QUEUED)

    async def control(self, run_id: str, action: ControlAction) -> RunRecord:
        return self.store.control_run(run_id, action)


class Api:
    def __init__(self, client: httpx.AsyncClient, store: InMemoryRunStore, clock: FakeClock):
        self.client = client
        self.store = store
        self.clock = clock
        self.launcher: Launcher

    def run(self, run_id: str, **overrides: object) -> RunRecord:
        created = self.store.create_run(new_run(run_id, **overrides))
        self.clock.advance(timedelta(seconds=1))
        return created


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    clock = FakeClock()
    store = InMemoryRunStore(clock)
    launcher = Launcher(store)
    app = create_app(
        settings=Settings(api_tokens=[SecretStr(TOKEN)], http_host="127.0.0.1"),
        readiness=lambda: None,
        registry=CollectorRegistry(),
        daemon=launcher,
        store=store,
        reader=InMemoryRunReader(store),
        suites={"support": ["refunds", "tone"]},
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        found = Api(client, store, clock)
        found.launcher = launcher
        yield found


async def test_a_request_without_a_token_is_401_with_a_request_id(api: Api) -> None:
    answer = await api.client.get("/api/runs")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthorized"
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert answer.headers["X-Request-ID"] == answer.json()["error"]["request_id"]


async def test_runs_page_newest_first_and_the_cursor_reaches_the_rest(api: Api) -> None:
    for i in range(3):
        api.run(f"run-{i}")
    first = (await api.client.get("/api/runs", params={"limit": 2}, headers=AUTH)).json()
    assert [r["id"] for r in first["items"]] == ["run-2", "run-1"]
    rest = await api.client.get(
        "/api/runs", params={"limit": 2, "cursor": first["next_cursor"]}, headers=AUTH
    )
    assert [r["id"] for r in rest.json()["items"]] == ["run-0"]
    assert rest.json()["next_cursor"] is None


async def test_a_bad_cursor_is_a_422_with_its_code(api: Api) -> None:
    answer = await api.client.get("/api/runs", params={"cursor": "not-a-cursor"}, headers=AUTH)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "validation_error"


async def test_an_unknown_run_is_404_not_found(api: Api) -> None:
    for path in ("/api/runs/nope", "/api/runs/nope/results", "/api/runs/nope/decisions"):
        answer = await api.client.get(path, headers=AUTH)
        assert answer.status_code == 404, path
        assert answer.json()["error"]["code"] == "not_found"


async def test_a_run_and_its_results_page_by_page(api: Api) -> None:
    api.run("run-1")
    api.store.save_results(
        "run-1", [ok("1", 1.0), ok("2", 0.0)], ProgressDelta(cases_done=2, scored=2)
    )
    api.store.save_results("run-1", [failed("3")], ProgressDelta(cases_done=1, errored=1))
    aggs = [ScoreAggregate("refunds", "judge", 0.5, 0.5, 2, 1, "fp")]
    api.store.finish_run("run-1", RunStatus.SUCCEEDED, None, aggs)

    run = (await api.client.get("/api/runs/run-1", headers=AUTH)).json()
    assert run["status"] == "succeeded"
    assert run["progress"]["cases_done"] == 3
    assert [(s["feature"], s["mean"]) for s in run["scores"]] == [("refunds", 0.5)]

    page = (
        await api.client.get("/api/runs/run-1/results", params={"limit": 2}, headers=AUTH)
    ).json()
    assert [r["case_id"] for r in page["items"]] == ["1", "2"]
    assert page["items"][0]["usage"] == {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
    rest = await api.client.get(
        "/api/runs/run-1/results", params={"cursor": page["next_cursor"]}, headers=AUTH
    )
    [errored] = rest.json()["items"]
    assert (errored["case_id"], errored["status"], errored["error"]) == (
        "3",
        "error",
        "judge timed out",
    )


async def test_starting_a_run_is_202_and_a_busy_suite_is_409_gate_busy(api: Api) -> None:
    answer = await api.client.post("/api/runs", json={"suite": "support"}, headers=AUTH)
    assert answer.status_code == 202
    assert answer.json()["status"] == "queued"
    assert api.launcher.started == [("support", ())]
    api.launcher.busy.add("support")
    busy = await api.client.post("/api/runs", json={"suite": "support"}, headers=AUTH)
    assert busy.status_code == 409
    assert busy.json()["error"]["code"] == "gate_busy"


async def test_an_unknown_suite_is_refused_before_the_launcher_is_asked(api: Api) -> None:
    answer = await api.client.post("/api/runs", json={"suite": "nope"}, headers=AUTH)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "unknown_suite"
    assert api.launcher.started == []


async def test_the_trend_lists_scheduled_runs_only(api: Api) -> None:
    for i, mean in enumerate((4.0, 3.0)):
        api.run(f"s-{i}", run_type="scheduled", scheduled_for=SLOT + timedelta(days=i))
        aggs = [ScoreAggregate("refunds", "judge", mean, 0.1, 10, 0, "fp")]
        api.store.finish_run(f"s-{i}", RunStatus.SUCCEEDED, None, aggs)
    api.run("manual")
    api.store.finish_run(
        "manual", RunStatus.SUCCEEDED, None, [ScoreAggregate("refunds", "judge", 1.0, 0, 3, 0)]
    )
    answer = await api.client.get(
        "/admin/ai-quality/drift/eval-trend", params={"feature": "refunds"}, headers=AUTH
    )
    assert answer.status_code == 200
    assert [(p["run_id"], p["score"]) for p in answer.json()["items"]] == [
        ("s-1", 3.0),
        ("s-0", 4.0),
    ]


async def test_health_needs_no_token_and_metrics_do(api: Api) -> None:
    assert (await api.client.get("/healthz")).json()["status"] == "ok"
    assert (await api.client.get("/readyz")).json() == {"status": "ready"}
    assert (await api.client.get("/metrics")).status_code == 401
    assert (await api.client.get("/metrics", headers=AUTH)).status_code == 200


async def test_cancel_through_the_api_reaches_the_run(api: Api) -> None:
    api.run("run-1")
    answer = await api.client.post("/api/runs/run-1/cancel", headers=AUTH)
    assert answer.status_code == 200
    assert answer.json()["status"] == "cancelled"
    assert api.store.get_run("run-1").status is RunStatus.CANCELLED
