"""Starting and controlling runs through the admin API, in process: the real daemon, no database.

Idempotency, the busy-suite rule, unknown names, a run read back, pause,
resume and cancel. Each run is a real run of ``tests.fixtures.api_target``
executed by the daemon in the test's event loop over the in-memory store;
the test waits for it with ``settled`` (every run ended) or ``executing``
(a held case began), never by sleeping.
"""

from __future__ import annotations

from typing import Any

from continuous_eval.core.models import RunStatus
from tests.fixtures import api_target
from tests.fixtures.api_suite import expect_error
from tests.fixtures.asgi import InProcessApi


def _finished(run: dict[str, Any]) -> bool:
    return RunStatus(run["status"]).terminal


async def _run(asgi: InProcessApi, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = (await asgi.client.get(f"/api/runs/{run_id}")).json()
    return run


async def _finished_run(asgi: InProcessApi, run_id: str) -> dict[str, Any]:
    """Wait until every run ended; return ``run_id`` as the API reads it, final."""
    await asgi.settled()
    run = await _run(asgi, run_id)
    assert _finished(run), run
    return run


# ---------------------------------------------------------------------- runs


async def test_the_idempotency_matrix(asgi: InProcessApi) -> None:
    client = asgi.client
    body = {"suite": "fast", "features": ["answers", "extra"], "run_id": "client-run-1"}
    first = await client.post("/api/runs", json=body)
    assert first.status_code == 202, first.text
    assert first.json() == {"run_id": "client-run-1", "status": "running"}
    assert first.headers["location"] == "/api/runs/client-run-1"

    # The same id and spec again (features in another order): the same run, 202.
    again = await client.post("/api/runs", json={**body, "features": ["extra", "answers"]})
    assert again.status_code == 202, again.text
    assert again.json()["run_id"] == "client-run-1"

    # The same id with another spec: 409 with the stored run.
    for other in ({**body, "features": ["answers"]}, {**body, "suite": "steady"}):
        conflict = expect_error(await client.post("/api/runs", json=other), 409, "conflict")
        assert conflict["details"]["run"]["id"] == "client-run-1"
        assert conflict["details"]["run"]["suite"] == "fast"

    run = await _finished_run(asgi, "client-run-1")
    assert run["status"] == "succeeded"
    assert run["run_type"] == "manual"
    # Still idempotent once finished, and still a conflict with another spec.
    assert (await client.post("/api/runs", json=body)).json() == {
        "run_id": "client-run-1",
        "status": "succeeded",
    }
    expect_error(await client.post("/api/runs", json={**body, "features": []}), 409, "conflict")
    assert [r["id"] for r in (await client.get("/api/runs")).json()["items"]] == ["client-run-1"]


async def test_a_retry_while_the_run_is_in_progress_is_not_gate_busy(asgi: InProcessApi) -> None:
    body = {"suite": "slow", "run_id": "held-1"}
    assert (await asgi.client.post("/api/runs", json=body)).status_code == 202
    retry = await asgi.client.post("/api/runs", json=body)
    assert retry.status_code == 202, retry.text
    assert retry.json() == {"run_id": "held-1", "status": "running"}


async def test_a_busy_suite_is_refused_not_queued(asgi: InProcessApi) -> None:
    client = asgi.client
    held = await client.post("/api/runs", json={"suite": "slow"})
    assert held.status_code == 202
    busy = expect_error(await client.post("/api/runs", json={"suite": "slow"}), 409, "gate_busy")
    assert busy["details"] == {"suite": "slow"}
    assert "not queued" in busy["message"]
    busy = expect_error(
        await client.post("/admin/ai-quality/evals/run", json={"suite": "slow"}), 409, "gate_busy"
    )
    # Another suite is not blocked.
    other = await client.post("/admin/ai-quality/evals/run", json={"suite": "fast"})
    assert other.status_code == 202

    api_target.RELEASE.set()
    run = await _finished_run(asgi, held.json()["run_id"])
    assert run["status"] == "succeeded"
    runs = (await client.get("/api/runs", params={"suite": "slow"})).json()["items"]
    assert len(runs) == 1  # the refused requests left nothing behind


async def test_unknown_suite_and_feature_are_422_with_stable_codes(asgi: InProcessApi) -> None:
    client = asgi.client
    unknown = expect_error(
        await client.post("/api/runs", json={"suite": "nope"}), 422, "unknown_suite"
    )
    assert unknown["details"]["suites"] == ["fast", "slow", "steady"]
    feature = expect_error(
        await client.post("/api/runs", json={"suite": "fast", "features": ["nope"]}),
        422,
        "unknown_feature",
    )
    assert feature["details"]["unknown"] == ["nope"]
    expect_error(
        await client.post("/api/runs", json={"suite": "fast", "run_id": "no spaces"}),
        422,
        "validation_error",
    )
    expect_error(
        await client.post("/api/runs", json={"suite": "fast", "extra": 1}),
        422,
        "validation_error",
    )


async def test_a_run_reads_back_with_progress_scores_and_results(asgi: InProcessApi) -> None:
    client = asgi.client
    run_id = (await client.post("/api/runs", json={"suite": "fast"})).json()["run_id"]
    run = await _finished_run(asgi, run_id)
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
        page = (await client.get(f"/api/runs/{run_id}/results", params=params)).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 13
    assert [r["id"] for r in seen] == sorted(r["id"] for r in seen)
    assert len({(r["feature"], r["case_id"], r["scorer"]) for r in seen}) == 13

    only = (
        await client.get(
            f"/api/runs/{run_id}/results", params={"feature": "answers", "scorer": "contains"}
        )
    ).json()["items"]
    assert len(only) == 6
    assert {r["scorer"] for r in only} == {"contains"}
    errors = await client.get(f"/api/runs/{run_id}/results", params={"status": "error"})
    assert errors.json() == {"items": [], "next_cursor": None}
    expect_error(await client.get("/api/runs/nope/results"), 404, "not_found")
    expect_error(
        await client.get(f"/api/runs/{run_id}/results", params={"cursor": "bm90IGEgY3Vyc29y"}),
        422,
        "validation_error",
    )


# ------------------------------------------------------------------- control


async def test_pause_then_resume_keeps_every_earlier_result(asgi: InProcessApi) -> None:
    client = asgi.client
    run_id = (await client.post("/api/runs", json={"suite": "slow"})).json()["run_id"]
    # Pause once the worker executes it: a pause in the instant before is only
    # noticed at the worker's next heartbeat (the daemon's rule, not the API's).
    await asgi.executing(run_id)
    assert run_id in (await client.get("/healthz")).json()["running"]
    paused = await client.post(f"/api/runs/{run_id}/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused"
    # Two cases were in flight; they finish, then the worker releases the run.
    api_target.RELEASE.set()
    await asgi.settled()
    run = await _run(asgi, run_id)
    assert run["lease_owner"] is None
    assert run["status"] == "paused"
    done = run["progress"]["cases_done"]
    assert 0 < done < run["progress"]["cases_total"]
    # Nothing is in flight any more, so nothing more is written.
    assert (await client.get("/healthz")).json()["running"] == []
    assert (await _run(asgi, run_id))["progress"]["cases_done"] == done

    resumed = await client.post(f"/api/runs/{run_id}/resume")
    assert resumed.status_code == 200
    assert resumed.json()["status"] in ("queued", "running")
    run = await _finished_run(asgi, run_id)
    assert run["status"] == "succeeded"
    assert run["attempt"] == 2
    assert run["progress"]["scored"] == run["progress"]["results_total"] == 17
    page = await client.get(f"/api/runs/{run_id}/results", params={"limit": 1000})
    results = page.json()["items"]
    assert len({(r["feature"], r["case_id"], r["scorer"]) for r in results}) == len(results) == 17


async def test_cancel_and_controls_on_finished_runs_answer_the_final_status(
    asgi: InProcessApi,
) -> None:
    client = asgi.client
    run_id = (await client.post("/api/runs", json={"suite": "slow"})).json()["run_id"]
    cancelled = await client.post(f"/api/runs/{run_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    api_target.RELEASE.set()
    await asgi.settled()
    run = await _run(asgi, run_id)
    assert run["status"] == "cancelled"
    assert run["progress"]["cases_done"] < run["progress"]["cases_total"]
    for action in ("cancel", "pause", "resume"):
        again = await client.post(f"/api/runs/{run_id}/{action}")
        assert again.status_code == 200
        assert again.json()["status"] == "cancelled"

    done_id = (await client.post("/api/runs", json={"suite": "fast"})).json()["run_id"]
    await _finished_run(asgi, done_id)
    for action in ("cancel", "pause", "resume"):
        answer = await client.post(f"/api/runs/{done_id}/{action}")
        assert answer.status_code == 200
        assert answer.json()["status"] == "succeeded"
    expect_error(await client.post("/api/runs/no-such-run/cancel"), 404, "not_found")
