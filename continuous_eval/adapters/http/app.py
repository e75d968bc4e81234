"""The FastAPI app served by ``continuous-eval serve``: health, metrics and the admin API.

Liveness (``/healthz``) answers while the event loop does: the database
being down must not get the process restarted, since it recovers by itself.
Readiness (``/readyz``) answers 503 while the database cannot be used, so a
load balancer sends admin traffic elsewhere. Both are public; everything
else needs a bearer token (``/metrics`` too, unless ``metrics_public``).

This module only assembles: the routes live in ``runs`` and ``admin``, auth
in ``auth``, the request guard in ``middleware``, error shapes in ``errors``,
live progress in ``events``. Everything the app uses is passed to
``create_app``; nothing is read from the environment or a global.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Response, Security
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from continuous_eval import __version__
from continuous_eval.adapters.clock import SystemClock
from continuous_eval.adapters.http.admin import admin_router
from continuous_eval.adapters.http.agreement import AgreementContext, agreement_router
from continuous_eval.adapters.http.auth import TokenAuth, bearer_scheme, is_loopback
from continuous_eval.adapters.http.dashboard.gate import DashboardGate
from continuous_eval.adapters.http.dashboard.pages import DashboardContext, dashboard_router
from continuous_eval.adapters.http.dashboard.sessions import Sessions
from continuous_eval.adapters.http.errors import error_responses, install_error_handlers
from continuous_eval.adapters.http.eval_sets import eval_sets_router
from continuous_eval.adapters.http.evaluators import EvaluatorsContext, evaluators_router
from continuous_eval.adapters.http.events import EventStreams
from continuous_eval.adapters.http.jobs import JobsContext, jobs_router
from continuous_eval.adapters.http.middleware import RequestGuard
from continuous_eval.adapters.http.runs import ApiContext, runs_router
from continuous_eval.adapters.http.schemas import HealthOut, ReadyOut
from continuous_eval.adapters.http.steps import steps_router
from continuous_eval.adapters.http.traces import INGEST_ROUTES, TracesContext, traces_router
from continuous_eval.adapters.ingest import Ingestor
from continuous_eval.adapters.ingest_metrics import IngestMetrics
from continuous_eval.ports import Clock, RunLauncher, RunReader, RunStore, SuiteSchedule
from continuous_eval.ports.agreement import AgreementStore
from continuous_eval.ports.interactions import InteractionStore
from continuous_eval.ports.jobs import JobStore
from continuous_eval.ports.labels import EvalSetStore
from continuous_eval.settings import Settings

log = logging.getLogger(__name__)

PUBLIC_PATHS = ("/healthz", "/readyz")
"""Served without a token: probes must work before anyone has one."""

DESCRIPTION = """\
Runs LLM eval suites on a schedule and on demand, and shows their results.

**Auth**: every route except `/healthz` and `/readyz` (and `/metrics` when the
operator made it public) needs `Authorization: Bearer <token>`, a token from
`CONTINUOUS_EVAL_API_TOKENS`. The scheme is matched case-sensitively: `Bearer`.
A token from `CONTINUOUS_EVAL_INGEST_TOKENS` may only send traces
(`POST /v1/traces`, `POST /api/traces`).

**Errors** are JSON `{"error": {"code", "message", "details", "request_id"}}`;
branch on `code`. Every response carries `X-Request-ID` (yours, if you sent a
sane one).
"""


def create_app(
    *,
    settings: Settings,
    readiness: Callable[[], str | None],
    registry: CollectorRegistry,
    daemon: RunLauncher,
    store: RunStore,
    reader: RunReader,
    suites: Mapping[str, Sequence[str]],
    status: Callable[[], dict[str, object]] | None = None,
    streams: EventStreams | None = None,
    stopping: Callable[[], bool] | None = None,
    schedules: Mapping[str, SuiteSchedule] | None = None,
    dashboard: bool = True,
    interactions: InteractionStore | None = None,
    evaluators: EvaluatorsContext | None = None,
    jobs: JobStore | None = None,
    jobs_clock: Clock | None = None,
    eval_sets: EvalSetStore | None = None,
    agreements: AgreementStore | None = None,
) -> FastAPI:
    """Build the app.

    Args:
        settings: Read for ``api_tokens``, ``metrics_public``,
            ``max_request_body_bytes`` and ``http_host`` (with no token
            configured, requests go without one only when the app listens on
            a loopback address; otherwise every protected route answers 401).
        readiness: Returns None when ready, or the reason it is not (blocking;
            called in a worker thread with a timeout).
        registry: The Prometheus registry served at ``/metrics``.
        daemon: Starts and controls runs (``service.daemon.Daemon``); must
            live on the event loop that serves the app.
        store: The run store, for single runs, aggregates and alerts.
        reader: The read side (pages of runs and results, live progress, the
            trend).
        suites: The loaded suites and their features.
        status: Extra fields for ``/healthz`` (this replica's id, runs in flight).
        streams: The live-progress streams (tests pass their own, to shorten
            the poll and keep-alive intervals and to watch them).
        stopping: Returns True once the server shuts down; open live streams
            then end (uvicorn waits for open responses before it exits, and a
            stream of an unfinished run never ends by itself). ``serve``
            passes ``lambda: server.should_exit``.
        schedules: Each suite's schedule, for the dashboard's "next run".
        dashboard: Serve the dashboard at ``/`` (sign-in with an API token).
        interactions: The store of recorded traffic; with it the app serves
            trace ingestion (``/v1/traces``, ``/api/traces``), interactions
            and feedback (``traces``), counted on ``registry``. None: no
            trace routes (an app that only runs suites).
        evaluators: Learned evaluators' store, floor, and the ``enqueue`` of
            generation jobs; None: no ``/api/evaluators`` routes.
        jobs: The job store; with it the app serves ``/api/jobs``. None: no job routes.
        jobs_clock: Stamps cancel requests (``serve``: the database's clock, as the
            runners'); the system clock when None.
        eval_sets: The store of eval sets and labels; with it the app serves
            ``/api/eval-sets`` (``eval_sets``). None: no eval-set routes.
        agreements: The judges' agreement with people (``agreement``): with it
            the app serves ``/api/runs/{run_id}/agreement`` and ``/api/agreement``.
    """
    auth = _token_auth(settings)
    streams = streams or EventStreams()
    if stopping is not None:
        streams.stop_when(stopping)
    ctx = ApiContext(
        daemon=daemon,
        store=store,
        reader=reader,
        suites=suites,
        streams=streams,
        callbacks=settings.run_webhook_secret is not None,
    )
    app = FastAPI(
        title="continuous-eval",
        version=__version__,
        description=DESCRIPTION,
        # Served below behind auth: the built-in routes would bypass it.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    _health_routes(app, readiness, status)
    _metrics_and_docs(app, settings, registry)
    app.include_router(runs_router(ctx))
    app.include_router(steps_router(ctx))
    app.include_router(admin_router(ctx))
    if agreements is not None:
        app.include_router(agreement_router(AgreementContext(store, agreements)))
    if interactions is not None:
        app.include_router(traces_router(_traces_context(settings, registry, interactions)))
    if evaluators is not None:
        app.include_router(evaluators_router(evaluators))
    if jobs is not None:
        app.include_router(jobs_router(JobsContext(jobs, streams, jobs_clock or SystemClock())))
    if eval_sets is not None:
        app.include_router(eval_sets_router(eval_sets))
    gate = None
    if dashboard:
        sessions = Sessions(
            settings.api_tokens,
            anonymous=auth.anonymous,
            max_age_s=settings.dashboard_session_hours * 3600,
        )
        gate = DashboardGate(sessions)
        board = DashboardContext(
            daemon=daemon,
            store=store,
            reader=reader,
            suites=suites,
            schedules=schedules or {},
            streams=streams,
            sessions=sessions,
            agreements=agreements,
        )
        app.include_router(dashboard_router(board))

    public = [
        *PUBLIC_PATHS,
        *(["/metrics"] if settings.metrics_public else []),
        *(["/docs", "/openapi.json"] if settings.docs_public else []),
    ]
    app.add_middleware(
        RequestGuard,
        auth=auth,
        public_paths=public,
        max_body_bytes=settings.max_request_body_bytes,
        dashboard=gate,
        **_ingest_guard(settings) if interactions is not None else {},
    )
    return app


def _traces_context(
    settings: Settings, registry: CollectorRegistry, interactions: InteractionStore
) -> TracesContext:
    ingestor = Ingestor(interactions, settings.trace_feature_attributes, IngestMetrics(registry))
    return TracesContext(
        store=interactions, ingestor=ingestor, max_body_bytes=settings.ingest_max_body_bytes
    )


def _ingest_guard(settings: Settings) -> dict[str, Any]:
    """The guard's ingest-only tokens, the routes they may call, and those routes' body cap."""
    cap = settings.ingest_max_body_bytes
    return {
        "ingest_auth": TokenAuth(settings.ingest_tokens),
        "ingest_routes": INGEST_ROUTES,
        "body_caps": {path: cap for _, path in INGEST_ROUTES},
    }


def _token_auth(settings: Settings) -> TokenAuth:
    """The bearer-token check, and a warning when the API is open or locked for want of a token."""
    auth = TokenAuth(settings.api_tokens, allow_anonymous=is_loopback(settings.http_host))
    if auth.anonymous:
        log.warning(
            "no API token configured: the admin API is open to anyone on %s",
            settings.http_host,
            extra={"event": "api_anonymous"},
        )
    elif not settings.api_tokens:
        log.warning(
            "no API token configured and %s is not a loopback address: the admin API "
            "refuses every request; set CONTINUOUS_EVAL_API_TOKENS",
            settings.http_host,
            extra={"event": "api_locked"},
        )
    return auth


def _health_routes(
    app: FastAPI,
    readiness: Callable[[], str | None],
    status: Callable[[], dict[str, object]] | None,
) -> None:
    """``/healthz`` (the process answers) and ``/readyz`` (the database does too)."""

    @app.get("/healthz", tags=["health"], response_model=HealthOut)
    async def healthz() -> dict[str, object]:
        """Liveness: the process and its event loop answer."""
        return {**(status() if status else {}), "status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        response_model=ReadyOut,
        responses={503: {"model": ReadyOut, "description": "Not ready, and why."}},
    )
    async def readyz() -> JSONResponse:
        """Readiness: the database answers and its schema is current."""
        try:
            problem = await asyncio.wait_for(asyncio.to_thread(readiness), timeout=5.0)
        except TimeoutError:
            problem = "the database did not answer within 5 s"
        except Exception as exc:
            problem = f"readiness check failed: {type(exc).__name__}"
        if problem is None:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not_ready", "reason": problem}, status_code=503)


def _metrics_and_docs(app: FastAPI, settings: Settings, registry: CollectorRegistry) -> None:
    """``/metrics``, ``/openapi.json`` and ``/docs``, each public only when the settings say so."""
    metrics_security = [] if settings.metrics_public else [Security(bearer_scheme)]

    @app.get(
        "/metrics",
        tags=["metrics"],
        dependencies=metrics_security,
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus text exposition.",
                "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
            },
            **({} if settings.metrics_public else error_responses(401)),
        },
    )
    async def metrics() -> Response:
        """Prometheus exposition of this process's metrics."""
        # The database collector queries on each scrape: keep it off the event loop.
        body = await asyncio.to_thread(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    docs_security = [] if settings.docs_public else [Security(bearer_scheme)]

    @app.get("/openapi.json", include_in_schema=False, dependencies=docs_security)
    async def openapi() -> dict[str, Any]:
        """The OpenAPI document (behind auth like the routes it describes, unless public)."""
        return app.openapi()

    @app.get("/docs", include_in_schema=False, dependencies=docs_security)
    async def docs() -> HTMLResponse:
        """Swagger UI over ``/openapi.json``; "Authorize" takes a token to try the routes."""
        return get_swagger_ui_html(openapi_url="/openapi.json", title="continuous-eval API")
