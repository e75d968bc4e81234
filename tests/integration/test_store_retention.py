"""The run store's ``ResultRetention`` seam, on memory, SQLite and Postgres alike.

Deleting old runs' raw results must take exactly the rows of finished runs
created and finished before the cutoff, of the suite asked, except the runs
kept; the runs, their aggregates and decisions, and every other row stay.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.adapters.db.tables import case_steps
from continuous_eval.core.models import ProgressDelta, RunStatus
from continuous_eval.ports import ResultRetention, RunStore
from continuous_eval.testing import DEFAULT_START, FakeClock, InMemoryRunStore
from continuous_eval.testing.builders import add_finished_run, new_run, ok

SCORES = {("refunds", "judge"): [1.0, 0.0, 1.0], ("tone", "judge"): [1.0, 1.0, 1.0]}
"""Six results a run."""

CUTOFF = DEFAULT_START + timedelta(days=5)


def retention(store: RunStore) -> ResultRetention:
    assert isinstance(store, SqlRunStore | InMemoryRunStore)
    return store


def counts(store: RunStore, *run_ids: str) -> list[int]:
    return [len(list(store.iter_scores(run_id))) for run_id in run_ids]


@pytest.fixture
def history(store: RunStore, clock: FakeClock) -> RunStore:
    """Old runs of two suites (one kept later, one manual, one still running), then new ones."""
    add_finished_run(store, "old-1", SCORES)
    add_finished_run(store, "old-2", SCORES)
    add_finished_run(store, "old-manual", SCORES, run_type="manual", status=RunStatus.FAILED)
    add_finished_run(store, "old-billing", SCORES, suite="billing")
    store.create_run(new_run("old-running", run_type="manual"))
    store.save_results("old-running", [ok("c1", 1.0)], ProgressDelta(cases_done=1, scored=1))
    clock.advance(timedelta(days=4))
    store.create_run(new_run("finished-late", run_type="manual"))
    store.save_results("finished-late", [ok("c1", 1.0)], ProgressDelta(cases_done=1, scored=1))
    clock.advance(timedelta(days=2))  # past the cutoff
    store.finish_run("finished-late", RunStatus.SUCCEEDED, None, [])
    add_finished_run(store, "new-1", SCORES)
    return store


def test_only_old_finished_runs_not_kept_lose_their_results(history: RunStore) -> None:
    pruning = retention(history)
    assert pruning.suites_with_old_results(CUTOFF) == ["billing", "support"]

    deleted = []
    while found := pruning.delete_old_results("support", CUTOFF, {"old-2"}, batch=4):
        deleted.append(found)
    assert deleted == [4, 4, 4]  # old-1 and old-manual: 12 rows, 4 at a time

    assert counts(history, "old-1", "old-manual") == [0, 0]
    # Kept: a kept run, another suite's, a running one, one finished after the cutoff, a new one.
    assert counts(history, "old-2", "old-billing", "old-running", "finished-late", "new-1") == [
        6,
        6,
        1,
        1,
        6,
    ]
    # The runs, their aggregates and their counters stay.
    old = history.get_run("old-1")
    assert old.status is RunStatus.SUCCEEDED
    assert old.cases_done == 6  # (feature, case) pairs
    assert len(history.get_aggregates("old-1")) == 2
    assert pruning.suites_with_old_results(CUTOFF) == ["billing", "support"]  # old-2 is kept

    assert pruning.delete_old_results("billing", CUTOFF, set(), batch=100) == 6
    assert pruning.suites_with_old_results(CUTOFF) == ["support"]
    assert pruning.delete_old_results("support", CUTOFF, set(), batch=100) == 6
    assert pruning.suites_with_old_results(CUTOFF) == []


def test_a_cutoff_before_every_run_deletes_nothing(history: RunStore) -> None:
    pruning = retention(history)
    assert pruning.suites_with_old_results(DEFAULT_START) == []
    assert pruning.delete_old_results("support", DEFAULT_START, set(), batch=100) == 0
    assert counts(history, "old-1") == [6]


def test_bad_arguments_are_refused(store: RunStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        retention(store).delete_old_results("support", CUTOFF, set(), batch=0)
    with pytest.raises(ValueError, match="aware"):
        retention(store).suites_with_old_results(CUTOFF.replace(tzinfo=None))


@pytest.mark.parametrize(
    "store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_case_steps_of_old_runs_go_too(history: RunStore) -> None:
    assert isinstance(history, SqlRunStore)
    rows = [
        {
            "run_id": run_id,
            "feature": "agent",
            "case_id": "c1",
            "seq": seq,
            "step": {"kind": "message"},
            "created_at": DEFAULT_START,
        }
        for run_id in ("old-1", "new-1")
        for seq in range(3)
    ]
    with history.engine.begin() as conn:
        conn.execute(case_steps.insert(), rows)
    pruning = retention(history)
    # 18 results of three old runs and 3 steps of old-1, 5 at a time: results first.
    batches = [pruning.delete_old_results("support", CUTOFF, set(), batch=5) for _ in range(6)]
    assert batches == [5, 5, 5, 5, 1, 0]
    with history.engine.connect() as conn:
        left = conn.execute(
            select(case_steps.c.run_id, func.count()).group_by(case_steps.c.run_id)
        ).all()
    assert [tuple(row) for row in left] == [("new-1", 3)]
