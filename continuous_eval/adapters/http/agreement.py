"""The judges' agreement with people over HTTP: one run's figures, and one judge's trend.

``GET /api/runs/{run_id}/agreement`` reads what a run measured for every
calibrated judge (404 for an unknown run, an empty list for a run without
calibration); ``GET /api/agreement`` the trend of one judge of one feature,
newest first. Figures that were undefined are null, with the reason in
``reasons``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, Security
from pydantic import AwareDatetime, BaseModel, Field

from continuous_eval.adapters.http.auth import bearer_scheme
from continuous_eval.adapters.http.errors import error_responses
from continuous_eval.adapters.http.runs import RunId
from continuous_eval.adapters.http.schemas import NAME_MAX, NO_NUL
from continuous_eval.core.agreement import RunAgreement
from continuous_eval.ports import RunStore
from continuous_eval.ports.agreement import AgreementStore

Name = Annotated[str, Query(min_length=1, max_length=NAME_MAX, pattern=NO_NUL)]


@dataclass(frozen=True)
class AgreementContext:
    """What the agreement routes use, injected by ``create_app``."""

    store: RunStore
    agreements: AgreementStore


class ConfusionOut(BaseModel):
    """Rows are people's labels, columns the judge's verdicts, both in ``categories`` order."""

    categories: list[float]
    matrix: list[list[int]]


class ContradictionOut(BaseModel):
    """A case the judge and people disagree on."""

    case_id: str
    judge: float = Field(description="The judge's verdict on the label's scale (0/1 or 1-5).")
    judge_score: float = Field(description="The judge's raw 1-5 score.")
    label: float = Field(description="People's consensus label.")
    gap: float


class AgreementOut(BaseModel):
    """One judge's agreement with an eval set's labels in one run."""

    run_id: str
    suite: str
    feature: str
    scorer: str
    eval_set: str
    scale: str
    n: int = Field(description="Labelled cases compared (people agreed on a label).")
    split: int = Field(description="Cases left out because people split.")
    exact: float | None
    kappa: float | None = Field(description="Cohen's kappa; quadratic-weighted on 1-5 sets.")
    spearman: float | None
    confusion: ConfusionOut
    contradictions: list[ContradictionOut] = Field(description="Worst first, at most 20.")
    reasons: dict[str, str] = Field(description="Why a figure is null, by figure.")
    created_at: AwareDatetime | None


class AgreementList(BaseModel):
    """Agreement rows: a run's judges, or one judge's trend newest first."""

    items: list[AgreementOut]


def agreement_out(row: RunAgreement) -> AgreementOut:
    """The API's view of a stored row."""
    a = row.agreement
    return AgreementOut(
        run_id=row.run_id,
        suite=row.suite,
        feature=row.feature,
        scorer=row.scorer,
        eval_set=row.eval_set,
        scale=a.scale,
        n=a.n,
        split=a.split,
        exact=a.exact,
        kappa=a.kappa,
        spearman=a.spearman,
        confusion=ConfusionOut(
            categories=list(a.confusion.categories),
            matrix=[list(r) for r in a.confusion.matrix],
        ),
        contradictions=[
            ContradictionOut(
                case_id=c.case_id,
                judge=c.judge,
                judge_score=c.judge_score,
                label=c.label,
                gap=c.gap,
            )
            for c in a.contradictions
        ],
        reasons=dict(a.reasons),
        created_at=row.created_at,
    )


def agreement_router(ctx: AgreementContext) -> APIRouter:
    """The agreement routes."""
    router = APIRouter(prefix="/api", dependencies=[Security(bearer_scheme)])

    @router.get(
        "/runs/{run_id}/agreement",
        response_model=AgreementList,
        tags=["agreement"],
        responses=error_responses(401, 404, 422, 503),
    )
    def run_agreement(run_id: RunId) -> AgreementList:
        """Read how far each calibrated judge of a run agreed with people's labels."""
        ctx.store.get_run(run_id)  # RunNotFound: 404 not_found
        return AgreementList(
            items=[agreement_out(r) for r in ctx.agreements.run_agreements(run_id)]
        )

    @router.get(
        "/agreement",
        response_model=AgreementList,
        tags=["agreement"],
        responses=error_responses(401, 422, 503),
    )
    def agreement_trend(
        suite: Name,
        feature: Name,
        scorer: Name,
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
    ) -> AgreementList:
        """Read one judge's agreement with people over its newest runs, newest first."""
        rows = ctx.agreements.history(suite, feature, scorer, limit)
        return AgreementList(items=[agreement_out(r) for r in rows])

    return router
