"""Reading a case's agent steps through the admin API, in process."""

from __future__ import annotations

from continuous_eval.core.models import NewRun, RunStatus
from continuous_eval.core.trajectory import Step
from tests.fixtures.api_suite import expect_error
from tests.fixtures.asgi import InProcessApi

CALL = Step(kind="tool_call", name="lookup", arguments={"order": 7}, id="t1")
RESULT = Step(kind="tool_result", id="t1", content={"status": "delivered"})


def _run(asgi: InProcessApi, run_id: str, features: tuple[str, ...]) -> None:
    new = NewRun(
        id=run_id,
        suite="fast",
        run_type="manual",
        features=features,
        cases_total=1,
        total=1,
        fingerprint="f" * 16,
    )
    asgi.store.create_run(new, status=RunStatus.SKIPPED)


async def test_a_case_s_steps_in_order(asgi: InProcessApi) -> None:
    _run(asgi, "one", ("answers",))
    asgi.store.save_case_steps("one", "answers", "c1", [CALL, RESULT])

    response = await asgi.client.get("/api/runs/one/cases/c1/steps")

    assert response.status_code == 200
    assert response.json() == {
        "run_id": "one",
        "feature": "answers",
        "case_id": "c1",
        "steps": [
            {
                "kind": "tool_call",
                "name": "lookup",
                "arguments": {"order": 7},
                "id": "t1",
                "content": None,
                "role": None,
            },
            {
                "kind": "tool_result",
                "name": None,
                "arguments": None,
                "id": "t1",
                "content": {"status": "delivered"},
                "role": None,
            },
        ],
    }
    empty = await asgi.client.get("/api/runs/one/cases/c2/steps", params={"feature": "answers"})
    assert empty.json()["steps"] == []


async def test_several_features_need_the_feature_and_unknown_runs_are_404(
    asgi: InProcessApi,
) -> None:
    _run(asgi, "two", ("answers", "refunds"))
    asgi.store.save_case_steps("two", "refunds", "c1", [CALL])

    error = expect_error(
        await asgi.client.get("/api/runs/two/cases/c1/steps"), 422, "feature_required"
    )
    assert error["details"] == {"features": ["answers", "refunds"]}
    found = await asgi.client.get("/api/runs/two/cases/c1/steps", params={"feature": "refunds"})
    assert [s["name"] for s in found.json()["steps"]] == ["lookup"]
    expect_error(await asgi.client.get("/api/runs/nope/cases/c1/steps"), 404, "not_found")
    unauthorized = await asgi.client_with({}).get("/api/runs/two/cases/c1/steps")
    assert unauthorized.status_code == 401
