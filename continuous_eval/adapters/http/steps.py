"""``GET /api/runs/{run_id}/cases/{case_id}/steps``: the steps an agent took on one case.

Only the route and its response model belong here. The steps are those the
runner stored as an agent target streamed them (``core.trajectory.Step``:
tool calls, tool results, messages, in order); while the case is still
answering, the route returns the steps so far. Live, they also reach the
run's event stream as ``step`` events.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Security
from pydantic import BaseModel

from continuous_eval.adapters.http.auth import bearer_scheme
from continuous_eval.adapters.http.errors import ApiError, error_responses
from continuous_eval.adapters.http.runs import ApiContext, RunId
from continuous_eval.adapters.http.schemas import NAME_MAX, NO_NUL
from continuous_eval.core.trajectory import Step


class CaseStepsOut(BaseModel):
    """One case's steps, in the order the agent took them."""

    run_id: str
    feature: str
    case_id: str
    steps: list[Step]


def steps_router(ctx: ApiContext) -> APIRouter:
    """Build the case-steps route over ``ctx``."""
    router = APIRouter(prefix="/api", dependencies=[Security(bearer_scheme)])

    @router.get(
        "/runs/{run_id}/cases/{case_id}/steps",
        response_model=CaseStepsOut,
        tags=["runs"],
        responses=error_responses(401, 404, 422, 503),
    )
    def case_steps(
        run_id: RunId,
        case_id: Annotated[str, Path(max_length=200, pattern=NO_NUL)],
        feature: Annotated[str | None, Query(max_length=NAME_MAX, pattern=NO_NUL)] = None,
    ) -> CaseStepsOut:
        """Read the steps an agent took on one case (``feature`` may be left out when the
        run has one feature)."""
        run = ctx.store.get_run(run_id)
        if feature is None:
            if len(run.features) != 1:
                raise ApiError(
                    422,
                    "feature_required",
                    "the run has several features: give the case's 'feature'",
                    {"features": list(run.features)},
                )
            feature = run.features[0]
        steps = ctx.store.case_steps(run_id, feature, case_id)
        return CaseStepsOut(run_id=run_id, feature=feature, case_id=case_id, steps=steps)

    return router
