"""Migrations on empty SQLite and Postgres databases, and the drift check against tables.py.

``alembic check`` after ``upgrade head`` is what proves the hand-written
migrations and ``continuous_eval/adapters/db/tables.py`` describe the same
schema; the drift tests prove the check is not vacuous.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    CheckConstraint,
    Engine,
    ForeignKeyConstraint,
    Inspector,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
    inspect,
    text,
)
from sqlalchemy.exc import IntegrityError

from continuous_eval.adapters.db import migrate
from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.migrate import (
    check,
    current_revision,
    downgrade,
    head_revision,
    migration_transaction,
    script_location,
    upgrade,
)
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.adapters.db.tables import metadata
from continuous_eval.core.models import (
    Callback,
    CaseResult,
    NewAlert,
    NewRun,
    ProgressDelta,
    ResultStatus,
    RunStatus,
)
from continuous_eval.core.regression import Decision, DecisionKind
from continuous_eval.errors import StoreError
from continuous_eval.testing import FakeClock

REPO_ROOT = Path(__file__).resolve().parents[2]
TABLES = {
    "eval_runs",
    "eval_results",
    "eval_run_scores",
    "suite_locks",
    "alerts",
    "eval_decisions",
    "interactions",
    "interaction_feedback",
    "case_steps",
    "learned_evaluators",  # issue 14, part "learned"
    "jobs",
    "job_events",
    "eval_sets",
    "eval_cases",
    "eval_labels",
    "judge_agreement",
}


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_migrations_ship_from_the_repository_in_a_checkout() -> None:
    assert script_location() == REPO_ROOT / "migrations"
    assert (script_location() / "env.py").is_file()
    assert head_revision() == "0013"


def test_upgrade_head_on_an_empty_database_matches_the_tables(empty_db_url: str) -> None:
    assert current_revision(empty_db_url) is None

    upgrade(empty_db_url)

    assert current_revision(empty_db_url) == head_revision()
    assert table_names(empty_db_url) == TABLES
    check(empty_db_url)  # raises on any drift between migrations and tables.py


def test_upgrading_twice_is_harmless(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    try:
        SqlRunStore(engine, FakeClock()).create_run(
            NewRun("kept", "support", "manual", ("refunds",), 1, 1, "fp")
        )
        upgrade(engine)
        upgrade(engine, "head")

        assert current_revision(engine) == head_revision()
        assert SqlRunStore(engine, FakeClock()).get_run("kept").suite == "support"
        check(engine)
    finally:
        engine.dispose()


def test_downgrade_to_base_drops_everything_and_upgrade_restores_it(empty_db_url: str) -> None:
    upgrade(empty_db_url)

    downgrade(empty_db_url, "base")

    assert current_revision(empty_db_url) is None
    assert table_names(empty_db_url) == set()
    upgrade(empty_db_url)
    check(empty_db_url)


def test_0002_upgrades_a_0001_database_with_runs_and_downgrades_cleanly(
    empty_db_url: str,
) -> None:
    upgrade(empty_db_url, "0001")
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO eval_runs (id, suite, status, created_at, features, fingerprint) "
                "VALUES ('old', 'support', 'succeeded', '2025-01-01 00:00:00', '[]', 'fp')"
            )

        upgrade(engine, "0002")

        inspector = inspect(engine)
        assert "suite_locks" in inspector.get_table_names()
        indexes = {ix["name"] for ix in inspector.get_indexes("eval_runs")}
        assert "ix_eval_runs_suite_status" in indexes
        assert _status(engine, "old") == "succeeded"
        upgrade(engine)  # check() compares head only
        check(engine)
        assert SqlRunStore(engine, FakeClock()).get_run("old").status.value == "succeeded"

        downgrade(engine, "0001")

        inspector = inspect(engine)
        assert "suite_locks" not in inspector.get_table_names()
        indexes = {ix["name"] for ix in inspector.get_indexes("eval_runs")}
        assert "ix_eval_runs_suite_status" not in indexes
        assert current_revision(engine) == "0001"
    finally:
        engine.dispose()


def test_0003_adds_the_alerts_outbox_to_a_0002_database_and_downgrades_cleanly(
    empty_db_url: str,
) -> None:
    upgrade(empty_db_url, "0002")
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO eval_runs (id, suite, status, created_at, features, fingerprint) "
                "VALUES ('old', 'support', 'running', '2025-01-01 00:00:00', '[]', 'fp')"
            )

        upgrade(engine, "0003")

        inspector = inspect(engine)
        assert "alerts" in inspector.get_table_names()
        indexes = {ix["name"] for ix in inspector.get_indexes("alerts")}
        assert {
            "ix_alerts_status_next_attempt_at",
            "ix_alerts_suite_feature_scorer_kind_created_at",
        } <= indexes
        upgrade(engine)  # check() compares head with the tables
        check(engine)
        # The run from before the upgrade finishes with an alert, through the store.
        store = SqlRunStore(engine, FakeClock())
        outbox = NewAlert(
            key="support:refunds:judge:old",
            channel="email",
            kind="regression",
            run_id="old",
            suite="support",
            feature="refunds",
            scorer="judge",
            rule="drop",
            status="pending",
            payload="{}",
            summary={"delta": -1.5},
        )
        store.finish_run("old", RunStatus.SUCCEEDED, None, [], alerts=[outbox])
        assert [a.key for a in store.claim_due_alerts("w", 30, 10)] == [outbox.key]
        with engine.begin() as conn, pytest.raises(IntegrityError):
            conn.exec_driver_sql("UPDATE alerts SET status = 'lost'")

        downgrade(engine, "0002")

        assert "alerts" not in inspect(engine).get_table_names()
        assert _status(engine, "old") == RunStatus.SUCCEEDED.value
        assert current_revision(engine) == "0002"
        upgrade(engine)
        check(engine)
    finally:
        engine.dispose()


def _status(engine: Engine, run_id: str) -> str:
    # Plain SQL: the store reads the newest schema, not the one under test.
    with engine.connect() as conn:
        query = text("SELECT status FROM eval_runs WHERE id = :id")
        return str(conn.execute(query, {"id": run_id}).scalar_one())


def test_0005_adds_run_notices_to_a_0004_database_and_downgrades_cleanly(
    empty_db_url: str,
) -> None:
    upgrade(empty_db_url, "0004")
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO eval_runs (id, suite, status, created_at, features, fingerprint) "
                "VALUES ('old', 'support', 'running', '2025-01-01 00:00:00', '[]', 'fp')"
            )
            conn.exec_driver_sql(
                "INSERT INTO alerts (key, channel, kind, run_id, suite, feature, scorer, status, "
                "payload, summary, created_at) VALUES ('k', 'email', 'regression', 'old', "
                "'support', 'f', 'judge', 'sent', '{}', '{}', '2025-01-01 00:00:00')"
            )

        upgrade(engine, "0005")  # not head: check() compares with head's tables

        store = SqlRunStore(engine, FakeClock())
        assert store.get_run("old").callbacks == ()  # a row from before reads as none
        (kept,) = store.list_alerts()
        assert (kept.key, kept.destination) == ("k", None)
        new = NewRun(
            id="new",
            suite="support",
            run_type="manual",
            features=("f",),
            cases_total=0,
            total=0,
            fingerprint="fp",
            callbacks=(Callback("callback", "https://ci.example.com/hook"),),
        )
        store.create_run(new)
        store.finish_run("new", RunStatus.SUCCEEDED, None, [])
        notice = next(a for a in store.list_alerts() if a.kind == "run_finished")
        assert notice.destination == "https://ci.example.com/hook"
        with engine.begin() as conn, pytest.raises(IntegrityError):
            conn.exec_driver_sql("UPDATE alerts SET kind = 'other'")
        store.finish_run("old", RunStatus.INCONCLUSIVE, "inconclusive: 0 of 3 scored", [])
        assert _status(engine, "old") == "inconclusive"

        downgrade(engine, "0004")

        assert current_revision(engine) == "0004"
        with engine.connect() as conn:
            kinds = conn.exec_driver_sql("SELECT kind FROM alerts").scalars().all()
        assert kinds == ["regression"]
        assert _status(engine, "old") == "failed"  # the old schema has no inconclusive
        upgrade(engine)
        check(engine)
    finally:
        engine.dispose()


def _schema_names(inspector: Inspector, table: str) -> dict[str, set[str | None]]:
    return {
        "pk": {inspector.get_pk_constraint(table)["name"]},
        "fk": {fk["name"] for fk in inspector.get_foreign_keys(table)},
        "uq": {uq["name"] for uq in inspector.get_unique_constraints(table)},
        "ck": {ck["name"] for ck in inspector.get_check_constraints(table)},
        # Postgres also lists the indexes backing unique constraints.
        "ix": {
            ix["name"] for ix in inspector.get_indexes(table) if not ix.get("duplicates_constraint")
        },
    }


def _metadata_names(table: Table) -> dict[str, set[str | None]]:
    kinds = {
        "pk": PrimaryKeyConstraint,
        "fk": ForeignKeyConstraint,
        "uq": UniqueConstraint,
        "ck": CheckConstraint,
    }
    names = {
        kind: {str(c.name) for c in table.constraints if isinstance(c, cls)}
        for kind, cls in kinds.items()
    }
    names["ix"] = {str(index.name) for index in table.indexes}
    return {kind: set[str | None](found) for kind, found in names.items()}


def test_constraint_and_index_names_match_the_tables(empty_db_url: str) -> None:
    # alembic check compares neither CHECK constraints nor most constraint
    # names; batch migrations on SQLite need both to be exactly as in tables.py.
    upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    try:
        inspector = inspect(engine)
        for table in metadata.sorted_tables:
            assert _schema_names(inspector, table.name) == _metadata_names(table), table.name
    finally:
        engine.dispose()


def test_a_sqlite_batch_migration_keeps_rows_and_constraints(sqlite_url: str) -> None:
    # A batch migration drops and recreates eval_runs; with foreign keys on,
    # the drop would cascade-delete every result (migration_transaction
    # switches them off for the duration).
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        store = SqlRunStore(engine, FakeClock())
        store.create_run(NewRun("kept", "support", "manual", ("refunds",), 1, 1, "fp"))
        store.save_results(
            "kept",
            [CaseResult("refunds", "1", "judge", ResultStatus.OK, score=4.0)],
            ProgressDelta(),
        )
        before = _schema_names(inspect(engine), "eval_runs")
        with engine.connect() as conn, migration_transaction(conn):
            context = MigrationContext.configure(
                conn, opts={"render_as_batch": True, "target_metadata": metadata}
            )
            with Operations(context).batch_alter_table("eval_runs", recreate="always") as batch:
                batch.alter_column("lease_owner", existing_type=String(200), type_=String(300))

        assert list(store.iter_scores("kept")) == [("refunds", "judge", ResultStatus.OK, 4.0)]
        assert _schema_names(inspect(engine), "eval_runs") == before
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_check_refuses_a_database_behind_head(empty_db_url: str) -> None:
    with pytest.raises(StoreError, match="not up to date"):
        check(empty_db_url)


@pytest.mark.parametrize(
    "ddl",
    [
        "ALTER TABLE eval_runs ADD COLUMN surprise INTEGER",
        "DROP INDEX ix_eval_run_scores_feature_scorer",
        "CREATE TABLE stray (id INTEGER PRIMARY KEY)",
    ],
)
def test_check_detects_drift(empty_db_url: str, ddl: str) -> None:
    upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(ddl)

        with pytest.raises(StoreError, match="differs from the tables"):
            check(engine)
    finally:
        engine.dispose()


def test_sqlite_foreign_keys_are_back_on_after_migrating(sqlite_url: str) -> None:
    # Migrations switch them off (batch mode rebuilds tables); the pooled
    # connection must not go back to the store without them.
    engine = make_engine(sqlite_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_an_unreachable_database_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError, match="migration failed") as caught:
        upgrade("postgresql+psycopg://eval:s3cr3t-pw@127.0.0.1:1/evals")

    assert "s3cr3t-pw" not in str(caught.value)
    assert "***" in str(caught.value)


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


# Each process imports everything, then waits until all are ready, so the
# upgrades really overlap instead of running one after another.
_UPGRADE_TOGETHER = """
import os, sys, time
from pathlib import Path
from continuous_eval.adapters.db.migrate import upgrade
barrier = Path(os.environ["BARRIER"])
(barrier / str(os.getpid())).touch()
deadline = time.monotonic() + 60
while len(list(barrier.iterdir())) < int(os.environ["PROCESSES"]) and time.monotonic() < deadline:
    time.sleep(0.005)
upgrade(os.environ["URL"])
"""


@pytest.mark.slow
def test_concurrent_upgrades_from_several_processes_are_safe(
    empty_db_url: str, tmp_path: Path
) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {"URL": empty_db_url, "BARRIER": str(barrier), "PROCESSES": "4"}
    processes = [_start(["-c", _UPGRADE_TOGETHER], env) for _ in range(4)]
    outcomes = [(process.communicate(timeout=120)[0], process.returncode) for process in processes]

    assert [returncode for _output, returncode in outcomes] == [0] * 4, outcomes
    assert current_revision(empty_db_url) == head_revision()
    check(empty_db_url)


@pytest.mark.slow
def test_the_alembic_cli_migrates_the_database_in_the_environment(sqlite_url: str) -> None:
    env = {"CONTINUOUS_EVAL_DATABASE_URL": sqlite_url}
    cli = ["-m", "alembic", "-c", str(REPO_ROOT / "alembic.ini")]

    offline = _start([*cli, "upgrade", "head", "--sql"], env)
    offline_output = offline.communicate(timeout=120)[0]
    online = _start([*cli, "upgrade", "head"], env)
    online_output = online.communicate(timeout=120)[0]

    assert offline.returncode == 0, offline_output
    assert "CREATE TABLE eval_runs" in offline_output
    assert current_revision(sqlite_url) == head_revision()  # written by the online run only
    assert online.returncode == 0, online_output
    check(sqlite_url)


def test_the_head_constant_is_the_newest_migration() -> None:
    # Every command reads the schema version against HEAD_REVISION without
    # loading Alembic; a new migration must move the constant with it.
    assert migrate.head_revision() == migrate.HEAD_REVISION


def test_the_stored_revision_is_read_without_alembic(empty_db_url: str) -> None:
    assert migrate.stored_revision(empty_db_url) is None
    migrate.upgrade(empty_db_url, "0002")
    assert migrate.stored_revision(empty_db_url) == "0002"
    migrate.upgrade_if_behind(empty_db_url)
    assert migrate.stored_revision(empty_db_url) == migrate.HEAD_REVISION


def test_0006_adds_stored_decisions_to_a_0005_database_and_downgrades_cleanly(
    empty_db_url: str,
) -> None:
    upgrade(empty_db_url, "0005")
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO eval_runs (id, suite, status, created_at, features, fingerprint) "
                "VALUES ('old', 'support', 'running', '2025-01-01 00:00:00', '[]', 'fp')"
            )
        upgrade(engine, "0006")
        assert current_revision(engine) == "0006"  # the models are of the head: no check() here

        store = SqlRunStore(engine, FakeClock())
        assert store.decision_states(["old"]) == {}  # decided before decisions were stored
        decision = Decision("f", "judge", DecisionKind.NO_BASELINE, "first", known_good=True)
        store.finish_run("old", RunStatus.SUCCEEDED, None, [], decisions=[decision])
        assert store.get_decisions("old") == [decision]
        assert store.decision_states(["old"]) == {"old": {("f", "judge"): decision.state()}}
        with engine.begin() as conn:  # the new alert kind is admitted
            conn.exec_driver_sql(
                "INSERT INTO alerts (key, channel, kind, run_id, suite, feature, scorer, status, "
                "payload, summary, created_at) VALUES ('k', 'email', 'judge_drift', 'old', "
                "'support', '', '', 'pending', '{}', '{}', '2025-01-01 00:00:00')"
            )

        downgrade(engine, "0005")
        assert current_revision(engine) == "0005"
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM alerts").scalar_one() == 0
        assert "eval_decisions" not in inspect(engine).get_table_names()
        upgrade(engine)
        check(engine)
    finally:
        engine.dispose()


def test_0007_keeps_case_texts_with_results_and_old_rows_read_without_them(
    empty_db_url: str,
) -> None:
    upgrade(empty_db_url, "0006")
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO eval_runs (id, suite, status, created_at, features, fingerprint) "
                "VALUES ('old', 'support', 'running', '2025-01-01 00:00:00', '[]', 'fp')"
            )
            conn.exec_driver_sql(
                "INSERT INTO eval_results (run_id, feature, case_id, scorer, status, score, "
                "created_at) VALUES ('old', 'f', 'c1', 'judge', 'ok', 4.0, "
                "'2025-01-01 00:00:01')"
            )
        upgrade(engine)  # through 0007; the current store reads every later column too

        store = SqlRunStore(engine, FakeClock())
        [before] = store.worst_results("old")
        assert (before.input_excerpt, before.expected_excerpt) == (None, None)
        asked = CaseResult(
            "f", "c2", "judge", ResultStatus.OK, score=3.0,
            input_excerpt='{"q": "refund?"}', expected_excerpt="yes",
        )  # fmt: skip
        store.save_results("old", [asked], ProgressDelta(cases_done=1, scored=1))
        kept = {r.case_id: r for r in store.worst_results("old")}["c2"]
        assert (kept.input_excerpt, kept.expected_excerpt) == ('{"q": "refund?"}', "yes")

        downgrade(engine, "0006")
        columns = {c["name"] for c in inspect(engine).get_columns("eval_results")}
        assert "input_excerpt" not in columns
        assert "expected_excerpt" not in columns
        upgrade(engine)
        check(engine)
    finally:
        engine.dispose()
