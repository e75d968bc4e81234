"""Where untrusted evaluator code runs: ``adapters.sandbox`` (bubblewrap worker
processes with limits), and in-process fakes in ``testing`` for unit tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from pydantic import JsonValue

from continuous_eval.core.sandboxing import SandboxOutcome, SandboxProgram


class Sandbox(Protocol):
    """Runs ``program``'s entry function on one case in an isolated, limited worker."""

    @property
    def isolated(self) -> bool:
        """Whether the code runs without network and with a read-only, minimal filesystem."""
        ...

    async def score(
        self, program: SandboxProgram, output: str, case: Mapping[str, JsonValue]
    ) -> SandboxOutcome:
        """Call ``entry(output, case)``; never raises for anything the code does."""
        ...

    async def aclose(self) -> None:
        """Stop every worker."""
        ...
