"""Python callables as scorers: return shapes, sync in a thread, errors as ScorerError."""

from __future__ import annotations

import asyncio
import functools
import threading
from typing import Any

import pytest

from continuous_eval.adapters.python_scorer import PythonCallableScorer
from continuous_eval.core.models import ScoreOutcome
from continuous_eval.core.suite import Case, PythonScorer
from continuous_eval.errors import ScorerError

CASE = Case(id="7", input="question", expected="answer")


def config(name: str | None = None) -> PythonScorer:
    return PythonScorer(type="python", callable="my_scorers:grade", name=name)


def scorer_returning(value: Any) -> PythonCallableScorer:
    return PythonCallableScorer(config(), lambda output, case: value)


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        (True, ScoreOutcome(score=1.0, passed=True)),
        (False, ScoreOutcome(score=0.0, passed=False)),
        (0.75, ScoreOutcome(score=0.75, passed=None)),
        (3, ScoreOutcome(score=3.0, passed=None)),
        ({"score": 0.5}, ScoreOutcome(score=0.5)),
        (
            {"score": 2, "passed": False, "rationale": "too long"},
            ScoreOutcome(score=2.0, passed=False, rationale="too long"),
        ),
        ({"score": True}, ScoreOutcome(score=1.0, passed=True)),
        ({"score": 1, "passed": None, "rationale": None}, ScoreOutcome(score=1.0)),
    ],
)
async def test_return_shapes(returned: Any, expected: ScoreOutcome) -> None:
    assert await scorer_returning(returned).score("out", CASE) == expected


@pytest.mark.parametrize(
    ("returned", "problem"),
    [
        (None, "returned NoneType; expected a bool, a number or a dict with 'score'"),
        ("0.5", "returned str"),
        ([1], "returned list"),
        ({"passed": True}, "returned a dict without 'score'"),
        ({"score": "high"}, "returned a 'score' of type str"),
        ({"score": 1, "passed": "yes"}, "returned a 'passed' of type str"),
        ({"score": 1, "rationale": 3}, "returned a 'rationale' of type int"),
        ({"score": 1, "rationle": "typo"}, "returned unknown keys ['rationle']"),
        (float("nan"), "non-finite score nan"),
        ({"score": float("inf")}, "non-finite score inf"),
    ],
)
async def test_bad_returns_are_scorer_errors(returned: Any, problem: str) -> None:
    with pytest.raises(ScorerError) as info:
        await scorer_returning(returned).score("out", CASE)
    assert problem in str(info.value)
    assert "my_scorers:grade" in str(info.value)


async def test_the_function_receives_output_and_case() -> None:
    seen: list[tuple[str, Case]] = []

    def grade(output: str, case: Case) -> bool:
        seen.append((output, case))
        return output == case.expected

    outcome = await PythonCallableScorer(config(), grade).score("answer", CASE)

    assert outcome.passed is True
    assert seen == [("answer", CASE)]


async def test_sync_functions_run_in_a_worker_thread() -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def grade(output: str, case: Case) -> float:
        threads.append(threading.get_ident())
        return 1.0

    await PythonCallableScorer(config(), grade).score("x", CASE)

    assert threads
    assert threads[0] != loop_thread


async def test_slow_sync_functions_do_not_block_each_other() -> None:
    barrier = threading.Barrier(2, timeout=5)

    def grade(output: str, case: Case) -> bool:
        # Both calls must be in flight at once to pass the barrier.
        barrier.wait()
        return True

    scorer = PythonCallableScorer(config(), grade)
    outcomes = await asyncio.gather(scorer.score("a", CASE), scorer.score("b", CASE))
    assert [o.passed for o in outcomes] == [True, True]


async def test_async_functions_are_awaited_on_the_loop() -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []

    async def grade(output: str, case: Case) -> dict[str, Any]:
        threads.append(threading.get_ident())
        await asyncio.sleep(0)
        return {"score": 4, "rationale": "fine"}

    outcome = await PythonCallableScorer(config(), grade).score("x", CASE)

    assert outcome == ScoreOutcome(score=4.0, rationale="fine")
    assert threads == [loop_thread]


async def test_async_callable_objects_and_partials() -> None:
    class Grader:
        async def __call__(self, output: str, case: Case, *, bonus: float = 0) -> float:
            return 0.5 + bonus

    assert (await PythonCallableScorer(config(), Grader()).score("x", CASE)).score == 0.5
    partial = functools.partial(Grader().__call__, bonus=0.25)
    assert (await PythonCallableScorer(config(), partial).score("x", CASE)).score == 0.75


async def test_sync_wrapper_returning_a_coroutine_is_awaited() -> None:
    async def inner(output: str, case: Case) -> bool:
        return True

    def wrapper(output: str, case: Case) -> Any:
        return inner(output, case)

    assert (await PythonCallableScorer(config(), wrapper).score("x", CASE)).passed is True


@pytest.mark.parametrize("is_async", [False, True])
async def test_exceptions_become_scorer_errors(is_async: bool) -> None:
    def sync_grade(output: str, case: Case) -> bool:
        raise KeyError("label")

    async def async_grade(output: str, case: Case) -> bool:
        raise KeyError("label")

    scorer = PythonCallableScorer(config(), async_grade if is_async else sync_grade)
    with pytest.raises(ScorerError, match=r"^KeyError: 'label'$") as info:
        await scorer.score("x", CASE)
    assert isinstance(info.value.__cause__, KeyError)


async def test_scorer_errors_from_the_function_pass_through() -> None:
    def grade(output: str, case: Case) -> bool:
        raise ScorerError("needs a reference answer")

    with pytest.raises(ScorerError, match=r"^needs a reference answer$"):
        await PythonCallableScorer(config(), grade).score("x", CASE)


def test_name_defaults_to_the_type() -> None:
    assert PythonCallableScorer(config(), lambda o, c: True).name == "python"
    assert PythonCallableScorer(config("tone"), lambda o, c: True).name == "tone"
