"""The admin API over real HTTP: a daemon and uvicorn in a background thread, SQLite and Postgres.

Runs, idempotency, control, pagination, trend and alerts; auth on every route
(found by walking the route table); the error envelope, the request id and
the body cap.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from continuous_eval.core.models import AlertStatus, NewAlert, NewRun, RunStatus, ScoreAggregate
from tests.integration import api_target
from tests.integration.api_server import (
    TOKEN,
    ApiServer,
    make_settings,
    running,
    suite_file,
)

PUBLIC = {"/healthz", "/readyz"}


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[ApiServer]:
    """A daemon with its API on a migrated database (SQLite and Postgres)."""
    with running(ApiServer(make_settings(db_url), suite_file(tmp_path))) as srv:
        yield srv


@pytest.fixture
def client(server: ApiServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details", "request_id"}
    assert error["code"] == code, error
    assert error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    return error


def _finished(run: dict[str, Any]) -> bool:
    return RunStatus(run["status"]).terminal


# ---------------------------------------------------------------------- runs


def test_the_idempotency_matrix(server: ApiServer, client: httpx.Client) -> None:
    body = {"suite": "fast", "features": ["answers", "extra"], "run_id": "client-run-1"}
    first = client.post("/api/runs", json=body)
    assert first.status_code == 202, first.text
    assert first.json() == {"run_id": "client-run-1", "status": "running"}
    assert first.headers["location"] == "/api/runs/client-run-1"

    # The same id and spec again (features in another order): the same run, 202.
    again = client.post("/api/runs", json={**body, "features": ["extra", "answers"]})
    assert again.status_code == 202, again.text
    assert again.json()["run_id"] == "client-run-1"

    # The same id with another spec: 409 with the stored run.
    for other in ({**body, "features": ["answers"]}, {**body, "suite": "steady"}):
        conflict = _error(client.post("/api/runs", json=other), 409, "conflict")
        assert conflict["details"]["run"]["id"] == "client-run-1"
        assert conflict["details"]["run"]["suite"] == "fast"

    run = server.wait_run(client, "client-run-1", _finished)
    assert run["status"] == "succeeded"
    assert run["run_type"] == "manual"
    # Still idempotent once finished, and still a conflict with another spec.
    assert client.post("/api/runs", json=body).json() == {
        "run_id": "client-run-1",
        "status": "succeeded",
    }
    _error(client.post("/api/runs", json={**body, "features": []}), 409, "conflict")
    assert [r["id"] for r in client.get("/api/runs").json()["items"]] == ["client-run-1"]


def test_a_retry_while_the_run_is_in_progress_is_not_gate_busy(client: httpx.Client) -> None:
    body = {"suite": "slow", "run_id": "held-1"}
    assert client.post("/api/runs", json=body).status_code == 202
    retry = client.post("/api/runs", json=body)
    assert retry.status_code == 202, retry.text
    assert retry.json() == {"run_id": "held-1", "status": "running"}


def test_a_busy_suite_is_refused_not_queued(server: ApiServer, client: httpx.Client) -> None:
    held = client.post("/api/runs", json={"suite": "slow"})
    assert held.status_code == 202
    busy = _error(client.post("/api/runs", json={"suite": "slow"}), 409, "gate_busy")
    assert busy["details"] == {"suite": "slow"}
    assert "not queued" in busy["message"]
    busy = _error(
        client.post("/admin/ai-quality/evals/run", json={"suite": "slow"}), 409, "gate_busy"
    )
    # Another suite is not blocked.
    assert client.post("/admin/ai-quality/evals/run", json={"suite": "fast"}).status_code == 202

    api_target.RELEASE.set()
    run = server.wait_run(client, held.json()["run_id"], _finished)
    assert run["status"] == "succeeded"
    runs = client.get("/api/runs", params={"suite": "slow"}).json()["items"]
    assert len(runs) == 1  # the refused requests left nothing behind


def test_unknown_suite_and_feature_are_422_with_stable_codes(client: httpx.Client) -> None:
    unknown = _error(client.post("/api/runs", json={"suite": "nope"}), 422, "unknown_suite")
    assert unknown["details"]["suites"] == ["fast", "slow", "steady"]
    feature = _error(
        client.post("/api/runs", json={"suite": "fast", "features": ["nope"]}),
        422,
        "unknown_feature",
    )
    assert feature["details"]["unknown"] == ["nope"]
    _error(
        client.post("/api/runs", json={"suite": "fast", "run_id": "no spaces"}),
        422,
        "validation_error",
    )
    _error(client.post("/api/runs", json={"suite": "fast", "extra": 1}), 422, "validation_error")


def test_a_run_reads_back_with_progress_scores_and_results(
    server: ApiServer, client: httpx.Client
) -> None:
    run_id = client.post("/api/runs", json={"suite": "fast"}).json()["run_id"]
    run = server.wait_run(client, run_id, _finished)
    assert run["status"] == "succeeded"
    assert run["attempt"] == 1
    assert run["progress"] == {
        "cases_total": 7,
        "cases_done": 7,
        "results_total": 13,
        "scored": 13,
        "errored": 0,
        "fraction": 1.0,
    }
    assert run["duration_s"] is not None
    assert run["duration_s"] >= 0
    assert {(s["feature"], s["scorer"]) for s in run["scores"]} == {
        ("answers", "regex"),
        ("answers", "contains"),
        ("extra", "regex"),
    }

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/api/runs/{run_id}/results", params=params).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 13
    assert [r["id"] for r in seen] == sorted(r["id"] for r in seen)
    assert len({(r["feature"], r["case_id"], r["scorer"]) for r in seen}) == 13

    only = client.get(
        f"/api/runs/{run_id}/results", params={"feature": "answers", "scorer": "contains"}
    ).json()["items"]
    assert len(only) == 6
    assert {r["scorer"] for r in only} == {"contains"}
    assert client.get(f"/api/runs/{run_id}/results", params={"status": "error"}).json() == {
        "items": [],
        "next_cursor": None,
    }
    _error(client.get("/api/runs/nope/results"), 404, "not_found")
    _error(
        client.get(f"/api/runs/{run_id}/results", params={"cursor": "bm90IGEgY3Vyc29y"}),
        422,
        "validation_error",
    )


# ------------------------------------------------------------------- control


def _wait_executing(client: httpx.Client, run_id: str) -> None:
    deadline = time.monotonic() + 10
    while run_id not in client.get("/healthz").json()["running"]:
        assert time.monotonic() < deadline, "the run never started executing"
        time.sleep(0.02)


def test_pause_then_resume_keeps_every_earlier_result(
    server: ApiServer, client: httpx.Client
) -> None:
    run_id = client.post("/api/runs", json={"suite": "slow"}).json()["run_id"]
    # Pause once the worker executes it: a pause in the instant before is only
    # noticed at the worker's next heartbeat (the daemon's rule, not the API's).
    _wait_executing(client, run_id)
    paused = client.post(f"/api/runs/{run_id}/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused"
    # Two cases were in flight; they finish, then the worker releases the run.
    api_target.RELEASE.set()
    run = server.wait_run(client, run_id, lambda r: r["lease_owner"] is None)
    assert run["status"] == "paused"
    done = run["progress"]["cases_done"]
    assert 0 < done < run["progress"]["cases_total"]
    time.sleep(0.3)
    assert client.get(f"/api/runs/{run_id}").json()["progress"]["cases_done"] == done

    resumed = client.post(f"/api/runs/{run_id}/resume")
    assert resumed.status_code == 200
    assert resumed.json()["status"] in ("queued", "running")
    run = server.wait_run(client, run_id, _finished)
    assert run["status"] == "succeeded"
    assert run["attempt"] == 2
    assert run["progress"]["scored"] == run["progress"]["results_total"] == 17
    results = client.get(f"/api/runs/{run_id}/results", params={"limit": 1000}).json()["items"]
    assert len({(r["feature"], r["case_id"], r["scorer"]) for r in results}) == len(results) == 17


def test_cancel_and_controls_on_finished_runs_answer_the_final_status(
    server: ApiServer, client: httpx.Client
) -> None:
    run_id = client.post("/api/runs", json={"suite": "slow"}).json()["run_id"]
    cancelled = client.post(f"/api/runs/{run_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    api_target.RELEASE.set()
    time.sleep(0.3)
    run = client.get(f"/api/runs/{run_id}").json()
    assert run["status"] == "cancelled"
    assert run["progress"]["cases_done"] < run["progress"]["cases_total"]
    for action in ("cancel", "pause", "resume"):
        again = client.post(f"/api/runs/{run_id}/{action}")
        assert again.status_code == 200
        assert again.json()["status"] == "cancelled"

    done_id = client.post("/api/runs", json={"suite": "fast"}).json()["run_id"]
    server.wait_run(client, done_id, _finished)
    for action in ("cancel", "pause", "resume"):
        answer = client.post(f"/api/runs/{done_id}/{action}")
        assert answer.status_code == 200
        assert answer.json()["status"] == "succeeded"
    _error(client.post("/api/runs/no-such-run/cancel"), 404, "not_found")


# ---------------------------------------------------------------- pagination


def _insert_runs(server: ApiServer, n: int, prefix: str) -> list[str]:
    assert server.store is not None
    ids = []
    for i in range(n):
        run_id = f"{prefix}-{i:03d}-{uuid.uuid4().hex[:6]}"
        new = NewRun(
            id=run_id,
            suite="fast",
            run_type="manual",
            features=("answers",),
            cases_total=1,
            total=1,
            fingerprint="f" * 16,
        )
        server.store.create_run(new, status=RunStatus.SKIPPED)
        ids.append(run_id)
    return ids


def test_cursor_pagination_is_stable_while_runs_are_inserted(
    server: ApiServer, client: httpx.Client
) -> None:
    original = _insert_runs(server, 25, "old")
    expected = [r["id"] for r in client.get("/api/runs", params={"limit": 200}).json()["items"]]
    assert sorted(expected) == sorted(original)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/runs", params=params).json()
        pages += 1
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        _insert_runs(server, 5, f"new{pages}")  # newer than every cursor: never in later pages

    assert seen[:10] == expected[:10]
    assert seen == expected  # nothing lost, nothing repeated, same order
    assert pages == 3
    first = client.get("/api/runs", params={"limit": 10}).json()["items"]
    assert first[0]["id"].startswith("new")  # the new runs are on a fresh first page

    skipped = client.get("/api/runs", params={"status": "skipped", "run_type": "manual"}).json()
    assert len(skipped["items"]) == 35
    assert client.get("/api/runs", params={"suite": "slow"}).json()["items"] == []
    _error(client.get("/api/runs", params={"cursor": "!!"}), 422, "validation_error")
    results_cursor = "eyJpIjozLCJrIjoicmVzdWx0cyJ9"  # a results cursor is not a runs cursor
    _error(client.get("/api/runs", params={"cursor": results_cursor}), 422, "validation_error")


# ---------------------------------------------------------------- trend, alerts


def test_the_trend_shows_scheduled_runs_only_newest_first(
    server: ApiServer, client: httpx.Client
) -> None:
    store = server.store
    assert store is not None
    start = datetime(2025, 1, 1, 6, tzinfo=UTC)
    for day in range(5):
        for run_type in ("scheduled", "manual"):
            run_id = f"{run_type}-{day}"
            store.create_run(
                NewRun(
                    id=run_id,
                    suite="fast",
                    run_type=run_type,
                    features=("answers",),
                    cases_total=10,
                    total=20,
                    fingerprint="fp",
                    scheduled_for=start + timedelta(days=day) if run_type == "scheduled" else None,
                ),
                status=RunStatus.RUNNING,
            )
            aggregates = [
                ScoreAggregate("answers", scorer, 3.0 + day / 10, 0.1, 10, 0, "fp-" + scorer)
                for scorer in ("judge", "regex")
            ]
            store.finish_run(run_id, RunStatus.SUCCEEDED, None, aggregates)

    items = client.get("/admin/ai-quality/drift/eval-trend", params={"feature": "answers"}).json()[
        "items"
    ]
    assert len(items) == 10
    assert {i["run_id"] for i in items} == {f"scheduled-{d}" for d in range(5)}
    assert [i["run_id"] for i in items[::2]] == [f"scheduled-{d}" for d in (4, 3, 2, 1, 0)]
    first = items[0]
    assert set(first) == {
        "run_id", "suite", "feature", "scorer", "score", "stderr", "n", "errors",
        "status", "scheduled_for", "finished_at", "fingerprint",
    }  # fmt: skip
    assert first["score"] == pytest.approx(3.4)
    assert first["scheduled_for"].startswith("2025-01-05T06:00:00")
    assert first["fingerprint"] == "fp-judge"

    one = client.get(
        "/admin/ai-quality/drift/eval-trend",
        params={"suite": "fast", "feature": "answers", "scorer": "regex", "limit": 2},
    ).json()["items"]
    assert [(i["run_id"], i["scorer"]) for i in one] == [
        ("scheduled-4", "regex"),
        ("scheduled-3", "regex"),
    ]
    _error(
        client.get("/admin/ai-quality/drift/eval-trend", params={"limit": 1001}),
        422,
        "validation_error",
    )


STATUSES: tuple[tuple[str, AlertStatus], ...] = (("judge", "pending"), ("regex", "suppressed"))


def test_alerts_are_listed_with_a_status_filter(server: ApiServer, client: httpx.Client) -> None:
    store = server.store
    assert store is not None
    store.create_run(
        NewRun(
            id="alerting",
            suite="fast",
            run_type="scheduled",
            features=("answers",),
            cases_total=1,
            total=1,
            fingerprint="fp",
            scheduled_for=datetime(2025, 1, 1, tzinfo=UTC),
        ),
        status=RunStatus.RUNNING,
    )
    alerts = [
        NewAlert(
            key=f"fast:answers:{scorer}:alerting",
            channel="email",
            kind="regression",
            run_id="alerting",
            suite="fast",
            feature="answers",
            scorer=scorer,
            rule="drop",
            status=status,
            payload='{"to": ["oncall@example.com"]}',
            summary={"delta": -0.6},
        )
        for scorer, status in STATUSES
    ]
    store.finish_run("alerting", RunStatus.SUCCEEDED, None, [], alerts=alerts)

    listed = client.get("/api/alerts").json()["items"]
    assert {a["scorer"] for a in listed} == {"judge", "regex"}
    assert all("payload" not in a for a in listed)
    pending = client.get("/api/alerts", params={"status": "pending"}).json()["items"]
    assert [a["scorer"] for a in pending] == ["judge"]
    assert pending[0]["summary"] == {"delta": -0.6}
    _error(client.get("/api/alerts", params={"status": "bogus"}), 422, "validation_error")


# ---------------------------------------------------------------------- auth


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "some-id", path)


def route_table(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, included routers flattened.

    FastAPI 0.13x flattens ``include_router`` into ``app.routes``; newer
    releases keep included routers as lazy entries that
    ``fastapi.routing.iter_route_contexts`` expands.
    """
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        entries: list[Any] = list(app.routes)
    else:
        entries = list(iter_route_contexts(app.routes))
    table = []
    for entry in entries:
        path, methods = getattr(entry, "path", None), getattr(entry, "methods", None)
        if path is None or not methods:
            continue
        table += [(method, path) for method in sorted(methods) if method != "HEAD"]
    return table


def _needs_a_session(method: str, path: str, response: httpx.Response) -> None:
    """The dashboard's routes: sign-in is open (its post needs its form); pages send a
    browser to sign in; every other request is refused."""
    if path == "/ui/signin":
        assert response.status_code == (200 if method == "GET" else 403), (method, path)
    elif method == "GET":
        assert response.status_code == 303, (method, path)
        assert response.headers["location"].startswith("/ui/signin?next="), path
    else:
        _error(response, 401, "unauthorized")


def test_every_route_but_the_probes_needs_a_token(server: ApiServer) -> None:
    """Walks the route table: a route added later is covered without editing this test."""
    assert server.app is not None
    checked = route_table(server.app)
    with server.client(headers={}) as anonymous:
        for method, path in checked:
            response = anonymous.request(method, _concrete(path))
            if path in PUBLIC:
                assert response.status_code == 200, (method, path)
                continue
            if path == "/" or path.startswith("/ui/"):
                _needs_a_session(method, path, response)
                continue
            error = _error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer", path
            assert "token" in error["message"]
    paths = {path for _, path in checked}
    assert {"/metrics", "/openapi.json", "/api/runs/{run_id}/events"} <= paths
    assert len(checked) >= 15

    # The OpenAPI document says the same: bearer auth everywhere but the probes.
    with server.client() as authed:
        document = authed.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            secured = operation.get("security") == [{"HTTPBearer": []}]
            assert secured == (path not in PUBLIC), (method, path)
            if secured:
                assert "401" in operation["responses"], (method, path)


def test_docs_are_served_behind_the_token_or_public_when_configured(
    db_url: str, tmp_path: Path, server: ApiServer
) -> None:
    with server.client() as authed, server.client(headers={}) as anonymous:
        page = authed.get("/docs")
        assert page.status_code == 200
        assert "swagger-ui" in page.text
        assert "/openapi.json" in page.text
        _error(anonymous.get("/docs"), 401, "unauthorized")
        document = authed.get("/openapi.json").json()
    # Every route a user calls is in the document, the suites list included.
    assert {"/api/suites", "/api/runs", "/api/runs/{run_id}"} <= set(document["paths"])
    settings = make_settings(db_url, docs_public=True)
    with running(ApiServer(settings, suite_file(tmp_path))) as srv, srv.client(headers={}) as c:
        assert c.get("/docs").status_code == 200
        assert c.get("/openapi.json").json()["info"]["title"] == "continuous-eval"
        _error(c.get("/api/suites"), 401, "unauthorized")  # the routes still need a token


def test_metrics_can_be_made_public(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, metrics_public=True)
    with running(ApiServer(settings, suite_file(tmp_path))) as srv, srv.client(headers={}) as c:
        assert c.get("/metrics").status_code == 200
        _error(c.get("/api/runs"), 401, "unauthorized")


def test_no_token_configured_is_open_only_on_a_loopback_address(
    migrated_sqlite_url: str, tmp_path: Path
) -> None:
    settings = make_settings(migrated_sqlite_url, api_tokens=[])
    with running(ApiServer(settings, suite_file(tmp_path))) as srv, srv.client(headers={}) as c:
        assert c.get("/api/runs").status_code == 200
    exposed = make_settings(migrated_sqlite_url, api_tokens=[], http_host="0.0.0.0")  # noqa: S104 (never bound)
    with running(ApiServer(exposed, suite_file(tmp_path))) as srv, srv.client(headers={}) as c:
        _error(c.get("/api/runs"), 401, "unauthorized")
        assert c.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param(b"Bearer wrong-token", id="wrong"),
        pytest.param("Bearer t\u00f6k\u00e9n".encode(), id="non-ascii"),
        pytest.param(b"Bearer \xff\xfe\x80", id="not-utf8"),
        pytest.param(f"bearer {TOKEN}".encode(), id="lowercase-scheme"),
        pytest.param(f"BEARER {TOKEN}".encode(), id="uppercase-scheme"),
        pytest.param(f"Bearer  {TOKEN}".encode(), id="two-spaces"),
        pytest.param(b"Bearer " + b"x" * 8000, id="oversized"),
        pytest.param(b"Bearer", id="no-token"),
        pytest.param(b"Basic dXNlcjpwYXNz", id="basic"),
    ],
)
def test_a_bad_token_is_401_never_500(server: ApiServer, authorization: bytes | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    with server.client(headers=headers) as c:
        for method, path in (("GET", "/api/runs"), ("POST", "/api/runs"), ("GET", "/metrics")):
            response = c.request(method, path, json={"suite": "fast"})
            _error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"
    with server.client() as c:
        assert c.get("/api/runs").status_code == 200


# ------------------------------------------------------- errors and request id


def test_framework_errors_use_the_envelope(client: httpx.Client) -> None:
    missing = _error(client.get("/no/such/route"), 404, "not_found")
    assert "/no/such/route" in missing["message"]
    wrong = client.delete("/api/runs")
    _error(wrong, 405, "method_not_allowed")
    assert wrong.headers["allow"]  # Starlette names the first matching route's methods
    invalid = _error(client.get("/api/runs", params={"limit": 0}), 422, "validation_error")
    assert invalid["details"]["errors"][0]["loc"] == ["query", "limit"]
    _error(
        client.post(
            "/api/runs", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
        "validation_error",
    )
    _error(client.get("/api/runs/no-such-run"), 404, "not_found")
    _error(client.get("/api/runs", params={"status": "bogus"}), 422, "validation_error")


def test_the_request_id_is_echoed_or_generated(client: httpx.Client) -> None:
    mine = client.get("/api/runs", headers={"X-Request-ID": "trace-123:abc"})
    assert mine.headers["x-request-id"] == "trace-123:abc"
    error = client.get("/api/runs/nope", headers={"X-Request-ID": "trace-456"})
    assert error.headers["x-request-id"] == "trace-456"
    assert error.json()["error"]["request_id"] == "trace-456"
    for insane in ("has spaces", "x" * 200, "semi;colon"):
        replaced = client.get("/api/runs", headers={"X-Request-ID": insane})
        assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])
    a, b = client.get("/healthz"), client.get("/healthz")
    assert a.headers["x-request-id"] != b.headers["x-request-id"]
    with httpx.Client(base_url=str(client.base_url)) as anonymous:
        refused = anonymous.get("/api/runs", headers={"X-Request-ID": "anon-1"})
        assert refused.headers["x-request-id"] == "anon-1"


def test_the_body_cap_is_enforced_before_the_body_is_read(client: httpx.Client) -> None:
    big = b'{"suite": "fast", "pad": "' + b"x" * 5000 + b'"}'
    declared = _error(
        client.post("/api/runs", content=big, headers={"content-type": "application/json"}),
        413,
        "payload_too_large",
    )
    assert declared["details"] == {"max_bytes": 2048}

    def chunks() -> Iterator[bytes]:
        yield b'{"suite": "fast", "pad": "'
        for _ in range(20):
            yield b"x" * 500
        yield b'"}'

    streamed = client.post(
        "/api/runs", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in streamed.request.headers
    _error(streamed, 413, "payload_too_large")

    # Under the cap, the same route works.
    small = client.post("/api/runs", json={"suite": "fast", "features": ["answers"] * 100})
    assert small.status_code == 202, small.text

    with httpx.Client(base_url=str(client.base_url)) as anonymous:
        # Auth comes first: a stranger's large body is not even looked at.
        _error(
            anonymous.post("/api/runs", content=big, headers={"content-type": "application/json"}),
            401,
            "unauthorized",
        )


def test_suites_and_probes(client: httpx.Client) -> None:
    suites = client.get("/api/suites").json()["items"]
    assert [s["name"] for s in suites] == ["fast", "slow", "steady"]
    assert suites[0]["features"] == ["answers", "extra"]
    health = client.get("/healthz", headers={"Authorization": ""}).json()
    assert health["status"] == "ok"
    assert "owner" in health
    assert client.get("/readyz").json() == {"status": "ready"}
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")


def test_an_unexpected_error_is_a_500_envelope_and_is_logged(
    server: ApiServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    async def broken(run_id: str, action: str) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(server.daemon, "control", broken)
    response = client.post("/api/runs/some-run/cancel", headers={"X-Request-ID": "bug-1"})
    error = _error(response, 500, "internal_error")
    assert error["request_id"] == "bug-1"
    assert "a bug" not in error["message"]  # internals stay in the log
    logged = [r for r in caplog.records if getattr(r, "event", None) == "api_error"]
    assert [getattr(r, "request_id", None) for r in logged] == ["bug-1"]
