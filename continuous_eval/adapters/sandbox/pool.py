"""``WorkerPool``: the ``Sandbox`` port over at most N reused worker processes.

Each worker loads ONE program and serves every call of it after that:
workers are reused across cases, never across programs, so one evaluator's
code cannot patch a module or a builtin under another's (its own later calls
share its state, which is its own business). At most ``size`` calls run at
once; an idle worker of the same program is taken first (the one idle
longest is kept last), and when all ``size`` workers are alive the one idle
longest, of another program, is killed to make room.

A worker that hit a limit, crashed or was cancelled mid-call is killed and
replaced on the next call, so the next call works. Every wait has a deadline
(``process``), so no call hangs, whatever its code does; the pool is safe
for any number of concurrent callers.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping

from pydantic import JsonValue

from continuous_eval.adapters.sandbox.command import WorkerCommand
from continuous_eval.adapters.sandbox.process import WorkerProcess
from continuous_eval.core.sandboxing import SandboxLimits, SandboxOutcome, SandboxProgram

_KEEPS_WORKER = frozenset({"ok", "exception", "invalid"})
"""Outcomes after which the worker is still sound; any other ends it."""


class WorkerPool:
    """Runs programs in at most ``size`` worker processes started with ``command``.

    Args:
        command: How to start a worker (``command.worker_command``).
        limits: Applied to every call.
        size: Workers (and calls in flight) at most; started lazily.
    """

    def __init__(self, command: WorkerCommand, limits: SandboxLimits, size: int = 2) -> None:
        if size < 1:
            raise ValueError("a sandbox pool needs at least one worker")
        self._command = command
        self.limits = limits
        self.size = size
        self._gate: asyncio.Semaphore | None = None
        self._idle: OrderedDict[WorkerProcess, str] = OrderedDict()
        """Idle workers and the program each has loaded, longest idle first."""
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

    async def score(
        self, program: SandboxProgram, output: str, case: Mapping[str, JsonValue]
    ) -> SandboxOutcome:
        """Call ``program``'s entry on one case in a worker; never raises for the code's doing."""
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.size)  # made inside the running loop
        async with self._gate:
            if self._closed:
                return SandboxOutcome("refused", error="the sandbox is closed")
            worker = self._take_idle(program.key)
            if worker is None:
                await self._make_room()
                try:
                    worker = await self._start()
                except (OSError, RuntimeError, TimeoutError, ValueError) as exc:
                    return SandboxOutcome("crash", error=f"cannot start a worker: {exc}")
            return await self._call(worker, program, output, case)

    def _take_idle(self, key: str) -> WorkerProcess | None:
        for worker in reversed(self._idle):  # the most recently used: its caches are warm
            if self._idle[worker] == key:
                del self._idle[worker]
                if worker.alive:
                    return worker
                self._live.discard(worker)
                return None
        return None

    async def _make_room(self) -> None:
        # Under the gate at most size - 1 other calls are busy, so when every
        # slot holds a live worker, one of them is idle (another program's).
        self._live = {w for w in self._live if w.alive}
        while len(self._live) >= self.size and self._idle:
            oldest = next(iter(self._idle))
            del self._idle[oldest]
            await self._retire(oldest)

    async def _call(
        self,
        worker: WorkerProcess,
        program: SandboxProgram,
        output: str,
        case: Mapping[str, JsonValue],
    ) -> SandboxOutcome:
        limits = self.limits
        try:
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
                    await self._retire(worker)  # a program that does not load is not kept
                    return _at_load(loaded)
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
        except BaseException:  # cancelled: the worker is killed already, forget it
            await self._retire(worker)
            raise
        if outcome.reason in _KEEPS_WORKER and worker.alive and not self._closed:
            self._idle[worker] = program.key
        else:
            await self._retire(worker)
        return outcome

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
        self._idle.pop(worker, None)
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
