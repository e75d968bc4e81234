"""The user-code pool: bounded daemon threads, abandoned calls counted, never waited for."""

from __future__ import annotations

import asyncio
import threading

import pytest

from continuous_eval import log_context
from continuous_eval.adapters.user_code import DaemonThreadPool, UserCodePool


@pytest.fixture
def release() -> threading.Event:
    return threading.Event()


ENTERED = threading.Semaphore(0)
"""Released once by every call of ``hang`` as it starts: tests wait on it, not on time."""


def hang(release: threading.Event) -> str:
    ENTERED.release()
    release.wait(timeout=30)
    return "done"


async def entered(count: int) -> None:
    for _ in range(count):
        assert await asyncio.to_thread(ENTERED.acquire, timeout=10)


async def test_calls_past_the_bound_wait_for_a_thread(release: threading.Event) -> None:
    pool = UserCodePool("s", max_threads=2)
    calls = [asyncio.create_task(pool.call(hang, release)) for _ in range(5)]
    await entered(2)
    assert (pool.threads, pool.busy) == (2, 2)  # three wait; no third thread
    release.set()
    assert await asyncio.gather(*calls) == ["done"] * 5
    await entered(3)
    assert pool.threads == 2
    pool.close()


async def test_a_cancelled_running_call_is_abandoned_until_it_returns(
    release: threading.Event,
) -> None:
    pool = UserCodePool("s", max_threads=1)
    running = asyncio.create_task(pool.call(hang, release))
    waiting = asyncio.create_task(pool.call(hang, release))
    await entered(1)
    running.cancel()
    waiting.cancel()
    await asyncio.gather(running, waiting, return_exceptions=True)
    assert (pool.abandoned, pool.abandoned_total) == (1, 1)  # the waiting one never ran

    finished = threading.Event()
    pool.submit(finished.set)  # queued behind the abandoned call
    release.set()
    assert finished.wait(timeout=10)
    assert pool.abandoned == 0
    assert pool.abandoned_total == 1
    pool.close()


async def test_the_callers_context_and_errors_reach_across() -> None:
    pool = UserCodePool("s", max_threads=1)

    def read() -> object:
        return log_context.current().get("run_id")

    def fail() -> None:
        raise ValueError("boom")

    with log_context.bound(run_id="r-7"):
        assert await pool.call(read) == "r-7"
    with pytest.raises(ValueError, match="boom"):
        await pool.call(fail)
    pool.close()


def test_shutdown_never_waits_and_the_threads_are_daemons(release: threading.Event) -> None:
    pool = DaemonThreadPool("s", max_threads=1)
    started = threading.Event()

    def stuck() -> None:
        started.set()
        release.wait(timeout=30)

    pool.submit(stuck)
    assert started.wait(timeout=10)
    queued = pool.submit(stuck)
    pool.shutdown(wait=True, cancel_futures=True)  # returns at once
    assert queued.cancelled()
    assert all(
        t.daemon for t in threading.enumerate() if t.name.startswith("s-")
    )  # never joined at exit
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(stuck)
    release.set()


def test_a_pool_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        UserCodePool("s", max_threads=0)
