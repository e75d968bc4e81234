"""Latency of the drift trend endpoint over a year of history, through real HTTP.

One year of daily scheduled runs (plus a weekly manual run, which the trend
must skip) of a suite with 50 features x 3 scorers, with 200 raw result
rows per run x feature (3.65 million rows, so the database is the size the
endpoint will meet), in a scratch Postgres database created for the run and
dropped at the end. Then the query plan of the trend for one feature, and
p50/p95/p99 of ``GET /admin/ai-quality/drift/eval-trend?feature=...``
through uvicorn on a free port with a real HTTP client, after a warm-up.
The target is p95 <= 20 ms. Then, for the index question, the reads of one run's
results (live progress, result pages) with and without an index on
``eval_results (run_id, id)``.

    python bench/trend_query.py                     # 365 days, 500 requests
    python bench/trend_query.py --days 90 --requests 200
    CONTINUOUS_EVAL_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test ...
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FEATURES = [f"feature-{i:02d}" for i in range(50)]
SCORERS = ["judge", "exact", "regex"]
ROWS_PER_FEATURE = 200
TARGET_P95_MS = 20.0
TOKEN = "bench-token"  # noqa: S105 (a throwaway token for a local server)


class _NoDaemon:
    """The trend endpoint never starts or controls runs; the rest of the API is not measured."""

    async def start_manual(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("not in this benchmark")

    async def control(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("not in this benchmark")


def _create_database(server_url: str) -> str:
    name = f"ce_bench_trend_{os.getpid()}_{uuid.uuid4().hex[:6]}"
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


def _runs(days: int, start: datetime) -> Iterator[tuple[Any, ...]]:
    for day in range(days):
        slot = start + timedelta(days=day)
        yield ("scheduled", f"sched-{day:04d}", slot, slot + timedelta(minutes=10))
        if day % 7 == 3:
            yield ("manual", f"manual-{day:04d}", None, slot + timedelta(hours=5))


def _load(url: str, days: int) -> tuple[int, int, float]:
    """Fill the database with COPY; return (runs, result rows, seconds)."""
    from psycopg.types.json import Jsonb

    started = time.perf_counter()
    start = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0) - timedelta(
        days=days
    )
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    raw = engine.raw_connection()
    runs = results = 0
    try:
        conn: Any = raw.driver_connection
        with conn.cursor() as cur:
            with cur.copy(
                "COPY eval_runs (id, suite, run_type, scheduled_for, status, attempt, created_at,"
                " started_at, finished_at, features, cases_total, cases_done, total, scored,"
                " errored, fingerprint) FROM STDIN"
            ) as copy:
                for run_type, run_id, slot, finished in _runs(days, start):
                    began = slot or finished - timedelta(minutes=10)
                    copy.write_row(
                        (
                            run_id,
                            "bench",
                            run_type,
                            slot,
                            "succeeded",
                            1,
                            began,
                            began,
                            finished,
                            Jsonb(FEATURES),
                            ROWS_PER_FEATURE * len(FEATURES),
                            ROWS_PER_FEATURE * len(FEATURES),
                            ROWS_PER_FEATURE * len(FEATURES),
                            ROWS_PER_FEATURE * len(FEATURES),
                            0,
                            "fp",
                        )
                    )
                    runs += 1
            with cur.copy(
                "COPY eval_run_scores (run_id, feature, scorer, mean, stderr, n, errors,"
                " fingerprint) FROM STDIN"
            ) as copy:
                for _, run_id, _, _ in _runs(days, start):
                    for f, feature in enumerate(FEATURES):
                        for s, scorer in enumerate(SCORERS):
                            mean = 3.5 + ((hash((run_id, f, s)) % 100) - 50) / 100
                            copy.write_row(
                                (run_id, feature, scorer, mean, 0.05, 66, 1, f"fp-{f}-{s}")
                            )
            with cur.copy(
                "COPY eval_results (run_id, feature, case_id, scorer, status, score, passed,"
                " latency_ms, created_at) FROM STDIN"
            ) as copy:
                for _, run_id, _, finished in _runs(days, start):
                    for feature in FEATURES:
                        for i in range(ROWS_PER_FEATURE):
                            case_id = f"case-{i // len(SCORERS):03d}"
                            scorer = SCORERS[i % len(SCORERS)]
                            copy.write_row(
                                (run_id, feature, case_id, scorer, "ok", 4.0, True, 120.0, finished)
                            )
                            results += 1
        conn.commit()
        with conn.cursor() as cur:
            conn.autocommit = True
            cur.execute("VACUUM ANALYZE")
    finally:
        raw.close()
        engine.dispose()
    return runs, results, time.perf_counter() - started


def _plan(url: str, feature: str) -> str:
    from continuous_eval.adapters.db.queries import SqlRunReader

    statement = SqlRunReader.eval_trend_statement(feature=feature, limit=100)
    sql = str(
        statement.compile(
            dialect=sa.dialects.postgresql.dialect(), compile_kwargs={"literal_binds": True}
        )  # type: ignore[attr-defined]
    )
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        for _ in range(3):  # warm the cache, as the served requests are
            conn.execute(sa.text(sql)).all()
        rows = conn.execute(sa.text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")).scalars().all()
    engine.dispose()
    return "\n".join(rows)


def _poll_timings(url: str, run_ids: Sequence[str]) -> list[str]:
    """Median ms of the live-progress and results-page reads of a few runs (old to newest)."""
    from continuous_eval.adapters.db.engine import make_engine
    from continuous_eval.adapters.db.queries import SqlRunReader

    engine = make_engine(url)
    reader = SqlRunReader(engine)
    lines = []
    try:
        for run_id in run_ids:
            mid = _mid_id(engine, run_id)
            reads = {
                "snapshot": lambda r=run_id: reader.run_snapshot(r),
                "poll from 0": lambda r=run_id: reader.poll_run(r, after_id=0, limit=500),
                "poll mid-run": lambda r=run_id, m=mid: reader.poll_run(r, after_id=m, limit=500),
                "results page 1": lambda r=run_id: reader.list_results_page(r, limit=101),
            }
            cells = []
            for label, read in reads.items():
                samples = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    read()
                    samples.append((time.perf_counter() - t0) * 1000)
                cells.append(f"{label} {statistics.median(samples):6.1f}")
            lines.append(f"  {run_id:<11} " + "   ".join(cells) + "  (ms)")
    finally:
        engine.dispose()
    return lines


def _mid_id(engine: sa.Engine, run_id: str) -> int:
    from continuous_eval.adapters.db.tables import eval_results

    c = eval_results.c
    with engine.connect() as conn:
        low, high = conn.execute(
            sa.select(sa.func.min(c.id), sa.func.max(c.id)).where(c.run_id == run_id)
        ).one()
    return (int(low) + int(high)) // 2


class _Server:
    """The real app under uvicorn in a background thread, on a free port."""

    def __init__(self, url: str) -> None:
        from continuous_eval.adapters.clock import SystemClock
        from continuous_eval.adapters.db.engine import make_engine
        from continuous_eval.adapters.db.queries import SqlRunReader
        from continuous_eval.adapters.db.store import SqlRunStore
        from continuous_eval.adapters.http.app import create_app
        from continuous_eval.fakes.resend_server import listening_socket
        from continuous_eval.settings import Settings

        self.engine = make_engine(url)
        store = SqlRunStore(self.engine, SystemClock())
        settings = Settings(database_url=url, api_tokens=[SecretStr(TOKEN)])
        app = create_app(
            settings=settings,
            readiness=lambda: None,
            registry=CollectorRegistry(),
            daemon=_NoDaemon(),
            store=store,
            reader=SqlRunReader(self.engine),
            suites={"bench": FEATURES},
        )
        # TCP proto, so asyncio sets TCP_NODELAY (else Nagle adds ~40 ms per answer).
        self.socket = listening_socket("127.0.0.1", 0)
        self.socket.listen(128)
        self.base_url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> _Server:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()
        self.engine.dispose()


def _percentiles(samples: Sequence[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(samples, n=100)
    return statistics.median(samples), q[94], q[98]


def _measure(base_url: str, params: dict[str, Any], warmup: int, n: int) -> list[float]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
        for _ in range(warmup):
            client.get("/admin/ai-quality/drift/eval-trend", params=params).raise_for_status()
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            response = client.get("/admin/ai-quality/drift/eval-trend", params=params)
            samples.append((time.perf_counter() - t0) * 1000)
            response.raise_for_status()
        items = response.json()["items"]
    if params.get("feature") and not items:
        raise SystemExit("the trend came back empty: the benchmark measured nothing")
    return samples


def main() -> None:
    """Build the database, print the plan and the latency figures, drop the database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()

    from continuous_eval.adapters.db.migrate import upgrade

    server_url = os.environ.get("CONTINUOUS_EVAL_BENCH_POSTGRES_URL", DEFAULT_PG)
    name = _create_database(server_url)
    url = sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        runs, results, seconds = _load(url, args.days)
        print(
            f"database: {runs} runs ({args.days} days scheduled + weekly manual), "
            f"{runs * len(FEATURES) * len(SCORERS):,} score rows, {results:,} result rows, "
            f"loaded in {seconds:.1f} s"
        )
        print("\nplan of the trend for one feature (limit 100):")
        print(_plan(url, FEATURES[7]))
        with _Server(url) as server:
            print(f"\nHTTP, {args.requests} sequential requests after {args.warmup} warm-up:")
            cases = [
                ("one feature (the target)", {"feature": FEATURES[7]}),
                ("one feature x scorer", {"feature": FEATURES[7], "scorer": "judge"}),
                ("one feature, limit 1000", {"feature": FEATURES[7], "limit": 1000}),
                ("whole suite, limit 100", {"suite": "bench"}),
            ]
            target: float | None = None
            for label, params in cases:
                samples = _measure(server.base_url, params, args.warmup, args.requests)
                p50, p95, p99 = _percentiles(samples)
                print(f"  {label:<28} p50 {p50:6.2f} ms   p95 {p95:6.2f} ms   p99 {p99:6.2f} ms")
                if target is None:
                    target = p95
        assert target is not None
        verdict = "met" if target <= TARGET_P95_MS else "MISSED"
        print(
            f"\ntarget p95 <= {TARGET_P95_MS:.0f} ms for one feature: {verdict} ({target:.2f} ms)"
        )

        # Not the trend: the reads of one run's results (live events, results pages).
        sample = [f"sched-{d:04d}" for d in (0, args.days // 2, args.days - 1)]
        print("\nreads of one run's results (as migrated, with ix_eval_results_run_id_id):")
        print("\n".join(_poll_timings(url, sample)))
    finally:
        _drop_database(server_url, name)


if __name__ == "__main__":
    main()
