"""Prometheus metrics read from the database on each scrape.

What belongs here: the custom collector that turns the stored runs, scores
and alerts into metric families on each scrape. Process-local counters
(ticks, locks, this replica's runs) live in ``adapters.metrics``.

Every replica reads the same database, so these values agree across replicas
(aggregate them with ``max``, not ``sum``) and survive restarts. A scrape must
stay cheap however long the history is, so:

- Run counts, case errors, judge requests, tokens and cost are kept
  incrementally. A run is *settled* once it is terminal and was created more
  than ``settle_s`` ago; terminal runs never change again (the store refuses
  writes to them), so settled runs are summed once and remembered. Each
  scrape reads only the runs created since the watermark (the
  ``(created_at, id)`` index), plus, by primary key, the few older runs that
  were still open when the watermark passed them. The first scrape of a
  process sums the whole history once.
- Per-suite values use the ``(suite, run_type, started_at)`` index: one
  backward index probe per suite.
- The alerts table is aggregated in full; it holds one row per regression or
  recovery and channel, orders of magnitude fewer rows than results.

The queries run on a worker thread. A scrape waits at most ``timeout_s`` for
it; when the database fails or does not answer in time, the scrape carries
``continuous_eval_db_up 0`` and none of the database families, and never
raises. A query still stuck from an earlier scrape is not started again.

Only the collector belongs in this module (the worker thread, the timeout,
the up/down log lines). The queries live in ``metrics_db_queries``, the
records they fill in ``metrics_db_records``, and the families built from a
snapshot in ``metrics_db_families``. The public names of this module from
before that split (``TERMINAL_STATUSES``, ``build_families``, the records,
the ``read_*`` queries) are re-exported.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from continuous_eval.adapters.clock import SystemClock
from continuous_eval.adapters.db.engine import describe_error
from continuous_eval.adapters.metrics_db_families import build_families, empty_families
from continuous_eval.adapters.metrics_db_queries import (
    read_alerts,
    read_run_totals,
    read_suite_state,
)
from continuous_eval.adapters.metrics_db_records import (
    ALERT_KINDS,
    ALERT_STATUSES,
    RUN_TYPES,
    TERMINAL_STATUSES,
    UNFINISHED_STATUSES,
    DbSnapshot,
    RunCache,
    RunKey,
    RunTotals,
    ScorerKey,
)
from continuous_eval.ports import Clock

__all__ = [
    "ALERT_KINDS",
    "ALERT_STATUSES",
    "RUN_TYPES",
    "TERMINAL_STATUSES",
    "UNFINISHED_STATUSES",
    "DatabaseCollector",
    "DbSnapshot",
    "RunCache",
    "RunKey",
    "RunTotals",
    "ScorerKey",
    "build_families",
    "read_alerts",
    "read_run_totals",
    "read_suite_state",
]

log = logging.getLogger(__name__)


@dataclass
class _Refresh:
    """One run of the database queries on the worker thread."""

    started: float
    done: threading.Event = field(default_factory=threading.Event)
    snapshot: DbSnapshot | None = None
    error: BaseException | None = None


class DatabaseCollector(Collector):
    """Expose the database's view of runs, scores and alerts; register it on a registry.

    Args:
        engine: The store's engine (SQLite or Postgres, migrated).
        suites: Configured suite names, so their run counters show 0 before
            any run is stored.
        timeout_s: Longest a scrape waits for the database. Keep it well under
            Prometheus's scrape timeout; while ``/metrics`` renders on the
            event loop it is also the longest a scrape can stall the loop. A
            first scrape that sums a very long history may exceed it: that
            scrape reports ``db_up 0`` and the sum, finished in the
            background, serves the next one.
        statement_timeout_s: Postgres ``statement_timeout`` for each query,
            so a stuck query ends on the server too. Generous, because a
            process's first scrape sums the whole history once.
        settle_s: Age past which a terminal run is summed once and
            remembered. Must exceed the writers' clock skew and the longest
            transaction that creates a run: a run committed with an older
            ``created_at`` than the watermark is missed until a restart.
        clock: Source of the settle cutoff; the system clock by default.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        suites: Iterable[str] = (),
        timeout_s: float = 1.5,
        statement_timeout_s: float = 60.0,
        settle_s: float = 900.0,
        clock: Clock | None = None,
    ) -> None:
        if timeout_s <= 0 or statement_timeout_s <= 0 or settle_s < 0:
            raise ValueError("timeout_s and statement_timeout_s must be > 0, settle_s >= 0")
        self._engine = engine
        self._suites = tuple(suites)
        self._timeout_s = timeout_s
        self._statement_timeout_ms = int(statement_timeout_s * 1000)
        self._settle = timedelta(seconds=settle_s)
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._refresh: _Refresh | None = None
        self._cache = RunCache()  # touched only by the one refresh in flight
        self._up: bool | None = None

    def describe(self) -> Iterable[Metric]:
        """Return the families without samples, so registering runs no query."""
        return list(empty_families().values())

    def collect(self) -> Iterable[Metric]:
        """Query the database (bounded by ``timeout_s``) and return the families; never raise."""
        started = time.perf_counter()
        snapshot = self._snapshot()
        families = build_families(snapshot, self._suites) if snapshot is not None else []
        meta = empty_families()
        meta["continuous_eval_db_up"].add_metric([], 0 if snapshot is None else 1)
        elapsed = time.perf_counter() - started
        meta["continuous_eval_db_scrape_duration_seconds"].add_metric([], elapsed)
        names = ("continuous_eval_db_up", "continuous_eval_db_scrape_duration_seconds")
        by_name = {family.name: family for family in families}
        by_name.update((name, meta[name]) for name in names)
        return list(by_name.values())

    def _snapshot(self) -> DbSnapshot | None:
        with self._lock:
            refresh = self._refresh
            now = time.monotonic()
            if refresh is None or refresh.done.is_set():
                refresh = _Refresh(started=now)
                self._refresh = refresh
                threading.Thread(
                    target=self._run_refresh,
                    args=(refresh,),
                    name="continuous-eval-metrics-db",
                    daemon=True,  # a hung database must not keep the process from exiting
                ).start()
        # Concurrent scrapes share one refresh; one stuck since an earlier
        # scrape is not waited for again, so an outage costs each later scrape nothing.
        remaining = refresh.started + self._timeout_s - time.monotonic()
        if remaining <= 0 or not refresh.done.wait(remaining):
            self._report(False, f"no answer within {self._timeout_s:g} s")
            return None
        if refresh.snapshot is None:
            error = refresh.error or RuntimeError("no snapshot")
            reason = describe_error(error, self._engine.url)
            self._report(False, f"{type(error).__name__}: {reason}")
            return None
        self._report(True, "")
        return refresh.snapshot

    def _run_refresh(self, refresh: _Refresh) -> None:
        try:
            refresh.snapshot = self._read()
        except Exception as exc:  # any failure is an outage to report, never a failed scrape
            refresh.error = exc
        finally:
            refresh.done.set()

    def _read(self) -> DbSnapshot:
        cutoff = self._clock.now() - self._settle
        postgres = self._engine.dialect.name == "postgresql"
        # One snapshot for every query (see read_run_totals): REPEATABLE READ
        # on Postgres; a SQLite read transaction in WAL mode is one already.
        options: dict[str, Any] = (
            {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True} if postgres else {}
        )
        with self._engine.connect().execution_options(**options) as conn, conn.begin():
            if postgres:
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {self._statement_timeout_ms}")
            cache, runs = read_run_totals(conn, self._cache, cutoff)
            suites = set(self._suites) | {suite for suite, _, _ in runs}
            last_run, last_success, scores = read_suite_state(conn, suites)
            regressions, outbox = read_alerts(conn)
        self._cache = cache
        return DbSnapshot(runs, last_run, last_success, scores, regressions, outbox)

    def _report(self, up: bool, reason: str) -> None:
        if up == self._up:
            return
        self._up = up
        if up:
            log.info("metrics: the database answers again", extra={"event": "metrics_db_up"})
        else:
            log.warning(
                "metrics: the database is unavailable (%s); scrapes report continuous_eval_db_up 0",
                reason,
                extra={"event": "metrics_db_down"},
            )
