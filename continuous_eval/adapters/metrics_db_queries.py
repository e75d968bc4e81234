"""The queries a database scrape runs: run totals, per-suite state, alerts.

What belongs here: the SQL behind ``metrics_db.DatabaseCollector``, each
query written to stay cheap however long the history is (the incremental
run totals over the ``(created_at, id)`` index, one backward index probe per
suite, the small alerts table in full; see ``metrics_db`` for why). The
records they return live in ``metrics_db_records``; turning them into metric
families is ``metrics_db_families``'s job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, distinct, func, or_, select

from continuous_eval.adapters.db.tables import alerts, eval_results, eval_run_scores, eval_runs
from continuous_eval.adapters.metrics_db_records import (
    TERMINAL_STATUSES,
    RunCache,
    RunKey,
    RunTotals,
    ScorerKey,
)
from continuous_eval.core.models import RunStatus

_IN_CHUNK = 500
"""Ids per ``IN (...)`` list: well under SQLite's and Postgres's parameter limits."""


@dataclass(frozen=True, slots=True)
class _Run:
    id: str
    key: RunKey
    created_at: datetime
    totals: RunTotals

    @property
    def terminal(self) -> bool:
        return self.key[2] in TERMINAL_STATUSES


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
