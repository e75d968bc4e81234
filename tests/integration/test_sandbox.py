"""The bubblewrap sandbox for learned evaluators, with the real ``bwrap``.

Under ``CI=true`` these must run: without ``bwrap`` they fail instead of
skipping (``.ci/run`` installs Debian's bubblewrap).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import JsonValue

from continuous_eval.adapters.sandbox import WorkerPool, probe, sandbox_available
from continuous_eval.adapters.sandbox.command import worker_command
from continuous_eval.core.sandboxing import SandboxLimits, SandboxOutcome, SandboxProgram
from tests.fixtures.sandbox import bwrap_path
from tests.integration import sandbox_programs as programs

pytestmark = pytest.mark.slow

PASSWD_FIRST_LINE = Path("/etc/passwd").read_text().splitlines()[0]
"""What the host's /etc/passwd starts with: it must never appear in an outcome."""

LIMITS = SandboxLimits(cpu_s=1.0, memory_mb=256, wall_s=4.0, output_bytes=65_536)


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    sandbox = WorkerPool(worker_command(LIMITS, bwrap=bwrap_path()), LIMITS, size=2)
    yield sandbox
    await sandbox.aclose()


def _case(**metadata: JsonValue) -> dict[str, JsonValue]:
    return {"id": "1", "input": "q", "metadata": dict(metadata)}


async def _good_still_works(pool: WorkerPool) -> None:
    after = await pool.score(programs.GOOD, "a refund", _case())
    assert after.ok, after
    assert isinstance(after.value, dict)
    assert after.value["passed"] is True


def test_the_probe_finds_bwrap_working() -> None:
    bwrap_path()
    assert probe() is None
    assert sandbox_available()
    assert probe("no-such-bwrap") == (
        "'no-such-bwrap' is not installed: install bubblewrap (apt-get install bubblewrap)"
    )


async def test_good_code_scores_many_cases_in_one_reused_worker(pool: WorkerPool) -> None:
    assert pool.isolated
    outcomes = []
    pids = set()
    for i in range(30):
        text = "you get a refund" if i % 2 else "no money back"
        outcomes.append(await pool.score(programs.GOOD, text, _case()))
        pids.update(pool.pids)
    assert all(o.ok for o in outcomes), outcomes
    values = [o.value for o in outcomes]
    assert [v["passed"] for v in values if isinstance(v, dict)] == [i % 2 == 1 for i in range(30)]
    # One process served every call: its module-level counter counted all 30.
    assert [v["rationale"] for v in values if isinstance(v, dict)] == [str(i) for i in range(1, 31)]
    assert pool.started == 1
    assert len(pids) == 1


async def test_an_infinite_loop_is_stopped_by_a_limit_and_the_next_call_works(
    pool: WorkerPool,
) -> None:
    started = time.monotonic()
    outcome = await pool.score(programs.LOOP, "x", _case())
    assert outcome.reason in ("cpu", "timeout"), outcome
    assert time.monotonic() - started < LIMITS.wall_s + 3
    await _good_still_works(pool)


async def test_a_sleep_ends_at_the_wall_time(pool: WorkerPool) -> None:
    started = time.monotonic()
    outcome = await pool.score(programs.SLEEP, "x", _case())
    assert outcome.reason == "timeout", outcome
    assert LIMITS.wall_s <= time.monotonic() - started < LIMITS.wall_s + 3
    await _good_still_works(pool)


@pytest.mark.parametrize("program", [programs.BIG_BYTES, programs.BIG_LIST], ids=["bytes", "list"])
async def test_allocating_2_gb_hits_the_memory_limit(
    pool: WorkerPool, program: SandboxProgram
) -> None:
    outcome = await pool.score(program, "x", _case())
    assert outcome.reason == "memory", outcome
    await _good_still_works(pool)


@pytest.mark.parametrize("name", ["BIG_BYTES", "BIG_LIST"])
def test_the_memory_limit_holds_the_worker_far_under_2_gb(name: str) -> None:
    """In a fresh process, whose only children are the sandbox's: the largest of them
    never came near 2 GB (this test process's own children include browsers and
    servers of other tests, so its RUSAGE_CHILDREN says nothing about the sandbox)."""
    script = _PEAK_SCRIPT.format(bwrap=bwrap_path(), name=name, memory_mb=LIMITS.memory_mb)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    reason, peak_kib = done.stdout.split()
    assert reason == "memory"
    assert int(peak_kib) < 1_000_000


_PEAK_SCRIPT = """
import asyncio, resource
from continuous_eval.adapters.sandbox.command import worker_command
from continuous_eval.adapters.sandbox.pool import WorkerPool
from continuous_eval.core.sandboxing import SandboxLimits
from tests.integration import sandbox_programs

async def main():
    limits = SandboxLimits(cpu_s=2.0, memory_mb={memory_mb}, wall_s=10.0)
    pool = WorkerPool(worker_command(limits, bwrap={bwrap!r}), limits, size=1)
    try:
        outcome = await pool.score(sandbox_programs.{name}, "x", {{}})
    finally:
        await pool.aclose()
    print(outcome.reason, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)

asyncio.run(main())
"""


async def test_reading_etc_passwd_through_the_builtins_fails_and_leaks_nothing(
    pool: WorkerPool,
) -> None:
    outcome = await pool.score(programs.READ_PASSWD, "x", _case())
    assert outcome.reason == "exception", outcome
    assert "FileNotFoundError" in (outcome.error or "")
    secret = PASSWD_FIRST_LINE
    assert secret not in repr(outcome)


async def test_a_socket_to_a_local_listener_never_connects(pool: WorkerPool) -> None:
    connections = 0

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(accepted, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        outcome = await pool.score(programs.CONNECT, "x", _case(port=port))
    finally:
        server.close()
        await server.wait_closed()
    assert outcome.reason == "exception", outcome
    assert "ConnectionRefusedError" in (outcome.error or "") or "OSError" in (outcome.error or "")
    assert connections == 0


async def test_writing_a_file_fails_everywhere(pool: WorkerPool, tmp_path: Path) -> None:
    host_file = tmp_path / "escaped.txt"
    paths: list[JsonValue] = [
        "/tmp/x",  # noqa: S108 (inside the sandbox: there is no /tmp)
        "/x",
        "/sandbox/x",
        "/dev/shm/x",  # noqa: S108 (inside the sandbox: read-only)
        "/dev/x",
        "/usr/x",
        str(host_file),
    ]
    outcome = await pool.score(programs.WRITE, "x", _case(paths=paths))
    assert outcome.ok, outcome
    assert isinstance(outcome.value, dict)
    assert outcome.value["score"] == 0.0, outcome.value["rationale"]
    assert not host_file.exists()


@pytest.mark.parametrize(
    "program", [programs.HUGE, programs.FLOOD_PROTOCOL], ids=["returned", "protocol"]
)
async def test_huge_output_is_an_output_outcome(pool: WorkerPool, program: SandboxProgram) -> None:
    outcome = await pool.score(program, "x", _case())
    assert outcome.reason == "output", outcome
    await _good_still_works(pool)


async def test_a_crash_through_the_builtins_is_a_crash(pool: WorkerPool) -> None:
    outcome = await pool.score(programs.EXIT, "x", _case())
    assert outcome == SandboxOutcome("crash", error="the worker exited with code 3")
    await _good_still_works(pool)


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        (programs.RAISES, SandboxOutcome("exception", error="KeyError: 'expected'")),
        (
            programs.NOT_A_SCORE,
            SandboxOutcome("invalid", error="returned str; expected a bool, a number or a dict"),
        ),
        (programs.NAN, SandboxOutcome("invalid", error="returned a non-finite number nan")),
    ],
    ids=["raises", "str", "nan"],
)
async def test_exceptions_and_non_scores_keep_the_worker(
    pool: WorkerPool, program: SandboxProgram, expected: SandboxOutcome
) -> None:
    for _ in range(3):
        assert await pool.score(program, "x", _case()) == expected
    assert pool.started == 1


async def test_one_program_cannot_tamper_with_another(pool: WorkerPool) -> None:
    assert (await pool.score(programs.TAMPER, "x", _case())).ok
    # The good program never runs in the tampered worker: "no" has no refund.
    outcome = await pool.score(programs.GOOD, "no", _case())
    assert isinstance(outcome.value, dict)
    assert outcome.value["passed"] is False
    assert pool.started == 2


async def test_workers_stay_within_the_pool_size_across_many_programs(pool: WorkerPool) -> None:
    for i in range(6):
        program = SandboxProgram(f"def score(output, case):\n    return {i}\n")
        assert (await pool.score(program, "x", _case())).value == i
        assert len(pool.pids) <= pool.size
    assert pool.started == 6


async def test_fifty_concurrent_calls_with_hostile_ones_all_return(pool: WorkerPool) -> None:
    hostile = {
        5: programs.SLEEP,
        12: programs.EXIT,
        20: programs.BIG_BYTES,
        33: programs.LOOP,
        41: programs.READ_PASSWD,
    }
    calls = [pool.score(hostile.get(i, programs.GOOD), f"refund {i}", _case()) for i in range(50)]
    outcomes = await asyncio.wait_for(asyncio.gather(*calls), timeout=90)
    for i, outcome in enumerate(outcomes):
        if i in hostile:
            assert not outcome.ok, (i, outcome)
        else:
            assert outcome.ok, (i, outcome)
    await _good_still_works(pool)


async def test_a_closed_pool_refuses_and_leaves_no_worker(pool: WorkerPool) -> None:
    await _good_still_works(pool)
    assert len(pool.pids) == 1
    await pool.aclose()
    assert pool.pids == []
    assert (await pool.score(programs.GOOD, "refund", _case())).reason == "refused"


async def test_a_cancelled_call_kills_its_worker_and_the_pool_recovers(pool: WorkerPool) -> None:
    # The caller gives up (a run's watchdog, a shutdown) long before the wall time.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(pool.score(programs.SLEEP, "x", _case()), timeout=1.0)
    assert pool.pids == []
    await _good_still_works(pool)
