"""The daemon at rest, and the due check's cost with a long history.

1. Idle: a ``serve`` process with scheduling on and nothing due, ticking every
   few seconds; prints its RSS and the CPU seconds it used over the window.
2. Due check: 100,000 runs in a Postgres database (20 suites, a mix of
   scheduled and manual, five years of history); prints p50/p95/max of
   ``newest_scheduled`` (the tick's query) and of the whole due decision
   (query plus the pure check), and the query plan.

    python bench/daemon_idle.py                       # 60 s idle window, 100,000 runs
    python bench/daemon_idle.py --seconds 20 --runs 20000
    CONTINUOUS_EVAL_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test ...
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import sqlalchemy as sa

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def idle(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "app.py").write_text("def answer(q):\n    return q\n")
        (work / "suites.yaml").write_text(
            "suites:\n  s:\n    features:\n      f:\n"
            "        dataset: {cases: [{input: a}, {input: b}]}\n"
            "        target: {type: python, callable: 'app:answer'}\n"
            "        scorers: [{type: contains, value: a}]\n"
        )
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUOUS_EVAL_")}
        env.update(
            CONTINUOUS_EVAL_DATABASE_URL=f"sqlite:///{work / 'idle.db'}",
            CONTINUOUS_EVAL_CONFIG_PATH=str(work / "suites.yaml"),
            CONTINUOUS_EVAL_HTTP_PORT=str(port),
            CONTINUOUS_EVAL_SCHEDULE_ENABLED="true",
            CONTINUOUS_EVAL_SCHEDULE_STARTUP_DELAY_S="0",
            CONTINUOUS_EVAL_SCHEDULE_STARTUP_JITTER_S="0",
            CONTINUOUS_EVAL_SCHEDULE_CHECK_INTERVAL_S="5",
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "continuous_eval", "serve"],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            time.sleep(3)  # the first tick runs the suite once; then nothing is due
            ps = psutil.Process(proc.pid)
            cpu0 = ps.cpu_times()
            rss0 = ps.memory_info().rss
            time.sleep(seconds)
            cpu1 = ps.cpu_times()
            rss1 = ps.memory_info().rss
            used = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
            print(
                f"idle daemon over {seconds:.0f} s (a check every 5 s): "
                f"CPU {used:.3f} s ({100 * used / seconds:.2f}% of a core), "
                f"RSS {rss0 / 2**20:.1f} MiB -> {rss1 / 2**20:.1f} MiB"
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def due_check(server_url: str, total: int, repeats: int) -> None:
    from continuous_eval.adapters.db import migrate
    from continuous_eval.adapters.db.engine import make_engine
    from continuous_eval.adapters.db.store import SqlRunStore
    from continuous_eval.adapters.db.tables import eval_runs
    from continuous_eval.core.due import check_due

    name = f"ce_bench_{os.getpid()}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        rng = random.Random(7)
        suites = [f"suite-{i:02d}" for i in range(20)]
        start = datetime(2021, 1, 1, tzinfo=UTC)
        rows = []
        for i in range(total):
            suite = suites[i % len(suites)]
            when = start + timedelta(minutes=i * 26)  # about five years for 100,000 runs
            scheduled = rng.random() < 0.8
            rows.append(
                {
                    "id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "suite": suite,
                    "run_type": "scheduled" if scheduled else "manual",
                    "scheduled_for": when if scheduled else None,
                    "status": "succeeded",
                    "attempt": 1,
                    "created_at": when,
                    "started_at": when,
                    "finished_at": when + timedelta(minutes=5),
                    "features": ["f"],
                    "fingerprint": "f" * 64,
                    "fingerprint_parts": {},
                }
            )
        t0 = time.perf_counter()
        with engine.begin() as conn:
            for chunk in range(0, len(rows), 5000):
                conn.execute(sa.insert(eval_runs), rows[chunk : chunk + 5000])
            conn.execute(sa.text("ANALYZE eval_runs"))
        print(f"inserted {total:,} runs in {time.perf_counter() - t0:.1f} s")
        store = SqlRunStore(engine)  # as in production: db_now reads the database's clock
        query_ms: list[float] = []
        decision_ms: list[float] = []
        interval = timedelta(hours=24)
        for i in range(repeats):
            suite = suites[i % len(suites)]
            t0 = time.perf_counter()
            newest = store.newest_scheduled(suite)
            t1 = time.perf_counter()
            now = store.db_now()
            check_due(newest.started_at if newest else None, interval, now)
            t2 = time.perf_counter()
            query_ms.append((t1 - t0) * 1000)
            decision_ms.append((t2 - t0) * 1000)

        def describe(xs: list[float]) -> str:
            q = statistics.quantiles(xs, n=100)
            return f"p50 {q[49]:.3f} ms, p95 {q[94]:.3f} ms, max {max(xs):.3f} ms"

        print(f"newest_scheduled over {total:,} runs ({repeats} calls): {describe(query_ms)}")
        print(f"due decision (query + db clock + pure check): {describe(decision_ms)}")
        target = statistics.quantiles(query_ms, n=100)[94]
        print(f"target p95 <= 5 ms: {'met' if target <= 5 else 'MISSED'}")
        with engine.connect() as conn:
            plan = conn.execute(
                sa.text(
                    "EXPLAIN (FORMAT JSON) SELECT * FROM eval_runs WHERE suite = 'suite-03' "
                    "AND run_type = 'scheduled' AND started_at IS NOT NULL "
                    "ORDER BY started_at DESC LIMIT 1"
                )
            ).scalar_one()
        node = plan[0]["Plan"]
        while "Plans" in node and node.get("Node Type") == "Limit":
            node = node["Plans"][0]
        print(f"plan: {node.get('Node Type')} using {node.get('Index Name', '-')}")
        store.close()
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="idle window; 0 skips it")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=500)
    args = parser.parse_args()
    if args.seconds:
        idle(args.seconds)
    url = os.environ.get("CONTINUOUS_EVAL_BENCH_POSTGRES_URL", DEFAULT_PG)
    due_check(url, args.runs, args.repeats)


if __name__ == "__main__":
    main()
