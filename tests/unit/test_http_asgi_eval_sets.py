"""Eval sets over the real app in process: create, cases with labels, labels, pages, history."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from continuous_eval.testing import DEFAULT_START
from tests.fixtures.api_suite import expect_error
from tests.fixtures.asgi import InProcessApi


async def _create(api: InProcessApi, name: str = "support", scale: str = "pass_fail") -> int:
    response = await api.client.post("/api/eval-sets", json={"name": name, "scale": scale})
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    assert (made["name"], made["scale"], made["feature"]) == (name, scale, None)
    set_id: int = made["id"]
    return set_id


def _case(n: int, *labels: tuple[str, float]) -> dict[str, Any]:
    return {
        "case_id": f"c{n}",
        "input": {"question": f"q{n}"},
        "output": f"a{n}",
        "labels": [{"author": a, "value": v} for a, v in labels],
    }


async def test_create_list_and_a_taken_name(asgi: InProcessApi) -> None:
    set_id = await _create(asgi)
    await _create(asgi, "another", "1-5")
    taken = await asgi.client.post("/api/eval-sets", json={"name": "support", "scale": "1-5"})
    expect_error(taken, 409, "eval_set_exists")
    listed = (await asgi.client.get("/api/eval-sets")).json()
    assert [s["name"] for s in listed["items"]] == ["another", "support"]
    feature = await asgi.client.post(
        "/api/eval-sets", json={"name": "fed", "scale": "1-5", "feature": "answers"}
    )
    assert feature.json()["feature"] == "answers"
    expect_error(await asgi.client.get("/api/eval-sets/999"), 404, "eval_set_not_found")
    detail = (await asgi.client.get(f"/api/eval-sets/{set_id}")).json()
    assert (detail["labelled_cases"], detail["labels"], detail["authors"]) == (0, 0, {})
    bad = await asgi.client.post("/api/eval-sets", json={"name": "x", "scale": "1-10"})
    expect_error(bad, 422, "validation_error")


async def test_cases_with_labels_then_counts_pages_and_history(asgi: InProcessApi) -> None:
    set_id = await _create(asgi)
    base = f"/api/eval-sets/{set_id}"
    cases = [_case(1, ("ann", 1), ("bob", 0)), _case(2, ("ann", 1)), _case(3, ("ann", 0)), _case(4)]
    put = await asgi.client.post(f"{base}/cases", json={"cases": cases})
    assert put.status_code == 200, put.text
    assert put.json() == {"cases_new": 4, "cases_updated": 0, "labels": 4}

    asgi.clock.advance(seconds=60)
    relabel = await asgi.client.post(
        f"{base}/labels", json={"labels": [{"case_id": "c1", "author": "bob", "value": 1}]}
    )
    assert relabel.status_code == 201, relabel.text
    [made] = relabel.json()["items"]
    assert (made["author"], made["value"], made["source"]) == ("bob", 1.0, "api")

    detail = (await asgi.client.get(base)).json()
    assert detail["labelled_cases"] == 3  # c4 has no label
    assert detail["labels"] == 4
    assert detail["authors"] == {"ann": 3, "bob": 1}
    assert detail["consensus"] == {"fail": 1, "pass": 2}

    first = (await asgi.client.get(f"{base}/cases", params={"limit": 2})).json()
    assert [c["case_id"] for c in first["items"]] == ["c1", "c2"]
    assert first["items"][0]["consensus"] == 1.0
    assert first["items"][0]["input"] == {"question": "q1"}
    assert [x["author"] for x in first["items"][0]["labels"]] == ["ann", "bob"]
    rest = await asgi.client.get(f"{base}/cases", params={"cursor": first["next_cursor"]})
    assert [c["case_id"] for c in rest.json()["items"]] == ["c3"]
    assert rest.json()["next_cursor"] is None

    as_of = (DEFAULT_START + timedelta(seconds=30)).isoformat()
    before = await asgi.client.get(f"{base}/cases", params={"as_of": as_of})
    earlier = {c["case_id"]: c for c in before.json()["items"]}
    assert earlier["c1"]["consensus"] is None  # ann pass, bob fail: a tie, then

    history = (await asgi.client.get(f"{base}/cases/c1/labels")).json()["items"]
    assert [(x["author"], x["value"]) for x in history] == [
        ("ann", 1.0),
        ("bob", 0.0),
        ("bob", 1.0),
    ]
    expect_error(await asgi.client.get(f"{base}/cases/c4/labels"), 404, "case_not_found")
    bad_cursor = await asgi.client.get(f"{base}/cases", params={"cursor": "nonsense"})
    expect_error(bad_cursor, 422, "validation_error")


async def test_a_bad_item_stores_nothing(asgi: InProcessApi) -> None:
    set_id = await _create(asgi, "ratings", "1-5")
    base = f"/api/eval-sets/{set_id}"
    cases = [_case(1, ("ann", 4)), _case(2, ("ann", 6))]
    error = expect_error(
        await asgi.client.post(f"{base}/cases", json={"cases": cases}), 422, "label_off_scale"
    )
    assert error["details"] == {"index": 1, "case_id": "c2", "scale": "1-5"}
    assert (await asgi.client.get(base)).json()["labelled_cases"] == 0

    await asgi.client.post(f"{base}/cases", json={"cases": [_case(1)]})
    labels = [
        {"case_id": "c1", "author": "ann", "value": 3},
        {"case_id": "c9", "author": "ann", "value": 3},
    ]
    unknown = await asgi.client.post(f"{base}/labels", json={"labels": labels})
    expect_error(unknown, 422, "unknown_case")
    off = await asgi.client.post(
        f"{base}/labels", json={"labels": [{"case_id": "c1", "author": "ann", "value": 0}]}
    )
    expect_error(off, 422, "label_off_scale")
    assert (await asgi.client.get(base)).json()["labels"] == 0
    missing = await asgi.client.post("/api/eval-sets/77/labels", json={"labels": labels})
    expect_error(missing, 404, "eval_set_not_found")


async def test_eval_sets_need_the_token(asgi: InProcessApi) -> None:
    async with asgi.client_with({}) as anonymous:
        expect_error(await anonymous.get("/api/eval-sets"), 401, "unauthorized")
