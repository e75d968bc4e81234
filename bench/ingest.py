"""Sustained OTLP ingestion into Postgres: spans per second, request latency, server RSS.

Starts ``continuous-eval serve`` on a fresh Postgres database, then a
separate sender process posts OTLP/HTTP protobuf batches (``--spans`` GenAI
chat spans per request, every span new) from ``--senders`` threads, each on
its own keep-alive connection, for ``--seconds``. Prints the spans stored
per second, p50/p99/max request latency, and the server's RSS at the start,
the middle and the end (it should stay flat), then checks every span was
stored once.

    python bench/ingest.py                                # 30 s, 4 senders, 100 spans
    python bench/ingest.py --seconds 10 --senders 8
    python bench/ingest.py --async-commit     # what the commit's WAL flush costs
    CONTINUOUS_EVAL_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test ...

The server logs at WARNING (``CONTINUOUS_EVAL_LOG_LEVEL``): at INFO, uvicorn's
access log writes a line per request, which is the operator's choice, not
ingestion's cost. The goal: at least 2,000 spans/s at a p99 of 50 ms or less.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
INGEST_TOKEN = "bench-ingest-token"  # noqa: S105 - a throwaway local server's
ADMIN_TOKEN = "bench-admin-token"  # noqa: S105 - likewise


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ the sender


def _template(spans: int) -> object:
    """One request of ``spans`` chat spans; the sender rewrites their ids per request."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    def kv(key: str, value: str | int) -> KeyValue:
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        return KeyValue(key=key, value=AnyValue(string_value=value))

    question = json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": "Where is my order #1234?"}]}]
    )
    answer = json.dumps(
        [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": "It shipped yesterday; it arrives Friday."}],
                "finish_reason": "stop",
            }
        ]
    )
    attributes = [
        kv("gen_ai.operation.name", "chat"),
        kv("gen_ai.provider.name", "anthropic"),
        kv("gen_ai.request.model", "claude-haiku-4-5"),
        kv("gen_ai.usage.input_tokens", 120),
        kv("gen_ai.usage.output_tokens", 40),
        kv("gen_ai.input.messages", question),
        kv("gen_ai.output.messages", answer),
        kv("app.user", "u-1"),
    ]
    now = time.time_ns()
    span_list = [
        Span(
            name="chat claude-haiku-4-5",
            start_time_unix_nano=now,
            end_time_unix_nano=now + 800_000_000,
            attributes=attributes,
        )
        for _ in range(spans)
    ]
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[kv("service.name", "support-bot")]),
                scope_spans=[ScopeSpans(spans=span_list)],
            )
        ]
    )


def send(url: str, seconds: float, senders: int, spans: int) -> None:
    """The sender process: post batches from ``senders`` threads; print a JSON report."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(index: int) -> None:
        request = _template(spans)
        batch = request.resource_spans[0].scope_spans[0].spans  # type: ignore[attr-defined]
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        headers = {
            "Content-Type": "application/x-protobuf",
            "Authorization": f"Bearer {INGEST_TOKEN}",
        }
        sequence = 0
        while time.monotonic() < deadline:
            sequence += 1
            trace = ((index << 40) | sequence).to_bytes(16, "big")
            for position, span in enumerate(batch):
                span.trace_id = trace
                span.span_id = (position + 1).to_bytes(8, "big")
            body = request.SerializeToString()  # type: ignore[attr-defined]
            started = time.perf_counter()
            conn.request("POST", parts.path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            with lock:
                if response.status == 200:
                    latencies.append(elapsed)
                elif len(errors) < 5:
                    errors.append(str(response.status))
        conn.close()

    threads = [threading.Thread(target=worker, args=(i + 1,)) for i in range(senders)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    print(json.dumps({"latencies": latencies, "errors": errors, "wall": wall}))


# ------------------------------------------------------------------ the bench


def _database(server_url: str, async_commit: bool = False) -> tuple[str, object]:
    import sqlalchemy as sa

    from continuous_eval.adapters.db import migrate
    from continuous_eval.adapters.db.engine import make_engine

    name = f"ce_bench_ingest_{os.getpid()}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        if async_commit:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    url = sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url, admin


def _drop(admin: object, url: str) -> None:
    import sqlalchemy as sa

    name = sa.make_url(url).database
    assert isinstance(admin, sa.Engine)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _count(url: str) -> tuple[int, int]:
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        query = "select count(*), count(distinct (trace_id, span_id)) from interactions"
        rows = conn.execute(sa.text(query)).one()
    engine.dispose()
    return int(rows[0]), int(rows[1])


def bench(
    server_url: str, seconds: float, senders: int, spans: int, async_commit: bool = False
) -> None:
    import psutil

    url, admin = _database(server_url, async_commit)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "app.py").write_text("def answer(q):\n    return q\n")
        (work / "suites.yaml").write_text(
            "suites:\n  s:\n    features:\n      f:\n"
            "        dataset: {cases: [{input: a}]}\n"
            "        target: {type: python, callable: 'app:answer'}\n"
            "        scorers: [{type: contains, value: a}]\n"
        )
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUOUS_EVAL_")}
        env.update(
            CONTINUOUS_EVAL_DATABASE_URL=url,
            CONTINUOUS_EVAL_CONFIG_PATH=str(work / "suites.yaml"),
            CONTINUOUS_EVAL_HTTP_PORT=str(port),
            CONTINUOUS_EVAL_API_TOKENS=json.dumps([ADMIN_TOKEN]),
            CONTINUOUS_EVAL_INGEST_TOKENS=json.dumps([INGEST_TOKEN]),
            CONTINUOUS_EVAL_LOG_LEVEL="WARNING",
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "continuous_eval", "serve"],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            server = psutil.Process(proc.pid)
            rss = [server.memory_info().rss]
            cpu_before = server.cpu_times()
            sender = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--send",
                    f"http://127.0.0.1:{port}/v1/traces",
                    "--seconds",
                    str(seconds),
                    "--senders",
                    str(senders),
                    "--spans",
                    str(spans),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(seconds / 2)
            rss.append(server.memory_info().rss)
            out, _ = sender.communicate(timeout=seconds + 60)
            rss.append(server.memory_info().rss)
            cpu_after = server.cpu_times()
            report = json.loads(out.strip().splitlines()[-1])
            stored, distinct = _count(url)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            _drop(admin, url)
    latencies = sorted(report["latencies"])
    requests = len(latencies)
    if not requests:
        print(f"no request succeeded: {report['errors']}")
        return
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(requests - 1, int(requests * 0.99))] * 1000
    rate = requests * spans / report["wall"]
    mib = [f"{r / 2**20:.1f}" for r in rss]
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    print(
        f"{requests} requests x {spans} spans from {senders} senders in {report['wall']:.1f} s: "
        f"{rate:,.0f} spans/s; latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"max {latencies[-1] * 1000:.1f} ms; server RSS start/middle/end {' / '.join(mib)} MiB"
    )
    print(
        f"server CPU {cpu:.1f} s ({1000 * cpu / requests:.1f} ms per request, "
        f"{100 * cpu / report['wall']:.0f}% of a core)"
    )
    print(f"stored {stored:,} rows ({distinct:,} distinct) for {requests * spans:,} spans sent")
    if report["errors"]:
        print(f"errors: {report['errors']}")
    goal = rate >= 2000 and p99 <= 50
    print(f"goal (>= 2,000 spans/s at p99 <= 50 ms): {'met' if goal else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--spans", type=int, default=100, help="spans per request")
    parser.add_argument(
        "--async-commit",
        action="store_true",
        help="synchronous_commit=off on the bench database: what waiting for the WAL flush costs",
    )
    parser.add_argument("--send", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        send(args.send, args.seconds, args.senders, args.spans)
        return
    server = os.environ.get("CONTINUOUS_EVAL_BENCH_POSTGRES_URL", DEFAULT_PG)
    bench(server, args.seconds, args.senders, args.spans, args.async_commit)


if __name__ == "__main__":
    main()
