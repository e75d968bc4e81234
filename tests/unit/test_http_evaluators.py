"""The learned-evaluator routes in process, over the in-memory stores and a recording enqueue."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import JsonValue

from continuous_eval.adapters.http.errors import install_error_handlers
from continuous_eval.adapters.http.evaluators import EvaluatorsContext, evaluators_router
from continuous_eval.core.evaluators import EvaluatorMetrics, NewEvaluator
from continuous_eval.testing import FakeClock
from continuous_eval.testing.evaluators import InMemoryEvaluatorStore
from continuous_eval.testing.generation import fill_yes_no_set
from continuous_eval.testing.labels import InMemoryEvalSetStore


def version(accuracy: float) -> NewEvaluator:
    metrics = EvaluatorMetrics(
        accuracy=accuracy, precision=1.0, recall=0.5, train_cases=14, test_cases=6
    )
    return NewEvaluator(
        "tone", "answers", "def score(output, case):\n    return 1\n", "m", "p", metrics
    )


class Queue:
    def __init__(self) -> None:
        self.jobs: list[tuple[str, Mapping[str, JsonValue]]] = []

    def __call__(self, kind: str, params: Mapping[str, JsonValue]) -> dict[str, Any]:
        self.jobs.append((kind, params))
        return {"id": len(self.jobs), "kind": kind, "status": "queued", "params": dict(params)}


class Api:
    def __init__(self, with_jobs: bool = True) -> None:
        clock = FakeClock()
        self.store = InMemoryEvaluatorStore(clock)
        self.eval_sets = InMemoryEvalSetStore(clock)
        self.queue = Queue()
        app = FastAPI()
        install_error_handlers(app)
        ctx = EvaluatorsContext(
            self.store,
            floor=0.8,
            eval_sets=self.eval_sets if with_jobs else None,
            enqueue=self.queue if with_jobs else None,
        )
        app.include_router(evaluators_router(ctx))
        self.app = app


@pytest.fixture
async def api() -> AsyncIterator[tuple[Api, httpx.AsyncClient]]:
    built = Api()
    transport = httpx.ASGITransport(app=built.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield built, client


async def test_list_show_and_promote(api: tuple[Api, httpx.AsyncClient]) -> None:
    built, client = api
    built.store.add_evaluator(version(0.5))
    built.store.add_evaluator(version(0.9))
    listed = (await client.get("/api/evaluators")).json()["items"]
    assert [(i["ref"], i["metrics"]["accuracy"], i["promoted"]) for i in listed] == [
        ("tone@1", 0.5, False),
        ("tone@2", 0.9, False),
    ]
    assert "code" not in listed[0]
    assert (await client.get("/api/evaluators", params={"name": "other"})).json() == {"items": []}
    one = (await client.get("/api/evaluators/tone/2")).json()
    assert one["code"].startswith("def score")
    assert one["metrics"]["recall"] == 0.5

    refused = await client.post("/api/evaluators/tone/1/promote")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "below_floor"
    assert "under the floor 0.800" in error["message"]
    assert error["details"] == {"name": "tone", "version": 1, "floor": 0.8}

    promoted = await client.post("/api/evaluators/tone/2/promote")
    assert promoted.status_code == 200
    assert promoted.json()["promoted"] is True


async def test_unknown_versions_are_404_and_bad_names_422(
    api: tuple[Api, httpx.AsyncClient],
) -> None:
    _, client = api
    missing = await client.get("/api/evaluators/tone/3")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "evaluator_not_found"
    promote_missing = await client.post("/api/evaluators/tone/3/promote")
    assert promote_missing.status_code == 404
    assert (await client.get("/api/evaluators/tone/0")).status_code == 422
    assert (await client.get("/api/evaluators/-x/1")).status_code == 422


async def test_generate_queues_a_job_and_answers_202(api: tuple[Api, httpx.AsyncClient]) -> None:
    built, client = api
    eval_set = fill_yes_no_set(built.eval_sets)
    answer = await client.post(
        f"/api/eval-sets/{eval_set.id}/generate", json={"name": "says-yes", "seed": 4}
    )
    assert answer.status_code == 202
    assert answer.headers["location"] == "/api/jobs/1"
    assert answer.json()["status"] == "queued"
    assert built.queue.jobs == [
        ("generate_evaluator", {"eval_set": eval_set.id, "seed": 4, "name": "says-yes"})
    ]
    missing = await client.post("/api/eval-sets/99/generate", json={})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "eval_set_not_found"
    bad = await client.post(f"/api/eval-sets/{eval_set.id}/generate", json={"name": "a b"})
    assert bad.status_code == 422
    extra = await client.post(f"/api/eval-sets/{eval_set.id}/generate", json={"code": "x"})
    assert extra.status_code == 422
    assert len(built.queue.jobs) == 1


async def test_generate_without_a_job_store_is_503() -> None:
    built = Api(with_jobs=False)
    transport = httpx.ASGITransport(app=built.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.post("/api/eval-sets/1/generate", json={})
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "jobs_unavailable"
