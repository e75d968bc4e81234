"""Threads for users' sync Python targets and scorers: bounded, per suite, never waited for.

A sync callable runs in a worker thread so it does not block the event
loop. Those threads must not be the loop's default pool, which the daemon's
own calls and libraries share: a target that hangs (a ``time.sleep(90)``, a
socket without a timeout) would take every thread, and with them the ticks,
the heartbeats, ``/readyz`` and the shutdown. So each suite gets a
``UserCodePool`` of its own:

- bounded (the suite's concurrency): a suite whose cases hang fills its
  own pool and nobody else's, and its next run waits for those threads
  instead of starting more, so hung threads never accumulate run after run;
- daemon threads, never joined: a thread cannot be killed, but it need not
  be waited for. ``SIGTERM`` ends the process within the shutdown timeout
  whatever user code is doing; ``ThreadPoolExecutor`` threads would be
  joined at exit and hold the process for as long as the sleep lasts;
- counted: ``busy`` threads, and ``abandoned`` ones, still running a call
  whose run stopped waiting (the watchdog, a cancel, a shutdown). The
  metrics export both, so leaked threads are visible, not silent.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

_T = TypeVar("_T")

_Work = tuple[Future[Any], Callable[[], Any]]


class DaemonThreadPool(ThreadPoolExecutor):
    """A bounded executor of daemon threads whose ``shutdown`` never waits for a call.

    ``serve`` makes one the event loop's default executor as well, so no
    library's ``asyncio.to_thread`` can hold the process at exit either. It
    is a ``ThreadPoolExecutor`` only because ``loop.set_default_executor``
    accepts nothing else; every method that makes or stops threads is its own.

    Args:
        name: For thread names (and metrics, in ``UserCodePool``).
        max_threads: Calls running at once; more wait in order.
    """

    def __init__(self, name: str, max_threads: int) -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        super().__init__(max_workers=1, thread_name_prefix=name)  # starts no thread
        self.name = name
        self.max_threads = max_threads
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._queued = 0
        self._busy = 0
        self._closed = False

    @property
    def threads(self) -> int:
        """Worker threads started (they stay until ``shutdown``)."""
        with self._lock:
            return len(self._workers)

    @property
    def busy(self) -> int:
        """Threads running a call right now."""
        with self._lock:
            return self._busy

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        """Queue ``fn(*args, **kwargs)``; a thread is started while calls outnumber them."""
        future: Future[_T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the thread pool {self.name!r} is shut down")
            self._queued += 1
            started = len(self._workers)
            start = self._queued + self._busy > started and started < self.max_threads
            if start:
                thread = threading.Thread(
                    target=self._worker, name=f"{self.name}-{started + 1}", daemon=True
                )
                self._workers.append(thread)
        self._queue.put((future, lambda: fn(*args, **kwargs)))
        if start:
            thread.start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new calls and end the idle threads; a running call is never waited for.

        ``wait`` is accepted for the ``Executor`` interface and ignored: waiting
        for user code is exactly what a bounded shutdown must not do.
        """
        del wait
        with self._lock:
            if self._closed:
                return
            self._closed = True
            count = len(self._workers)
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in range(count):
            self._queue.put(None)

    def _worker(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, work = item
            with self._lock:
                self._queued -= 1
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while it waited
            with self._lock:
                self._busy += 1
            try:
                result = work()
            except BaseException as exc:  # handed to the caller, whatever it is
                future.set_exception(exc)
            else:
                future.set_result(result)
            finally:
                with self._lock:
                    self._busy -= 1


class UserCodePool(DaemonThreadPool):
    """One suite's sync user code: a ``DaemonThreadPool`` that counts abandoned calls."""

    def __init__(self, name: str, max_threads: int) -> None:
        super().__init__(name, max_threads)
        self._abandoned = 0
        self._abandoned_total = 0

    @property
    def abandoned(self) -> int:
        """Calls still running whose caller stopped waiting: leaked threads."""
        with self._lock:
            return self._abandoned

    @property
    def abandoned_total(self) -> int:
        """Calls ever abandoned while running."""
        with self._lock:
            return self._abandoned_total

    async def call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(*args)`` in a pool thread, in the caller's context, and return its result.

        Cancelling the caller cancels a call that has not started; one that
        has keeps its thread until it returns, counted as abandoned.
        """
        context = contextvars.copy_context()
        future = self.submit(context.run, fn, *args)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if not future.cancel():  # already running: it cannot be stopped
                self._abandon(future)
            raise

    def close(self) -> None:
        """Stop the idle threads; busy ones end with their call. Never waits."""
        self.shutdown(wait=False, cancel_futures=True)

    def _abandon(self, future: Future[Any]) -> None:
        with self._lock:
            self._abandoned += 1
            self._abandoned_total += 1

        def returned(_: Future[Any]) -> None:
            with self._lock:
                self._abandoned -= 1

        future.add_done_callback(returned)
