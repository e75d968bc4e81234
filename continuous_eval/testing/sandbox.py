"""``InProcessSandbox``: the ``Sandbox`` port with ``exec`` in this process, for unit tests only.

It is *not* isolated (``isolated`` is False) and enforces no limit: a loop
hangs it and ``open`` works. Tests give it only code they would run
themselves (``evaluator_codes.GOOD`` and the like) to exercise what sits
around the sandbox (the generation job, the metrics) quickly and
deterministically; the real sandbox (``adapters.sandbox``) is what runs
learned code, and its own tests run the hostile scripts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import JsonValue

from continuous_eval.core.sandboxing import SandboxOutcome, SandboxProgram


class InProcessSandbox:
    """Run ``score`` with ``exec`` here; each program is loaded once and reused.

    ``calls`` counts the calls made, so a test can see which cases ran.
    """

    def __init__(self) -> None:
        self._loaded: dict[str, Callable[..., Any]] = {}
        self.calls = 0
        self.closed = False

    @property
    def isolated(self) -> bool:
        """False: nothing isolates the code from this process."""
        return False

    async def score(
        self, program: SandboxProgram, output: str, case: Mapping[str, JsonValue]
    ) -> SandboxOutcome:
        """Call the program's entry; an exception or a non-JSON value is an outcome, not a raise."""
        self.calls += 1
        try:
            entry = self._load(program)
        except Exception as exc:  # the code is the test's, but its failure is an outcome
            return SandboxOutcome("crash", error=f"loading failed: {type(exc).__name__}: {exc}")
        try:
            value = entry(output, dict(case))
        except Exception as exc:
            return SandboxOutcome("exception", error=f"{type(exc).__name__}: {exc}")
        try:
            returned: JsonValue = json.loads(json.dumps(value))
        except (TypeError, ValueError):
            return SandboxOutcome("invalid", error=f"returned a {type(value).__name__}")
        return SandboxOutcome("ok", value=returned)

    async def aclose(self) -> None:
        """Forget the loaded programs."""
        self._loaded.clear()
        self.closed = True

    def _load(self, program: SandboxProgram) -> Callable[..., Any]:
        loaded = self._loaded.get(program.key)
        if loaded is None:
            namespace: dict[str, Any] = {"__name__": "learned_evaluator"}
            exec(compile(program.source, "<learned evaluator>", "exec"), namespace)  # noqa: S102
            loaded = namespace[program.entry]
            self._loaded[program.key] = loaded
        return loaded
