"""The command line that starts one worker: bubblewrap around ``python -I -S``, or bare.

The bubblewrap sandbox is built up from nothing: a read-only root with only
the interpreter (``/usr``, ``/lib`` and ``/lib64`` as the host has them, and
the interpreter's own prefix when it lives elsewhere, e.g. pyenv) and the
worker script, bound read-only at ``/sandbox/worker.py``. No ``/etc``, no home,
no project directory, no writable ``/tmp`` or ``/dev``; every namespace
unshared (so no network), the user mapped to nobody with no capabilities, a
session of its own, and death with the daemon.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from continuous_eval.core.sandboxing import SandboxLimits

WORKER_SCRIPT = Path(__file__).with_name("worker_main.py")
"""The standalone worker (standard library only)."""

INSIDE_SCRIPT = "/sandbox/worker.py"
"""Where the worker script is bound, read-only, inside the sandbox."""

NOFILE = 16
"""File descriptors a worker may hold: its pipes, ``/dev/null`` and a few spare."""

NOBODY = "65534"


@dataclass(frozen=True, slots=True)
class WorkerCommand:
    """How to start a worker: the argv and whether it is isolated."""

    argv: tuple[str, ...]
    isolated: bool


def interpreter() -> str:
    """The real interpreter (a virtualenv's ``python`` is a symlink to it)."""
    return os.path.realpath(sys.executable)


def _limits_arg(limits: SandboxLimits) -> str:
    return json.dumps(
        {"memory_mb": limits.memory_mb, "output_bytes": limits.output_bytes, "nofile": NOFILE}
    )


def _system_mounts() -> list[str]:
    # /lib, /lib64 and /bin are symlinks into /usr on a merged-/usr Debian;
    # recreate them as symlinks, bind them where they are real directories.
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/lib", "/lib64", "/bin"):
        path = Path(top)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), top]
        elif path.is_dir():
            args += ["--ro-bind", top, top]
    return args


def bwrap_argv(
    bwrap: str, python: str, script: str, *, base_prefix: str = sys.base_prefix
) -> list[str]:
    """``bwrap`` options and the command to run ``python`` with ``script`` bound read-only."""
    args = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--uid",
        NOBODY,
        "--gid",
        NOBODY,
        "--cap-drop",
        "ALL",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--setenv",
        "LC_ALL",
        "C.UTF-8",
        *_system_mounts(),
    ]
    prefix = os.path.realpath(base_prefix)
    if not prefix.startswith("/usr/") and prefix != "/usr":
        args += ["--ro-bind", prefix, prefix]
    args += [
        "--ro-bind",
        script,
        INSIDE_SCRIPT,
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--remount-ro",
        "/dev",
        "--remount-ro",
        "/",
        "--",
        python,
        "-I",
        "-S",
    ]
    return args


def worker_command(limits: SandboxLimits, *, bwrap: str | None) -> WorkerCommand:
    """The worker in bubblewrap (``bwrap``: its path), or bare when ``bwrap`` is None."""
    python = interpreter()
    if bwrap is None:
        return WorkerCommand((python, "-I", "-S", str(WORKER_SCRIPT), _limits_arg(limits)), False)
    argv = bwrap_argv(bwrap, python, str(WORKER_SCRIPT))
    return WorkerCommand((*argv, INSIDE_SCRIPT, _limits_arg(limits)), True)
