"""The ``RunStore`` contract, run against every backend (memory, SQLite, Postgres).

The ``store`` fixture is parametrised, so each test here proves the in-memory
fake and the SQL store behave the same. Tests that need SQL itself (raw
inserts, constraints, engine set-up) use ``db_engine`` and run on SQLite and
Postgres only.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, bindparam, func, insert, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.adapters.db.tables import eval_results, eval_runs
from continuous_eval.adapters.db.types import UTCDateTime
from continuous_eval.core.models import (
    CaseDrop,
    CaseResult,
    ProgressDelta,
    ResultStatus,
    RunStatus,
    ScoreAggregate,
    Usage,
)
from continuous_eval.core.regression import AnchorCheck, Decision, DecisionKind, Incident
from continuous_eval.errors import ConfigError, DuplicateRun, RunFinished, RunNotFound, StoreError
from continuous_eval.ports import RunStore
from continuous_eval.testing import FakeClock
from continuous_eval.testing.builders import SLOT, all_scores, failed, new_run, ok

# ------------------------------------------------------------ create / get


def test_create_run_starts_running_with_clock_times(store: RunStore, clock: FakeClock) -> None:
    created = store.create_run(
        new_run(idempotency_key="client-1", spec_hash="abc", scheduled_for=None)
    )

    assert created.status is RunStatus.RUNNING
    assert created.created_at == created.started_at == clock.now()
    assert created.finished_at is None
    assert created.attempt == 1
    assert (created.cases_done, created.scored, created.errored) == (0, 0, 0)
    assert created.judge_usage == Usage()
    assert created.target_usage == Usage()
    assert created.features == ("refunds", "tone")
    assert (created.cases_total, created.total) == (3, 6)
    assert created.idempotency_key == "client-1"
    assert created.spec_hash == "abc"
    assert created.lease_owner is None
    assert created.lease_expires_at is None
    assert store.get_run("run-1") == created


def test_unknown_run_raises_run_not_found_everywhere(store: RunStore) -> None:
    with pytest.raises(RunNotFound, match="nope"):
        store.get_run("nope")
    with pytest.raises(RunNotFound):
        store.save_results("nope", [ok("1", 1.0)], ProgressDelta(cases_done=1))
    with pytest.raises(RunNotFound):
        store.finish_run("nope", RunStatus.SUCCEEDED, None, [])
    with pytest.raises(RunNotFound):
        next(store.iter_scores("nope"))
    with pytest.raises(RunNotFound):
        store.get_aggregates("nope")
    with pytest.raises(RunNotFound):
        store.worst_results("nope")


def test_list_runs_newest_first_ties_broken_by_id(store: RunStore, clock: FakeClock) -> None:
    store.create_run(new_run("a"))
    clock.advance(seconds=1)
    store.create_run(new_run("c"))
    store.create_run(new_run("b"))  # same created_at as "c"
    clock.advance(seconds=1)
    store.create_run(new_run("d"))

    assert [run.id for run in store.list_runs()] == ["d", "c", "b", "a"]
    assert [run.id for run in store.list_runs(limit=2)] == ["d", "c"]


def test_run_ids_are_found_by_prefix_with_like_wildcards_taken_literally(store: RunStore) -> None:
    for run_id in ("4e69ab", "4e69cd", "4f00", "a_b%1", "axb1"):
        store.create_run(new_run(run_id))

    assert store.run_ids_starting("4e69") == ["4e69ab", "4e69cd"]
    assert store.run_ids_starting("4e69", limit=1) == ["4e69ab"]
    assert store.run_ids_starting("4f") == ["4f00"]
    assert store.run_ids_starting("a_") == ["a_b%1"]  # not "axb1": '_' is no wildcard
    assert store.run_ids_starting("a_b%") == ["a_b%1"]
    assert store.run_ids_starting("zz") == []


def test_list_runs_filters_combine(store: RunStore, clock: FakeClock) -> None:
    store.create_run(new_run("m1", suite="support"))
    clock.advance(seconds=1)
    store.create_run(new_run("s1", suite="support", run_type="scheduled", scheduled_for=SLOT))
    clock.advance(seconds=1)
    store.create_run(new_run("other", suite="search"))
    store.finish_run("m1", RunStatus.FAILED, "target down", [])

    assert [r.id for r in store.list_runs(suite="support")] == ["s1", "m1"]
    assert [r.id for r in store.list_runs(run_type="scheduled")] == ["s1"]
    assert [r.id for r in store.list_runs(run_type="manual")] == ["other", "m1"]
    assert [r.id for r in store.list_runs(status=RunStatus.FAILED)] == ["m1"]
    assert [r.id for r in store.list_runs(suite="support", status=RunStatus.RUNNING)] == ["s1"]
    assert store.list_runs(suite="missing") == []
    with pytest.raises(ValueError, match="limit"):
        store.list_runs(limit=0)


def test_json_fields_round_trip(store: RunStore) -> None:
    parts = {"dataset": "sha256:0a1b", "judge_model": "claude-haiku-4-5", "note": "café ✓"}
    store.create_run(new_run("j1", features=("réfunds", "tone"), fingerprint_parts=parts))
    store.create_run(new_run("j2", features=(), fingerprint_parts={}))

    first, second = store.get_run("j1"), store.get_run("j2")
    assert first.features == ("réfunds", "tone")
    assert first.fingerprint_parts == parts
    assert second.features == ()
    assert second.fingerprint_parts == {}


# ---------------------------------------------------------------- uniqueness


def test_same_scheduled_slot_of_a_suite_is_claimed_once(store: RunStore) -> None:
    store.create_run(new_run("first", run_type="scheduled", scheduled_for=SLOT))
    # The same instant written in another zone is the same slot.
    same_slot = SLOT.astimezone(timezone(timedelta(hours=2)))

    with pytest.raises(DuplicateRun) as caught:
        store.create_run(new_run("second", run_type="scheduled", scheduled_for=same_slot))

    assert caught.value.conflict == "scheduled_for"
    assert caught.value.existing_id == "first"
    assert isinstance(caught.value, StoreError)
    with pytest.raises(RunNotFound):
        store.get_run("second")
    # Another suite, another slot, or no slot at all: no collision.
    store.create_run(new_run("other-suite", suite="search", scheduled_for=SLOT))
    store.create_run(new_run("next-slot", scheduled_for=SLOT + timedelta(hours=24)))
    store.create_run(new_run("manual-1"))
    store.create_run(new_run("manual-2"))
    assert len(store.list_runs(limit=10)) == 5


def test_idempotency_key_and_id_are_unique(store: RunStore) -> None:
    store.create_run(new_run("r1", idempotency_key="client-key"))

    with pytest.raises(DuplicateRun) as by_key:
        store.create_run(new_run("r2", idempotency_key="client-key"))
    with pytest.raises(DuplicateRun) as by_id:
        store.create_run(new_run("r1", idempotency_key="another-key"))

    assert (by_key.value.conflict, by_key.value.existing_id) == ("idempotency_key", "r1")
    assert "client-key" in str(by_key.value)
    assert (by_id.value.conflict, by_id.value.existing_id) == ("id", "r1")
    assert [r.id for r in store.list_runs()] == ["r1"]


# ------------------------------------------------------------------- results


def test_results_upsert_is_idempotent(store: RunStore) -> None:
    store.create_run(new_run())
    batch = [ok("1", 3.0), ok("2", 4.0), failed("3")]

    store.save_results("run-1", batch, ProgressDelta(cases_done=3, scored=2, errored=1))
    store.save_results("run-1", batch, ProgressDelta())

    assert sorted(all_scores(store, "run-1"), key=str) == sorted(
        [
            ("refunds", "judge", ResultStatus.OK, 3.0),
            ("refunds", "judge", ResultStatus.OK, 4.0),
            ("refunds", "judge", ResultStatus.ERROR, None),
        ],
        key=str,
    )
    run = store.get_run("run-1")
    assert (run.cases_done, run.scored, run.errored) == (3, 2, 1)


def test_a_retried_case_replaces_its_row(store: RunStore, clock: FakeClock) -> None:
    store.create_run(new_run())
    store.save_results("run-1", [failed("1")], ProgressDelta(errored=1))
    clock.advance(seconds=5)

    retried = ok("1", 5.0, rationale="now fine", attempt=2, usage=Usage(10, 2, 0.01))
    store.save_results("run-1", [retried], ProgressDelta(scored=1, errored=-1))

    [row] = store.worst_results("run-1")
    assert row.status is ResultStatus.OK
    assert row.score == 5.0
    assert row.error is None
    assert row.rationale == "now fine"
    assert row.attempt == 2
    assert row.usage == Usage(10, 2, 0.01)
    assert row.created_at == clock.now()


def test_within_one_batch_the_last_result_for_a_key_wins(store: RunStore) -> None:
    store.create_run(new_run())

    store.save_results("run-1", [ok("1", 1.0), ok("1", 2.0)], ProgressDelta(scored=1))

    assert all_scores(store, "run-1") == [("refunds", "judge", ResultStatus.OK, 2.0)]


def test_counters_add_up_across_batches(store: RunStore) -> None:
    store.create_run(new_run())
    first = ProgressDelta(
        cases_done=2,
        scored=3,
        errored=1,
        judge_usage=Usage(100, 20, 0.25),
        target_usage=Usage(50, 10, 0.5),
    )
    second = ProgressDelta(
        cases_done=1, scored=2, judge_usage=Usage(7, 3, 0.125), target_usage=Usage(1, 1, 0.25)
    )

    store.save_results("run-1", [ok("1", 1.0), ok("2", 0.0)], first)
    store.save_results("run-1", [ok("3", 1.0)], second)
    store.save_results("run-1", [], ProgressDelta())

    run = store.get_run("run-1")
    assert (run.cases_done, run.scored, run.errored) == (3, 5, 1)
    assert run.judge_usage == Usage(107, 23, 0.375)
    assert run.target_usage == Usage(51, 11, 0.75)
    assert run.completeness == pytest.approx(5 / 6)


def test_results_keep_every_field(store: RunStore, clock: FakeClock) -> None:
    store.create_run(new_run())
    stored = CaseResult(
        "refunds",
        "case-7",
        "judge",
        ResultStatus.OK,
        score=4.5,
        passed=True,
        output_excerpt="We refund within 14 days.",
        rationale="Correct and polite.",
        latency_ms=812.5,
        usage=Usage(1200, 85, 0.0015),
        attempt=1,
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    )

    store.save_results("run-1", [stored], ProgressDelta(cases_done=1, scored=1))

    [row] = store.worst_results("run-1")
    assert (row.run_id, row.feature, row.case_id, row.scorer) == (
        "run-1",
        "refunds",
        "case-7",
        "judge",
    )
    assert (row.status, row.score, row.passed) == (ResultStatus.OK, 4.5, True)
    assert row.output_excerpt == "We refund within 14 days."
    assert row.rationale == "Correct and polite."
    assert row.error is None
    assert row.latency_ms == 812.5
    assert row.usage == Usage(1200, 85, 0.0015)
    assert row.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert row.created_at == clock.now()


def test_iter_scores_groups_by_feature_then_scorer(store: RunStore) -> None:
    store.create_run(new_run())
    scrambled = [
        ok("2", 0.0, feature="tone", scorer="exact"),
        ok("1", 4.0, feature="refunds", scorer="judge"),
        failed("2", feature="refunds", scorer="contains"),
        ok("1", 1.0, feature="tone", scorer="exact"),
        ok("1", 1.0, feature="refunds", scorer="contains"),
        ok("2", 2.0, feature="refunds", scorer="judge"),
    ]
    store.save_results("run-1", scrambled, ProgressDelta(cases_done=4, scored=5, errored=1))

    scores = store.iter_scores("run-1")

    assert not isinstance(scores, list | tuple)  # streamed, not materialised
    assert list(scores) == [
        ("refunds", "contains", ResultStatus.OK, 1.0),
        ("refunds", "contains", ResultStatus.ERROR, None),
        ("refunds", "judge", ResultStatus.OK, 4.0),
        ("refunds", "judge", ResultStatus.OK, 2.0),
        ("tone", "exact", ResultStatus.OK, 1.0),
        ("tone", "exact", ResultStatus.OK, 0.0),
    ]


def test_iter_scores_streams_large_runs_in_order(store: RunStore) -> None:
    store.create_run(new_run())
    results = [
        ok(f"{case:05d}", case % 5, feature=f"f{case % 3}", scorer=f"s{case % 2}")
        for case in range(2500)
    ]
    for start in range(0, len(results), 500):
        store.save_results("run-1", results[start : start + 500], ProgressDelta(scored=500))

    seen = [(feature, scorer) for feature, scorer, _status, _score in store.iter_scores("run-1")]

    assert len(seen) == 2500
    assert seen == sorted(seen)
    assert store.get_run("run-1").scored == 2500


def test_iter_scores_of_a_run_without_results_is_empty(store: RunStore) -> None:
    store.create_run(new_run())
    assert all_scores(store, "run-1") == []


def test_worst_results_errors_first_then_lowest_scores(store: RunStore) -> None:
    store.create_run(new_run())
    skipped = CaseResult("refunds", "9", "judge", ResultStatus.SKIPPED)
    store.save_results(
        "run-1",
        [
            ok("1", 5.0),
            skipped,
            ok("2", 1.0),
            failed("3"),
            ok("4", 3.0, scorer="contains"),
            ok("5", 1.0, scorer="contains"),
            failed("0", feature="tone"),
        ],
        ProgressDelta(),
    )

    worst = store.worst_results("run-1", limit=10)

    assert [(r.feature, r.case_id, r.scorer, r.status) for r in worst] == [
        ("refunds", "3", "judge", ResultStatus.ERROR),
        ("tone", "0", "judge", ResultStatus.ERROR),
        ("refunds", "5", "contains", ResultStatus.OK),
        ("refunds", "2", "judge", ResultStatus.OK),
        ("refunds", "4", "contains", ResultStatus.OK),
        ("refunds", "1", "judge", ResultStatus.OK),
        ("refunds", "9", "judge", ResultStatus.SKIPPED),
    ]
    assert [r.case_id for r in store.worst_results("run-1", limit=3)] == ["3", "0", "5"]
    with pytest.raises(ValueError, match="limit"):
        store.worst_results("run-1", limit=0)


# -------------------------------------------------------------------- finish


AGGREGATES = [
    ScoreAggregate("tone", "exact", mean=0.5, stderr=0.5, n=2, errors=0, fingerprint="fp"),
    ScoreAggregate("refunds", "judge", mean=3.0, stderr=1.0, n=2, errors=1, fingerprint="fp"),
    ScoreAggregate("refunds", "contains", mean=None, stderr=None, n=0, errors=2),
]


def test_finish_run_stores_aggregates_and_status(store: RunStore, clock: FakeClock) -> None:
    store.create_run(new_run())
    clock.advance(timedelta(minutes=3))

    finished = store.finish_run("run-1", RunStatus.SUCCEEDED, "all cases scored", AGGREGATES)

    assert finished.status is RunStatus.SUCCEEDED
    assert finished.status_reason == "all cases scored"
    assert finished.finished_at == clock.now()
    assert finished.started_at == clock.now() - timedelta(minutes=3)
    assert store.get_run("run-1") == finished
    assert store.get_aggregates("run-1") == sorted(AGGREGATES, key=lambda a: (a.feature, a.scorer))


def test_aggregates_are_empty_before_the_run_finishes(store: RunStore) -> None:
    store.create_run(new_run())
    assert store.get_aggregates("run-1") == []


def test_a_finished_run_cannot_change_again(store: RunStore, clock: FakeClock) -> None:
    store.create_run(new_run())
    store.save_results("run-1", [ok("1", 2.0)], ProgressDelta(cases_done=1, scored=1))
    first = store.finish_run("run-1", RunStatus.CANCELLED, "by admin", AGGREGATES[:1])
    clock.advance(seconds=10)
    late = ScoreAggregate("tone", "exact", mean=0.0, stderr=None, n=1, errors=0)

    with pytest.raises(RunFinished, match="cancelled") as caught:
        store.finish_run("run-1", RunStatus.SUCCEEDED, "late worker", [late])
    with pytest.raises(RunFinished):
        store.save_results("run-1", [ok("1", 0.0), ok("2", 0.0)], ProgressDelta(scored=2))

    assert caught.value.status is RunStatus.CANCELLED
    assert isinstance(caught.value, StoreError)
    assert store.get_run("run-1") == first
    assert store.get_aggregates("run-1") == AGGREGATES[:1]
    assert all_scores(store, "run-1") == [("refunds", "judge", ResultStatus.OK, 2.0)]


@pytest.mark.parametrize("status", [RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.INTERRUPTED])
def test_finish_run_needs_a_terminal_status(store: RunStore, status: RunStatus) -> None:
    store.create_run(new_run())

    with pytest.raises(ValueError, match="terminal"):
        store.finish_run("run-1", status, None, AGGREGATES)

    assert store.get_run("run-1").status is RunStatus.RUNNING
    assert store.get_aggregates("run-1") == []


# ---------------------------------------------------------------------- time


def test_datetimes_come_back_aware_utc(store: RunStore, clock: FakeClock) -> None:
    east = timezone(timedelta(hours=5, minutes=30))
    clock.set(datetime(2025, 6, 30, 23, 59, 59, 123456, tzinfo=east))
    slot = datetime(2025, 7, 1, 8, 0, tzinfo=timezone(timedelta(hours=-7)))

    created = store.create_run(new_run(run_type="scheduled", scheduled_for=slot))
    store.save_results("run-1", [ok("1", 1.0)], ProgressDelta(scored=1))
    clock.advance(seconds=1)
    store.finish_run("run-1", RunStatus.SUCCEEDED, None, [])
    stored = store.get_run("run-1")
    [result] = store.worst_results("run-1")

    for moment in (
        created.created_at,
        stored.created_at,
        stored.started_at,
        stored.finished_at,
        stored.scheduled_for,
        result.created_at,
    ):
        assert moment is not None
        assert moment.tzinfo is UTC
    assert stored.created_at == datetime(2025, 6, 30, 18, 29, 59, 123456, tzinfo=UTC)
    assert stored.scheduled_for == datetime(2025, 7, 1, 15, 0, tzinfo=UTC)
    assert stored.finished_at == stored.created_at + timedelta(seconds=1)


def test_naive_datetimes_are_refused(store: RunStore) -> None:
    naive = datetime(2025, 3, 1, 6, 0)  # noqa: DTZ001 - the point of the test

    with pytest.raises(ValueError, match="timezone-aware"):
        store.create_run(new_run(run_type="scheduled", scheduled_for=naive))
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(naive)

    assert store.list_runs() == []


# --------------------------------------------------------------- SQL only


def test_run_type_defaults_to_manual_in_the_database(db_engine: Engine) -> None:
    # As a row written by plain SQL (an old client, an operator) would be.
    raw_insert = text(
        "INSERT INTO eval_runs (id, suite, status, created_at, features, fingerprint) "
        "VALUES ('legacy', 'support', 'succeeded', :created, '[]', 'fp')"
    ).bindparams(bindparam("created", type_=UTCDateTime()))
    with db_engine.begin() as conn:
        conn.execute(raw_insert, {"created": SLOT})

    run = SqlRunStore(db_engine, FakeClock()).get_run("legacy")

    assert run.run_type == "manual"
    assert run.attempt == 1
    assert (run.cases_total, run.total, run.scored, run.errored) == (0, 0, 0, 0)
    assert run.judge_usage == Usage()
    assert run.fingerprint_parts == {}
    assert run.created_at == SLOT


@pytest.mark.parametrize(("column", "value"), [("run_type", "nightly"), ("status", "exploded")])
def test_check_constraints_refuse_unknown_values(
    db_engine: Engine, column: str, value: str
) -> None:
    row = {
        "id": "bad",
        "suite": "s",
        "status": "running",
        "created_at": SLOT,
        "features": [],
        "fingerprint": "fp",
        column: value,
    }
    with pytest.raises(IntegrityError), db_engine.begin() as conn:
        conn.execute(insert(eval_runs).values(row))


def test_deleting_a_run_cascades_to_its_results(db_engine: Engine) -> None:
    store = SqlRunStore(db_engine, FakeClock())
    store.create_run(new_run())
    store.save_results("run-1", [ok("1", 1.0)], ProgressDelta())
    store.finish_run("run-1", RunStatus.SUCCEEDED, None, AGGREGATES)

    with db_engine.begin() as conn:
        conn.execute(eval_runs.delete().where(eval_runs.c.id == "run-1"))
        remaining = conn.execute(select(func.count()).select_from(eval_results)).scalar_one()

    assert remaining == 0


def test_the_column_type_refuses_naive_datetimes(db_engine: Engine) -> None:
    naive = datetime(2025, 3, 1, 6, 0)  # noqa: DTZ001 - the point of the test
    row = {"id": "n", "suite": "s", "status": "running", "features": [], "fingerprint": "fp"}

    with pytest.raises(StatementError, match="naive datetime"), db_engine.begin() as conn:
        conn.execute(insert(eval_runs).values(created_at=naive, **row))


def test_a_failing_aggregate_leaves_the_run_unfinished(db_engine: Engine) -> None:
    store = SqlRunStore(db_engine, FakeClock())
    store.create_run(new_run())
    broken = ScoreAggregate("tone", "exact", mean=1.0, stderr=None, n=None, errors=0)  # type: ignore[arg-type]

    with pytest.raises(StoreError, match="could not finish run"):
        store.finish_run("run-1", RunStatus.SUCCEEDED, None, [AGGREGATES[0], broken])

    assert store.get_run("run-1").status is RunStatus.RUNNING
    assert store.get_aggregates("run-1") == []


def test_a_failing_result_leaves_the_counters_alone(db_engine: Engine) -> None:
    store = SqlRunStore(db_engine, FakeClock())
    store.create_run(new_run())
    # attempt is NOT NULL: the second row fails after the counters were updated.
    broken = CaseResult("refunds", "2", "judge", ResultStatus.OK, attempt=None)  # type: ignore[arg-type]

    with pytest.raises(StoreError, match="could not save results"):
        store.save_results("run-1", [ok("1", 1.0), broken], ProgressDelta(scored=2))

    assert store.get_run("run-1").scored == 0
    assert all_scores(store, "run-1") == []


def test_concurrent_writers_all_land(db_engine: Engine) -> None:
    store = SqlRunStore(db_engine, FakeClock())
    for worker in range(4):
        store.create_run(new_run(f"run-{worker}"))
    errors: list[BaseException] = []

    def write(run_id: str) -> None:
        try:
            for batch in range(25):
                results = [ok(f"{batch}-{case}", 1.0) for case in range(20)]
                store.save_results(run_id, results, ProgressDelta(cases_done=20, scored=20))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"run-{w}",)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert [store.get_run(f"run-{w}").scored for w in range(4)] == [500] * 4


def test_an_unmigrated_database_is_a_store_error(sqlite_url: str) -> None:
    store = SqlRunStore(make_engine(sqlite_url), FakeClock())
    try:
        with pytest.raises(StoreError, match=r"could not create run 'run-1'.*eval_runs"):
            store.create_run(new_run())
    finally:
        store.close()


def test_store_errors_never_show_the_password() -> None:
    # Nothing listens on port 1: the connection is refused at once.
    engine = make_engine("postgresql+psycopg://eval:s3cr3t-pw@127.0.0.1:1/evals")
    store = SqlRunStore(engine, FakeClock())
    try:
        with pytest.raises(StoreError) as caught:
            store.get_run("run-1")
    finally:
        store.close()
    assert "could not read run 'run-1'" in str(caught.value)
    assert "s3cr3t-pw" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "not a url at all",
        "mysql://eval:s3cr3t-pw@db/evals",
        "postgresql+nosuchdriver://eval:s3cr3t-pw@db/evals",
    ],
)
def test_a_bad_url_is_a_config_error_without_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_engine(url)

    assert caught.value.location == "CONTINUOUS_EVAL_DATABASE_URL"
    assert "s3cr3t-pw" not in str(caught.value)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_postgres_urls_use_psycopg_3(scheme: str) -> None:
    engine = make_engine(f"{scheme}://eval@127.0.0.1:1/evals")  # never connects
    try:
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


def test_sqlite_connections_are_set_up_for_concurrency(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "eval.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            pragmas = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "busy_timeout", "foreign_keys")
            }
    finally:
        engine.dispose()

    assert path.parent.is_dir()
    assert pragmas == {"journal_mode": "wal", "busy_timeout": 30000, "foreign_keys": 1}


# ---------------------------------------------------------------- decisions


def _decision(feature: str, kind: DecisionKind, **more: object) -> Decision:
    return Decision(feature, "judge", kind, f"{feature}: {kind.value}", **more)  # type: ignore[arg-type]


def test_decisions_are_stored_with_the_final_status_and_read_back_whole(store: RunStore) -> None:
    store.create_run(new_run("run-1", run_type="scheduled", scheduled_for=SLOT))
    regressed = _decision(
        "refunds",
        DecisionKind.REGRESSED,
        rule="drop",
        current=3.1,
        baseline=3.6,
        mean_difference=-0.5,
        ci_low=-0.62,
        ci_high=-0.38,
        p_value=1e-9,
        p_adjusted=3e-9,
        n_paired=100,
        baseline_run_ids=("run-0", "run-00"),
        fallen=(CaseDrop("c7", 5.0, 1.0), CaseDrop("c2", 4.5, 3.0)),
        cusum=0.0,
        anchor=AnchorCheck(40, -0.01, 0.9, 0.9, False),
        incident=Incident("run-1", "regression", -0.5),
        transition="opened",
    )
    fine = _decision("tone", DecisionKind.NOT_SIGNIFICANT, known_good=True, cusum=1.25)
    store.finish_run("run-1", RunStatus.SUCCEEDED, None, [], decisions=[fine, regressed])

    assert store.get_decisions("run-1") == [regressed, fine]  # by feature, scorer
    assert store.decision_states(["run-1", "run-2"]) == {
        "run-1": {("refunds", "judge"): regressed.state(), ("tone", "judge"): fine.state()}
    }
    assert store.get_decisions("run-2") == []


def test_a_run_without_decisions_has_no_states(store: RunStore) -> None:
    store.create_run(new_run("run-1"))
    store.finish_run("run-1", RunStatus.SUCCEEDED, None, [])
    assert store.decision_states(["run-1"]) == {}
    assert store.decision_states([]) == {}
