"""Jobs survive a restart of ``serve``: real processes, ``kill -9`` mid-job, one SQLite file.

The job kind ``demo`` is a test-only kind (``CONTINUOUS_EVAL_TEST_JOB_KINDS``):
the first ``serve`` runs it as ``block`` (a step, then it waits forever), the
restarted one as ``echo`` (a step, then it returns its parameters). So the job
can only succeed if the second ``serve`` took it over after the first died.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.jobs import SqlJobStore
from continuous_eval.core.jobs import JobRecord, JobStatus
from tests.e2e.cli_harness import cli
from tests.e2e.daemon_harness import SLOW_APP, Cluster, Serve, suite_yaml, wait_for

pytestmark = pytest.mark.slow

JOB_ENV = {
    "CONTINUOUS_EVAL_SCHEDULE_ENABLED": "false",
    "CONTINUOUS_EVAL_JOB_POLL_S": "0.2",
    "CONTINUOUS_EVAL_JOB_LEASE_S": "1.5",
}


def _cluster(tmp_path: Path, url: str) -> Cluster:
    (tmp_path / "slow_app.py").write_text(SLOW_APP)
    (tmp_path / "suites.yaml").write_text(suite_yaml({"quiet": (1, 0.0)}))
    return Cluster(tmp_path, url, env=JOB_ENV)


def _enqueue(url: str, max_attempts: int) -> int:
    store = SqlJobStore(make_engine(url))
    try:
        return store.enqueue(
            "demo", {"eval_set": 7}, datetime.now(UTC), max_attempts=max_attempts
        ).id
    finally:
        store.close()


def _job(url: str, job_id: int) -> JobRecord:
    store = SqlJobStore(make_engine(url))
    try:
        return store.get(job_id)
    finally:
        store.close()


def _api_job(serve: Serve, job_id: int) -> dict[str, Any]:
    status, body = serve.get(f"/api/jobs/{job_id}")
    assert status == 200, body
    document: dict[str, Any] = json.loads(body)
    return document


def _events(serve: Serve, job_id: int, last_id: str | None, stop: str) -> list[dict[str, Any]]:
    """Read the job's stream until an event named ``stop`` (included)."""
    headers = {} if last_id is None else {"Last-Event-ID": last_id}
    url = f"http://127.0.0.1:{serve.port}/api/jobs/{job_id}/events"
    events: list[dict[str, Any]] = []
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        current: dict[str, Any] = {}
        for line in response.iter_lines():
            if not line:
                if current:
                    events.append(current)
                    if current.get("event") == stop:
                        return events
                current = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                current[name] = json.loads(value) if name == "data" else value
    return events


def _killed_mid_job(cluster: Cluster, url: str, max_attempts: int) -> tuple[int, list[Any]]:
    job_id = _enqueue(url, max_attempts)
    first = cluster.start("serve-1", CONTINUOUS_EVAL_TEST_JOB_KINDS='{"demo": "block"}')
    wait_for(lambda: _api_job(first, job_id)["step"] == "waiting", 30)
    live = _events(first, job_id, None, stop="step")
    first.proc.kill()  # kill -9: no finish, no release; the row stays running
    first.proc.wait(timeout=10)
    left = _job(url, job_id)
    assert (left.status, left.attempt, left.lease_owner) == (JobStatus.RUNNING, 1, "serve-1")
    return job_id, live


def test_a_job_killed_with_serve_is_taken_over_and_finished_by_the_next(
    tmp_path: Path, migrated_sqlite_url: str
) -> None:
    url = migrated_sqlite_url
    cluster = _cluster(tmp_path, url)
    try:
        job_id, live = _killed_mid_job(cluster, url, max_attempts=2)
        assert [e["event"] for e in live] == ["snapshot", "step"]
        assert live[1]["id"] == "1"
        assert live[1]["data"]["step"] == "waiting"

        second = cluster.start("serve-2", CONTINUOUS_EVAL_TEST_JOB_KINDS='{"demo": "echo"}')
        resumed = _events(second, job_id, live[1]["id"], stop="end")
        wanted = [(e["event"], e.get("id")) for e in resumed if e["event"] != "status"]
        assert wanted == [("snapshot", None), ("step", "2"), ("end", None)]
        assert resumed[-1]["data"]["status"] == "succeeded"
        done = _api_job(second, job_id)
        assert (done["status"], done["attempt"]) == ("succeeded", 2)
        assert done["result"] == {"eval_set": 7}

        env = {"CONTINUOUS_EVAL_DATABASE_URL": url}
        shown = cli("jobs", "show", str(job_id), cwd=tmp_path, env=env)
        assert shown.returncode == 0, shown.stderr
        assert f"job {job_id} (demo) succeeded" in shown.stdout
        assert "waiting" in shown.stdout
        assert "saving" in shown.stdout
        listed = cli("jobs", "list", "--json", cwd=tmp_path, env=env)
        assert [j["id"] for j in json.loads(listed.stdout)["jobs"]] == [job_id]
        refused = cli("jobs", "cancel", str(job_id), cwd=tmp_path, env=env)
        assert refused.returncode == 2
        assert "already succeeded" in refused.stderr
        missing = cli("jobs", "show", "999", cwd=tmp_path, env=env)
        assert missing.returncode == 2
        assert "no job 999" in missing.stderr
        assert second.stop() == 0
    finally:
        cluster.kill_all()


def test_a_job_out_of_attempts_is_failed_with_the_reason_after_the_restart(
    tmp_path: Path, migrated_sqlite_url: str
) -> None:
    url = migrated_sqlite_url
    cluster = _cluster(tmp_path, url)
    try:
        job_id, _ = _killed_mid_job(cluster, url, max_attempts=1)
        second = cluster.start("serve-2", CONTINUOUS_EVAL_TEST_JOB_KINDS='{"demo": "echo"}')
        wait_for(lambda: _api_job(second, job_id)["status"] == "failed", 30)
        failed = _api_job(second, job_id)
        assert failed["error"] == "serve stopped while the job ran (attempt 1 of 1)"
        assert failed["attempt"] == 1
        env = {"CONTINUOUS_EVAL_DATABASE_URL": url}
        cancel = cli("jobs", "cancel", str(job_id), cwd=tmp_path, env=env)
        assert cancel.returncode == 2
    finally:
        cluster.kill_all()


def test_sigterm_hands_the_job_back_and_the_next_serve_runs_it_at_once(
    tmp_path: Path, migrated_sqlite_url: str
) -> None:
    url = migrated_sqlite_url
    cluster = _cluster(tmp_path, url)
    # A lease far longer than the test: only the hand-back lets serve-2 run the job.
    cluster.env["CONTINUOUS_EVAL_JOB_LEASE_S"] = "600"
    try:
        job_id = _enqueue(url, max_attempts=1)
        first = cluster.start("serve-1", CONTINUOUS_EVAL_TEST_JOB_KINDS='{"demo": "block"}')
        wait_for(lambda: _api_job(first, job_id)["step"] == "waiting", 30)
        assert first.stop() == 0  # SIGTERM
        back = _job(url, job_id)
        assert (back.status, back.attempt, back.lease_owner) == (JobStatus.QUEUED, 0, None)
        second = cluster.start("serve-2", CONTINUOUS_EVAL_TEST_JOB_KINDS='{"demo": "echo"}')
        wait_for(lambda: _api_job(second, job_id)["status"] == "succeeded", 30)
        assert _api_job(second, job_id)["attempt"] == 1
    finally:
        cluster.kill_all()
