"""Cases per second through the bubblewrap sandbox for a trivial learned evaluator.

A regex check (``score(output, case)`` -> bool) is called N times:

- in process, as a plain function call (the floor);
- through a ``WorkerPool`` of reused bubblewrap workers at concurrency 1
  (one worker) and at concurrency C over W workers;
- (``--bare``) the same through unsandboxed workers, to split the cost of
  the JSON-lines round trip from the cost of bubblewrap itself.

It prints cases per second, the overhead per case against the in-process
call, and the start-up time of a worker (bubblewrap, the interpreter and the
ready line, the median of several cold starts). Workers are started before
the throughput is timed, so start-up is counted once, separately.

    python bench/sandbox.py                   # N=2000, C=8, W=2
    python bench/sandbox.py --n 500 --bare
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import time

from continuous_eval.adapters.sandbox import WorkerPool
from continuous_eval.adapters.sandbox.command import worker_command
from continuous_eval.adapters.sandbox.process import WorkerProcess
from continuous_eval.core.sandboxing import SandboxLimits, SandboxProgram

SOURCE = """
import re

PATTERN = re.compile(r"\\brefund\\b")

def score(output, case):
    return PATTERN.search(output) is not None
"""

PROGRAM = SandboxProgram(SOURCE)
LIMITS = SandboxLimits()


def _in_process(n: int) -> float:
    namespace: dict[str, object] = {}
    exec(compile(SOURCE, "<bench>", "exec"), namespace)  # noqa: S102 (our own code)
    fn = namespace["score"]
    assert callable(fn)
    outputs = [f"case {i}: you get a refund" for i in range(n)]
    started = time.perf_counter()
    for i, output in enumerate(outputs):
        fn(output, {"id": str(i)})
    return time.perf_counter() - started


async def _through(pool: WorkerPool, n: int, concurrency: int) -> float:
    # Warm every worker (start-up and the program's load) before timing.
    await asyncio.gather(*(pool.score(PROGRAM, "warm", {"id": "w"}) for _ in range(pool.size)))
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            outcome = await pool.score(PROGRAM, f"case {i}: you get a refund", {"id": str(i)})
            assert outcome.ok, outcome
            assert outcome.value is True, outcome

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - started


async def _startup(bwrap: str | None, times: int) -> float:
    command = worker_command(LIMITS, bwrap=bwrap)
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        worker = await WorkerProcess.start(command, LIMITS)
        samples.append(time.perf_counter() - started)
        await worker.kill()
    return statistics.median(samples)


async def _measure(label: str, bwrap: str | None, n: int, concurrency: int, workers: int) -> float:
    """Print the figures of one kind of worker; return seconds per case at concurrency 1."""
    serial = WorkerPool(worker_command(LIMITS, bwrap=bwrap), LIMITS, size=1)
    wide = WorkerPool(worker_command(LIMITS, bwrap=bwrap), LIMITS, size=workers)
    try:
        one = await _through(serial, n, 1)
        many = await _through(wide, n, concurrency)
    finally:
        await serial.aclose()
        await wide.aclose()
    start = await _startup(bwrap, 5)
    print(f"{label}: worker start-up (median of 5)  {start * 1000:8.1f} ms")
    print(
        f"{label}: concurrency 1, 1 worker         {n / one:8.0f} cases/s  "
        f"{one / n * 1e6:8.0f} us/case"
    )
    print(
        f"{label}: concurrency {concurrency}, {workers} workers{' ' * (9 - len(str(concurrency)))}"
        f"{n / many:8.0f} cases/s  {many / n * 1e6:8.0f} us/case"
    )
    return one / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bare", action="store_true", help="also time unsandboxed workers")
    args = parser.parse_args()
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SystemExit("bwrap is not installed (apt-get install bubblewrap)")
    local = _in_process(args.n)
    print(
        f"in process:                           {args.n / local:8.0f} cases/s  "
        f"{local / args.n * 1e6:8.2f} us/case"
    )
    results = {
        "bwrap": asyncio.run(_measure("bwrap", bwrap, args.n, args.concurrency, args.workers))
    }
    if args.bare:
        results["bare"] = asyncio.run(
            _measure("bare ", None, args.n, args.concurrency, args.workers)
        )
    for label, per_case in results.items():
        overhead = (per_case - local / args.n) * 1e6
        print(f"overhead per case ({label}, concurrency 1): {overhead:8.0f} us")


if __name__ == "__main__":
    main()
