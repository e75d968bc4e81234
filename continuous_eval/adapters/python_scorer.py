"""Scorers written as Python callables: ``fn(output, case)``, sync or async.

The callable may return:

- a ``bool``: score 1.0 or 0.0, and ``passed`` the same;
- a number: the score itself, ``passed`` left unknown (None);
- a ``dict`` with ``score`` (required, a number or bool), and optional
  ``passed`` (bool or None) and ``rationale`` (str or None); other keys are an
  error, so a misspelt ``rationale`` is noticed rather than dropped.

Anything else, a non-finite score, or an exception from the callable becomes
a ``ScorerError``: the case is recorded as an error, never as a zero.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable
from typing import Any

from continuous_eval.adapters.user_code import UserCodePool
from continuous_eval.core.models import ScoreOutcome
from continuous_eval.core.suite import Case, PythonScorer, scorer_name
from continuous_eval.errors import ScorerError

__all__ = ["PythonCallableScorer", "outcome_from_value"]

_DICT_KEYS = frozenset({"score", "passed", "rationale"})


class PythonCallableScorer:
    """A user's Python function behind the ``CaseScorer`` protocol.

    Sync functions run in a thread of the suite's ``UserCodePool`` so a slow
    one never stalls the event loop, the other cases in flight or the daemon;
    async functions are awaited on the loop.
    """

    def __init__(
        self, config: PythonScorer, fn: Callable[..., Any], pool: UserCodePool | None = None
    ) -> None:
        """Wrap ``fn``, already imported from ``config.callable`` (``pool``: as for targets)."""
        self._pool = pool
        self.config = config
        self.name: str = scorer_name(config)
        self._fn = fn
        self._is_async = _is_async(fn)

    async def score(self, output: str, case: Case) -> ScoreOutcome:
        """Call the function and turn its return value into a ``ScoreOutcome``."""
        try:
            if self._is_async:
                result = await self._fn(output, case)
            else:
                result = await (
                    self._pool.call(self._fn, output, case)
                    if self._pool is not None
                    else asyncio.to_thread(self._fn, output, case)
                )
                # A sync wrapper (a partial, a decorator) may hand back a coroutine.
                if inspect.isawaitable(result):
                    result = await result
        except ScorerError:
            raise
        except Exception as exc:
            raise ScorerError(f"{type(exc).__name__}: {exc}") from exc
        return outcome_from_value(result, self.config.callable)

    def __repr__(self) -> str:
        return f"PythonCallableScorer({self.name!r}, {self.config.callable!r})"


def _is_async(fn: Callable[..., Any]) -> bool:
    # Callable objects count too: ``inspect`` looks at a bound ``__call__``.
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 (a callable's __call__, not a callability test)
    )


def outcome_from_value(result: Any, where: str) -> ScoreOutcome:
    """Map what a scorer function returned to a ``ScoreOutcome`` (rules in the module docstring).

    Shared by every scorer whose code returns a value this way (the learned
    evaluators' too); raises ``ScorerError`` naming ``where`` for anything else.
    """
    if isinstance(result, bool):
        return ScoreOutcome(score=1.0 if result else 0.0, passed=result)
    if isinstance(result, int | float):
        return ScoreOutcome(score=_finite(result, where), passed=None)
    if isinstance(result, dict):
        return _outcome_from_dict(result, where)
    raise ScorerError(
        f"{where} returned {type(result).__name__}; expected a bool, a number "
        "or a dict with 'score'"
    )


def _outcome_from_dict(result: dict[Any, Any], where: str) -> ScoreOutcome:
    unknown = sorted(str(key) for key in result if key not in _DICT_KEYS)
    if unknown:
        raise ScorerError(
            f"{where} returned unknown keys {unknown}; allowed: passed, rationale, score"
        )
    if "score" not in result:
        raise ScorerError(f"{where} returned a dict without 'score'")
    score = result["score"]
    if not isinstance(score, int | float):
        raise ScorerError(f"{where} returned a 'score' of type {type(score).__name__}")
    passed = result.get("passed", score if isinstance(score, bool) else None)
    if passed is not None and not isinstance(passed, bool):
        raise ScorerError(f"{where} returned a 'passed' of type {type(passed).__name__}")
    rationale = result.get("rationale")
    if rationale is not None and not isinstance(rationale, str):
        raise ScorerError(f"{where} returned a 'rationale' of type {type(rationale).__name__}")
    return ScoreOutcome(score=_finite(score, where), passed=passed, rationale=rationale)


def _finite(score: float, where: str) -> float:
    # NaN or infinity would poison every mean and stderr computed from it.
    value = float(score)
    if not math.isfinite(value):
        raise ScorerError(f"{where} returned a non-finite score {value}")
    return value
