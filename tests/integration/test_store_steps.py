"""The case-steps seam: the same contract in memory, on SQLite and on Postgres."""

from __future__ import annotations

import pytest

from continuous_eval.core.trajectory import Step
from continuous_eval.errors import RunNotFound
from continuous_eval.ports import CaseStepStore, RunStore
from continuous_eval.testing.builders import new_run

CALL = Step(kind="tool_call", name="lookup", arguments={"order": 7, "deep": {"a": [1]}}, id="t1")
RESULT = Step(kind="tool_result", id="t1", content={"status": "delivered"})
SAID = Step(kind="message", role="assistant", content="Refunded.")


def test_steps_are_stored_live_and_read_back_in_order(store: RunStore) -> None:
    store.create_run(new_run("r1"))
    steps: CaseStepStore = store
    steps.save_case_steps("r1", "refunds", "c1", [CALL])
    steps.save_case_steps("r1", "refunds", "c1", [RESULT, SAID], first=1)
    steps.save_case_steps("r1", "refunds", "c2", [SAID])

    assert steps.case_steps("r1", "refunds", "c1") == [CALL, RESULT, SAID]
    assert steps.case_steps("r1", "refunds", "c2") == [SAID]
    assert steps.case_steps("r1", "refunds", "none") == []
    assert steps.case_steps("r1", "other", "c1") == []


def test_a_retried_case_starts_over_and_a_repeated_position_is_replaced(store: RunStore) -> None:
    store.create_run(new_run("r1"))
    store.save_case_steps("r1", "f", "c1", [CALL, RESULT, SAID])
    store.save_case_steps("r1", "f", "c1", [SAID], first=1)
    assert store.case_steps("r1", "f", "c1") == [CALL, SAID, SAID]
    store.save_case_steps("r1", "f", "c1", [RESULT])
    assert store.case_steps("r1", "f", "c1") == [RESULT]
    store.save_case_steps("r1", "f", "c1", [])
    assert store.case_steps("r1", "f", "c1") == []


def test_live_readers_follow_step_ids(store: RunStore) -> None:
    store.create_run(new_run("r1"))
    store.create_run(new_run("r2"))
    assert store.newest_step_id("r1") == 0
    store.save_case_steps("r1", "f", "c1", [CALL, RESULT])
    store.save_case_steps("r2", "f", "c1", [SAID])
    store.save_case_steps("r1", "f", "c2", [SAID])

    everything = store.steps_after("r1", after_id=0, limit=10)
    assert [(s.case_id, s.seq, s.step) for s in everything] == [
        ("c1", 0, CALL),
        ("c1", 1, RESULT),
        ("c2", 0, SAID),
    ]
    ids = [s.id for s in everything]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert store.newest_step_id("r1") == ids[-1]
    assert store.steps_after("r1", after_id=ids[0], limit=1) == [everything[1]]
    assert store.steps_after("r1", after_id=ids[-1], limit=10) == []


def test_steps_of_an_unknown_run(store: RunStore) -> None:
    with pytest.raises(RunNotFound):
        store.save_case_steps("nope", "f", "c1", [CALL])
    with pytest.raises(RunNotFound):
        store.case_steps("nope", "f", "c1")
    assert store.steps_after("nope", after_id=0, limit=10) == []
    assert store.newest_step_id("nope") == 0
