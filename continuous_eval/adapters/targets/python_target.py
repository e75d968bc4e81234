"""A target that is a Python callable: ``fn(case.input)``, sync or async.

The callable may return a ``str`` (used as is), a ``TargetOutput`` (used as
is, so a callable that wraps a model can report its token usage), or any
other JSON value, which is turned into compact JSON text the way templates
render values. ``None`` is an error: it is almost always a forgotten
``return``, and scoring the text ``"null"`` would hide that.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from continuous_eval.adapters.user_code import UserCodePool
from continuous_eval.core.models import TargetOutput
from continuous_eval.core.suite import Case
from continuous_eval.core.templating import as_text
from continuous_eval.errors import TargetError

__all__ = ["PythonCallableTarget"]


class PythonCallableTarget:
    """A user's Python function behind the ``Target`` protocol.

    Sync functions run in a thread of the suite's ``UserCodePool`` so a
    blocking call never stalls the event loop, the other cases in flight or
    the daemon; async functions are awaited on the loop.
    """

    def __init__(self, fn: Callable[..., Any], pool: UserCodePool | None = None) -> None:
        """Wrap ``fn``, already imported from the target's ``callable``.

        Without a ``pool`` sync calls go to the loop's default executor (tests).
        """
        self._fn = fn
        self._pool = pool
        # Callable objects count too: ``inspect`` looks at a bound ``__call__``.
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 (a callable's __call__, not a callability test)
        )

    async def answer(self, case: Case) -> TargetOutput:
        """Call the function with the case input and return its answer as text."""
        try:
            if self._is_async:
                result = await self._fn(case.input)
            else:
                result = await self._call(case.input)
                # A sync wrapper (a partial, a decorator) may hand back a coroutine.
                if inspect.isawaitable(result):
                    result = await result
        except TargetError:
            raise
        except Exception as exc:
            raise TargetError(f"{type(exc).__name__}: {exc}") from exc
        return _as_output(result)

    async def _call(self, *args: Any) -> Any:
        if self._pool is not None:
            return await self._pool.call(self._fn, *args)
        return await asyncio.to_thread(self._fn, *args)

    async def aclose(self) -> None:
        """Do nothing: a plain function holds no connections of ours."""


def _as_output(result: Any) -> TargetOutput:
    if isinstance(result, TargetOutput):
        return result
    if isinstance(result, str):
        return TargetOutput(text=result)
    if result is None:
        raise TargetError("the target returned None; it must return its answer")
    try:
        return TargetOutput(text=as_text(result))
    except (TypeError, ValueError) as exc:
        raise TargetError(
            f"the target returned {type(result).__name__}, which is neither text nor JSON: {exc}"
        ) from exc
