"""``serve`` with live-progress subscribers: SIGTERM still stops it, and subscribers learn why."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.daemon_harness import SLOW_APP, Cluster, database, runs, suite_yaml, wait_for

pytestmark = pytest.mark.slow


def _listen(url: str, events: list[dict[str, Any]], done: threading.Event) -> None:
    try:
        with httpx.stream("GET", url, timeout=60) as response:
            current: dict[str, Any] = {}
            for line in response.iter_lines():
                if not line:
                    if current:
                        events.append(current)
                    current = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    current[name] = json.loads(value) if name == "data" else value
    finally:
        done.set()


def test_sigterm_ends_open_streams_and_the_process(
    tmp_path: Path, migrated_sqlite_url: str
) -> None:
    (tmp_path / "slow_app.py").write_text(SLOW_APP)
    (tmp_path / "suites.yaml").write_text(suite_yaml({"slow": (40, 0.3)}))
    cluster = Cluster(tmp_path, migrated_sqlite_url)
    try:
        serve = cluster.start("one")  # scheduling on: it starts the suite by itself
        with database(migrated_sqlite_url) as engine:
            wait_for(lambda: any(r["status"] == "running" for r in runs(engine, "slow")), 30)
            run_id = runs(engine, "slow")[0]["id"]
        events: list[dict[str, Any]] = []
        done = threading.Event()
        url = f"http://127.0.0.1:{serve.port}/api/runs/{run_id}/events"
        listener = threading.Thread(target=_listen, args=(url, events, done), daemon=True)
        listener.start()
        wait_for(lambda: any(e.get("event") == "case" for e in events), 10)

        started = time.monotonic()
        serve.signal(signal.SIGTERM)
        assert serve.proc.wait(timeout=20) == 0, serve.output()[-2000:]
        assert time.monotonic() - started < 15
        assert done.wait(timeout=5), "the stream never ended"
    finally:
        cluster.kill_all()

    names = [e.get("event") for e in events]
    assert names[0] == "snapshot"
    assert "end" not in names  # the run is not over: it was handed back, not finished
    statuses = [e["data"]["status"] for e in events if e.get("event") == "status"]
    assert statuses[-1] == "interrupted", events[-3:]
