"""The JSON documents of runs, results, trend points and decisions, in the admin API's shapes.

The CLI's ``--json`` prints the API's bodies field for field, so a script
reads either the same way. The shapes stay the API's (``adapters.http``: its
OpenAPI contract, checked by the API's tests); this module is how the
command line gets them, as plain JSON values, without reaching into the
HTTP adapter itself. It imports pydantic, not the web stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from continuous_eval.adapters.http.decision_schemas import decision_out, run_decisions
from continuous_eval.adapters.http.schemas import result_out, run_detail, run_out, trend_point_out
from continuous_eval.core.decisions import Decision
from continuous_eval.core.models import ResultRecord, RunRecord, ScoreAggregate
from continuous_eval.core.reads import TrendPoint


def run_json(run: RunRecord) -> dict[str, Any]:
    """A run as ``GET /api/runs`` lists it."""
    return run_out(run).model_dump(mode="json")


def run_detail_json(run: RunRecord, aggregates: Sequence[ScoreAggregate]) -> dict[str, Any]:
    """A run with its scores, as ``GET /api/runs/{id}`` answers."""
    return run_detail(run, list(aggregates)).model_dump(mode="json")


def result_json(result: ResultRecord) -> dict[str, Any]:
    """One case x scorer result, as ``GET /api/runs/{id}/results`` pages it."""
    return result_out(result).model_dump(mode="json")


def trend_point_json(point: TrendPoint) -> dict[str, Any]:
    """One row of the score trend, as ``GET /admin/ai-quality/drift/eval-trend`` answers."""
    return trend_point_out(point).model_dump(mode="json")


def decision_json(decision: Decision) -> dict[str, Any]:
    """One key's decision, as an item of ``GET /api/runs/{id}/decisions``."""
    return decision_out(decision).model_dump(mode="json")


def run_decisions_json(run: RunRecord, decisions: Sequence[Decision]) -> dict[str, Any]:
    """A run's stored decisions, as ``GET /api/runs/{id}/decisions`` answers."""
    return run_decisions(run, list(decisions)).model_dump(mode="json")
