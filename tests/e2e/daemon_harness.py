"""Start real ``continuous-eval serve`` processes against a real database, and watch them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

SLOW_APP = """
import time


def answer(question):
    time.sleep(float(question.split(":")[1]))
    return question
"""


def suite_yaml(suites: dict[str, tuple[int, float]], concurrency: int = 2) -> str:
    """A suite file: each suite has `cases` cases whose target sleeps `delay` seconds."""
    lines = ["suites:"]
    for name, (cases, delay) in suites.items():
        lines += [
            f"  {name}:",
            f"    concurrency: {concurrency}",
            "    features:",
            "      answers:",
            "        dataset:",
            "          cases:",
        ]
        lines += [f"            - {{id: c{i}, input: 'q{i}:{delay}'}}" for i in range(cases)]
        lines += [
            "        target: {type: python, callable: 'slow_app:answer'}",
            "        scorers:",
            "          - {type: regex, pattern: 'q'}",
            "          - {type: contains, value: ':'}",
        ]
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Serve:
    """One ``serve`` process."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}{path}", timeout=timeout
            ) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels match."""
        from prometheus_client.parser import text_string_to_metric_families

        _, text = self.get("/metrics")
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Cluster:
    """Several ``serve`` processes on one database and one suite file."""

    workdir: Path
    database_url: str
    env: dict[str, str] = field(default_factory=dict)
    procs: list[Serve] = field(default_factory=list)
    command: list[str] = field(default_factory=lambda: ["-v", "serve"])

    def start(self, name: str, **extra_env: str) -> Serve:
        port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CONTINUOUS_EVAL_", "ANTHROPIC_"))
        }
        env.update(
            {
                "CONTINUOUS_EVAL_DATABASE_URL": self.database_url,
                "CONTINUOUS_EVAL_CONFIG_PATH": str(self.workdir / "suites.yaml"),
                "CONTINUOUS_EVAL_HTTP_PORT": str(port),
                "CONTINUOUS_EVAL_INSTANCE_ID": name,
                "CONTINUOUS_EVAL_SCHEDULE_ENABLED": "true",
                "CONTINUOUS_EVAL_SCHEDULE_STARTUP_DELAY_S": "0",
                "CONTINUOUS_EVAL_SCHEDULE_STARTUP_JITTER_S": "0.3",
                "CONTINUOUS_EVAL_SCHEDULE_CHECK_INTERVAL_S": "0.5",
                "CONTINUOUS_EVAL_RUN_LEASE_S": "2",
                "CONTINUOUS_EVAL_RUN_HEARTBEAT_S": "0.25",
                "CONTINUOUS_EVAL_SHUTDOWN_TIMEOUT_S": "5",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.env)
        env.update(extra_env)
        log = self.workdir / f"{name}.log"
        handle = log.open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "continuous_eval", *self.command],
            cwd=self.workdir,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        handle.close()
        serve = Serve(name, proc, port, log)
        self.procs.append(serve)
        wait_for(lambda: serve.get("/healthz")[0] == 200 if serve.alive() else _dead(serve), 30)
        return serve

    def stop_all(self) -> list[int]:
        codes = []
        for serve in self.procs:
            codes.append(serve.stop())
        return codes

    def kill_all(self) -> None:
        for serve in self.procs:
            if serve.alive():
                with contextlib.suppress(ProcessLookupError):
                    serve.proc.send_signal(signal.SIGCONT)
                serve.proc.kill()
                serve.proc.wait(timeout=10)


def _dead(serve: Serve) -> bool:
    raise AssertionError(f"{serve.name} exited early:\n{serve.output()[-3000:]}")


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (urllib.error.URLError, ConnectionError, OSError, sa.exc.OperationalError) as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s (last error: {last_error!r})")


@contextlib.contextmanager
def database(url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def runs(engine: sa.Engine, suite: str | None = None) -> list[dict[str, Any]]:
    query = (
        "select * from eval_runs where suite = :suite order by started_at"
        if suite
        else "select * from eval_runs order by started_at"
    )
    with engine.connect() as conn:
        rows = conn.execute(sa.text(query), {"suite": suite}).mappings()
        return [dict(r) for r in rows]


def result_counts(engine: sa.Engine, run_id: str) -> list[tuple[str, str, str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select feature, case_id, scorer, count(*) from eval_results "
                "where run_id = :r group by feature, case_id, scorer"
            ),
            {"r": run_id},
        )
        return [tuple(r) for r in rows]


def dump(obj: Any) -> str:
    return json.dumps(obj, default=str, indent=1)
