"""The admin dashboard's routes: the scheduled-score trend, "run evals now", and alerts.

``/admin/ai-quality/...`` keeps the paths a "Drift" tab already calls (see
reference system A); ``/api/alerts`` lists the alert outbox.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, Security

from continuous_eval.adapters.http.auth import bearer_scheme
from continuous_eval.adapters.http.errors import error_responses
from continuous_eval.adapters.http.runs import ApiContext, start_run
from continuous_eval.adapters.http.schemas import (
    NAME_MAX,
    NO_NUL,
    AlertList,
    RunAccepted,
    RunRequest,
    TrendOut,
    alert_out,
    trend_point_out,
)
from continuous_eval.core.models import AlertStatus

TREND_DEFAULT_LIMIT = 100
TREND_MAX_LIMIT = 1000
"""One feature x scorer of daily runs for almost three years in one answer."""


def admin_router(ctx: ApiContext) -> APIRouter:
    """Build the ``/admin/ai-quality`` and ``/api/alerts`` routes over ``ctx``."""
    router = APIRouter(dependencies=[Security(bearer_scheme)])

    @router.get(
        "/admin/ai-quality/drift/eval-trend",
        response_model=TrendOut,
        tags=["admin"],
        responses=error_responses(401, 422, 503),
    )
    def eval_trend(
        suite: Annotated[str | None, Query(max_length=NAME_MAX, pattern=NO_NUL)] = None,
        feature: Annotated[str | None, Query(max_length=NAME_MAX, pattern=NO_NUL)] = None,
        scorer: Annotated[str | None, Query(max_length=NAME_MAX, pattern=NO_NUL)] = None,
        limit: Annotated[int, Query(ge=1, le=TREND_MAX_LIMIT)] = TREND_DEFAULT_LIMIT,
    ) -> TrendOut:
        """Score trend of scheduled runs only, newest first: one item per run x feature x scorer.

        Manual runs are left out: they are experiments, not the baseline the
        regression detector compares against. Compare points only while
        ``fingerprint`` stays the same.
        """
        points = ctx.reader.eval_trend(suite=suite, feature=feature, scorer=scorer, limit=limit)
        return TrendOut(items=[trend_point_out(p) for p in points])

    @router.post(
        "/admin/ai-quality/evals/run",
        status_code=202,
        response_model=RunAccepted,
        tags=["admin"],
        responses=error_responses(401, 409, 413, 422, 503),
    )
    async def run_evals_now(body: RunRequest, response: Response) -> RunAccepted:
        """Start a manual run now (the dashboard's button): 202, or 409 ``gate_busy``.

        The same rules as ``POST /api/runs``: it shares the scheduler's gate,
        so it never overlaps a scheduled run of the suite, and is refused
        rather than queued when the suite is busy.
        """
        run = await start_run(ctx, body)
        response.headers["Location"] = f"/api/runs/{run.id}"
        return RunAccepted(run_id=run.id, status=run.status)

    @router.get(
        "/api/alerts",
        response_model=AlertList,
        tags=["alerts"],
        responses=error_responses(401, 422, 503),
    )
    def list_alerts(
        status: AlertStatus | None = None,
        suite: Annotated[str | None, Query(max_length=NAME_MAX, pattern=NO_NUL)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> AlertList:
        """List alerts of the outbox newest first, optionally by delivery status and suite."""
        alerts = ctx.store.list_alerts(status=status, suite=suite, limit=limit)
        return AlertList(items=[alert_out(a) for a in alerts])

    return router
