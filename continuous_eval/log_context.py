"""The fields every log line about a run or a request carries, bound once where they are known.

The daemon binds ``run_id``, ``suite``, ``attempt``, ``slot`` and ``owner``
when it starts executing a run; the HTTP middleware binds ``request_id``.
Everything logged inside (the runner, the store, the SDK's retries) then
names the run without each call site passing the ids along.

Context variables, not thread-locals: an asyncio task copies the context it
was created in, and ``asyncio.to_thread`` carries it into the worker thread,
so the fields follow the work wherever it runs. This module does no I/O; the
logging adapter (``adapters/logs.py``) reads ``current()`` for each record.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping

FIELDS = ("run_id", "suite", "attempt", "slot", "owner", "request_id")
"""The context fields a log line may carry, in the order text lines show them."""

_context: contextvars.ContextVar[Mapping[str, object] | None] = contextvars.ContextVar(
    "continuous_eval_log_context", default=None
)


def current() -> Mapping[str, object]:
    """Return the fields bound in the running context."""
    return _context.get() or {}


@contextlib.contextmanager
def bound(**fields: object) -> Iterator[None]:
    """Add ``fields`` (None values are left out) for the duration of the block."""
    merged = {**current(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)
