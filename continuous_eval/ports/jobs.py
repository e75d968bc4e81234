"""Long jobs (evaluator generation) that run in ``serve``, stored in the database.

A job handler is an async function of the job's parameters and a progress
reporter; the job runner (``service.jobs``) claims queued jobs under a lease,
calls the handler, and stores the result or the error. Handlers report steps
(``fetching examples``, ``calling the model``, ``validating``, ``testing``,
``saving``) that reach ``GET /api/jobs/{id}/events`` over SSE.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from pydantic import JsonValue


class JobCancelled(Exception):
    """Raised by ``JobProgress.step`` once cancellation of the job has been asked for."""


class JobProgress(Protocol):
    """What a handler tells the job's watchers."""

    async def step(self, name: str, progress: float, message: str = "") -> None:
        """Record a step (``progress`` from 0 to 1); raises ``JobCancelled`` when the job
        has been cancelled, so a handler stops at its next step."""
        ...


JobHandler = Callable[[Mapping[str, JsonValue], JobProgress], Awaitable[JsonValue]]
"""``handler(params, progress) -> result``: the result (JSON) is stored with the job;
an exception fails the job with its message as the reason."""
