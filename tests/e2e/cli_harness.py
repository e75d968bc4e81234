"""Run the ``continuous-eval`` command as a user or a CI job does: a real process.

Shared by the CLI's end-to-end tests; the ``project`` fixture (a copy of the
example config) is in ``tests/e2e/conftest.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a person at a 200-column terminal does, with no settings but ``env``."""
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CONTINUOUS_EVAL_", "ANTHROPIC_"))
    }
    full_env["COLUMNS"] = "200"  # rich wraps tables to the terminal width
    full_env.update(env or {})
    return _run(args, cwd, full_env, timeout)


def piped(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a CI job does: stdout a pipe, no COLUMNS, no terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTINUOUS_EVAL_", "COLUMNS"))}
    return _run(args, cwd, env, 120)


def _run(
    args: tuple[str, ...], cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "continuous_eval", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
