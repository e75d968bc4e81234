"""Wire the job runner of ``serve``: its handlers, its store and its clock.

``job_handlers`` is the one place a job kind gets its handler; the runner
fails a job of a kind that is not here with a reason. Tests may add kinds of
their own through ``CONTINUOUS_EVAL_TEST_JOB_KINDS`` (JSON ``{"kind":
"block" | "echo"}``, see ``testing.job_handlers``), which no production
setting reads.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from continuous_eval.adapters.db.jobs import SqlJobStore
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.errors import ConfigError
from continuous_eval.ports.jobs import JobHandler
from continuous_eval.service.jobs import JobRunner
from continuous_eval.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

TEST_JOB_KINDS_ENV = "CONTINUOUS_EVAL_TEST_JOB_KINDS"
"""Test-only: extra job kinds and the test handler each runs (``testing.job_handlers``)."""


def job_handlers(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    *,
    engine: Engine | None = None,
) -> dict[str, JobHandler]:
    """The handler of every job kind this ``serve`` runs.

    With ``engine`` (``serve``'s database), the production kinds: evaluator
    generation (``GENERATE_JOB_KIND``).

    Raises:
        ConfigError: ``CONTINUOUS_EVAL_TEST_JOB_KINDS`` is set and is not a
            JSON object of known test behaviours.
    """
    handlers: dict[str, JobHandler] = {}
    if engine is not None:
        from continuous_eval.app.evaluators import generation_job
        from continuous_eval.core.evaluator_prompt import GENERATE_JOB_KIND

        handlers[GENERATE_JOB_KIND] = generation_job(settings, engine)
    handlers.update(_test_handlers(os.environ if environ is None else environ))
    return handlers


def _test_handlers(environ: Mapping[str, str]) -> dict[str, JobHandler]:
    raw = environ.get(TEST_JOB_KINDS_ENV)
    if not raw:
        return {}
    from continuous_eval.testing.job_handlers import TEST_HANDLERS

    try:
        kinds = json.loads(raw)
        if not isinstance(kinds, dict):
            raise ValueError("not a JSON object")
        return {str(kind): TEST_HANDLERS[str(name)] for kind, name in kinds.items()}
    except (ValueError, KeyError) as exc:
        known = " | ".join(sorted(TEST_HANDLERS))
        raise ConfigError(
            "environment",
            TEST_JOB_KINDS_ENV,
            f"expected a JSON object of job kinds to {known} ({exc})",
        ) from exc


class DatabaseClock:
    """The run store's clock as a ``Clock``: the database's, the one every replica shares."""

    def __init__(self, store: SqlRunStore) -> None:
        self._store = store

    def now(self) -> datetime:
        """The database's now (a query: call it off the event loop)."""
        return self._store.db_now()


def job_store(engine: Engine) -> SqlJobStore:
    """The job store on the run store's engine: do not ``close()`` it where the run store
    owns the engine."""
    return SqlJobStore(engine)


def job_runner(settings: Settings, store: SqlRunStore, *, owner: str) -> JobRunner:
    """The runner ``serve`` polls every ``job_poll_s``, on the run store's database and clock."""
    return JobRunner(
        job_store(store.engine),
        job_handlers(settings, engine=store.engine),
        DatabaseClock(store),
        owner,
        lease_s=settings.job_lease_s,
        concurrency=settings.job_concurrency,
    )


@contextlib.contextmanager
def jobs_side(settings: Settings) -> Iterator[tuple[SqlJobStore, DatabaseClock]]:
    """Open the configured database's job store and clock (the CLI's ``jobs``); close after.

    Raises:
        ContinuousEvalError: The database could not be opened (``open_store``).
    """
    from continuous_eval.app.container import open_store

    engine, store = open_store(settings)
    try:
        yield job_store(engine), DatabaseClock(store)
    finally:
        store.close()
        engine.dispose()
