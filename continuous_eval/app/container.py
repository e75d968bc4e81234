"""The container: open the store, the daemon and everything it needs, and close them again.

``local_daemon`` is the one place a process (``serve``, a CLI ``run``, a
test) gets a working daemon from settings and a suite file; ``read_side``
the one place a command that only reads gets the store and its reader.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from continuous_eval.adapters.db import migrate
from continuous_eval.adapters.db.agreement import SqlAgreementStore
from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.evaluators import SqlEvaluatorStore
from continuous_eval.adapters.db.interactions import SqlInteractionStore
from continuous_eval.adapters.db.labels import SqlEvalSetStore
from continuous_eval.adapters.db.queries import SqlRunReader
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.adapters.suite_files import LoadedSuites
from continuous_eval.app.alerts import alert_wiring
from continuous_eval.app.config import daemon_config, regression_policies, run_url
from continuous_eval.app.plans import PlanBuilder, SuitePlans
from continuous_eval.core.secrets import Scrubber
from continuous_eval.errors import ContinuousEvalError
from continuous_eval.ports import RunReader, RunStore
from continuous_eval.ports.interactions import InteractionStore
from continuous_eval.service.alerts import AlertDispatcher, AlertPlanner
from continuous_eval.service.calibration import Calibrator
from continuous_eval.service.daemon import Daemon
from continuous_eval.service.detection import make_detect
from continuous_eval.service.runner import Runner
from continuous_eval.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from continuous_eval.adapters.metrics import DaemonMetrics


def open_store(settings: Settings, *, migrate_embedded: bool = True) -> tuple[Engine, SqlRunStore]:
    """Connect to the configured database and return its engine and run store.

    On SQLite, the embedded default, migrations are applied here so a new user
    needs no separate step; on Postgres the schema must already be at head
    (``continuous-eval db upgrade``), because several replicas racing to
    migrate a shared production database is how outages start.
    """
    engine = make_engine(settings.database_url)
    if engine.dialect.name == "sqlite" and migrate_embedded:
        migrate.upgrade_if_behind(engine)
    else:
        migrate.require_head(engine)
    # No clock: every time the store writes is the database's (see SqlRunStore).
    return engine, SqlRunStore(engine)


def interaction_store(engine: Engine) -> SqlInteractionStore:
    """The recorded-traffic store on the run store's engine: one database, one pool.

    Do not ``close()`` it where the run store owns the engine: closing
    disposes of the shared engine.
    """
    # No clock: ingested_at and feedback times are the database's, as the run store's.
    return SqlInteractionStore(engine)


@contextlib.contextmanager
def read_side(settings: Settings) -> Iterator[tuple[RunReader, RunStore]]:
    """Open the configured store and its reader, for commands that only read; close both after.

    Raises:
        ContinuousEvalError: The database could not be opened (``open_store``).
    """
    engine, store = open_store(settings)
    try:
        yield SqlRunReader(engine), store
    finally:
        store.close()
        engine.dispose()


@contextlib.contextmanager
def interactions_side(settings: Settings) -> Iterator[InteractionStore]:
    """Open the configured store of recorded traffic (``traces import``); close it after.

    Raises:
        ContinuousEvalError: The database could not be opened (``open_store``).
    """
    from continuous_eval.adapters.db.interactions import SqlInteractionStore

    engine, store = open_store(settings)
    try:
        yield SqlInteractionStore(engine)
    finally:
        store.close()
        engine.dispose()


def readiness(engine: Engine) -> str | None:
    """Return None when the database answers at the current schema, else why not."""
    try:
        return migrate.schema_problem(engine)
    except ContinuousEvalError as exc:
        return str(exc)


@contextlib.asynccontextmanager
async def local_daemon(
    settings: Settings,
    loaded: LoadedSuites,
    events: DaemonMetrics | None = None,
) -> AsyncIterator[tuple[Daemon, SqlRunStore, PlanBuilder]]:
    """Wire a daemon over the configured database, and close everything on the way out.

    The CLI's ``run`` (through ``Daemon.run_now``), ``serve`` and the
    benchmarks share this, so each takes the same gate, lock, lease and
    outbox path.

    The eval sets, learned evaluators and agreement share the run store's
    database: calibrated features judge their eval set's labelled cases every
    run (``service.calibration``), and ``type: learned`` scorers find their
    promoted code there.
    """
    from continuous_eval.adapters.db.locks import make_suite_locks

    alerts = alert_wiring(settings)
    engine, store = open_store(settings)
    locks = make_suite_locks(engine, lease_seconds=settings.run_lease_s)
    builder = PlanBuilder(settings, loaded, evaluators=SqlEvaluatorStore(engine))
    config = daemon_config(settings, loaded)
    eval_sets = SqlEvalSetStore(engine)
    calibrator = Calibrator(
        loaded.suites.suites,
        eval_sets,
        SqlAgreementStore(engine),
        alerts.agreement_renderers,
    )
    planner = AlertPlanner(
        make_detect(regression_policies(settings, loaded)),
        alerts.renderers,
        events,
        notice_renderers=alerts.notice_renderers,
        run_url=run_url(settings.alert_dashboard_url),
        calibrator=calibrator,
    )
    # The daemon's and the outbox's blocking calls: a pool of their own, so user
    # code filling the default pool can never starve them, shut down (waiting
    # for calls in flight) before the engine is disposed of.
    io = ThreadPoolExecutor(max_workers=8, thread_name_prefix="continuous-eval-io")
    dispatcher = AlertDispatcher(
        store,
        alerts.channels,
        config.owner,
        max_attempts=settings.alert_max_attempts,
        claim_s=settings.alert_claim_s,
        retry_base_s=settings.alert_retry_base_s,
        events=events,
        io_executor=io,
    )
    runner = Runner(
        store,
        max_concurrency=settings.max_concurrency,
        excerpt_chars=settings.result_excerpt_chars,
        plan_alerts=planner.plan,
        scrub=Scrubber(settings.secret_values()),
        breaker_refusals=settings.breaker_refusals,
        completeness_floor=settings.completeness_floor,
    )
    daemon = Daemon(
        store=store,
        locks=locks,
        runner=runner,
        # Online features sample the recorded traffic on the same database.
        plans=SuitePlans(settings, loaded, builder, interaction_store(engine), eval_sets),
        config=config,
        events=events,
        deliver_alerts=dispatcher.deliver_due,
        io_executor=io,
    )
    try:
        yield daemon, store, builder
    finally:
        await builder.aclose()
        await alerts.aclose()
        runner.close()
        io.shutdown(wait=True)
        locks.close()
        store.close()
        engine.dispose()
