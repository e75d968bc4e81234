"""``GET /api/runs/{run_id}/decisions`` over real HTTP, on SQLite and Postgres.

The history is written the way the daemon writes it: each scheduled run is
decided against the stored ones (``decide_finished_run``) and its decisions
are stored with its final status. ``fill_history`` is shared with the CLI's
end-to-end tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from continuous_eval.adapters.http.decision_schemas import DecisionOut
from continuous_eval.core.decisions import Decision
from tests.fixtures.decisions import CASES, FALLEN, KEYS, add_run, fill_history
from tests.integration.api_server import ApiServer, make_settings, running, suite_file


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[ApiServer]:
    with running(ApiServer(make_settings(db_url), suite_file(tmp_path))) as srv:
        yield srv


@pytest.fixture
def filled(server: ApiServer) -> list[str]:
    assert server.store is not None
    return fill_history(server.store, "fast", "sched")


def _by_key(body: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["feature"], d["scorer"]): d for d in body["items"]}


def test_a_regressed_run_answers_every_number_and_every_fallen_case(
    server: ApiServer, filled: list[str]
) -> None:
    with server.client() as client:
        response = client.get(f"/api/runs/{filled[5]}/decisions")
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in ("run_id", "suite", "run_type", "decided", "candidate")} == {
        "run_id": "sched-06",
        "suite": "fast",
        "run_type": "scheduled",
        "decided": True,
        "candidate": False,
    }
    decisions = _by_key(body)
    assert set(decisions) == set(KEYS)
    d = decisions[("answers", "regex")]
    assert d["kind"] == "regressed"
    assert d["rule"] == "drop"
    assert d["transition"] == "opened"
    assert d["alerting"] is True
    assert d["known_good"] is False
    assert d["baseline"] == pytest.approx(1.0)
    assert d["current"] == pytest.approx(1 - FALLEN / CASES)
    assert d["mean_difference"] == pytest.approx(-FALLEN / CASES)
    assert d["ci_low"] < d["mean_difference"] < d["ci_high"]
    assert 0 < d["p_value"] <= d["p_adjusted"] <= 0.05
    assert d["n_paired"] == CASES
    assert d["baseline_run_ids"] == ["sched-05", "sched-04", "sched-03", "sched-02", "sched-01"]
    assert d["fallen"] == [
        {"case_id": f"c{i:02d}", "before": 1.0, "after": 0.0} for i in range(FALLEN)
    ]  # the complete list, worst first (ties by case id)
    assert d["anchor"] is None
    assert d["incident"] == {
        "opened_run_id": "sched-06",
        "kind": "regression",
        "worst_difference": pytest.approx(-FALLEN / CASES),
        "baseline_run_ids": d["baseline_run_ids"],
    }
    assert "fell 0.400" in d["message"]


def test_later_runs_carry_the_incident_then_recover(server: ApiServer, filled: list[str]) -> None:
    with server.client() as client:
        still = _by_key(client.get(f"/api/runs/{filled[6]}/decisions").json())
        back = _by_key(client.get(f"/api/runs/{filled[7]}/decisions").json())
        first = _by_key(client.get(f"/api/runs/{filled[0]}/decisions").json())
    for key in KEYS:
        assert still[key]["kind"] == "still_regressed"
        assert still[key]["transition"] is None
        assert still[key]["alerting"] is False
        assert still[key]["incident"]["opened_run_id"] == "sched-06"
        assert len(still[key]["fallen"]) == FALLEN
        assert back[key]["kind"] == "recovered"
        assert back[key]["transition"] == "recovered"
        assert back[key]["incident"] is None
        assert first[key]["kind"] == "no_baseline"
        assert first[key]["baseline_run_ids"] == []


def test_a_manual_run_is_a_candidate_and_a_run_without_decisions_is_undecided(
    server: ApiServer, filled: list[str]
) -> None:
    assert server.store is not None
    add_run(server.store, "fast", "manual-1", FALLEN, run_type="manual")
    add_run(server.store, "fast", "undecided-1", 0, run_type="manual", decide=False)
    with server.client() as client:
        manual = client.get("/api/runs/manual-1/decisions").json()
        undecided = client.get("/api/runs/undecided-1/decisions")
    assert manual["candidate"] is True
    assert manual["decided"] is True
    for d in manual["items"]:
        assert d["kind"] == "regressed"
        assert d["transition"] is None  # a candidate never opens an incident
        assert d["incident"] is None
        assert d["alerting"] is False
    assert undecided.status_code == 200
    assert undecided.json() == {
        "run_id": "undecided-1",
        "suite": "fast",
        "run_type": "manual",
        "decided": False,
        "candidate": True,
        "items": [],
    }


def test_an_unknown_run_is_404_and_no_token_is_401(server: ApiServer) -> None:
    with server.client() as client:
        missing = client.get("/api/runs/no-such-run/decisions")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    with server.client(headers={}) as anonymous:
        refused = anonymous.get("/api/runs/no-such-run/decisions")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert refused.headers["www-authenticate"] == "Bearer"


def test_the_route_is_documented(server: ApiServer) -> None:
    with server.client() as client:
        document = client.get("/openapi.json").json()
    operation = document["paths"]["/api/runs/{run_id}/decisions"]["get"]
    assert operation["tags"] == ["runs"]
    assert operation["security"] == [{"HTTPBearer": []}]
    assert set(operation["responses"]) == {"200", "401", "404", "422", "500", "503"}
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/RunDecisions"}
    schemas = document["components"]["schemas"]
    assert {"DecisionOut", "CaseDropOut", "AnchorCheckOut", "IncidentOut"} <= set(schemas)
    assert set(schemas["DecisionOut"]["properties"]["kind"]["$ref"].split("/")[-1:]) == {
        "DecisionKind"
    }


def test_the_schema_carries_every_field_of_the_decision() -> None:
    """``from_attributes`` reads the dataclass: a field added there must be added here too."""
    fields = {f.name for f in dataclasses.fields(Decision)}
    assert set(DecisionOut.model_fields) == fields | {"alerting"}
