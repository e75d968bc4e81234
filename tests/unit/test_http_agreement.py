"""``GET /api/runs/{run_id}/agreement`` and ``GET /api/agreement`` over the in-memory stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from continuous_eval.core.agreement import JudgedCase, RunAgreement, measure
from continuous_eval.testing import FakeClock, InMemoryRunStore
from continuous_eval.testing.agreement import InMemoryAgreementStore
from continuous_eval.testing.builders import new_run
from tests.fixtures.api_suite import TOKEN
from tests.fixtures.asgi import document_app

HEADERS = {b"Authorization": f"Bearer {TOKEN}".encode()}
"""The token as bytes: it is not ASCII on purpose (``api_suite``)."""


def row(run_id: str, wrong: int) -> RunAgreement:
    cases = [JudgedCase(f"c{i}", 1.0 if i < wrong else 5.0, i >= wrong, 1.0) for i in range(9)]
    cases.append(JudgedCase("n", 1.0, False, 0.0))
    return RunAgreement(run_id, "support", "refunds", "judge", "gold", measure(cases, "pass_fail"))


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    clock = FakeClock()
    store = InMemoryRunStore(clock)
    agreements = InMemoryAgreementStore(clock)
    for i in range(3):
        store.create_run(new_run(f"r{i}"))
        agreements.put_agreements([row(f"r{i}", wrong=i)])
        clock.advance(timedelta(hours=1))
    store.create_run(new_run("uncalibrated"))
    app = document_app(store=store, agreements=agreements)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=HEADERS) as c:
        yield c


async def test_a_runs_agreement_is_served_without_nan(api: httpx.AsyncClient) -> None:
    got = await api.get("/api/runs/r1/agreement")
    assert got.status_code == 200
    (item,) = got.json()["items"]
    # p_o = 0.9; p_e = 0.9 * 0.8 + 0.1 * 0.2 = 0.74; kappa = 0.16 / 0.26.
    assert item["kappa"] == pytest.approx(0.16 / 0.26)
    assert item["confusion"] == {"categories": [0.0, 1.0], "matrix": [[1, 0], [1, 8]]}
    assert item["contradictions"][0]["case_id"] == "c0"
    assert item["n"] == 10


async def test_a_perfect_judge_and_a_run_without_calibration(api: httpx.AsyncClient) -> None:
    body = (await api.get("/api/runs/r0/agreement")).json()
    assert body["items"][0]["kappa"] == 1.0
    assert (await api.get("/api/runs/uncalibrated/agreement")).json() == {"items": []}


async def test_an_unknown_run_is_404_and_the_trend_is_newest_first(
    api: httpx.AsyncClient,
) -> None:
    missing = await api.get("/api/runs/nope/agreement")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    trend = await api.get(
        "/api/agreement", params={"suite": "support", "feature": "refunds", "scorer": "judge"}
    )
    assert [i["run_id"] for i in trend.json()["items"]] == ["r2", "r1", "r0"]
    limited = await api.get(
        "/api/agreement",
        params={"suite": "support", "feature": "refunds", "scorer": "judge", "limit": 1},
    )
    assert [i["run_id"] for i in limited.json()["items"]] == ["r2"]
    bad = await api.get("/api/agreement", params={"suite": "support", "limit": 0})
    assert bad.status_code == 422
