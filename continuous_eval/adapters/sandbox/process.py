"""One worker process: start it, exchange JSON lines with it under a deadline, kill it.

Every wait here has a deadline and every read is bounded, so nothing the
code inside does (loop, sleep, flood its output, die) can hang or crash the
daemon: the caller gets a ``SandboxOutcome`` and a dead worker, never an
exception. Killing is of the whole process group (bubblewrap and, through
its PID namespace, everything inside).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from typing import Any

from continuous_eval.adapters.sandbox.command import WorkerCommand
from continuous_eval.core.sandboxing import SandboxLimits, SandboxOutcome, SandboxReason

START_TIMEOUT_S = 15.0
"""Longest a worker may take to say it is ready (bubblewrap plus the interpreter)."""

_REPLY_SLACK = 1024
"""Bytes of a reply line beyond ``output_bytes``: the JSON around the value."""

_DISCARD_CHUNK = 65_536
"""What a killed worker's unread replies are read in, to be thrown away."""

_STDERR_TAIL = 2048

_ENV = {"LC_ALL": "C.UTF-8"}
"""The worker's whole environment: none of the daemon's variables (its keys) leak in."""


def _exit_reason(code: int | None) -> tuple[SandboxReason, str]:
    if code is None:
        return "crash", "the worker stopped answering"
    # A bare worker reports a signal as -N; bubblewrap passes it on as 128 + N.
    signum = -code if code < 0 else code - 128 if code > 128 else 0
    if signum == signal.SIGXCPU:
        return "cpu", "the worker exceeded its CPU time"
    if signum:
        return "crash", f"the worker was killed by signal {signal.Signals(signum).name}"
    return "crash", f"the worker exited with code {code}"


class WorkerProcess:
    """A started worker and the program it has loaded (the pool loads one per worker)."""

    def __init__(self, process: asyncio.subprocess.Process, limits: SandboxLimits) -> None:
        self._process = process
        self._limits = limits
        self.loaded: set[str] = set()
        self.calls = 0
        self._stderr = bytearray()
        self._drain = asyncio.ensure_future(self._read_stderr())

    @property
    def pid(self) -> int:
        """The host PID of the worker's leader (bubblewrap, or the bare interpreter)."""
        return self._process.pid

    @property
    def alive(self) -> bool:
        """Whether the process is still running."""
        return self._process.returncode is None

    @classmethod
    async def start(cls, command: WorkerCommand, limits: SandboxLimits) -> WorkerProcess:
        """Start a worker and wait for its ready line; raises ``OSError`` or ``RuntimeError``."""
        process = await asyncio.create_subprocess_exec(
            *command.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_ENV,
            start_new_session=True,
            limit=limits.output_bytes + _REPLY_SLACK,
        )
        worker = cls(process, limits)
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                line = await worker._read_line()
            if line is None or json.loads(line).get("ready") is not True:
                await worker.kill()
                raise RuntimeError(f"the sandbox worker did not start: {worker.stderr_tail()}")
        except BaseException:
            await worker.kill()
            raise
        return worker

    async def request(self, message: dict[str, Any], wall_s: float) -> SandboxOutcome:
        """Send one request and read its reply within ``wall_s``; kills the worker on any limit."""
        try:
            async with asyncio.timeout(wall_s):
                return await self._exchange(message)
        except TimeoutError:
            await self.kill()
            return SandboxOutcome("timeout", error=f"no answer within {wall_s:g} s (wall time)")
        except BaseException:  # cancelled mid-call: the worker's state is unknown
            await self.kill()
            raise

    async def _exchange(self, message: dict[str, Any]) -> SandboxOutcome:
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(message).encode() + b"\n")
            await stdin.drain()
            line = await self._read_line()
        except ValueError:  # the line outgrew the reader's limit
            await self.kill()
            size = self._limits.output_bytes
            return SandboxOutcome("output", error=f"the reply exceeded {size} bytes")
        except (ConnectionError, OSError):
            line = None
        if line is None:
            return await self._died()
        self.calls += 1
        return _parse_reply(line)

    async def _read_line(self) -> bytes | None:
        stdout = self._process.stdout
        assert stdout is not None
        line = await stdout.readline()
        return line if line.endswith(b"\n") else None

    async def _died(self) -> SandboxOutcome:
        try:
            async with asyncio.timeout(2.0):
                code: int | None = await self._process.wait()
        except TimeoutError:
            code = None
        await self.kill()
        reason, message = _exit_reason(code)
        tail = self.stderr_tail()
        return SandboxOutcome(reason, error=f"{message}: {tail}" if tail else message)

    async def _read_stderr(self) -> None:
        stderr = self._process.stderr
        assert stderr is not None
        while chunk := await stderr.read(4096):
            self._stderr += chunk
            del self._stderr[:-_STDERR_TAIL]

    async def _discard_replies(self) -> None:
        stdout = self._process.stdout
        if stdout is not None:
            while await stdout.read(_DISCARD_CHUNK):
                pass

    def stderr_tail(self) -> str:
        """The end of what the worker wrote on stderr (bubblewrap's own errors land there)."""
        return self._stderr.decode(errors="replace").strip()[-500:]

    async def kill(self) -> None:
        """Kill the worker's process group and reap it; never raises, never waits long."""
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)
        # Close our ends first: the process's wait also waits for its pipes, and a
        # reply channel we stopped reading (a flood past the limit) would hold it
        # open until the timeout below.
        if self._process.stdin is not None:
            self._process.stdin.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                # The process's wait also waits for its pipes to close, and a reply
                # channel we stopped reading (a flood past the limit pauses it) would
                # never see its end: read it to the end, discarding.
                await asyncio.gather(self._process.wait(), self._discard_replies())
        self._drain.cancel()


def _parse_reply(line: bytes) -> SandboxOutcome:
    """Trust nothing the worker says: the reply must be a known reason with a valid value."""
    try:
        reply = json.loads(line)
    except ValueError:
        return SandboxOutcome("crash", error="the worker sent a line that is not JSON")
    if not isinstance(reply, dict):
        return SandboxOutcome("crash", error="the worker sent a reply that is not an object")
    reason = reply.get("reason")
    error = reply.get("error")
    error = str(error)[:1000] if error is not None else None
    if reason == "ok":
        value = reply.get("value")
        if not _valid_value(value):
            return SandboxOutcome("invalid", error="returned no bool, finite number or dict")
        return SandboxOutcome("ok", value=value)
    if reason in ("exception", "memory", "output", "invalid"):
        return SandboxOutcome(reason, error=error)
    return SandboxOutcome("crash", error=f"the worker sent an unknown reason {reason!r}")


def _valid_value(value: Any) -> bool:
    if isinstance(value, bool | dict):
        return True
    return isinstance(value, int | float) and value == value and abs(value) != float("inf")
