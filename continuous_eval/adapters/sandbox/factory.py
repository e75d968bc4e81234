"""The sandbox the settings ask for, or ``SandboxUnavailable`` saying how to get one.

Learned code runs in bubblewrap. Without a working bubblewrap it runs only
when the operator has set ``CONTINUOUS_EVAL_ALLOW_UNSANDBOXED=true``: then in
bare worker processes with the same protocol and resource limits but with
the network and the filesystem open, and a warning in the log each time a
pool is made.
"""

from __future__ import annotations

import logging
import shutil

from continuous_eval.adapters.sandbox.command import worker_command
from continuous_eval.adapters.sandbox.pool import WorkerPool
from continuous_eval.adapters.sandbox.probe import probe
from continuous_eval.core.sandboxing import SandboxLimits
from continuous_eval.errors import SandboxUnavailable
from continuous_eval.settings import Settings

log = logging.getLogger(__name__)

_ALLOW = "CONTINUOUS_EVAL_ALLOW_UNSANDBOXED=true"


def limits_from(settings: Settings) -> SandboxLimits:
    """The per-call limits of the ``sandbox_*`` settings."""
    return SandboxLimits(
        cpu_s=settings.sandbox_cpu_s,
        memory_mb=settings.sandbox_memory_mb,
        wall_s=settings.sandbox_wall_s,
        output_bytes=settings.sandbox_output_bytes,
    )


def make_sandbox(settings: Settings, *, bwrap: str = "bwrap") -> WorkerPool:
    """A worker pool per the settings; raises ``SandboxUnavailable`` when it would be unsafe."""
    limits = limits_from(settings)
    if settings.sandbox == "bwrap":
        problem = probe(bwrap)
        if problem is None:
            path = shutil.which(bwrap) or bwrap
            return WorkerPool(worker_command(limits, bwrap=path), limits, settings.sandbox_workers)
        why = f"the bubblewrap sandbox is unavailable: {problem}"
    else:
        why = "CONTINUOUS_EVAL_SANDBOX=none turns the sandbox off"
    if not settings.allow_unsandboxed:
        raise SandboxUnavailable(
            f"refusing to run learned evaluator code: {why}. Fix the sandbox, or set "
            f"{_ALLOW} to run it without isolation (network and files open) at your own risk"
        )
    log.warning(
        "running learned evaluator code WITHOUT a sandbox (%s): %s; it has the network and "
        "the filesystem of this process",
        _ALLOW,
        why,
    )
    return WorkerPool(worker_command(limits, bwrap=None), limits, settings.sandbox_workers)
