"""The ``RunReader`` contract: the same tests on the in-memory reader, SQLite and Postgres.

The admin API and the CLI read through the port, so the in-memory reader
(``continuous_eval.testing``) must answer exactly as ``SqlRunReader`` does:
page order and cursors, result ids, snapshot counts, the trend's order and
what it leaves out.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from continuous_eval.core.models import ProgressDelta, ResultStatus, RunStatus, ScoreAggregate
from continuous_eval.core.reads import RunKey
from continuous_eval.errors import RunNotFound
from continuous_eval.testing.builders import SLOT, failed, new_run, ok
from tests.fixtures.readers import Backend


def _runs(b: Backend, count: int, **overrides: object) -> list[str]:
    ids = []
    for i in range(count):
        run = b.store.create_run(new_run(f"run-{i}", **overrides))
        ids.append(run.id)
        b.clock.advance(timedelta(seconds=1))
    return ids


def test_runs_page_newest_first_and_a_cursor_never_repeats_a_run(backend: Backend) -> None:
    _runs(backend, 5)
    first = backend.reader.list_runs_page(limit=2)
    assert [r.id for r in first] == ["run-4", "run-3"]
    after = RunKey(first[-1].created_at, first[-1].id)
    second = backend.reader.list_runs_page(before=after, limit=10)
    assert [r.id for r in second] == ["run-2", "run-1", "run-0"]


def test_runs_page_filters_by_suite_type_and_status(backend: Backend) -> None:
    _runs(backend, 2)
    backend.store.create_run(new_run("other", suite="billing", run_type="scheduled"))
    backend.store.finish_run("run-0", RunStatus.SUCCEEDED, None, [])
    reader = backend.reader
    assert [r.id for r in reader.list_runs_page(suite="billing")] == ["other"]
    assert [r.id for r in reader.list_runs_page(run_type="scheduled")] == ["other"]
    assert [r.id for r in reader.list_runs_page(status=RunStatus.SUCCEEDED)] == ["run-0"]


def test_results_page_in_id_order_with_a_cursor_and_filters(backend: Backend) -> None:
    backend.store.create_run(new_run())
    backend.store.save_results(
        "run-1", [ok("1", 1.0), ok("1", 0.0, scorer="exact")], ProgressDelta(cases_done=1)
    )
    backend.store.save_results("run-1", [failed("2")], ProgressDelta(cases_done=1, errored=1))
    page = backend.reader.list_results_page("run-1")
    assert [(r.case_id, r.scorer) for r in page] == [("1", "judge"), ("1", "exact"), ("2", "judge")]
    ids = [r.id for r in page]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    rest = backend.reader.list_results_page("run-1", after_id=ids[0])
    assert [r.id for r in rest] == ids[1:]
    errors = backend.reader.list_results_page("run-1", status=ResultStatus.ERROR)
    assert [r.case_id for r in errors] == ["2"]
    assert [r.case_id for r in backend.reader.list_results_page("run-1", scorer="exact")] == ["1"]
    assert backend.reader.list_results_page("run-1", limit=1) == page[:1]


def test_a_result_stored_again_keeps_its_id(backend: Backend) -> None:
    backend.store.create_run(new_run())
    backend.store.save_results("run-1", [ok("1", 1.0)], ProgressDelta(cases_done=1))
    [before] = backend.reader.list_results_page("run-1")
    backend.store.save_results("run-1", [ok("1", 0.5)], ProgressDelta())
    [after] = backend.reader.list_results_page("run-1")
    assert (after.id, after.score) == (before.id, 0.5)


def test_an_unknown_run_is_not_found_by_every_read(backend: Backend) -> None:
    reader = backend.reader
    with pytest.raises(RunNotFound):
        reader.list_results_page("nope")
    with pytest.raises(RunNotFound):
        reader.run_snapshot("nope")
    with pytest.raises(RunNotFound):
        reader.poll_run("nope", after_id=0, limit=10)


def test_a_snapshot_counts_the_results_up_to_its_cursor(backend: Backend) -> None:
    backend.store.create_run(new_run())
    empty = backend.reader.run_snapshot("run-1")
    assert (empty.cursor, empty.cases_done, empty.scored, empty.errored) == (0, 0, 0, 0)
    backend.store.save_results(
        "run-1", [ok("1", 1.0), ok("1", 1.0, scorer="exact")], ProgressDelta(cases_done=1)
    )
    middle = backend.reader.run_snapshot("run-1")
    backend.store.save_results("run-1", [failed("2")], ProgressDelta(cases_done=1, errored=1))
    now = backend.reader.run_snapshot("run-1")
    assert (now.cases_done, now.scored, now.errored) == (2, 2, 1)
    assert now.cursor > middle.cursor
    again = backend.reader.run_snapshot("run-1", after_id=middle.cursor)
    assert (again.cursor, again.cases_done, again.scored, again.errored) == (
        middle.cursor,
        1,
        2,
        0,
    )


def test_a_poll_reads_the_run_then_its_newer_results(backend: Backend) -> None:
    backend.store.create_run(new_run())
    backend.store.save_results(
        "run-1", [ok("1", 1.0), ok("2", 1.0), ok("3", 1.0)], ProgressDelta(cases_done=3)
    )
    first = backend.reader.poll_run("run-1", after_id=0, limit=2)
    assert first.run.id == "run-1"
    assert [r.case_id for r in first.results] == ["1", "2"]
    rest = backend.reader.poll_run("run-1", after_id=first.results[-1].id, limit=10)
    assert [r.case_id for r in rest.results] == ["3"]


def _finished(b: Backend, run_id: str, slot_hours: int, mean: float, **overrides: object) -> None:
    b.store.create_run(
        new_run(
            run_id,
            run_type="scheduled",
            scheduled_for=SLOT + timedelta(hours=slot_hours),
            **overrides,
        )
    )
    aggs = [
        ScoreAggregate("refunds", "judge", mean, 0.1, 10, 0, "fp"),
        ScoreAggregate("tone", "judge", mean - 1, 0.2, 9, 1, "fp"),
    ]
    b.store.finish_run(run_id, RunStatus.SUCCEEDED, None, aggs)


def test_the_trend_holds_scheduled_runs_newest_slot_first(backend: Backend) -> None:
    _finished(backend, "s-1", 0, 4.0)
    _finished(backend, "s-2", 24, 3.5)
    backend.store.create_run(new_run("manual", run_type="manual"))
    backend.store.finish_run(
        "manual", RunStatus.SUCCEEDED, None, [ScoreAggregate("refunds", "judge", 1.0, 0, 3, 0)]
    )
    points = backend.reader.eval_trend()
    assert [(p.run_id, p.feature) for p in points] == [
        ("s-2", "refunds"),
        ("s-2", "tone"),
        ("s-1", "refunds"),
        ("s-1", "tone"),
    ]
    top = points[0]
    assert (top.suite, top.scorer, top.score, top.stderr, top.n, top.errors) == (
        "support",
        "judge",
        3.5,
        0.1,
        10,
        0,
    )
    assert top.status is RunStatus.SUCCEEDED
    assert top.scheduled_for == SLOT + timedelta(hours=24)
    assert top.fingerprint == "fp"
    tone = backend.reader.eval_trend(feature="tone", limit=1)
    assert [(p.run_id, p.score) for p in tone] == [("s-2", 2.5)]
    assert backend.reader.eval_trend(suite="billing") == []
    assert backend.reader.eval_trend(scorer="exact") == []
