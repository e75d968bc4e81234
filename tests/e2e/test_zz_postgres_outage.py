"""Postgres restarted mid-run, and down across a tick: the daemon rides it out.

Named to run last: it restarts the machine's Postgres server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.e2e.daemon_harness import SLOW_APP, Cluster, database, dump, runs, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SUITES = """
suites:
  gamma:
    concurrency: 2
    features:
      answers:
        dataset:
          cases:
{gamma_cases}
        target: {{type: python, callable: 'slow_app:answer'}}
        scorers: [{{type: regex, pattern: 'q'}}]
  epsilon:
    schedule: {{interval_hours: {epsilon_hours}}}
    features:
      answers:
        dataset: {{cases: [{{id: e1, input: 'q1:0.05'}}, {{id: e2, input: 'q2:0.05'}}]}}
        target: {{type: python, callable: 'slow_app:answer'}}
        scorers: [{{type: regex, pattern: 'q'}}]
"""


def _cluster_version() -> str | None:
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return None
    versions = sorted(os.listdir("/etc/postgresql"))
    return versions[0] if versions else None


def _pg(action: str, *extra: str) -> None:
    version = _cluster_version()
    assert version is not None
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action, *extra],
        check=True,
        capture_output=True,
        timeout=60,
    )


def _pg_ready() -> bool:
    return (
        subprocess.run(
            ["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"], check=False, timeout=10
        ).returncode
        == 0
    )


@pytest.fixture
def local_cluster(postgres_url: str) -> None:
    url = sa.make_url(postgres_url)
    local = url.host in ("127.0.0.1", "localhost") and (url.port or 5432) == 5432
    if not local or _cluster_version() is None or os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("this test restarts the local Postgres cluster; CI must be able to")
        pytest.skip("needs the local Postgres cluster and the rights to restart it")


def test_the_daemon_rides_out_a_restart_and_an_outage(
    tmp_path: Path, postgres_url: str, local_cluster: None
) -> None:
    epsilon_interval_s = 5.0
    (tmp_path / "slow_app.py").write_text(SLOW_APP)
    gamma_cases = "\n".join(f"            - {{id: c{i}, input: 'q{i}:0.4'}}" for i in range(16))
    (tmp_path / "suites.yaml").write_text(
        SUITES.format(gamma_cases=gamma_cases, epsilon_hours=epsilon_interval_s / 3600)
    )
    cluster = Cluster(tmp_path, postgres_url)
    try:
        worker = cluster.start("a")
        with database(postgres_url) as engine:

            def gamma() -> list[dict[str, object]]:
                return [r for r in runs(engine, "gamma") if r["run_type"] == "scheduled"]

            wait_for(lambda: len(gamma()) == 1 and int(gamma()[0]["cases_done"]) >= 3, 30)  # type: ignore[call-overload]

            # 1. An immediate restart (a crash, as far as clients can tell) mid-run.
            _pg("restart", "-m", "immediate")
            assert worker.get("/healthz")[0] == 200
            wait_for(_pg_ready, 60)
            wait_for(lambda: gamma()[0]["status"] == "succeeded", 60)
            assert len(gamma()) == 1, dump(gamma())
            assert worker.alive()

            # 2. Down across several ticks (and an epsilon slot): stays up, not ready.
            wait_for(lambda: len(runs(engine, "epsilon")) >= 1, 30)
            _pg("stop", "-m", "fast")
            outage_started = datetime.now(UTC)
            try:
                deadline = time.monotonic() + epsilon_interval_s + 2
                while time.monotonic() < deadline:
                    assert worker.get("/healthz")[0] == 200
                    assert worker.get("/readyz", timeout=8)[0] == 503
                    time.sleep(0.5)
            finally:
                _pg("start")
            wait_for(_pg_ready, 60)
            wait_for(lambda: worker.get("/readyz", timeout=8)[0] == 200, 30)
            wait_for(
                lambda: any(r["started_at"] > outage_started for r in runs(engine, "epsilon")),
                30,
            )
            # Two more checks of the suite: a second catch-up run would have started by then.
            ticks = "continuous_eval_scheduler_ticks_total"
            seen = worker.metric(ticks, suite="epsilon")
            wait_for(lambda: worker.metric(ticks, suite="epsilon") >= seen + 2, 30)
            after = [r for r in runs(engine, "epsilon") if r["started_at"] > outage_started]
            # Two slots passed during the outage; one catch-up run, not two.
            assert len(after) == 1, dump(after)
            assert worker.alive()
            assert worker.metric("continuous_eval_scheduler_ticks_total", outcome="error") > 0
            assert worker.stop() == 0
    finally:
        cluster.kill_all()
        if not _pg_ready():
            _pg("start")
