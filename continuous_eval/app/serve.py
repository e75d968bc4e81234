"""The process runtime of ``continuous-eval serve``: daemon, scheduler and HTTP app in one loop.

Only ``serve`` needs the web stack (uvicorn, FastAPI), the scheduler and the
Prometheus client, so they are imported here and nowhere on the path of
``run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Generator
from functools import partial
from pathlib import Path

import uvicorn
from prometheus_client import CollectorRegistry

from continuous_eval.adapters.db.agreement import SqlAgreementStore
from continuous_eval.adapters.db.evaluators import SqlEvaluatorStore
from continuous_eval.adapters.db.interactions import SqlInteractionStore
from continuous_eval.adapters.db.labels import SqlEvalSetStore
from continuous_eval.adapters.db.queries import SqlRunReader
from continuous_eval.adapters.http.app import create_app
from continuous_eval.adapters.http.evaluators import EvaluatorsContext
from continuous_eval.adapters.http.job_schemas import job_out
from continuous_eval.adapters.http.jobs import enqueue_job
from continuous_eval.adapters.http.protocol import guarded_h11
from continuous_eval.adapters.metrics import DaemonMetrics, RetentionMetrics, UserCodeCollector
from continuous_eval.adapters.metrics_db import DatabaseCollector
from continuous_eval.adapters.scheduler import (
    add_feedback_fill_job,
    add_jobs_poll,
    add_retention_job,
    make_scheduler,
)
from continuous_eval.adapters.suite_files import load_suite_file
from continuous_eval.adapters.user_code import DaemonThreadPool
from continuous_eval.app.config import daemon_config
from continuous_eval.app.container import local_daemon, readiness
from continuous_eval.app.eval_sets import feedback_fill_tick
from continuous_eval.app.jobs import job_runner
from continuous_eval.app.retention import retention_tick
from continuous_eval.app.scanning import scan_suites
from continuous_eval.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_THREADS = 32
"""The loop's default executor (libraries' ``asyncio.to_thread``, the readiness probe)."""


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


SHUTDOWN_MARGIN_S = 3.0
"""How long past ``shutdown_timeout_s`` a stopping process may take: uvicorn's close
(``HTTP_CLOSE_S``) and the last database writes (releasing runs and locks)."""

HTTP_CLOSE_S = 1
"""How long uvicorn waits for open responses once it is told to stop."""


async def serve(settings: Settings, config_path: Path) -> int:
    """Run the daemon and its HTTP app until SIGTERM or SIGINT; return the exit code.

    A stop is bounded whatever user code does: cases in flight get
    ``shutdown_timeout_s`` (less the margin kept for releasing), then their
    runs are released ``interrupted``; threads still in user code are
    daemon threads nobody waits for, and the loop's default executor is one
    too, so the process exits within ``shutdown_timeout_s + SHUTDOWN_MARGIN_S``.
    """
    loop = asyncio.get_running_loop()
    loop.set_default_executor(DaemonThreadPool("default", DEFAULT_THREADS))
    loaded = load_suite_file(config_path)
    scan_suites(loaded, list(loaded.suites.suites), [], settings)  # stops start-up, not a run
    registry = CollectorRegistry()
    metrics = DaemonMetrics(registry, daemon_config(settings, loaded).schedules)
    async with local_daemon(settings, loaded, metrics) as (daemon, store, builder):
        schedules = daemon_config(settings, loaded).schedules
        enabled = [name for name, s in schedules.items() if s.enabled]
        if enabled:
            log.info(
                "scheduling %s; first check in %.0f s (+ up to %.0f s jitter)",
                ", ".join(f"{n} every {schedules[n].interval}" for n in enabled),
                settings.schedule_startup_delay_s,
                settings.schedule_startup_jitter_s,
                extra={"event": "serve_start", "owner": daemon.owner},
            )
        else:
            log.info(
                "scheduling is disabled (CONTINUOUS_EVAL_SCHEDULE_ENABLED=false): "
                "no suite will run on its own",
                extra={"event": "serve_start", "owner": daemon.owner},
            )
        scheduler = make_scheduler(
            daemon.tick,
            check_interval_s=settings.schedule_check_interval_s,
            startup_delay_s=settings.schedule_startup_delay_s,
            jitter_s=settings.schedule_startup_jitter_s,
            misfire_grace_s=settings.schedule_misfire_grace_s,
            events=metrics,
        )
        retention = retention_tick(
            settings, loaded, store, owner=daemon.owner, events=RetentionMetrics(registry)
        )
        add_retention_job(
            scheduler,
            retention,
            interval_s=settings.retention_interval_s,
            startup_delay_s=settings.schedule_startup_delay_s,
            jitter_s=settings.schedule_startup_jitter_s,
        )
        # Jobs (evaluator generation): claimed, heartbeated and taken over on each poll.
        jobs = job_runner(settings, store, owner=daemon.owner)
        add_jobs_poll(scheduler, jobs.poll, interval_s=settings.job_poll_s)
        engine = store.engine
        add_feedback_fill_job(
            scheduler,
            feedback_fill_tick(engine),
            interval_s=settings.feedback_fill_interval_s,
            startup_delay_s=settings.schedule_startup_delay_s,
            jitter_s=settings.schedule_startup_jitter_s,
        )
        registry.register(DatabaseCollector(engine, suites=loaded.suites.suites))
        registry.register(UserCodeCollector(lambda: builder.pools))
        app = create_app(
            settings=settings,
            readiness=partial(readiness, engine),
            registry=registry,
            daemon=daemon,
            store=store,
            reader=SqlRunReader(engine),
            suites={name: list(s.features) for name, s in loaded.suites.suites.items()},
            status=lambda: {"owner": daemon.owner, "running": daemon.running},
            # Read at every poll of a live stream, by then `server` (just below) exists:
            # streams end once uvicorn shuts down, or it would wait for them forever.
            stopping=lambda: server.should_exit,
            schedules=schedules,
            # Shares the run store's engine, which the run store disposes of.
            interactions=SqlInteractionStore(engine),
            jobs=jobs.store,
            evaluators=EvaluatorsContext(
                SqlEvaluatorStore(engine),
                settings.evaluator_min_accuracy,
                eval_sets=SqlEvalSetStore(engine),
                enqueue=lambda kind, params: job_out(
                    enqueue_job(jobs.store, kind, params, jobs.clock)
                ).model_dump(mode="json"),
            ),
            jobs_clock=jobs.clock,
            eval_sets=SqlEvalSetStore(engine),
            agreements=SqlAgreementStore(engine),
        )
        host = settings.http_host
        if not settings.api_tokens:
            host = "127.0.0.1"
            log.warning(
                "NO API TOKEN IS CONFIGURED: the admin API listens on 127.0.0.1 only "
                "(%s was asked for). Set CONTINUOUS_EVAL_API_TOKENS to serve other hosts.",
                settings.http_host,
                extra={"event": "serve_no_token"},
            )
        server = _Server(
            uvicorn.Config(
                app,
                host=host,
                port=settings.http_port,
                # Logging is ours (adapters/logs.py): uvicorn must not install
                # handlers of its own, which would print plain-text duplicates.
                log_config=None,
                access_log=True,
                lifespan="off",
                timeout_graceful_shutdown=HTTP_CLOSE_S,
                # Bounds on slow and idle clients (adapters/http/protocol.py).
                http=guarded_h11(settings.http_header_timeout_s),
                timeout_keep_alive=settings.http_keepalive_s,
                limit_concurrency=settings.http_max_connections,
            )
        )
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # Everything built so far (modules, the app, the suites) lives as long as the
        # process: moved out of the collector's reach, a full collection no longer
        # walks it, which took ~110 ms every few dashboard requests
        # (bench/dashboard.py, overview p95 162 -> 79 ms).
        gc.collect()
        gc.freeze()
        scheduler.start()
        server_task = asyncio.create_task(server.serve())
        stop_task = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({server_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            log.info("shutting down", extra={"event": "serve_stop", "owner": daemon.owner})
        finally:
            scheduler.shutdown(wait=False)
            await jobs.shutdown()
            await daemon.shutdown(settings.shutdown_timeout_s)
            retention.close()
            server.should_exit = True
            await asyncio.gather(server_task, return_exceptions=True)
            stop_task.cancel()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
    failed = server_task.done() and not server_task.cancelled() and server_task.exception()
    if failed:
        log.error("the HTTP server failed: %r", server_task.exception())
        return 1
    return 0 if server.started or stop.is_set() else 1
