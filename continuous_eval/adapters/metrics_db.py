"""Prometheus metrics read from the database on each scrape.

What belongs here: the custom collector that turns the stored runs, scores
and alerts into metric families, and the queries it runs. Process-local
counters (ticks, locks, this replica's runs) live in ``adapters.metrics``.

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
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, Row, distinct, func, or_, select

from continuous_eval.adapters.clock import SystemClock
from continuous_eval.adapters.db.engine import describe_error
from continuous_eval.adapters.db.tables import alerts, eval_results, eval_run_scores, eval_runs
from continuous_eval.core.models import AlertKind, AlertStatus, RunStatus, RunType
from continuous_eval.ports import Clock

log = logging.getLogger(__name__)

TERMINAL_STATUSES: tuple[str, ...] = tuple(s.value for s in RunStatus if s.terminal)
"""Statuses counted by ``continuous_eval_runs_total``: a run never leaves them."""

UNFINISHED_STATUSES: tuple[str, ...] = tuple(s.value for s in RunStatus if not s.terminal)
"""Statuses counted by the ``continuous_eval_unfinished_runs`` gauge."""

RUN_TYPES: tuple[RunType, ...] = ("scheduled", "manual")
ALERT_KINDS: tuple[AlertKind, ...] = ("regression", "recovery")
ALERT_STATUSES: tuple[AlertStatus, ...] = ("pending", "sent", "dead", "suppressed")

_IN_CHUNK = 500
"""Ids per ``IN (...)`` list: well under SQLite's and Postgres's parameter limits."""

RunKey = tuple[str, str, str]
"""(suite, run_type, status)."""

ScorerKey = tuple[str, str, str]
"""(suite, feature, scorer)."""


# ------------------------------------------------------------ the records


@dataclass(frozen=True, slots=True)
class RunTotals:
    """Sums over a set of runs; the unit the incremental cache adds up."""

    runs: int = 0
    errored: int = 0
    """Results with status ``error`` (``eval_runs.errored``)."""
    judge_requests: int = 0
    """Results that recorded judge usage (input or output tokens above zero)."""
    judge_input_tokens: int = 0
    judge_output_tokens: int = 0
    judge_cost_usd: float = 0.0
    target_input_tokens: int = 0
    target_output_tokens: int = 0
    target_cost_usd: float = 0.0

    def __add__(self, other: RunTotals) -> RunTotals:
        return RunTotals(
            runs=self.runs + other.runs,
            errored=self.errored + other.errored,
            judge_requests=self.judge_requests + other.judge_requests,
            judge_input_tokens=self.judge_input_tokens + other.judge_input_tokens,
            judge_output_tokens=self.judge_output_tokens + other.judge_output_tokens,
            judge_cost_usd=self.judge_cost_usd + other.judge_cost_usd,
            target_input_tokens=self.target_input_tokens + other.target_input_tokens,
            target_output_tokens=self.target_output_tokens + other.target_output_tokens,
            target_cost_usd=self.target_cost_usd + other.target_cost_usd,
        )


@dataclass(frozen=True, slots=True)
class DbSnapshot:
    """Everything one scrape read from the database."""

    runs: Mapping[RunKey, RunTotals]
    last_run_at: Mapping[str, datetime]
    """Per suite: ``started_at`` of the newest scheduled run, any status."""
    last_success_at: Mapping[str, datetime]
    """Per suite: ``started_at`` of the newest succeeded scheduled run."""
    last_scores: Mapping[ScorerKey, float | None]
    """Means of that succeeded run's ``eval_run_scores``; None when nothing was scored."""
    regressions: Mapping[ScorerKey, int]
    """Distinct regression alerts (runs), whatever their delivery status."""
    alerts: Mapping[tuple[str, str, str], int]
    """Outbox rows by (channel, kind, status)."""


@dataclass(frozen=True, slots=True)
class _Run:
    id: str
    key: RunKey
    created_at: datetime
    totals: RunTotals

    @property
    def terminal(self) -> bool:
        return self.key[2] in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class RunCache:
    """Settled runs summed once: those created before ``watermark`` and terminal."""

    watermark: datetime | None = None
    settled: Mapping[RunKey, RunTotals] = field(default_factory=dict)
    open_ids: frozenset[str] = frozenset()
    """Runs created before the watermark that were not terminal when it passed them."""


# ------------------------------------------------------------ the queries

_runs = eval_runs.c
_RUN_COLUMNS = (
    _runs.id,
    _runs.suite,
    _runs.run_type,
    _runs.status,
    _runs.created_at,
    _runs.errored,
    _runs.judge_input_tokens,
    _runs.judge_output_tokens,
    _runs.judge_cost_usd,
    _runs.target_input_tokens,
    _runs.target_output_tokens,
    _runs.target_cost_usd,
)
_JUDGED = or_(eval_results.c.input_tokens > 0, eval_results.c.output_tokens > 0)


def _run(row: Row[*tuple[Any, ...]]) -> _Run:
    return _Run(
        id=row.id,
        key=(row.suite, row.run_type, row.status),
        created_at=row.created_at,
        totals=RunTotals(
            runs=1,
            errored=int(row.errored),
            judge_input_tokens=int(row.judge_input_tokens),
            judge_output_tokens=int(row.judge_output_tokens),
            judge_cost_usd=float(row.judge_cost_usd),
            target_input_tokens=int(row.target_input_tokens),
            target_output_tokens=int(row.target_output_tokens),
            target_cost_usd=float(row.target_cost_usd),
        ),
    )


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), _IN_CHUNK):
        yield ids[start : start + _IN_CHUNK]


def _runs_by_id(conn: Connection, ids: Iterable[str]) -> list[_Run]:
    found: list[_Run] = []
    for chunk in _chunks(sorted(ids)):
        found += [_run(r) for r in conn.execute(select(*_RUN_COLUMNS).where(_runs.id.in_(chunk)))]
    return found


def _judge_requests(conn: Connection, ids: Iterable[str]) -> dict[str, int]:
    """Count each run's results with judge usage; the unique (run_id, ...) index serves it."""
    results = eval_results.c
    counts: dict[str, int] = {}
    for chunk in _chunks(sorted(ids)):
        stmt = (
            select(results.run_id, func.count())
            .where(results.run_id.in_(chunk), _JUDGED)
            .group_by(results.run_id)
        )
        counts.update((run_id, int(n)) for run_id, n in conn.execute(stmt))
    return counts


def _with_requests(runs: Iterable[_Run], requests: Mapping[str, int]) -> Iterator[_Run]:
    for run in runs:
        n = requests.get(run.id, 0)
        yield dataclasses.replace(run, totals=dataclasses.replace(run.totals, judge_requests=n))


def _add(into: dict[RunKey, RunTotals], runs: Iterable[_Run]) -> None:
    for run in runs:
        into[run.key] = into.get(run.key, RunTotals()) + run.totals


def _settle_history(conn: Connection, cutoff: datetime) -> dict[RunKey, RunTotals]:
    """Sum every terminal run created before ``cutoff``: the first scrape's one full pass."""
    settled_filter = (_runs.created_at < cutoff, _runs.status.in_(TERMINAL_STATUSES))
    keys = (_runs.suite, _runs.run_type, _runs.status)
    sums = select(
        *keys,
        func.count(),
        func.sum(_runs.errored),
        func.sum(_runs.judge_input_tokens),
        func.sum(_runs.judge_output_tokens),
        func.sum(_runs.judge_cost_usd),
        func.sum(_runs.target_input_tokens),
        func.sum(_runs.target_output_tokens),
        func.sum(_runs.target_cost_usd),
    ).where(*settled_filter)
    settled: dict[RunKey, RunTotals] = {}
    # Postgres returns sum(bigint) as numeric (Decimal): convert every value.
    for suite, run_type, status, n, err, j_in, j_out, j_cost, t_in, t_out, t_cost in conn.execute(
        sums.group_by(*keys)
    ):
        settled[(suite, run_type, status)] = RunTotals(
            runs=int(n),
            errored=int(err or 0),
            judge_input_tokens=int(j_in or 0),
            judge_output_tokens=int(j_out or 0),
            judge_cost_usd=float(j_cost or 0.0),
            target_input_tokens=int(t_in or 0),
            target_output_tokens=int(t_out or 0),
            target_cost_usd=float(t_cost or 0.0),
        )
    requests = (
        select(*keys, func.count())
        .select_from(eval_results.join(eval_runs, eval_results.c.run_id == _runs.id))
        .where(*settled_filter, _JUDGED)
        .group_by(*keys)
    )
    for suite, run_type, status, n in conn.execute(requests):
        key = (suite, run_type, status)
        totals = settled.get(key, RunTotals())
        settled[key] = dataclasses.replace(totals, judge_requests=int(n))
    return settled


def read_run_totals(
    conn: Connection, cache: RunCache, cutoff: datetime
) -> tuple[RunCache, dict[RunKey, RunTotals]]:
    """Return the advanced cache and the totals of every stored run, by (suite, run_type, status).

    Pure with respect to ``cache``: the caller keeps the new cache only when
    the whole scrape succeeded. Run every call inside one read transaction
    (one snapshot), so a run cannot finish between two of these queries and
    be counted twice or not at all.

    Args:
        conn: A connection inside a read transaction.
        cache: What earlier scrapes settled.
        cutoff: Runs created before this, once terminal, are settled. Must
            trail the writers' clocks by more than any transaction lasts.
    """
    if cache.watermark is None:
        settled = _settle_history(conn, cutoff)
        candidates = [
            _run(r)
            for r in conn.execute(
                select(*_RUN_COLUMNS).where(
                    _runs.created_at < cutoff, _runs.status.not_in(TERMINAL_STATUSES)
                )
            )
        ]
        since: datetime = cutoff
    else:
        settled = dict(cache.settled)
        candidates = _runs_by_id(conn, cache.open_ids)
        since = cache.watermark
    watermark = max(cutoff, since)
    window = [_run(r) for r in conn.execute(select(*_RUN_COLUMNS).where(_runs.created_at >= since))]
    candidates += [run for run in window if run.created_at < watermark]
    settling = [run for run in candidates if run.terminal]
    still_open = [run for run in candidates if not run.terminal]
    live = [run for run in window if run.created_at >= watermark] + still_open
    requests = _judge_requests(conn, [run.id for run in settling + live])
    _add(settled, _with_requests(settling, requests))
    totals = dict(settled)
    _add(totals, _with_requests(live, requests))
    new_cache = RunCache(watermark, settled, frozenset(run.id for run in still_open))
    return new_cache, totals


def read_suite_state(
    conn: Connection, suites: Iterable[str]
) -> tuple[dict[str, datetime], dict[str, datetime], dict[ScorerKey, float | None]]:
    """Return each suite's newest scheduled run time, newest success time and its scores.

    Two probes of the ``(suite, run_type, started_at)`` index per suite, then
    the succeeded runs' score rows by primary key.
    """
    last_run: dict[str, datetime] = {}
    last_success: dict[str, datetime] = {}
    newest_ok: dict[str, str] = {}
    for suite in sorted(suites):
        scheduled = (_runs.suite == suite, _runs.run_type == "scheduled")
        newest = conn.execute(select(func.max(_runs.started_at)).where(*scheduled)).scalar()
        if newest is None:
            continue
        last_run[suite] = newest
        # NULLs sort first in a descending order on Postgres.
        ok = conn.execute(
            select(_runs.id, _runs.started_at)
            .where(
                *scheduled,
                _runs.status == RunStatus.SUCCEEDED.value,
                _runs.started_at.is_not(None),
            )
            .order_by(_runs.started_at.desc())
            .limit(1)
        ).one_or_none()
        if ok is not None:
            newest_ok[ok.id] = suite
            last_success[suite] = ok.started_at
    scores: dict[ScorerKey, float | None] = {}
    c = eval_run_scores.c
    for chunk in _chunks(sorted(newest_ok)):
        rows = conn.execute(
            select(c.run_id, c.feature, c.scorer, c.mean).where(c.run_id.in_(chunk))
        )
        for run_id, feature, scorer, mean in rows:
            scores[(newest_ok[run_id], feature, scorer)] = mean
    return last_run, last_success, scores


def read_alerts(
    conn: Connection,
) -> tuple[dict[ScorerKey, int], dict[tuple[str, str, str], int]]:
    """Return regressions by (suite, feature, scorer) and outbox rows by (channel, kind, status).

    A regression is one alert key (suite, feature, scorer, run) whatever the
    number of channels it went to, and is counted whatever its delivery
    status: ``suppressed`` ones (no channel, cooldown) were detected too.
    """
    a = alerts.c
    regressions = {
        (suite, feature, scorer): int(n)
        for suite, feature, scorer, n in conn.execute(
            select(a.suite, a.feature, a.scorer, func.count(distinct(a.run_id)))
            .where(a.kind == "regression")
            .group_by(a.suite, a.feature, a.scorer)
        )
    }
    outbox = {
        (channel, kind, status): int(n)
        for channel, kind, status, n in conn.execute(
            select(a.channel, a.kind, a.status, func.count()).group_by(a.channel, a.kind, a.status)
        )
    }
    return regressions, outbox


# ----------------------------------------------------------- the families


_Family = CounterMetricFamily | GaugeMetricFamily


def _families() -> dict[str, _Family]:
    """Every family the collector can expose, empty; ``describe`` and ``collect`` share it."""
    by_run = ["suite", "run_type"]
    families: list[_Family] = [
        GaugeMetricFamily(
            "continuous_eval_db_up",
            "1 when the last scrape's database queries succeeded in time, else 0.",
        ),
        GaugeMetricFamily(
            "continuous_eval_db_scrape_duration_seconds",
            "Time this scrape spent on (or waiting for) the database queries.",
        ),
        CounterMetricFamily(
            "continuous_eval_runs",
            "Runs in a terminal status (succeeded, failed, cancelled, skipped, inconclusive).",
            labels=[*by_run, "status"],
        ),
        GaugeMetricFamily(
            "continuous_eval_unfinished_runs",
            "Runs stored in a non-terminal status (queued, running, paused, interrupted).",
            labels=[*by_run, "status"],
        ),
        CounterMetricFamily(
            "continuous_eval_case_errors",
            "Stored results with status error (eval_runs.errored, summed).",
            labels=by_run,
        ),
        CounterMetricFamily(
            "continuous_eval_judge_requests",
            "Stored results that recorded judge usage (input or output tokens above zero).",
            labels=by_run,
        ),
        CounterMetricFamily(
            "continuous_eval_judge_tokens",
            "Judge tokens recorded on runs (eval_runs.judge_*_tokens).",
            labels=[*by_run, "token_type"],
        ),
        CounterMetricFamily(
            "continuous_eval_judge_cost_usd",
            "Judge cost recorded on runs, in US dollars (eval_runs.judge_cost_usd).",
            labels=by_run,
        ),
        CounterMetricFamily(
            "continuous_eval_target_tokens",
            "Tokens the targets under test recorded (eval_runs.target_*_tokens).",
            labels=[*by_run, "token_type"],
        ),
        CounterMetricFamily(
            "continuous_eval_target_cost_usd",
            "Cost the targets under test recorded, in US dollars.",
            labels=by_run,
        ),
        GaugeMetricFamily(
            "continuous_eval_last_scheduled_run_timestamp_seconds",
            "Start (unix time) of the suite's newest scheduled run, any status.",
            labels=["suite"],
        ),
        GaugeMetricFamily(
            "continuous_eval_last_scheduled_success_timestamp_seconds",
            "Start (unix time) of the suite's newest succeeded scheduled run.",
            labels=["suite"],
        ),
        GaugeMetricFamily(
            "continuous_eval_last_scheduled_score",
            "Mean score per feature and scorer of the suite's newest succeeded scheduled run.",
            labels=["suite", "feature", "scorer"],
        ),
        CounterMetricFamily(
            "continuous_eval_regressions",
            "Regressions detected (regression alerts, one per run whatever the channels).",
            labels=["suite", "feature", "scorer"],
        ),
        GaugeMetricFamily(
            "continuous_eval_outbox_alerts",
            "Alerts in the outbox by channel, kind and delivery status.",
            labels=["channel", "kind", "status"],
        ),
    ]
    return {family.name: family for family in families}


def build_families(snapshot: DbSnapshot, suites: Iterable[str]) -> list[Metric]:
    """Turn a snapshot into metric families, with zeros where a label set has no rows yet.

    Zeros matter to alert rules: ``increase()`` cannot see a series go from
    absent to 1, only from 0 to 1. Runs are zero-filled for every suite known
    (configured or stored) x run type x status; regressions for every feature
    x scorer of the suites' newest succeeded scheduled runs; the outbox for
    every kind x status of each channel seen.
    """
    families = _families()

    def add(name: str, labels: Sequence[str], value: float) -> None:
        families[name].add_metric(list(labels), value)

    _add_runs(add, snapshot, set(suites) | {suite for suite, _, _ in snapshot.runs})
    _add_scores(add, snapshot)
    for channel in sorted({channel for channel, _, _ in snapshot.alerts}):
        for kind in ALERT_KINDS:
            for status in ALERT_STATUSES:
                n = snapshot.alerts.get((channel, kind, status), 0)
                add("continuous_eval_outbox_alerts", (channel, kind, status), n)
    return list(families.values())


_Add = Callable[[str, Sequence[str], float], None]


def _add_runs(add: _Add, snapshot: DbSnapshot, known: set[str]) -> None:
    """Run counts by status, and the cases, tokens and cost they spent, per suite x run type."""
    by_run: dict[tuple[str, str], RunTotals] = defaultdict(RunTotals)
    for (suite, run_type, _status), totals in snapshot.runs.items():
        by_run[(suite, run_type)] += totals
    for suite in sorted(known):
        for run_type in RUN_TYPES:
            for status in TERMINAL_STATUSES + UNFINISHED_STATUSES:
                n = snapshot.runs.get((suite, run_type, status), RunTotals()).runs
                name = (
                    "continuous_eval_runs"
                    if status in TERMINAL_STATUSES
                    else "continuous_eval_unfinished_runs"
                )
                add(name, (suite, run_type, status), n)
            _add_spend(add, (suite, run_type), by_run.get((suite, run_type), RunTotals()))


def _add_spend(add: _Add, labels: tuple[str, str], t: RunTotals) -> None:
    add("continuous_eval_case_errors", labels, t.errored)
    add("continuous_eval_judge_requests", labels, t.judge_requests)
    add("continuous_eval_judge_tokens", (*labels, "input"), t.judge_input_tokens)
    add("continuous_eval_judge_tokens", (*labels, "output"), t.judge_output_tokens)
    add("continuous_eval_judge_cost_usd", labels, t.judge_cost_usd)
    add("continuous_eval_target_tokens", (*labels, "input"), t.target_input_tokens)
    add("continuous_eval_target_tokens", (*labels, "output"), t.target_output_tokens)
    add("continuous_eval_target_cost_usd", labels, t.target_cost_usd)


def _add_scores(add: _Add, snapshot: DbSnapshot) -> None:
    """The newest scheduled runs' times, scores and regressions."""
    for suite, at in sorted(snapshot.last_run_at.items()):
        add("continuous_eval_last_scheduled_run_timestamp_seconds", (suite,), at.timestamp())
    for suite, at in sorted(snapshot.last_success_at.items()):
        add("continuous_eval_last_scheduled_success_timestamp_seconds", (suite,), at.timestamp())
    for key, mean in sorted(snapshot.last_scores.items()):
        if mean is not None:
            add("continuous_eval_last_scheduled_score", key, mean)
    for key in sorted(set(snapshot.regressions) | set(snapshot.last_scores)):
        add("continuous_eval_regressions", key, snapshot.regressions.get(key, 0))


# ------------------------------------------------------------ the collector


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
        return list(_families().values())

    def collect(self) -> Iterable[Metric]:
        """Query the database (bounded by ``timeout_s``) and return the families; never raise."""
        started = time.perf_counter()
        snapshot = self._snapshot()
        families = build_families(snapshot, self._suites) if snapshot is not None else []
        meta = _families()
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
