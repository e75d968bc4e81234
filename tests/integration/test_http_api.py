"""The admin API over a real socket: uvicorn and a daemon in a background thread.

The routes' contract is tested in process, over the in-memory store
(``tests/unit/test_http_asgi_*.py``). What stays here needs what only a real
server has:

- the SQL reader and store behind HTTP, on SQLite and Postgres: a run started,
  executed and read back page by page, and runs paged while more are inserted;
- auth as a real socket delivers the header bytes (``h11`` under uvicorn):
  every bad ``Authorization`` header is a 401, never a 500 or a 400, and an
  API without a token is open only on a loopback address.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from continuous_eval.core.models import NewRun, RunStatus
from tests.fixtures.api_suite import BAD_AUTHORIZATIONS, expect_error
from tests.integration.api_server import ApiServer, make_settings, running, suite_file


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[ApiServer]:
    """A daemon with its API on a migrated database (SQLite and Postgres)."""
    with running(ApiServer(make_settings(db_url), suite_file(tmp_path))) as srv:
        yield srv


@pytest.fixture
def client(server: ApiServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def _finished(run: dict[str, Any]) -> bool:
    return RunStatus(run["status"]).terminal


# ------------------------------------------------------- SQL through HTTP


def test_a_run_reads_back_with_progress_scores_and_results(
    server: ApiServer, client: httpx.Client
) -> None:
    run_id = client.post("/api/runs", json={"suite": "fast"}).json()["run_id"]
    server.settled()
    run = client.get(f"/api/runs/{run_id}").json()
    assert _finished(run), run
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
    expect_error(client.get("/api/runs/nope/results"), 404, "not_found")
    expect_error(
        client.get(f"/api/runs/{run_id}/results", params={"cursor": "bm90IGEgY3Vyc29y"}),
        422,
        "validation_error",
    )


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
    expect_error(client.get("/api/runs", params={"cursor": "!!"}), 422, "validation_error")
    results_cursor = "eyJpIjozLCJrIjoicmVzdWx0cyJ9"  # a results cursor is not a runs cursor
    expect_error(
        client.get("/api/runs", params={"cursor": results_cursor}), 422, "validation_error"
    )


# ------------------------------------------------------------ auth at the socket


@pytest.fixture
def sqlite_server(migrated_sqlite_url: str, tmp_path: Path) -> Iterator[ApiServer]:
    """A daemon with its API on SQLite: auth is decided before any database is read."""
    with running(ApiServer(make_settings(migrated_sqlite_url), suite_file(tmp_path))) as srv:
        yield srv


def test_no_token_configured_is_open_only_on_a_loopback_address(
    migrated_sqlite_url: str, tmp_path: Path
) -> None:
    settings = make_settings(migrated_sqlite_url, api_tokens=[])
    with running(ApiServer(settings, suite_file(tmp_path))) as srv, srv.client(headers={}) as c:
        assert c.get("/api/runs").status_code == 200
    exposed = make_settings(migrated_sqlite_url, api_tokens=[], http_host="0.0.0.0")  # noqa: S104 (never bound)
    with running(ApiServer(exposed, suite_file(tmp_path))) as srv, srv.client(headers={}) as c:
        expect_error(c.get("/api/runs"), 401, "unauthorized")
        assert c.get("/healthz").status_code == 200


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATIONS)
def test_a_bad_token_is_401_never_500(
    sqlite_server: ApiServer, authorization: bytes | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    with sqlite_server.client(headers=headers) as c:
        for method, path in (("GET", "/api/runs"), ("POST", "/api/runs"), ("GET", "/metrics")):
            response = c.request(method, path, json={"suite": "fast"})
            expect_error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"
    with sqlite_server.client() as c:
        assert c.get("/api/runs").status_code == 200
