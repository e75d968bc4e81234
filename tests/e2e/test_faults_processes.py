"""Faults a real ``serve`` process must ride out: user code that hangs, and a bounded stop.

A suite whose sync target sleeps for 90 s beside a canary suite that runs
every few seconds, in one process on Postgres: the canary keeps its
schedule, ``/readyz`` keeps answering, the hung run ends by its watchdog and
gives its lock back, the hung threads are counted, and SIGTERM still ends
the process within the shutdown timeout plus the documented margin.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from continuous_eval.adapters.db.locks import advisory_key
from continuous_eval.app.serve import SHUTDOWN_MARGIN_S
from tests.e2e.daemon_harness import SLOW_APP, Cluster, database, dump, runs, wait_for

pytestmark = pytest.mark.slow

SHUTDOWN_S = 5.0


def _suites(directory: Path, *, hung_delay_s: float, hung_cases: int = 10) -> None:
    (directory / "slow_app.py").write_text(SLOW_APP)
    hung = "\n".join(
        f"            - {{id: h{i}, input: 'q{i}:{hung_delay_s}'}}" for i in range(hung_cases)
    )
    (directory / "suites.yaml").write_text(
        f"""\
suites:
  hung:
    concurrency: 2
    schedule: {{interval_hours: 1, watchdog_s: 4}}
    features:
      answers:
        dataset:
          cases:
{hung}
        target: {{type: python, callable: 'slow_app:answer'}}
        scorers: [{{type: regex, pattern: q}}]
  canary:
    concurrency: 2
    schedule: {{interval_hours: {2 / 3600}}}
    features:
      answers:
        dataset:
          cases:
            - {{id: c0, input: 'q0:0.01'}}
            - {{id: c1, input: 'q1:0.01'}}
        target: {{type: python, callable: 'slow_app:answer'}}
        scorers: [{{type: regex, pattern: q}}]
"""
    )


def _lock_held(engine: sa.Engine, suite: str) -> bool:
    key = advisory_key(suite) & 0xFFFF_FFFF_FFFF_FFFF
    with engine.connect() as conn:
        held = conn.execute(
            sa.text(
                # pg_locks is the whole server's: only this test's database counts.
                "select count(*) from pg_locks where locktype = 'advisory' and granted "
                "and objsubid = 1 and classid = :hi and objid = :lo and database = "
                "(select oid from pg_database where datname = current_database())"
            ),
            {"hi": key >> 32, "lo": key & 0xFFFF_FFFF},
        ).scalar_one()
    return bool(held)


def _succeeded(engine: sa.Engine, suite: str) -> int:
    return sum(r["status"] == "succeeded" for r in runs(engine, suite))


@pytest.mark.postgres
def test_a_hung_suite_starves_nothing_and_sigterm_still_ends_the_process(
    tmp_path: Path, postgres_url: str
) -> None:
    _suites(tmp_path, hung_delay_s=90)
    cluster = Cluster(
        tmp_path,
        postgres_url,
        env={"CONTINUOUS_EVAL_SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_S)},
    )
    try:
        serve = cluster.start("r1")
        with database(postgres_url) as engine:
            wait_for(lambda: any(r["status"] == "running" for r in runs(engine, "hung")), 30)
            canary_before = _succeeded(engine, "canary")
            # While the hung cases sleep: probes answer within a second, every time.
            deadline = time.monotonic() + 10
            slowest = 0.0
            while time.monotonic() < deadline:
                started = time.monotonic()
                status, _ = serve.get("/readyz", timeout=1.0)
                slowest = max(slowest, time.monotonic() - started)
                assert status == 200
                time.sleep(0.2)
            assert slowest < 1.0
            # The canary kept its 2 s schedule throughout.
            assert _succeeded(engine, "canary") >= canary_before + 3, dump(runs(engine))
            (hung,) = runs(engine, "hung")
            assert hung["status"] == "failed", dump(hung)
            assert "watchdog" in (hung["status_reason"] or "")
            assert not _lock_held(engine, "hung")
            assert serve.metric("continuous_eval_lock_held", suite="hung") == 0
            # Its two threads still sleep in user code: counted, not hidden.
            assert serve.metric("continuous_eval_user_code_abandoned", suite="hung") == 2
            assert serve.metric("continuous_eval_user_code_threads", suite="hung") == 2

            started = time.monotonic()
            serve.signal(signal.SIGTERM)
            code = serve.proc.wait(timeout=60)
            took = time.monotonic() - started
        assert code == 0, serve.output()[-3000:]
        assert took <= SHUTDOWN_S + SHUTDOWN_MARGIN_S, took
    finally:
        cluster.kill_all()


@pytest.mark.postgres
def test_sigterm_mid_case_exits_within_the_bound_and_releases_the_run(
    tmp_path: Path, postgres_url: str
) -> None:
    _suites(tmp_path, hung_delay_s=12, hung_cases=4)
    cluster = Cluster(
        tmp_path,
        postgres_url,
        env={"CONTINUOUS_EVAL_SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_S)},
    )
    try:
        yaml = (tmp_path / "suites.yaml").read_text().replace("watchdog_s: 4", "watchdog_s: 600")
        (tmp_path / "suites.yaml").write_text(yaml)
        serve = cluster.start("r1")
        with database(postgres_url) as engine:
            wait_for(lambda: any(r["status"] == "running" for r in runs(engine, "hung")), 30)
            # The 12 s cases are in flight: both of the suite's threads are in user code.
            busy = {"suite": "hung", "state": "busy"}
            wait_for(lambda: serve.metric("continuous_eval_user_code_threads", **busy) == 2, 30)
            started = time.monotonic()
            serve.signal(signal.SIGTERM)
            code = serve.proc.wait(timeout=60)
            took = time.monotonic() - started
            (hung,) = runs(engine, "hung")
        assert code == 0, serve.output()[-3000:]
        assert took <= SHUTDOWN_S + SHUTDOWN_MARGIN_S, took
        assert hung["status"] == "interrupted", dump(hung)
        assert hung["lease_owner"] is None
    finally:
        cluster.kill_all()


def _post_together(urls: list[str], body: dict[str, object]) -> list[tuple[int, dict[str, object]]]:
    """POST ``body`` to every URL at once (a barrier releases the threads together)."""
    barrier = threading.Barrier(len(urls))

    def post(url: str) -> tuple[int, dict[str, object]]:
        with httpx.Client(timeout=30) as client:
            barrier.wait(timeout=30)
            response = client.post(url, json=body)
            return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        return list(pool.map(post, urls))


@pytest.mark.postgres
def test_fifty_concurrent_retries_of_one_run_all_get_it(tmp_path: Path, postgres_url: str) -> None:
    _suites(tmp_path, hung_delay_s=3, hung_cases=4)  # runs for 6 s: still busy below
    cluster = Cluster(tmp_path, postgres_url, env={"CONTINUOUS_EVAL_SCHEDULE_ENABLED": "false"})
    try:
        one, two = cluster.start("r1"), cluster.start("r2")
        body: dict[str, object] = {"suite": "hung", "run_id": "retried-50"}
        urls = [f"http://127.0.0.1:{one.port}/api/runs"] * 25
        urls += [f"http://127.0.0.1:{two.port}/api/runs"] * 25
        answers = _post_together(urls, body)
        assert [status for status, _ in answers] == [202] * 50, answers
        assert {str(doc["run_id"]) for _, doc in answers} == {"retried-50"}
        with database(postgres_url) as engine:
            assert [r["id"] for r in runs(engine, "hung")] == ["retried-50"]
            # Another run of the busy suite is still refused, not queued.
            other = _post_together([urls[0]], {"suite": "hung", "run_id": "other"})
            assert other[0][0] == 409
            assert other[0][1]["error"]["code"] == "gate_busy"  # type: ignore[index]
        assert cluster.stop_all() == [0, 0]
    finally:
        cluster.kill_all()


def _trickle(port: int, stop: threading.Event, closed: list[float], started: float) -> None:
    """Send a request's headers a byte every 0.3 s, as a slowloris client does."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /api/runs HTTP/1.1\r\nHost: localhost\r\n")
        sock.settimeout(0.3)
        while not stop.is_set():
            try:
                sock.sendall(b"X")
                if sock.recv(1) == b"":
                    break  # closed by the server
            except TimeoutError:
                continue
            except OSError:
                break
        closed.append(time.monotonic() - started)


def test_slow_clients_are_cut_off_while_healthz_answers(
    tmp_path: Path, migrated_sqlite_url: str
) -> None:
    _suites(tmp_path, hung_delay_s=0.01, hung_cases=1)
    cluster = Cluster(
        tmp_path,
        migrated_sqlite_url,
        env={
            "CONTINUOUS_EVAL_SCHEDULE_ENABLED": "false",
            "CONTINUOUS_EVAL_HTTP_HEADER_TIMEOUT_S": "2",
        },
    )
    stop = threading.Event()
    try:
        serve = cluster.start("r1")
        closed: list[float] = []
        started = time.monotonic()
        threads = [
            threading.Thread(target=_trickle, args=(serve.port, stop, closed, started))
            for _ in range(20)
        ]
        for thread in threads:
            thread.start()
        while time.monotonic() - started < 5:
            began = time.monotonic()
            assert serve.get("/healthz", timeout=1.0)[0] == 200
            assert time.monotonic() - began < 1.0
            time.sleep(0.25)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        assert len(closed) == 20
        assert max(closed) < 4.5, closed  # cut at the 2 s header timeout, not by us at 5 s
        assert cluster.stop_all() == [0]
    finally:
        stop.set()
        cluster.kill_all()
