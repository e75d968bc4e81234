"""The FastAPI app served by ``continuous-eval serve``: health, readiness and metrics.

Liveness (``/healthz``) answers while the event loop does: the database
being down must not get the process restarted, since it recovers by itself.
Readiness (``/readyz``) answers 503 while the database cannot be used, so a
load balancer sends admin traffic elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from continuous_eval import __version__


def create_app(
    *,
    readiness: Callable[[], str | None],
    registry: CollectorRegistry,
    status: Callable[[], dict[str, object]] | None = None,
) -> FastAPI:
    """Build the app.

    Args:
        readiness: returns None when ready, or the reason it is not (blocking;
            called in a worker thread with a timeout).
        registry: the Prometheus registry served at ``/metrics``.
        status: extra fields for ``/healthz`` (this replica's id, runs in flight).
    """
    app = FastAPI(title="continuous-eval", version=__version__)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, object]:
        """Liveness: the process and its event loop answer."""
        return {"status": "ok", **(status() if status else {})}

    @app.get("/readyz", tags=["health"], response_model=None)
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

    @app.get("/metrics", tags=["metrics"])
    async def metrics() -> Response:
        """Prometheus exposition of this process's metrics."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
