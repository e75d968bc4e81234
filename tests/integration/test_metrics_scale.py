"""The scrape stays cheap with a long history: 100,000 runs on SQLite and Postgres.

The history is bulk-inserted (the store would take minutes to write it); a
few recent runs go through the store. Timings are printed (``pytest -s``)
and bounded loosely, so a slow CI machine does not fail the test while a
query that scans the history on every scrape (about 25 ms on Postgres, 150 ms
on SQLite, and seconds once results are counted) still would.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.adapters.db.tables import alerts, eval_results, eval_run_scores, eval_runs
from continuous_eval.adapters.metrics_db import DatabaseCollector
from continuous_eval.core.models import RunStatus
from continuous_eval.testing import FakeClock
from tests.integration.metrics_harness import (
    assert_agrees,
    regression,
    results,
    run,
    save,
    scrape,
    start,
)

pytestmark = pytest.mark.slow

RUNS = 100_000
SUITES = 5


def seed(engine: sa.Engine, clock: FakeClock) -> None:
    """Insert RUNS runs, one a minute up to a day ago, with results, scores and some alerts."""
    rnd = random.Random(7)
    first = clock.now() - timedelta(days=1, minutes=RUNS)
    runs: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    scores: list[dict[str, Any]] = []
    outbox: list[dict[str, Any]] = []
    for i in range(RUNS):
        at = first + timedelta(minutes=i)
        run_id = f"h{i:06d}"
        suite = f"suite{i % SUITES}"
        scheduled = i % 3 != 0
        status = rnd.choices(["succeeded", "failed", "skipped", "cancelled"], [90, 4, 5, 1])[0]
        errored = rnd.choice([0, 0, 0, 1])
        runs.append(
            {
                "id": run_id,
                "suite": suite,
                "run_type": "scheduled" if scheduled else "manual",
                "scheduled_for": at if scheduled else None,
                "status": status,
                "attempt": 1,
                "created_at": at,
                "started_at": at,
                "finished_at": at + timedelta(seconds=30),
                "features": ["refunds"],
                "cases_total": 2,
                "total": 2,
                "scored": 2 - errored,
                "errored": errored,
                "judge_input_tokens": 200,
                "judge_output_tokens": 20,
                "judge_cost_usd": 0.001,
                "fingerprint": "f" * 64,
                "fingerprint_parts": {"dataset": "d" * 64},
            }
        )
        for case in range(2):
            failed = case == 0 and errored == 1
            rows.append(
                {
                    "run_id": run_id,
                    "feature": "refunds",
                    "case_id": f"c{case}",
                    "scorer": "judge",
                    "status": "error" if failed else "ok",
                    "score": None if failed else 4.0,
                    "input_tokens": 0 if failed else 100,
                    "output_tokens": 0 if failed else 10,
                    "output_excerpt": "an answer of a few words " * 4,
                    "created_at": at,
                }
            )
        scores.append(
            {"run_id": run_id, "feature": "refunds", "scorer": "judge", "mean": 4.0, "n": 2}
        )
        if scheduled and i % 50 == 1:
            for channel in ("email", "webhook"):
                outbox.append(
                    {
                        "key": f"{suite}:refunds:judge:{run_id}",
                        "channel": channel,
                        "kind": "regression",
                        "run_id": run_id,
                        "suite": suite,
                        "feature": "refunds",
                        "scorer": "judge",
                        "rule": "drop",
                        "status": rnd.choice(["sent", "dead", "suppressed"]),
                        "payload": "{}",
                        "summary": {},
                        "created_at": at,
                    }
                )
    with engine.begin() as conn:
        for table, batch in ((eval_runs, runs), (eval_results, rows)):
            for k in range(0, len(batch), 5000):
                conn.execute(table.insert(), batch[k : k + 5000])
        for table, batch in ((eval_run_scores, scores), (alerts, outbox)):
            for k in range(0, len(batch), 5000):
                conn.execute(table.insert(), batch[k : k + 5000])
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Iterator[SqlRunStore]:
    """The SQL store only, on a database holding RUNS runs of history."""
    run_store = SqlRunStore(make_engine(db_url), clock)
    try:
        seed(run_store.engine, clock)
        yield run_store
    finally:
        run_store.close()


def timed_scrape(registry: CollectorRegistry) -> float:
    began = time.perf_counter()
    generate_latest(registry)
    return time.perf_counter() - began


def test_a_scrape_with_100000_runs_of_history_is_cheap(
    store: SqlRunStore, clock: FakeClock
) -> None:
    backend = store.engine.dialect.name
    # Recent runs through the store: settled, settling and still running.
    run(store, "recent-1", [5, 4], [1, 1], clock=clock, suite="suite1")
    clock.advance(seconds=60)
    run(
        store,
        "recent-2",
        [2, 1],
        [0, 0],
        clock=clock,
        suite="suite1",
        alerts=[regression("recent-2", suite="suite1")],
    )
    start(store, "recent-3", "suite2", clock=clock)
    save(store, "recent-3", results("refunds", "judge", [3, None], judge=True))
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(store.engine, timeout_s=60, clock=clock))

    cold = timed_scrape(registry)  # the first scrape of a process sums the history once
    warm = sorted(timed_scrape(registry) for _ in range(20))
    clock.advance(seconds=1800)  # the recent runs settle
    store.finish_run("recent-3", RunStatus.FAILED, "judge unavailable", [])
    settling = timed_scrape(registry)
    median = warm[len(warm) // 2]
    print(
        f"\n[{backend}] {RUNS} runs, {2 * RUNS} results: first scrape {cold * 1000:.0f} ms, "
        f"then median {median * 1000:.1f} ms (max {warm[-1] * 1000:.1f} ms), "
        f"after runs settled {settling * 1000:.1f} ms"
    )
    samples = scrape(registry)
    assert_agrees(samples, store.engine)
    assert median < 0.1, f"a warm scrape took {median * 1000:.0f} ms"
    assert cold < 30
