"""What running untrusted evaluator code returns, and the limits it runs under.

Pure records. Learned evaluators (and any code the product did not write) run
in separate worker processes; the daemon sees only these outcomes, so a loop,
an allocation or a crash in the code is an errored result with a reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from pydantic import JsonValue

SandboxReason = Literal[
    "ok",
    "exception",
    "timeout",
    "cpu",
    "memory",
    "output",
    "crash",
    "invalid",
    "refused",
]
"""Why an outcome is what it is: ``ok``; the code raised (``exception``) or returned
something that is no score (``invalid``); a limit ended it (``timeout`` wall time,
``cpu`` time, ``memory``, ``output`` size); the worker died (``crash``); or no
sandbox would run it (``refused``)."""


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Per-call limits. A worker that hits one is killed and replaced."""

    cpu_s: float = 2.0
    memory_mb: int = 256
    wall_s: float = 5.0
    output_bytes: int = 65_536


@dataclass(frozen=True, slots=True)
class SandboxProgram:
    """Source that defines ``score(output, case)``; ``key`` names it for worker reuse."""

    source: str
    entry: str = "score"

    @property
    def key(self) -> str:
        """A content hash: workers that loaded this source serve every call with this key."""
        return hashlib.sha256(f"{self.entry}\0{self.source}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SandboxOutcome:
    """What one call returned: a value on ``ok``, a reason and message otherwise."""

    reason: SandboxReason
    value: JsonValue = None
    """``bool | float | dict`` as the function returned it (JSON round-tripped)."""
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the call returned a value."""
        return self.reason == "ok"
