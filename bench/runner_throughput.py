"""Runner throughput, CPU and memory against the fake Anthropic API.

N cases through an ``anthropic`` target plus an ``llm_judge`` scorer (two
model calls per case) against the fake server with latency L, at concurrency
C. The ideal wall time is N*2*L/C; the script prints ours, that limit and
their ratio, CPU seconds per case and peak RSS; then the same for a bare loop
of the same SDK calls under a semaphore with no storage, and ours / bare.
Finally peak RSS for a larger N read from a JSONL file, against the first.

Each measurement runs in a child process of its own, so peak RSS belongs to
that measurement alone; wall and CPU are taken inside the child after imports
and set-up, so interpreter start-up is excluded. The fake server runs in a
separate process too, so its CPU is not counted as ours.

    python bench/runner_throughput.py                      # N=2000, C=64, L=200 ms, RSS at 20000
    python bench/runner_throughput.py --n 500 --rss-n 2000 # quicker
    python bench/runner_throughput.py --transport both     # the SDK's httpx against aiohttp
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

MODEL = "claude-haiku-4-5"
RUBRIC = "5: the answer restates the question faithfully. 1: it does not."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_dataset(path: Path, n: int) -> None:
    with path.open("w") as f:
        for i in range(n):
            question = f"Question {i}: what is {i} plus {i}? Please explain the steps briefly."
            f.write(json.dumps({"id": f"case-{i}", "input": question, "expected": str(2 * i)}))
            f.write("\n")


def _write_config(path: Path, dataset: Path, concurrency: int) -> None:
    path.write_text(
        json.dumps(  # JSON is YAML, and needs no quoting care
            {
                "suites": {
                    "bench": {
                        "concurrency": concurrency,
                        "features": {
                            "answers": {
                                "dataset": {"path": str(dataset)},
                                "target": {
                                    "type": "anthropic",
                                    "model": MODEL,
                                    "system": "Answer briefly.",
                                    "prompt_template": "{{input}}",
                                    "max_tokens": 256,
                                },
                                "scorers": [{"type": "llm_judge", "rubric": RUBRIC}],
                            }
                        },
                    }
                }
            }
        )
    )


def _usage() -> tuple[float, int]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss  # seconds, KiB on Linux


# ------------------------------------------------------------------------ children


async def _ours(args: argparse.Namespace) -> dict[str, Any]:
    """The product path: what ``continuous-eval run`` does (gate, lock, lease, fenced writes)."""
    from continuous_eval.adapters.suite_files import load_suite_file
    from continuous_eval.app.container import local_daemon
    from continuous_eval.settings import Settings

    work = Path(args.workdir)
    (work / "bench.db").unlink(missing_ok=True)
    settings = Settings(
        database_url=f"sqlite:///{work / 'bench.db'}",
        max_concurrency=args.c,
        anthropic_api_key="bench-key",  # type: ignore[arg-type]
        anthropic_base_url=args.base_url,
        anthropic_transport=args.transport,
    )
    loaded = load_suite_file(Path(args.config))
    async with local_daemon(settings, loaded) as (daemon, _, _):
        cpu0, _ = _usage()
        t0 = time.perf_counter()
        done = await daemon.run_now("bench")
        wall = time.perf_counter() - t0
        cpu1, rss = _usage()
    return {
        "wall": wall,
        "cpu": cpu1 - cpu0,
        "rss_kib": rss,
        "status": str(done.status),
        "scored": done.scored,
        "errored": done.errored,
    }


async def _bare(args: argparse.Namespace) -> dict[str, Any]:
    import anthropic

    from continuous_eval.core.judge import RECORD_SCORE_TOOL, build_judge_messages
    from continuous_eval.core.suite import Case

    http_client = anthropic.DefaultAioHttpClient() if args.transport == "aiohttp" else None
    client = anthropic.AsyncAnthropic(
        api_key="bench-key", base_url=args.base_url, http_client=http_client
    )
    limit = asyncio.Semaphore(args.c)
    errors = 0

    async def one(i: int) -> None:
        nonlocal errors
        question = f"Question {i}: what is {i} plus {i}? Please explain the steps briefly."
        try:
            try:
                answer = await client.messages.create(
                    model=MODEL,
                    max_tokens=256,
                    system="Answer briefly.",
                    messages=[{"role": "user", "content": question}],
                )
                text = "".join(b.text for b in answer.content if b.type == "text")
                case = Case(id=f"case-{i}", input=question, expected=str(2 * i))
                system, user = build_judge_messages(RUBRIC, case, text)
                await client.messages.create(
                    model=MODEL,
                    max_tokens=512,
                    system=system,
                    messages=[{"role": "user", "content": user}],
                    tools=[RECORD_SCORE_TOOL],  # type: ignore[list-item]
                    tool_choice={
                        "type": "tool",
                        "name": "record_score",
                        "disable_parallel_tool_use": True,
                    },
                )
            except anthropic.APIError:
                errors += 1
        finally:
            limit.release()

    cpu0, _ = _usage()
    t0 = time.perf_counter()
    # Same shape as the runner: start a task only when a slot is free.
    tasks: set[asyncio.Task[None]] = set()
    for i in range(args.n):
        await limit.acquire()
        task = asyncio.create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    cpu1, rss = _usage()
    await client.close()
    return {"wall": wall, "cpu": cpu1 - cpu0, "rss_kib": rss, "errored": errors}


def _child(args: argparse.Namespace) -> None:
    fn = _ours if args.child == "ours" else _bare
    result = asyncio.run(fn(args))
    print(json.dumps(result))


# ---------------------------------------------------------------------- orchestrator


def _spawn(
    kind: str, n: int, c: int, base_url: str, config: Path, workdir: Path, transport: str
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--transport",
        transport,
        "--n",
        str(n),
        "--c",
        str(c),
        "--base-url",
        base_url,
        "--config",
        str(config),
        "--workdir",
        str(workdir),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _start_fake(latency_ms: float) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "continuous_eval.fakes.anthropic_server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--latency-ms",
            str(latency_ms),
        ]
    )
    base_url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{base_url}/_fake/stats", timeout=1)  # noqa: S310 - loopback
            return proc, base_url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the fake Anthropic server did not start")


def _line(label: str, r: dict[str, Any], n: int, limit: float) -> str:
    return (
        f"{label:<22} wall {r['wall']:7.2f} s  limit {limit:6.2f} s  ratio {r['wall'] / limit:5.3f}"
        f"  cpu/case {1000 * r['cpu'] / n:6.3f} ms  peak RSS {r['rss_kib'] / 1024:7.1f} MiB"
        f"  errors {r.get('errored', 0)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--c", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--rss-n", type=int, default=20000, help="0 skips the RSS comparison")
    parser.add_argument(
        "--transport",
        choices=["httpx", "aiohttp", "both"],
        default="httpx",
        help="the SDK's HTTP stack; 'both' measures each and compares them",
    )
    parser.add_argument("--child", choices=["ours", "bare"])
    parser.add_argument("--base-url")
    parser.add_argument("--config")
    parser.add_argument("--workdir")
    args = parser.parse_args()
    if args.child:
        _child(args)
        return

    def measure(kind: str, n: int, config: Path, work: Path, transport: str) -> dict[str, Any]:
        # A fresh fake server per measurement, so neither side inherits the
        # other's connections or warm-up.
        fake, base_url = _start_fake(args.latency_ms)
        try:
            return _spawn(kind, n, args.c, base_url, config, work, transport)
        finally:
            fake.terminate()
            fake.wait(timeout=10)

    transports = ["httpx", "aiohttp"] if args.transport == "both" else [args.transport]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        limit = args.n * 2 * (args.latency_ms / 1000) / args.c
        print(
            f"N={args.n} C={args.c} L={args.latency_ms:.0f} ms; "
            f"limit N*2*L/C = {limit:.2f} s; python {sys.version.split()[0]}"
        )
        results: dict[tuple[str, str], dict[str, Any]] = {}
        for transport in transports:
            for kind in ("bare", "ours"):
                data = work / f"{kind}.jsonl"
                _write_dataset(data, args.n)
                config = work / f"{kind}.yaml"
                _write_config(config, data, args.c)
                results[kind, transport] = measure(kind, args.n, config, work, transport)
                print(_line(f"{kind} ({transport})", results[kind, transport], args.n, limit))
            ours, bare = results["ours", transport], results["bare", transport]
            print(
                f"ours / bare ({transport}): wall {ours['wall'] / bare['wall']:.3f}, "
                f"cpu per case {ours['cpu'] / bare['cpu']:.3f}"
            )
            print(
                f"targets: wall ratio to limit <= 1.15 "
                f"({'met' if ours['wall'] / limit <= 1.15 else 'MISSED'}), "
                f"cpu per case <= 1.3x bare "
                f"({'met' if ours['cpu'] / bare['cpu'] <= 1.3 else 'MISSED'})"
            )
        if len(transports) == 2:
            for kind in ("bare", "ours"):
                fast, slow = results[kind, "aiohttp"], results[kind, "httpx"]
                print(
                    f"{kind}: aiohttp / httpx: wall {fast['wall'] / slow['wall']:.3f}, "
                    f"cpu per case {fast['cpu'] / slow['cpu']:.3f}, "
                    f"peak RSS {fast['rss_kib'] / slow['rss_kib']:.3f}"
                )
        if args.rss_n:
            transport = transports[0]
            ours = results["ours", transport]
            data = work / "large.jsonl"
            _write_dataset(data, args.rss_n)
            config = work / "large.yaml"
            _write_config(config, data, args.c)
            large = measure("ours", args.rss_n, config, work, transport)
            big_limit = args.rss_n * 2 * (args.latency_ms / 1000) / args.c
            print(_line(f"ours N={args.rss_n}", large, args.rss_n, big_limit))
            ratio = large["rss_kib"] / ours["rss_kib"]
            print(
                f"peak RSS N={args.rss_n} / N={args.n}: {ratio:.3f} "
                f"(target <= 1.25: {'met' if ratio <= 1.25 else 'MISSED'})"
            )


if __name__ == "__main__":
    main()
