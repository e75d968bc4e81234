"""The sandbox worker: a standalone script that serves ``score(output, case)`` calls.

It runs inside bubblewrap (or, only when the operator allows it, bare) as
``python -I -S worker_main.py LIMITS_JSON`` and imports nothing but the
standard library, so the sandbox needs to expose no more than the interpreter.
It speaks JSON lines: one ``{"ready": true}`` when it starts, then one reply
per request, read on stdin and written on a private copy of stdout (the code's
own ``print`` goes to ``/dev/null``, so it cannot forge replies by accident).

Limits are set on itself before any code is loaded: address space, no file
writes (``RLIMIT_FSIZE`` 0, ``SIGXFSZ`` ignored so a write fails instead of
killing it), few file descriptors, no new processes, no core dumps. CPU time
is limited per call: the soft ``RLIMIT_CPU`` is moved to the CPU used so far
plus the call's budget, so a reused worker gets the full budget every call.
The parent enforces wall time and the reply size; this script is one layer,
not the whole defence.
"""

from __future__ import annotations

import builtins
import json
import math
import os
import resource
import signal
import sys
from typing import Any, BinaryIO

_MESSAGE_CHARS = 500
"""Longest exception message sent back: enough to debug, too short to exfiltrate much."""

_RESERVE_BYTES = 1 << 20
"""Freed on ``MemoryError`` so the reply itself can still be built."""


def _limit(which: int, value: int) -> None:
    try:
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError):
        # Lower only: a hard limit already under ``value`` stays (that is stricter).
        _soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY and hard < value:
            resource.setrlimit(which, (hard, hard))
        else:
            raise


def _set_limits(limits: dict[str, Any]) -> None:
    memory = int(limits["memory_mb"]) * 1024 * 1024
    _limit(resource.RLIMIT_AS, memory)
    _limit(resource.RLIMIT_FSIZE, 0)
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NOFILE, int(limits["nofile"]))
    _limit(resource.RLIMIT_NPROC, 0)  # not enforced for a real root; bubblewrap maps us to nobody


def _cpu_budget(cpu_s: float) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    soft = max(1, math.ceil(used + cpu_s))
    resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))


def _text(exc: BaseException) -> str:
    message = f"{type(exc).__name__}: {exc}"
    return message[:_MESSAGE_CHARS]


def _checked(value: Any) -> dict[str, Any]:
    """A reply for what the function returned: only bool, finite number or JSON-able dict."""
    if isinstance(value, bool):
        return {"reason": "ok", "value": value}
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return {"reason": "invalid", "error": f"returned a non-finite number {value}"}
        return {"reason": "ok", "value": value}
    if isinstance(value, dict):
        try:
            encoded = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            return {"reason": "invalid", "error": f"returned a dict that is not JSON: {exc}"}
        return {"reason": "ok", "value": json.loads(encoded)}
    kind = type(value).__name__
    return {"reason": "invalid", "error": f"returned {kind}; expected a bool, a number or a dict"}


class _Worker:
    def __init__(self, limits: dict[str, Any], out: BinaryIO) -> None:
        self._out = out
        self._output_bytes = int(limits["output_bytes"])
        self._programs: dict[str, Any] = {}
        self._reserve: bytearray | None = bytearray(_RESERVE_BYTES)

    def send(self, reply: dict[str, Any]) -> None:
        try:
            line = json.dumps(reply, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            line = json.dumps({"reason": "invalid", "error": _text(exc)}).encode()
        if len(line) > self._output_bytes:
            line = json.dumps({"reason": "output", "error": f"reply of {len(line)} bytes"}).encode()
        self._out.write(line + b"\n")
        self._out.flush()

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "load":
            return self._run(request, self._load)
        if op == "score":
            return self._run(request, self._score)
        return {"reason": "invalid", "error": f"unknown op {op!r}"}

    def _run(self, request: dict[str, Any], step: Any) -> dict[str, Any]:
        _cpu_budget(float(request["cpu_s"]))
        try:
            reply: dict[str, Any] = step(request)
        except MemoryError:
            self._reserve = None  # room to build the reply; the parent replaces this worker
            return {"reason": "memory", "error": "MemoryError"}
        except BaseException as exc:  # whatever the code raises, SystemExit included
            return {"reason": "exception", "error": _text(exc)}
        return reply

    def _load(self, request: dict[str, Any]) -> dict[str, Any]:
        namespace: dict[str, Any] = {"__name__": "learned_evaluator", "__builtins__": builtins}
        # dont_inherit: the code gets default semantics, not this file's future imports.
        code = compile(request["source"], "<evaluator>", "exec", dont_inherit=True)
        exec(code, namespace)  # noqa: S102 (the point)
        entry = namespace.get(request["entry"])
        if not callable(entry):
            return {"reason": "invalid", "error": f"defines no function {request['entry']!r}"}
        self._programs[request["key"]] = entry
        return {"reason": "ok", "value": True}

    def _score(self, request: dict[str, Any]) -> dict[str, Any]:
        entry = self._programs.get(request["key"])
        if entry is None:
            return {"reason": "invalid", "error": "program not loaded"}
        return _checked(entry(request["output"], request["case"]))


def main() -> None:
    """Set the limits, say ready, and serve requests until stdin closes."""
    limits = json.loads(sys.argv[1])
    out = os.fdopen(os.dup(1), "wb")
    sink = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)
    os.dup2(sink.fileno(), 1)
    sys.stdout = sink
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    _set_limits(limits)
    worker = _Worker(limits, out)
    worker.send({"ready": True})
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
        except ValueError as exc:
            worker.send({"reason": "invalid", "error": _text(exc)})
            continue
        reply = worker.handle(request)
        worker.send(reply)
        if reply["reason"] == "memory":
            return  # the heap may be in any state: exit and be replaced


if __name__ == "__main__":
    main()
