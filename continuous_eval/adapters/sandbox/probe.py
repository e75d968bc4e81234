"""Whether bubblewrap works here, and if not, why and how to fix it.

The probe runs a trivial program through the very command line the workers
use, so "available" means the sandbox really starts on this machine (kernel,
container runtime and all), not merely that ``bwrap`` is on the ``PATH``.
"""

from __future__ import annotations

import shutil
import subprocess

from continuous_eval.adapters.sandbox.command import WORKER_SCRIPT, bwrap_argv, interpreter

PROBE_TIMEOUT_S = 15.0

_FIX_NAMESPACES = (
    "user namespaces are refused here: allow them (sysctl kernel.unprivileged_userns_clone=1, "
    "or kernel.apparmor_restrict_unprivileged_userns=0), or run the container with "
    "--security-opt seccomp=unconfined (Docker) or --privileged"
)


def probe(bwrap: str = "bwrap") -> str | None:
    """Run ``print('ok')`` in the sandbox: None when it works, else the problem and its fix."""
    path = shutil.which(bwrap)
    if path is None:
        return f"{bwrap!r} is not installed: install bubblewrap (apt-get install bubblewrap)"
    argv = [
        *bwrap_argv(path, interpreter(), str(WORKER_SCRIPT)),
        "-c",
        "import sys; sys.stdout.write('ok')",
    ]
    try:
        done = subprocess.run(  # noqa: S603 (our own argv)
            argv, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False, env={}
        )
    except subprocess.TimeoutExpired:
        return f"bubblewrap did not run a trivial program within {PROBE_TIMEOUT_S:g} s"
    except OSError as exc:
        return f"cannot run {path}: {exc}"
    if done.returncode == 0 and done.stdout == b"ok":
        return None
    stderr = done.stderr.decode(errors="replace").strip()[-300:]
    if "namespace" in stderr or "uid map" in stderr or "Operation not permitted" in stderr:
        return f"{_FIX_NAMESPACES} (bwrap said: {stderr})"
    return f"bubblewrap failed (exit {done.returncode}): {stderr or 'no message'}"


def sandbox_available(bwrap: str = "bwrap") -> bool:
    """Whether learned code can run isolated here."""
    return probe(bwrap) is None
