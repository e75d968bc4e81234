"""Latency of an online run's sample over a million stored interactions, on Postgres.

A scratch Postgres database (created for the run, dropped at the end) is
migrated and filled through ``SqlInteractionStore.add_interactions`` (big
multi-row inserts): 1,000,000 interactions of 5 features over 30 days, each
with a few hundred characters of input and output, two steps and metadata.
First a slice of that is timed as ingestion in requests of 100 spans (the
OTLP batch size of a busy collector): spans per second and per-request p99;
the targets are >= 2,000 spans/s and p99 <= 50 ms. After ``ANALYZE``, the
query plan of one sample, then median and p95 of 50 calls of
``sample(feature, 24 h window, rate 0.1, limit 200)`` over windows spread
across the month; the target is <= 50 ms.

    python bench/sampling.py                        # 1,000,000 rows
    python bench/sampling.py --rows 200000
    CONTINUOUS_EVAL_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test ...
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.interactions import SqlInteractionStore
from continuous_eval.adapters.db.migrate import upgrade
from continuous_eval.core.interactions import Interaction
from continuous_eval.core.trajectory import Step

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FEATURES = [f"feature-{i}" for i in range(5)]
DAYS = 30
LOAD_BATCH = 5000
INGEST_BATCH = 100
INGEST_ROWS = 20_000
CALLS = 50
TARGET_SAMPLE_MS = 50.0
TARGET_SPANS_PER_S = 2000.0
TARGET_INGEST_P99_MS = 50.0
START = datetime(2025, 1, 1, tzinfo=UTC)


def _create_database(server_url: str) -> str:
    name = f"ce_bench_sampling_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name


def _drop_database(server_url: str, name: str) -> None:
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _interaction(n: int, rows: int) -> Interaction:
    """Row ``n`` of ``rows``: spread evenly over the month, features in turn, 2 spans a trace."""
    trace = hashlib.sha256(f"trace-{n // 2}".encode()).hexdigest()[:32]
    span = hashlib.sha256(f"span-{n}".encode()).hexdigest()[:16]
    started = START + timedelta(seconds=n * DAYS * 86400 / rows)
    return Interaction(
        trace_id=trace,
        span_id=span,
        feature=FEATURES[(n // 2) % len(FEATURES)],
        input=f"How do I get a refund for order {n}? " * 6,
        output=f"You can ask for a refund of order {n} within 30 days from the orders page. " * 3,
        started_at=started,
        ended_at=started + timedelta(seconds=2),
        name="chat claude-haiku-4-5",
        operation="chat",
        model="claude-haiku-4-5",
        input_tokens=120,
        output_tokens=80,
        steps=(
            Step(kind="tool_call", name="lookup_order", arguments={"order": n}, id=f"c{n}"),
            Step(kind="tool_result", id=f"c{n}", content={"status": "delivered"}),
        ),
        metadata={"user": f"u-{n % 997}", "plan": "pro"},
    )


def _batches(first: int, last: int, size: int, rows: int) -> Iterator[list[Interaction]]:
    for start in range(first, last, size):
        yield [_interaction(n, rows) for n in range(start, min(last, start + size))]


def _ingest(store: SqlInteractionStore, rows: int) -> str:
    """Time the first ``INGEST_ROWS`` rows as requests of ``INGEST_BATCH`` spans."""
    requests = [batch for batch in _batches(0, min(INGEST_ROWS, rows), INGEST_BATCH, rows)]
    timings = []
    began = time.perf_counter()
    for batch in requests:
        t0 = time.perf_counter()
        store.add_interactions(batch)
        timings.append((time.perf_counter() - t0) * 1000)
    seconds = time.perf_counter() - began
    spans = sum(len(b) for b in requests)
    again = time.perf_counter()
    assert store.add_interactions(requests[0]) == 0  # a re-sent request stores nothing
    resend_ms = (time.perf_counter() - again) * 1000
    p99 = statistics.quantiles(timings, n=100)[98]
    return (
        f"ingest: {spans} spans in requests of {INGEST_BATCH}: {spans / seconds:,.0f} spans/s "
        f"(target >= {TARGET_SPANS_PER_S:,.0f}), request p50 {statistics.median(timings):.1f} ms, "
        f"p99 {p99:.1f} ms (target <= {TARGET_INGEST_P99_MS:.0f}); a re-sent request "
        f"{resend_ms:.1f} ms"
    )


def _load(store: SqlInteractionStore, rows: int) -> float:
    began = time.perf_counter()
    for batch in _batches(min(INGEST_ROWS, rows), rows, LOAD_BATCH, rows):
        store.add_interactions(batch)
    return time.perf_counter() - began


def _plan(engine: sa.Engine, feature: str, start: datetime) -> str:
    threshold = int(0.1 * (1 << 63))
    sql = (
        "SELECT * FROM interactions WHERE feature = :f AND sample_key < :t"
        " AND started_at >= :s AND started_at < :e"
        " ORDER BY sample_key, started_at, id LIMIT 200"
    )
    params = {"f": feature, "t": threshold, "s": start, "e": start + timedelta(days=1)}
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"), params).scalars().all()
    return "\n".join(rows)


def _sample(store: SqlInteractionStore) -> tuple[list[float], int]:
    timings = []
    found = 0
    for call in range(CALLS):
        feature = FEATURES[call % len(FEATURES)]
        start = START + timedelta(days=1 + call % (DAYS - 2), hours=call % 24)
        t0 = time.perf_counter()
        sampled = store.sample(feature, start, start + timedelta(days=1), 0.1, 200)
        timings.append((time.perf_counter() - t0) * 1000)
        found += len(sampled)
    return timings, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    server = os.environ.get("CONTINUOUS_EVAL_BENCH_POSTGRES_URL", DEFAULT_PG)
    name = _create_database(server)
    url = sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        engine = make_engine(url)
        store = SqlInteractionStore(engine)
        try:
            print(_ingest(store, args.rows))
            seconds = _load(store, args.rows)
            print(f"load: {args.rows:,} rows in {seconds:.0f} s ({args.rows / seconds:,.0f}/s)")
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("VACUUM ANALYZE interactions"))
            print(_plan(engine, FEATURES[0], START + timedelta(days=10)))
            _sample(store)  # warm the cache, as a daemon that samples every hour has
            timings, found = _sample(store)
            p95 = statistics.quantiles(timings, n=20)[18]
            print(
                f"sample (24 h window, rate 0.1, limit 200), {CALLS} calls: "
                f"median {statistics.median(timings):.1f} ms, p95 {p95:.1f} ms, "
                f"max {max(timings):.1f} ms (target <= {TARGET_SAMPLE_MS:.0f}); "
                f"{found / CALLS:.0f} rows a call"
            )
            print(f"per feature: {store.interaction_features()}")
        finally:
            store.close()
    finally:
        _drop_database(server, name)


if __name__ == "__main__":
    main()
