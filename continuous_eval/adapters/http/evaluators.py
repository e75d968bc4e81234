"""Learned evaluators over HTTP: list, read, promote, and start a generation job.

- ``GET /api/evaluators`` (``?name=``): every version, without code or prompt;
- ``GET /api/evaluators/{name}/{version}``: one version whole;
- ``POST /api/evaluators/{name}/{version}/promote``: 409 ``below_floor`` when
  its held-out accuracy is under ``CONTINUOUS_EVAL_EVALUATOR_MIN_ACCURACY``;
- ``POST /api/eval-sets/{id}/generate``: 202 with the queued job and
  ``Location: /api/jobs/{id}``; the job (``GENERATE_JOB_KIND``) runs
  ``service.evaluator_generation`` in ``serve``.

The job store is not this module's: ``create_app`` passes an ``enqueue``
callable (kind, params) -> the job as JSON with its ``id``. Stores block, so
every call runs in the thread pool.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, Security
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from starlette.concurrency import run_in_threadpool

from continuous_eval.adapters.db.evaluators import metrics_json
from continuous_eval.adapters.http.auth import bearer_scheme
from continuous_eval.adapters.http.errors import ApiError, error_responses
from continuous_eval.core.evaluator_prompt import GENERATE_JOB_KIND
from continuous_eval.core.evaluators import LearnedEvaluator
from continuous_eval.ports.evaluators import EvaluatorStore
from continuous_eval.ports.labels import EvalSetStore

Enqueue = Callable[[str, Mapping[str, JsonValue]], Mapping[str, Any]]
"""Queue a job of a kind with params; return the job as the jobs API shows it (with ``id``)."""

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
"""An evaluator's name, as ``core.evaluators.EVALUATOR_REF`` spells it."""

EvaluatorName = Annotated[str, Path(pattern=NAME_PATTERN)]
Version = Annotated[int, Path(ge=1)]


@dataclass(frozen=True)
class EvaluatorsContext:
    """What the evaluator routes use, injected by ``create_app``."""

    store: EvaluatorStore
    floor: float
    """``settings.evaluator_min_accuracy``."""
    eval_sets: EvalSetStore | None = None
    enqueue: Enqueue | None = None
    """None: no job store wired, and ``generate`` answers 503 ``jobs_unavailable``."""


class EvaluatorSummary(BaseModel):
    """A version in a list: who made it and how well it agrees with people."""

    name: str
    version: int
    ref: str
    eval_set: str
    model: str
    job_id: int | None
    created_at: datetime
    promoted_at: datetime | None
    promoted: bool
    metrics: dict[str, JsonValue]


class EvaluatorOut(EvaluatorSummary):
    """A version whole: with its code, prompt and details."""

    code: str
    prompt: str
    details: dict[str, JsonValue]


class EvaluatorList(BaseModel):
    """Every version, by name then version."""

    items: list[EvaluatorSummary]


class GenerateIn(BaseModel):
    """The body of ``POST /api/eval-sets/{id}/generate`` (all optional)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, pattern=NAME_PATTERN)
    """The evaluator's name; the eval set's name when omitted."""
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    """The split's seed: the same seed makes the same training and held-out cases."""
    model: str | None = Field(default=None, min_length=1, max_length=200)
    """The model that writes the code; ``CONTINUOUS_EVAL_EVALUATOR_MODEL`` when omitted."""


def summary_out(made: LearnedEvaluator) -> EvaluatorSummary:
    """The list shape of a version."""
    new = made.evaluator
    return EvaluatorSummary(
        name=new.name,
        version=made.version,
        ref=made.ref,
        eval_set=new.eval_set,
        model=new.model,
        job_id=new.job_id,
        created_at=made.created_at,
        promoted_at=made.promoted_at,
        promoted=made.promoted,
        metrics=metrics_json(new.metrics),
    )


def evaluator_out(made: LearnedEvaluator) -> EvaluatorOut:
    """The whole shape of a version."""
    new = made.evaluator
    return EvaluatorOut(
        **summary_out(made).model_dump(),
        code=new.code,
        prompt=new.prompt,
        details=dict(new.details),
    )


def _not_found(name: str, version: int) -> ApiError:
    return ApiError(
        404,
        "evaluator_not_found",
        f"no evaluator {name}@{version}",
        {"name": name, "version": version},
    )


def evaluators_router(ctx: EvaluatorsContext) -> APIRouter:
    """Build the ``/api/evaluators`` routes and ``/api/eval-sets/{id}/generate`` over ``ctx``."""
    router = APIRouter(prefix="/api", dependencies=[Security(bearer_scheme)])

    @router.get("/evaluators", tags=["evaluators"], responses=error_responses(401, 422, 503))
    async def list_evaluators(
        name: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    ) -> EvaluatorList:
        """Every stored version (of one name), by name then version."""
        found = await run_in_threadpool(ctx.store.list_evaluators, name)
        return EvaluatorList(items=[summary_out(e) for e in found])

    @router.get(
        "/evaluators/{name}/{version}",
        tags=["evaluators"],
        responses=error_responses(401, 404, 422, 503),
    )
    async def get_evaluator(name: EvaluatorName, version: Version) -> EvaluatorOut:
        """One version with its code, the prompt that produced it and its held-out metrics."""
        found = await run_in_threadpool(ctx.store.evaluator, name, version)
        if found is None:
            raise _not_found(name, version)
        return evaluator_out(found)

    @router.post(
        "/evaluators/{name}/{version}/promote",
        tags=["evaluators"],
        responses=error_responses(401, 404, 409, 422, 503),
    )
    async def promote(name: EvaluatorName, version: Version) -> EvaluatorOut:
        """Let suites run this version; 409 ``below_floor`` under the accuracy floor."""
        return evaluator_out(await run_in_threadpool(_promote, ctx, name, version))

    @router.post(
        "/eval-sets/{eval_set_id}/generate",
        tags=["evaluators"],
        status_code=202,
        responses=error_responses(401, 404, 422, 503),
    )
    async def generate(
        eval_set_id: Annotated[int, Path(ge=1)], body: GenerateIn, response: Response
    ) -> dict[str, Any]:
        """Queue a generation from the eval set's labelled cases; 202 with the job."""
        job = await run_in_threadpool(_queue_generation, ctx, eval_set_id, body)
        response.headers["Location"] = f"/api/jobs/{job['id']}"
        return job

    return router


def _promote(ctx: EvaluatorsContext, name: str, version: int) -> LearnedEvaluator:
    try:
        return ctx.store.promote(name, version, ctx.floor)
    except LookupError:
        raise _not_found(name, version) from None
    except ValueError as exc:
        details = {"name": name, "version": version, "floor": ctx.floor}
        raise ApiError(409, "below_floor", str(exc), details) from None


def _queue_generation(ctx: EvaluatorsContext, eval_set_id: int, body: GenerateIn) -> dict[str, Any]:
    if ctx.enqueue is None or ctx.eval_sets is None:
        raise ApiError(503, "jobs_unavailable", "this server runs no jobs")
    if ctx.eval_sets.eval_set_by_id(eval_set_id) is None:
        details = {"eval_set_id": eval_set_id}
        raise ApiError(404, "eval_set_not_found", f"no eval set {eval_set_id}", details)
    params: dict[str, JsonValue] = {"eval_set": eval_set_id, "seed": body.seed}
    if body.name is not None:
        params["name"] = body.name
    if body.model is not None:
        params["model"] = body.model
    return dict(ctx.enqueue(GENERATE_JOB_KIND, params))
