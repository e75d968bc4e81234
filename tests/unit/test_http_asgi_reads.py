"""Reading through the admin API, in process: pages of runs, the trend, alerts, suites and probes.

The runs are arranged in the in-memory store directly; for the pages of runs
its ``FakeClock`` moves a second between runs, as the database's clock would
have moved on.
The same reads over SQLite and Postgres are ``tests/integration``'s
``test_reader_contract.py`` (the reader) and ``test_http_api.py`` (a smoke
through a real server).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from continuous_eval.core.models import AlertStatus, NewAlert, NewRun, RunStatus, ScoreAggregate
from tests.fixtures.api_suite import expect_error
from tests.fixtures.asgi import InProcessApi


def _insert_runs(asgi: InProcessApi, n: int, prefix: str) -> list[str]:
    ids = []
    for i in range(n):
        asgi.clock.advance(seconds=1)
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
        asgi.store.create_run(new, status=RunStatus.SKIPPED)
        ids.append(run_id)
    return ids


async def test_cursor_pagination_is_stable_while_runs_are_inserted(asgi: InProcessApi) -> None:
    client = asgi.client
    original = _insert_runs(asgi, 25, "old")
    listed = await client.get("/api/runs", params={"limit": 200})
    expected = [r["id"] for r in listed.json()["items"]]
    assert sorted(expected) == sorted(original)

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/runs", params=params)).json()
        pages += 1
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        _insert_runs(asgi, 5, f"new{pages}")  # newer than every cursor: never in later pages

    assert seen[:10] == expected[:10]
    assert seen == expected  # nothing lost, nothing repeated, same order
    assert pages == 3
    first = (await client.get("/api/runs", params={"limit": 10})).json()["items"]
    assert first[0]["id"].startswith("new")  # the new runs are on a fresh first page

    skipped = await client.get("/api/runs", params={"status": "skipped", "run_type": "manual"})
    assert len(skipped.json()["items"]) == 35
    assert (await client.get("/api/runs", params={"suite": "slow"})).json()["items"] == []
    expect_error(await client.get("/api/runs", params={"cursor": "!!"}), 422, "validation_error")
    results_cursor = "eyJpIjozLCJrIjoicmVzdWx0cyJ9"  # a results cursor is not a runs cursor
    expect_error(
        await client.get("/api/runs", params={"cursor": results_cursor}), 422, "validation_error"
    )


# ---------------------------------------------------------------- trend, alerts


async def test_the_trend_shows_scheduled_runs_only_newest_first(asgi: InProcessApi) -> None:
    store = asgi.store
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

    trend = "/admin/ai-quality/drift/eval-trend"
    items = (await asgi.client.get(trend, params={"feature": "answers"})).json()["items"]
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

    one = (
        await asgi.client.get(
            trend, params={"suite": "fast", "feature": "answers", "scorer": "regex", "limit": 2}
        )
    ).json()["items"]
    assert [(i["run_id"], i["scorer"]) for i in one] == [
        ("scheduled-4", "regex"),
        ("scheduled-3", "regex"),
    ]
    expect_error(await asgi.client.get(trend, params={"limit": 1001}), 422, "validation_error")


STATUSES: tuple[tuple[str, AlertStatus], ...] = (("judge", "pending"), ("regex", "suppressed"))


async def test_alerts_are_listed_with_a_status_filter(asgi: InProcessApi) -> None:
    store = asgi.store
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

    listed = (await asgi.client.get("/api/alerts")).json()["items"]
    assert {a["scorer"] for a in listed} == {"judge", "regex"}
    assert all("payload" not in a for a in listed)
    pending = (await asgi.client.get("/api/alerts", params={"status": "pending"})).json()["items"]
    assert [a["scorer"] for a in pending] == ["judge"]
    assert pending[0]["summary"] == {"delta": -0.6}
    expect_error(
        await asgi.client.get("/api/alerts", params={"status": "bogus"}), 422, "validation_error"
    )


# -------------------------------------------------------------- suites, probes


async def test_suites_and_probes(asgi: InProcessApi) -> None:
    client = asgi.client
    suites = (await client.get("/api/suites")).json()["items"]
    assert [s["name"] for s in suites] == ["fast", "slow", "steady"]
    assert suites[0]["features"] == ["answers", "extra"]
    health = (await client.get("/healthz", headers={"Authorization": ""})).json()
    assert health["status"] == "ok"
    assert "owner" in health
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    assert (await client.get("/metrics")).headers["content-type"].startswith("text/plain")
