"""``WorkerPool``: the ``Sandbox`` port over N reused worker processes.

A call takes an idle worker (waiting for one when all N are busy), loads the
program into it the first time that worker sees its key, and sends the call.
Workers are reused across cases and programs; one that hit a limit, crashed
or was cancelled mid-call is killed and its slot is refilled on the next
call, so the next call works. The pool is safe for any number of
concurrent callers: the slots are an ``asyncio.LifoQueue``, so a warm
worker is taken before a new one is started.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from pydantic import JsonValue

from continuous_eval.adapters.sandbox.command import WorkerCommand
from continuous_eval.adapters.sandbox.process import WorkerProcess
from continuous_eval.core.sandboxing import SandboxLimits, SandboxOutcome, SandboxProgram

log = logging.getLogger(__name__)

MAX_PROGRAMS = 32
"""Programs one worker keeps loaded; a worker that would load more is replaced."""

_KEEPS_WORKER = frozenset({"ok", "exception", "invalid"})
"""Outcomes after which the worker is still sound; any other ends it."""


class WorkerPool:
    """Runs programs in ``size`` worker processes started with ``command``.

    Args:
        command: How to start a worker (``command.worker_command``).
        limits: Applied to every call.
        size: Workers at most, started lazily.
    """

    def __init__(self, command: WorkerCommand, limits: SandboxLimits, size: int = 2) -> None:
        if size < 1:
            raise ValueError("a sandbox pool needs at least one worker")
        self._command = command
        self.limits = limits
        self.size = size
        self._slots: asyncio.LifoQueue[WorkerProcess | None] | None = None
        self._live: set[WorkerProcess] = set()
        self._closed = False
        self.started = 0
        """Worker processes started so far (a reused pool starts few)."""

    @property
    def isolated(self) -> bool:
        """Whether workers run inside bubblewrap."""
        return self._command.isolated

    @property
    def pids(self) -> list[int]:
        """Host PIDs of the live workers."""
        return sorted(w.pid for w in self._live if w.alive)

    def _queue(self) -> asyncio.LifoQueue[WorkerProcess | None]:
        # Made on first use, inside the running loop. Last in, first out: a
        # live worker just put back is taken before an empty slot starts one.
        if self._slots is None:
            self._slots = asyncio.LifoQueue()
            for _ in range(self.size):
                self._slots.put_nowait(None)
        return self._slots

    async def score(
        self, program: SandboxProgram, output: str, case: Mapping[str, JsonValue]
    ) -> SandboxOutcome:
        """Call ``program``'s entry on one case in a worker; never raises for the code's doing."""
        if self._closed:
            return SandboxOutcome("refused", error="the sandbox is closed")
        slots = self._queue()
        worker = await slots.get()
        try:
            worker, outcome = await self._call(worker, program, output, case)
        except BaseException:
            if worker is not None:
                await self._retire(worker)
            slots.put_nowait(None)
            raise
        slots.put_nowait(worker)
        return outcome

    async def _call(
        self,
        worker: WorkerProcess | None,
        program: SandboxProgram,
        output: str,
        case: Mapping[str, JsonValue],
    ) -> tuple[WorkerProcess | None, SandboxOutcome]:
        if worker is not None and (
            not worker.alive
            or (program.key not in worker.loaded and len(worker.loaded) >= MAX_PROGRAMS)
        ):
            await self._retire(worker)
            worker = None
        if worker is None:
            try:
                worker = await self._start()
            except (OSError, RuntimeError, TimeoutError, ValueError) as exc:
                return None, SandboxOutcome("crash", error=f"cannot start a worker: {exc}")
        limits = self.limits
        if program.key not in worker.loaded:
            loaded = await worker.request(
                {
                    "op": "load",
                    "key": program.key,
                    "source": program.source,
                    "entry": program.entry,
                    "cpu_s": limits.cpu_s,
                },
                limits.wall_s,
            )
            if not loaded.ok:
                return await self._after(worker, _at_load(loaded))
            worker.loaded.add(program.key)
        outcome = await worker.request(
            {
                "op": "score",
                "key": program.key,
                "output": output,
                "case": dict(case),
                "cpu_s": limits.cpu_s,
            },
            limits.wall_s,
        )
        return await self._after(worker, outcome)

    async def _after(
        self, worker: WorkerProcess, outcome: SandboxOutcome
    ) -> tuple[WorkerProcess | None, SandboxOutcome]:
        if outcome.reason in _KEEPS_WORKER and worker.alive:
            return worker, outcome
        await self._retire(worker)
        return None, outcome

    async def _start(self) -> WorkerProcess:
        worker = await WorkerProcess.start(self._command, self.limits)
        self.started += 1
        self._live.add(worker)
        if self._closed:  # closed while it started
            await self._retire(worker)
            raise RuntimeError("the sandbox is closed")
        return worker

    async def _retire(self, worker: WorkerProcess) -> None:
        self._live.discard(worker)
        await worker.kill()

    async def aclose(self) -> None:
        """Kill every worker, busy or idle; later calls are refused."""
        self._closed = True
        for worker in list(self._live):
            await self._retire(worker)


def _at_load(outcome: SandboxOutcome) -> SandboxOutcome:
    if outcome.error is None:
        return outcome
    return SandboxOutcome(outcome.reason, error=f"while loading the code: {outcome.error}")
