"""Sustained OTLP ingestion into Postgres: spans per second, request latency, server RSS.

Starts ``continuous-eval serve`` on a fresh Postgres database, then a
separate sender process posts OTLP/HTTP protobuf batches (``--spans`` GenAI
chat spans per request, every span new) over keep-alive connections.

By default the load is *open*: requests go out on a fixed timetable at
``--rate`` spans per second (``--rate / --spans`` requests a second) for a
``--warmup`` then ``--seconds`` measured, whatever the server's answers are
doing, and each request's latency counts from its *scheduled* time, so time
spent waiting for a free connection (queueing behind a slow answer) is in
the figures: no coordinated omission. ``--max`` is a closed loop instead:
``--senders`` connections each send the next batch as soon as the last one
is answered, which finds the saturation throughput (its latencies are then
mostly queueing, by construction).

It prints the spans stored per second, p50/p95/p99/max latency, the server's
RSS at the start, middle and end of the measured window (it should stay
flat), the server's CPU per request, the sender's own CPU (it must stay well
below the server's), then checks every span was stored once.

    python bench/ingest.py                         # 2,000 spans/s: 20 req/s of 100, 60 s
    python bench/ingest.py --rate 3000 --seconds 30
    python bench/ingest.py --max --senders 4       # saturation, closed loop
    python bench/ingest.py --async-commit          # what the commit's WAL flush costs
    CONTINUOUS_EVAL_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test ...

The server logs at WARNING (``CONTINUOUS_EVAL_LOG_LEVEL``): at INFO, uvicorn's
access log writes a line per request, which is the operator's choice, not
ingestion's cost. The goal: at least 2,000 spans/s at a p99 of 50 ms or less.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
INGEST_TOKEN = "bench-ingest-token"  # noqa: S105 - a throwaway local server's
ADMIN_TOKEN = "bench-admin-token"  # noqa: S105 - likewise
SENTINEL_TRACE = bytes.fromhex("5e17e1005e17e1005e17e1005e17e100")
"""The template's trace id, replaced in the encoded body by each request's own."""
MEASURING = "measuring"
"""The line the sender prints when the warm-up ends and the measured window starts."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ the sender


def _template(spans: int) -> object:
    """One request of ``spans`` chat spans of one (sentinel) trace, span ids 1..spans."""
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
            trace_id=SENTINEL_TRACE,
            span_id=(position + 1).to_bytes(8, "big"),
            name="chat claude-haiku-4-5",
            start_time_unix_nano=now,
            end_time_unix_nano=now + 800_000_000,
            attributes=attributes,
        )
        for position in range(spans)
    ]
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[kv("service.name", "support-bot")]),
                scope_spans=[ScopeSpans(spans=span_list)],
            )
        ]
    )


class Bodies:
    """Request bodies, each of a trace of its own, for the cost of one ``bytes.replace``.

    The template is encoded once; every span of a request shares its trace
    and has its position as span id, so rewriting the trace id's 16 bytes
    makes every span new. Encoding each request with protobuf would cost the
    sender more CPU than it should next to the server it measures.
    """

    def __init__(self, spans: int) -> None:
        self._encoded: bytes = _template(spans).SerializeToString()  # type: ignore[attr-defined]

    def body(self, sender: int, sequence: int) -> bytes:
        trace = ((sender << 40) | sequence).to_bytes(16, "big")
        return self._encoded.replace(SENTINEL_TRACE, trace)


class Connection:
    """One keep-alive HTTP/1.1 connection that posts bodies and times the answers."""

    def __init__(self, url: str) -> None:
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self._path = parts.path
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self._headers = {
            "Content-Type": "application/x-protobuf",
            "Authorization": f"Bearer {INGEST_TOKEN}",
        }

    def post(self, body: bytes) -> int:
        """POST ``body``; reconnect once when the server closed the idle connection."""
        import http.client

        try:
            return self._exchange(body)
        except (ConnectionError, http.client.RemoteDisconnected):
            self._conn.close()
            return self._exchange(body)

    def _exchange(self, body: bytes) -> int:
        self._conn.request("POST", self._path, body=body, headers=self._headers)
        response = self._conn.getresponse()
        response.read()
        return response.status

    def close(self) -> None:
        self._conn.close()


@dataclass
class Tally:
    """What the sender saw, shared by its threads (under ``lock``)."""

    lock: threading.Lock
    latencies: list[float]
    errors: list[str]
    late: int = 0
    """Requests sent more than 5 ms after their scheduled time (no connection was free)."""
    warmup_requests: int = 0

    def record(self, status: int, latency: float, measured: bool) -> None:
        with self.lock:
            if not measured:
                self.warmup_requests += 1
            elif status == 200:
                self.latencies.append(latency)
            elif len(self.errors) < 5:
                self.errors.append(str(status))


def send_open(url: str, rate: float, spans: int, warmup: float, seconds: float) -> None:
    """Open loop: request ``i`` is due at ``start + i / (rate / spans)``, sent on the first
    free connection; its latency counts from when it was due. Prints a JSON report."""
    bodies = Bodies(spans)
    interval = spans / rate
    total = int((warmup + seconds) / interval)
    first_measured = int(warmup / interval)
    workers = max(8, math.ceil(0.5 / interval))  # enough for half a second of backlog
    tally = Tally(threading.Lock(), [], [])
    next_index = iter(range(total))
    index_lock = threading.Lock()
    start = time.perf_counter() + 0.2

    def worker() -> None:
        conn = Connection(url)
        while True:
            with index_lock:
                index = next(next_index, None)
            if index is None:
                break
            due = start + index * interval
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            elif wait < -0.005:
                with tally.lock:
                    tally.late += index >= first_measured
            if index == first_measured:
                print(MEASURING, flush=True)
            status = conn.post(bodies.body(1, index + 1))
            tally.record(status, time.perf_counter() - due, index >= first_measured)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - (start + first_measured * interval)
    _report(tally, wall, requests_sent=total, workers=workers)


def send_closed(url: str, senders: int, spans: int, warmup: float, seconds: float) -> None:
    """Closed loop: each connection sends its next batch as soon as the last is answered."""
    bodies = Bodies(spans)
    tally = Tally(threading.Lock(), [], [])
    begin = time.perf_counter()
    measured_from = begin + warmup
    deadline = measured_from + seconds
    announced = threading.Event()

    def worker(sender: int) -> None:
        conn = Connection(url)
        sequence = 0
        while (now := time.perf_counter()) < deadline:
            sequence += 1
            measured = now >= measured_from
            if measured and not announced.is_set():
                announced.set()
                print(MEASURING, flush=True)
            status = conn.post(bodies.body(sender, sequence))
            tally.record(status, time.perf_counter() - now, measured)
        conn.close()

    threads = [threading.Thread(target=worker, args=(i + 1,)) for i in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _report(tally, time.perf_counter() - measured_from, requests_sent=None, workers=senders)


def _report(tally: Tally, wall: float, requests_sent: int | None, workers: int) -> None:
    times = os.times()
    print(
        json.dumps(
            {
                "latencies": tally.latencies,
                "errors": tally.errors,
                "wall": wall,
                "late": tally.late,
                "warmup_requests": tally.warmup_requests,
                "requests_sent": requests_sent,
                "workers": workers,
                "cpu": times.user + times.system,
            }
        )
    )


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
    try:
        migrate.upgrade(engine)
    except BaseException:
        engine.dispose()
        _drop(admin, url)  # a failed run leaves no database behind
        raise
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


@dataclass(frozen=True)
class Load:
    """What to send: open loop at ``rate`` spans/s, or closed loop (``senders``) at ``max``."""

    closed: bool
    rate: float
    senders: int
    spans: int
    warmup: float
    seconds: float

    def sender_args(self, url: str) -> list[str]:
        args = [sys.executable, __file__, "--send", url, "--spans", str(self.spans)]
        args += ["--warmup", str(self.warmup), "--seconds", str(self.seconds)]
        if self.closed:
            return [*args, "--max", "--senders", str(self.senders)]
        return [*args, "--rate", str(self.rate)]


def _serve(work: Path, url: str, port: int) -> subprocess.Popen[bytes]:
    (work / "app.py").write_text("def answer(q):\n    return q\n")
    (work / "suites.yaml").write_text(
        "suites:\n  s:\n    features:\n      f:\n"
        "        dataset: {cases: [{input: a}]}\n"
        "        target: {type: python, callable: 'app:answer'}\n"
        "        scorers: [{type: contains, value: a}]\n"
    )
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
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit("the server did not answer /healthz in 30 s")


def _measure(proc: subprocess.Popen[bytes], port: int, load: Load) -> dict[str, Any]:
    """Run the sender against the server; the server's RSS and CPU over the measured window."""
    import psutil

    server = psutil.Process(proc.pid)
    sender = subprocess.Popen(
        load.sender_args(f"http://127.0.0.1:{port}/v1/traces"), stdout=subprocess.PIPE, text=True
    )
    assert sender.stdout is not None
    line = sender.stdout.readline().strip()
    if line != MEASURING:
        sender.kill()
        raise SystemExit(f"the sender said {line!r} instead of starting to measure")
    cpu_before = server.cpu_times()
    rss = [server.memory_info().rss]
    time.sleep(load.seconds / 2)
    rss.append(server.memory_info().rss)
    out, _ = sender.communicate(timeout=load.warmup + load.seconds + 120)
    rss.append(server.memory_info().rss)
    cpu_after = server.cpu_times()
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    report["rss"] = rss
    report["server_cpu"] = (cpu_after.user - cpu_before.user) + (
        cpu_after.system - cpu_before.system
    )
    return report


def bench(server_url: str, load: Load, async_commit: bool = False) -> None:
    url, admin = _database(server_url, async_commit)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            port = _free_port()
            proc = _serve(Path(tmp), url, port)
            try:
                report = _measure(proc, port, load)
                stored, distinct = _count(url)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    finally:
        _drop(admin, url)
    _print(report, load, stored, distinct)


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest rank: the smallest latency at least ``q`` of the requests did not exceed."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _print(report: dict[str, Any], load: Load, stored: int, distinct: int) -> None:
    latencies = sorted(report["latencies"])
    requests = len(latencies)
    if not requests:
        print(f"no request succeeded: {report['errors']}")
        return
    ms = {q: 1000 * _percentile(latencies, q) for q in (0.5, 0.95, 0.99, 1.0)}
    rate = requests * load.spans / report["wall"]
    mib = " / ".join(f"{r / 2**20:.1f}" for r in report["rss"])
    if load.closed:
        shape = f"closed loop, {load.senders} connections"
    else:
        offered = f"{load.rate:,.0f} spans/s ({load.rate / load.spans:g} req/s)"
        shape = f"open loop at {offered} on up to {report['workers']} connections"
    print(
        f"{shape}, {load.spans} spans a request, {load.warmup:g} s warm-up then "
        f"{report['wall']:.1f} s measured: {requests} requests, {rate:,.0f} spans/s"
    )
    since = "the send" if load.closed else "the scheduled send"
    print(
        f"latency (from {since}) p50 {ms[0.5]:.1f} ms, p95 {ms[0.95]:.1f} ms, "
        f"p99 {ms[0.99]:.1f} ms, max {ms[1.0]:.1f} ms"
        + ("" if load.closed else f"; {report['late']} sent > 5 ms late")
    )
    cpu = report["server_cpu"]
    print(
        f"server RSS start/middle/end {mib} MiB; server CPU {cpu:.1f} s "
        f"({1000 * cpu / requests:.1f} ms a request, {100 * cpu / report['wall']:.0f}% of a core); "
        f"sender CPU {report['cpu']:.1f} s in all"
    )
    sent = (requests + report["warmup_requests"]) * load.spans
    print(f"stored {stored:,} rows ({distinct:,} distinct) for {sent:,} spans answered 200")
    if report["errors"]:
        print(f"errors: {report['errors']}")
    if load.closed:
        return  # a saturation figure: its latency is queueing by construction
    goal = rate >= 2000 and ms[0.99] <= 50
    print(f"goal (>= 2,000 spans/s at p99 <= 50 ms): {'met' if goal else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rate", type=float, default=2000.0, help="offered spans/s (open loop)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds sent, not measured")
    parser.add_argument("--spans", type=int, default=100, help="spans per request")
    parser.add_argument("--max", action="store_true", help="closed loop: saturation throughput")
    parser.add_argument("--senders", type=int, default=4, help="connections (--max)")
    parser.add_argument(
        "--async-commit",
        action="store_true",
        help="synchronous_commit=off on the bench database: what waiting for the WAL flush costs",
    )
    parser.add_argument("--send", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        if args.max:
            send_closed(args.send, args.senders, args.spans, args.warmup, args.seconds)
        else:
            send_open(args.send, args.rate, args.spans, args.warmup, args.seconds)
        return
    load = Load(args.max, args.rate, args.senders, args.spans, args.warmup, args.seconds)
    server = os.environ.get("CONTINUOUS_EVAL_BENCH_POSTGRES_URL", DEFAULT_PG)
    bench(server, load, args.async_commit)


if __name__ == "__main__":
    main()
