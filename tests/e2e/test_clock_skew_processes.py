"""Replicas whose clocks are an hour off agree on the schedule: it runs on the database's clock.

Three ``serve`` processes on one Postgres database, one an hour ahead and
one an hour behind (libfaketime), one right. Every slot is claimed once,
runs are at least an interval apart by the database's clock (no extra
runs from the replica behind), none is missed for long (no stuck slot from
the one ahead), and nothing is taken over early.

libfaketime (Debian's ``faketime``) is needed: without it the test skips,
except under ``CI=true``, where it fails (``.ci/run`` installs it).
"""

from __future__ import annotations

import itertools
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.e2e.daemon_harness import Cluster, database, dump, runs, suite_yaml, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

LIBFAKETIME = next(
    iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))),
    Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"),
)
"""Debian's multi-threaded libfaketime, wherever the architecture puts it."""
INTERVAL_S = 4.0
WINDOW_S = 26.0


@pytest.fixture
def skewed() -> dict[str, dict[str, str]]:
    """The environment that puts a process an hour ahead, or an hour behind."""
    if not LIBFAKETIME.exists():
        message = f"libfaketime is not installed ({LIBFAKETIME}): apt-get install faketime"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)

    def shifted(offset: str) -> dict[str, str]:
        return {
            "LD_PRELOAD": str(LIBFAKETIME),
            "FAKETIME": offset,
            # Only the wall clock is off, as on a host whose NTP failed.
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }

    return {"ahead": shifted("+1h"), "behind": shifted("-1h")}


def test_skewed_replicas_claim_every_slot_once_on_the_database_clock(
    tmp_path: Path, postgres_url: str, skewed: dict[str, dict[str, str]]
) -> None:
    # A target that does not sleep: under libfaketime, time.sleep's absolute
    # clock_nanosleep fails with EINVAL (which the run would report, rightly, as
    # an inconclusive run of errors).
    (tmp_path / "slow_app.py").write_text("def answer(question):\n    return question\n")
    (tmp_path / "suites.yaml").write_text(suite_yaml({"tick": (2, 0.05)}))
    cluster = Cluster(
        tmp_path,
        postgres_url,
        env={"CONTINUOUS_EVAL_SCHEDULE_INTERVAL_HOURS": str(INTERVAL_S / 3600)},
    )
    try:
        started = time.monotonic()
        cluster.start("right")
        cluster.start("ahead", **skewed["ahead"])
        cluster.start("behind", **skewed["behind"])
        with database(postgres_url) as engine:
            time.sleep(max(0.0, WINDOW_S - (time.monotonic() - started)))
            wait_for(lambda: all(r["status"] != "running" for r in runs(engine, "tick")), 10)
            assert cluster.stop_all() == [0, 0, 0]
            rows = [r for r in runs(engine, "tick") if r["run_type"] == "scheduled"]
    finally:
        cluster.kill_all()

    slots = [r["scheduled_for"] for r in rows]
    assert len(slots) == len(set(slots)), dump(rows)  # no slot claimed twice
    starts = sorted(r["started_at"] for r in rows)
    for before, after in itertools.pairwise(starts):
        # No extra runs: the replica behind once ran every tick.
        assert after - before >= timedelta(seconds=INTERVAL_S), dump(rows)
        # No stuck slot: the replica ahead once sat on a claimed slot for many intervals.
        assert after - before < timedelta(seconds=3 * INTERVAL_S), dump(rows)
    assert len(rows) >= WINDOW_S / INTERVAL_S - 3, dump(rows)
    assert all(r["attempt"] == 1 for r in rows), dump(rows)  # nothing taken over early
    assert {r["status"] for r in rows} <= {"succeeded", "interrupted"}, dump(rows)
    assert all(r["errored"] == 0 for r in rows), dump(rows)
    owners = {r["lease_owner"] for r in rows}
    assert owners == {None}, dump(rows)
