"""Start-up and memory of whole processes, as a user waits for them.

Every figure is a fresh process, start-up included, the median of several
tries after a warm-up (so .pyc files exist, as on a user's second run):

1. ``continuous-eval run`` of the offline example, as a ratio to
   ``python -c "import anthropic"`` on the same machine (goal: at most 1.3x);
2. ``continuous-eval --help`` (goal: under 0.5 s);
3. peak RSS of a 2,000-case offline run (goal: at most 150 MB);
4. RSS of an idle ``serve`` (goal: at most 150 MB);
5. which heavy modules each command imported (none of anthropic, scipy,
   alembic, resend, fastapi for an offline ``run``).

    python bench/startup.py
    python bench/startup.py --tries 9
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "continuous_eval"]
HEAVY = (
    "anthropic",
    "scipy",
    "sklearn",
    "numpy",
    "alembic",
    "resend",
    "fastapi",
    "uvicorn",
    "httpx",
)
MB = 1e6


def _env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUOUS_EVAL_")}
    env["CONTINUOUS_EVAL_DATABASE_URL"] = f"sqlite:///{work / 'bench.db'}"
    return env


def _timed(command: Sequence[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run a command to its end; return (wall seconds, peak RSS in MB) of that one process."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(command), cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {proc.returncode}")
    return wall, usage.ru_maxrss * 1024 / MB  # ru_maxrss is in KiB on Linux


def _median(
    command: Sequence[str], cwd: Path, env: dict[str, str], tries: int
) -> tuple[float, float]:
    _timed(command, cwd, env)  # warm-up: compiles .pyc, creates and migrates the database
    walls, peaks = zip(*(_timed(command, cwd, env) for _ in range(tries)), strict=True)
    return statistics.median(walls), max(peaks)


def _imported(args: Sequence[str], cwd: Path, env: dict[str, str]) -> list[str]:
    """Run the CLI in-process under a probe and report which heavy packages it imported."""
    probe = (
        "import runpy, sys, json\n"
        f"sys.argv = ['continuous-eval', *{list(args)!r}]\n"
        "try:\n"
        "    runpy.run_module('continuous_eval', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"heavy = {HEAVY!r}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))),"
        " file=sys.__stderr__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    return list(json.loads(done.stderr.strip().splitlines()[-1]))


def _big_suite(work: Path, cases: int) -> Path:
    (work / "big_app.py").write_text("def answer(q):\n    return q.upper()\n")
    with (work / "big.jsonl").open("w") as out:
        for i in range(cases):
            out.write(json.dumps({"id": f"c{i}", "input": f"question {i} " * 20, "expected": "Q"}))
            out.write("\n")
    config = work / "big.yaml"
    config.write_text(
        "suites:\n  big:\n    concurrency: 64\n    features:\n      f:\n"
        "        dataset: {path: big.jsonl}\n"
        "        target: {type: python, callable: 'big_app:answer'}\n"
        "        scorers: [{type: contains, value: QUESTION}, {type: regex, pattern: '\\d'}]\n"
    )
    return config


def _idle_serve_rss(work: Path, env: dict[str, str], settle_s: float) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve_env = {
        **env,
        "CONTINUOUS_EVAL_HTTP_PORT": str(port),
        "CONTINUOUS_EVAL_SCHEDULE_ENABLED": "true",
        "CONTINUOUS_EVAL_SCHEDULE_STARTUP_DELAY_S": "0",
        "CONTINUOUS_EVAL_SCHEDULE_STARTUP_JITTER_S": "0",
    }
    proc = subprocess.Popen(
        [*CLI, "serve"],
        cwd=work,
        env=serve_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("serve did not answer /healthz") from None
                time.sleep(0.1)
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        time.sleep(settle_s)  # the first check runs the example suite once; then it idles
        return float(psutil.Process(proc.pid).memory_info().rss) / MB
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=5)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds serve idles first")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copytree(REPO / "config", work / "config")
        env = _env(work)

        sdk, sdk_rss = _median([sys.executable, "-c", "import anthropic"], work, env, args.tries)
        bare, _ = _median([sys.executable, "-c", "pass"], work, env, args.tries)
        run, run_rss = _median([*CLI, "run"], work, env, args.tries)
        helped, _ = _median([*CLI, "--help"], work, env, args.tries)
        big = _big_suite(work, args.cases)
        big_wall, big_rss = _median([*CLI, "run", "--config", str(big)], work, env, 2)
        idle_rss = _idle_serve_rss(work, env, args.settle)

        print(f"python itself: {bare:.3f} s")
        print(f"import anthropic: {sdk:.3f} s, {sdk_rss:.0f} MB")
        print(
            f"run (offline example): {run:.3f} s, {run_rss:.0f} MB peak; "
            f"{run / sdk:.2f}x import anthropic (goal <= 1.3x: {_verdict(run / sdk <= 1.3)})"
        )
        print(f"--help: {helped:.3f} s (goal < 0.5 s: {_verdict(helped < 0.5)})")
        print(
            f"run of {args.cases:,} cases x 2 scorers: {big_wall:.2f} s, {big_rss:.0f} MB peak "
            f"(goal <= 150 MB: {_verdict(big_rss <= 150)})"
        )
        print(f"idle serve: {idle_rss:.0f} MB RSS (goal <= 150 MB: {_verdict(idle_rss <= 150)})")
        for argv in (["run"], ["--help"], ["runs"]):
            heavy = _imported(argv, work, env) or "none"
            print(f"heavy modules imported by {' '.join(argv)}: {heavy}")


if __name__ == "__main__":
    main()
