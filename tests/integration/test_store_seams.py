"""Each seam of a store works alone, as its own port, over the state it shares.

``SqlRunStore`` and ``InMemoryRunStore`` are joined from one class per seam of
``ports.RunStore``. These tests build each seam on its own (typed as its
port, so mypy checks that every method sits in the right seam module) and
show that, on one database, what one seam writes the others read.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from continuous_eval.adapters.db.history import SqlRunHistory
from continuous_eval.adapters.db.lookup import SqlRunLookup
from continuous_eval.adapters.db.outbox import SqlAlertOutbox
from continuous_eval.adapters.db.results import SqlResultSink
from continuous_eval.adapters.db.runs import SqlRunLifecycle
from continuous_eval.adapters.db.steps import SqlCaseSteps
from continuous_eval.core.models import (
    CaseResult,
    NewRun,
    ProgressDelta,
    ResultStatus,
    RunStatus,
    ScoreAggregate,
)
from continuous_eval.core.trajectory import Step
from continuous_eval.errors import RunNotFound
from continuous_eval.ports import (
    AlertOutbox,
    CaseStepStore,
    HistoryReader,
    ResultSink,
    RunHistory,
    RunLifecycle,
    RunLookup,
    RunStore,
)
from continuous_eval.testing import FakeClock, InMemoryRunStore
from continuous_eval.testing.history import MemoryRunHistory
from continuous_eval.testing.lookup import MemoryRunLookup
from continuous_eval.testing.outbox import MemoryAlertOutbox
from continuous_eval.testing.results import MemoryResultSink
from continuous_eval.testing.runs import MemoryRunLifecycle
from continuous_eval.testing.steps import MemoryCaseSteps

RUN = NewRun(
    id="run-1",
    suite="support",
    run_type="scheduled",
    features=("refunds",),
    cases_total=1,
    total=1,
    fingerprint="f" * 64,
    scheduled_for=datetime(2025, 3, 1, 6, 0, tzinfo=UTC),
)


def test_each_sql_seam_works_alone_on_one_engine(db_engine: Engine, clock: FakeClock) -> None:
    lifecycle: RunLifecycle = SqlRunLifecycle(db_engine, clock)
    sink: ResultSink = SqlResultSink(db_engine, clock)
    history: RunHistory = SqlRunHistory(db_engine, clock)
    lookup: RunLookup = SqlRunLookup(db_engine, clock)
    outbox: AlertOutbox = SqlAlertOutbox(db_engine, clock)
    steps: CaseStepStore = SqlCaseSteps(db_engine, clock)

    run = lifecycle.create_run(RUN)
    steps.save_case_steps(run.id, "refunds", "c1", [Step(kind="message", content="hi")])
    result = CaseResult("refunds", "c1", "judge", ResultStatus.OK, score=0.5)
    sink.save_results(run.id, [result], ProgressDelta(cases_done=1, scored=1))
    aggregate = ScoreAggregate("refunds", "judge", 0.5, 0.0, 1, 0, "f" * 64)
    lifecycle.finish_run(run.id, RunStatus.SUCCEEDED, None, [aggregate])

    assert history.case_scores(run.id) == {("refunds", "judge"): {"c1": 0.5}}
    later = clock.advance(seconds=1)
    assert [r.id for r in history.scheduled_history("support", before=later, limit=5)] == [run.id]
    assert lookup.get_run(run.id).cases_done == 1
    assert lookup.get_aggregates(run.id) == [aggregate]
    assert outbox.list_alerts() == []
    assert steps.case_steps(run.id, "refunds", "c1") == [Step(kind="message", content="hi")]


def test_each_in_memory_seam_is_its_port(clock: FakeClock) -> None:
    lifecycle: RunLifecycle = MemoryRunLifecycle(clock)
    sink: ResultSink = MemoryResultSink(clock)
    history: RunHistory = MemoryRunHistory(clock)
    lookup: RunLookup = MemoryRunLookup(clock)
    outbox: AlertOutbox = MemoryAlertOutbox(clock)
    steps: CaseStepStore = MemoryCaseSteps(clock)

    assert lifecycle.adoptable_run("support") is None
    assert steps.newest_step_id("run-1") == 0
    with pytest.raises(RunNotFound):
        sink.case_result_counts("run-1")
    assert history.db_now() == clock.now()
    assert lookup.list_runs() == []
    assert outbox.list_alerts() == []


def test_the_whole_store_is_every_seam(clock: FakeClock) -> None:
    store: RunStore = InMemoryRunStore(clock)
    detector_view: HistoryReader = store
    run = store.create_run(RUN)
    assert detector_view.get_run(run.id) == run
    assert detector_view.newest_scheduled("support") == run
