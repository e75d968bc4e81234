"""The ``EvaluatorStore`` contract, on memory, SQLite and Postgres alike."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.evaluators import SqlEvaluatorStore
from continuous_eval.core.evaluators import Contradiction, EvaluatorMetrics, NewEvaluator
from continuous_eval.ports.evaluators import EvaluatorStore
from continuous_eval.testing import DEFAULT_START, FakeClock
from continuous_eval.testing.evaluators import InMemoryEvaluatorStore
from tests.conftest import ALL_BACKENDS


@pytest.fixture(params=ALL_BACKENDS)
def evaluator_store(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[EvaluatorStore]:
    """An empty ``EvaluatorStore`` on every backend, on the test's fake clock."""
    if request.param == "memory":
        yield InMemoryEvaluatorStore(clock)
        return
    fixture = "migrated_sqlite_url" if request.param == "sqlite" else "postgres_url"
    store = SqlEvaluatorStore(make_engine(request.getfixturevalue(fixture)), clock)
    try:
        yield store
    finally:
        store.close()


def new(name: str = "tone", accuracy: float = 0.9, **fields: object) -> NewEvaluator:
    metrics = EvaluatorMetrics(
        accuracy=accuracy,
        precision=None,
        recall=0.75,
        train_cases=14,
        test_cases=6,
        errors=1,
        contradictions=(
            Contradiction("c1", 1.0, "timeout: wall time"),
            Contradiction("c2", 0.0, {"passed": True, "score": 0.8}),
        ),
    )
    values: dict[str, object] = {
        "name": name,
        "eval_set": "answers",
        "code": "def score(output, case):\n    return True\n",
        "model": "claude-haiku-4-5",
        "prompt": "[system]\n...",
        "metrics": metrics,
        "job_id": 7,
        "details": {"seed": 3, "held_out": ["c1", "c2"]},
        **fields,
    }
    return NewEvaluator(**values)  # type: ignore[arg-type]


def test_versions_count_up_per_name_and_round_trip(
    evaluator_store: EvaluatorStore, clock: FakeClock
) -> None:
    first = evaluator_store.add_evaluator(new())
    clock.advance(timedelta(minutes=1))
    second = evaluator_store.add_evaluator(new())
    other = evaluator_store.add_evaluator(new("length", job_id=None))
    assert (first.ref, second.ref, other.ref) == ("tone@1", "tone@2", "length@1")
    assert first.created_at == DEFAULT_START
    assert not first.promoted
    stored = evaluator_store.evaluator("tone", 2)
    assert stored == second
    assert stored is not None
    assert stored.evaluator == new()
    assert evaluator_store.evaluator("tone", 3) is None
    assert [e.ref for e in evaluator_store.list_evaluators()] == ["length@1", "tone@1", "tone@2"]
    assert [e.ref for e in evaluator_store.list_evaluators("tone")] == ["tone@1", "tone@2"]


def test_promotion_is_refused_under_the_floor_and_kept_once_done(
    evaluator_store: EvaluatorStore, clock: FakeClock
) -> None:
    evaluator_store.add_evaluator(new(accuracy=0.7))
    evaluator_store.add_evaluator(new(accuracy=0.9))
    with pytest.raises(ValueError, match=r"tone@1 cannot be promoted: held-out accuracy 0.700"):
        evaluator_store.promote("tone", 1, 0.8)
    with pytest.raises(LookupError, match="no evaluator tone@9"):
        evaluator_store.promote("tone", 9, 0.8)
    clock.advance(timedelta(hours=1))
    promoted = evaluator_store.promote("tone", 2, 0.8)
    assert promoted.promoted_at == DEFAULT_START + timedelta(hours=1)
    clock.advance(timedelta(hours=1))
    again = evaluator_store.promote("tone", 2, 0.8)
    assert again.promoted_at == promoted.promoted_at
    stored = evaluator_store.evaluator("tone", 2)
    assert stored is not None
    assert stored.promoted
    unpromoted = evaluator_store.evaluator("tone", 1)
    assert unpromoted is not None
    assert not unpromoted.promoted


def test_concurrent_generations_get_distinct_versions(evaluator_store: EvaluatorStore) -> None:
    threads = 6
    barrier = threading.Barrier(threads)
    refs: list[str] = []
    lock = threading.Lock()

    def generate() -> None:
        barrier.wait()
        made = evaluator_store.add_evaluator(new())
        with lock:
            refs.append(made.ref)

    workers = [threading.Thread(target=generate) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(refs) == [f"tone@{n}" for n in range(1, threads + 1)]
