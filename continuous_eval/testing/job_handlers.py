"""Job handlers for tests only: jobs that block until killed, or echo their parameters.

``serve`` registers them only when ``CONTINUOUS_EVAL_TEST_JOB_KINDS`` names
them (``app.jobs.job_handlers``), so the process tests can start a job, kill
``serve`` in the middle of it and watch the restarted one take it over. No
production configuration sets that variable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from pydantic import JsonValue

from continuous_eval.ports.jobs import JobHandler, JobProgress


async def block(params: Mapping[str, JsonValue], progress: JobProgress) -> JsonValue:
    """Report one step, then wait until the process dies or the task is cancelled."""
    await progress.step("waiting", 0.5, "blocks until serve stops")
    await asyncio.Event().wait()
    return None


async def echo(params: Mapping[str, JsonValue], progress: JobProgress) -> JsonValue:
    """Report one step and return the parameters."""
    await progress.step("saving", 0.9)
    return dict(params)


TEST_HANDLERS: Mapping[str, JobHandler] = {"block": block, "echo": echo}
"""The behaviours a test may give a job kind."""
