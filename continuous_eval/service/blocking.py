"""Run a blocking call (the store, a lock) off the event loop, in the caller's context.

One helper for every blocking call the service makes, so each goes to the
executor meant for it (``app.container`` gives the daemon's own I/O a pool of
its own, apart from the default pool user code may fill) and carries the
context variables of the caller, as ``asyncio.to_thread`` does: log lines
written in the worker thread keep naming the run or request.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

_T = TypeVar("_T")


async def run_blocking(executor: Executor | None, fn: Callable[[], _T]) -> _T:
    """Run ``fn`` in ``executor`` (the loop's default when None) and return its result."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(executor, context.run, fn)
