"""The daemon as it runs in production: several real processes, a real database, real signals."""

from __future__ import annotations

import itertools
import signal
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.e2e.daemon_harness import (
    SLOW_APP,
    Cluster,
    database,
    dump,
    result_counts,
    runs,
    suite_yaml,
    wait_for,
)

pytestmark = pytest.mark.slow


def _project(tmp_path: Path, suites: dict[str, tuple[int, float]], concurrency: int = 2) -> Path:
    (tmp_path / "slow_app.py").write_text(SLOW_APP)
    (tmp_path / "suites.yaml").write_text(suite_yaml(suites, concurrency))
    return tmp_path


def _scheduled(engine: sa.Engine, suite: str) -> list[dict[str, object]]:
    return [r for r in runs(engine, suite) if r["run_type"] == "scheduled"]


def _advisory_locks(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "select count(*) from pg_locks where locktype = 'advisory' and database = "
                    "(select oid from pg_database where datname = current_database())"
                )
            ).scalar_one()
        )


def _assert_no_overlap(rows: list[dict[str, object]]) -> None:
    ordered = sorted(rows, key=lambda r: r["started_at"])  # type: ignore[arg-type, return-value]
    for before, after in itertools.pairwise(ordered):
        assert before["finished_at"] is not None, dump(ordered)
        assert before["finished_at"] <= after["started_at"], dump(ordered)  # type: ignore[operator]


@pytest.mark.postgres
def test_three_replicas_run_each_suite_once_per_slot(tmp_path: Path, postgres_url: str) -> None:
    interval_s = 3.0
    _project(tmp_path, {"alpha": (4, 0.2), "beta": (4, 0.2)})
    cluster = Cluster(
        tmp_path,
        postgres_url,
        env={"CONTINUOUS_EVAL_SCHEDULE_INTERVAL_HOURS": str(interval_s / 3600)},
    )
    try:
        replicas = [cluster.start(name) for name in ("r1", "r2", "r3")]
        with database(postgres_url) as engine:

            def three_slots_each() -> bool:
                return all(
                    sum(r["status"] == "succeeded" for r in _scheduled(engine, s)) >= 3
                    for s in ("alpha", "beta")
                )

            wait_for(three_slots_each, 60)
            losers = sum(
                p.metric("continuous_eval_scheduler_ticks_total", outcome=outcome)
                for p in replicas
                for outcome in ("locked_elsewhere", "gate_busy", "not_due", "claim_lost")
            )
            ran = sum(
                p.metric("continuous_eval_scheduler_ticks_total", outcome="ran") for p in replicas
            )
            assert cluster.stop_all() == [0, 0, 0]
            assert losers > 0
            for suite in ("alpha", "beta"):
                rows = _scheduled(engine, suite)
                slots = [r["scheduled_for"] for r in rows]
                assert len(slots) == len(set(slots)), dump(rows)
                _assert_no_overlap(rows)
                starts = sorted(r["started_at"] for r in rows)  # type: ignore[type-var]
                for a, b in itertools.pairwise(starts):
                    assert b - a >= timedelta(seconds=interval_s), dump(rows)  # type: ignore[operator]
                assert {r["status"] for r in rows} <= {"succeeded", "interrupted"}
            total = sum(len(_scheduled(engine, s)) for s in ("alpha", "beta"))
            assert ran >= total - 2  # runs in flight at shutdown were counted by their adopters
            assert _advisory_locks(engine) == 0
    finally:
        cluster.kill_all()


def _start_long_run(tmp_path: Path, postgres_url: str, cases: int = 16) -> Cluster:
    _project(tmp_path, {"gamma": (cases, 0.4)})
    return Cluster(tmp_path, postgres_url)


def _current_run(engine: sa.Engine) -> dict[str, object]:
    rows = _scheduled(engine, "gamma")
    assert len(rows) == 1, dump(rows)
    return rows[0]


@pytest.mark.postgres
def test_sigkill_mid_run_is_taken_over_by_another_replica(
    tmp_path: Path, postgres_url: str
) -> None:
    cluster = _start_long_run(tmp_path, postgres_url, cases=24)
    try:
        # Both replicas up first, so killing one never races the other's start-up.
        replicas = {name: cluster.start(name) for name in ("a", "b")}
        with database(postgres_url) as engine:
            wait_for(lambda: len(_scheduled(engine, "gamma")) == 1, 20)
            owners: list[str] = []

            def mid_run() -> bool:
                # One read: the owner of a run that is running and has cases done
                # (two reads could straddle the end of a run on a loaded machine).
                run = _current_run(engine)
                done = int(run["cases_done"])  # type: ignore[call-overload]
                if run["status"] == "running" and run["lease_owner"] and done >= 3:
                    owners.append(str(run["lease_owner"]))
                    return True
                return False

            wait_for(mid_run, 20)
            replicas[owners[0]].proc.kill()
            wait_for(lambda: _current_run(engine)["status"] == "succeeded", 40)
            run = _current_run(engine)
            assert run["attempt"] == 2, dump(run)
            counts = result_counts(engine, str(run["id"]))
            assert len(counts) == 24 * 2
            assert {c[3] for c in counts} == {1}
            assert run["cases_done"] == 24
            assert run["scored"] + run["errored"] == 48  # type: ignore[operator]
    finally:
        cluster.kill_all()


@pytest.mark.postgres
def test_a_stopped_replica_is_fenced_off_and_stands_down(tmp_path: Path, postgres_url: str) -> None:
    cluster = _start_long_run(tmp_path, postgres_url)
    try:
        stalled = cluster.start("a")
        with database(postgres_url) as engine:
            wait_for(lambda: len(_scheduled(engine, "gamma")) == 1, 20)
            wait_for(lambda: int(_current_run(engine)["cases_done"]) >= 3, 20)  # type: ignore[call-overload]
            stalled.signal(signal.SIGSTOP)
            cluster.start("b")
            wait_for(lambda: _current_run(engine)["attempt"] == 2, 30)
            run_id = str(_current_run(engine)["id"])

            def first_attempt_rows() -> int:
                with engine.connect() as conn:
                    return int(
                        conn.execute(
                            sa.text(
                                "select count(*) from eval_results where run_id = :r "
                                "and attempt = 1"
                            ),
                            {"r": run_id},
                        ).scalar_one()
                    )

            before = first_attempt_rows()
            stalled.signal(signal.SIGCONT)
            wait_for(lambda: _current_run(engine)["status"] == "succeeded", 40)
            # The woken replica's attempt is over once it stood down: its cases
            # and writer are cancelled, so it can write nothing after that.
            wait_for(lambda: "stood down" in stalled.output(), 30)
            assert first_attempt_rows() == before
            counts = result_counts(engine, run_id)
            assert len(counts) == 16 * 2
            assert {c[3] for c in counts} == {1}
            assert stalled.alive()
            assert stalled.get("/healthz")[0] == 200
            assert "stood down" in stalled.output() or "lost the suite lock" in stalled.output()
    finally:
        cluster.kill_all()


@pytest.mark.postgres
def test_killing_the_lock_connection_stops_writing_and_keeps_the_process(
    tmp_path: Path, postgres_url: str
) -> None:
    cluster = _start_long_run(tmp_path, postgres_url)
    try:
        worker = cluster.start("a")
        with database(postgres_url) as engine:
            wait_for(lambda: len(_scheduled(engine, "gamma")) == 1, 20)
            wait_for(lambda: int(_current_run(engine)["cases_done"]) >= 3, 20)  # type: ignore[call-overload]
            with engine.connect() as conn:
                pids = (
                    conn.execute(
                        sa.text(
                            "select pid from pg_locks where locktype = 'advisory' and granted "
                            "and database = (select oid from pg_database "
                            "where datname = current_database())"
                        )
                    )
                    .scalars()
                    .all()
                )
                assert len(pids) == 1
                conn.execute(sa.text("select pg_terminate_backend(:p)"), {"p": pids[0]})
            wait_for(lambda: "lost the suite lock" in worker.output(), 2)  # within a heartbeat
            assert worker.alive()
            assert worker.get("/healthz")[0] == 200
            # The same run is finished later (by a takeover), never a second run of the slot.
            wait_for(lambda: _current_run(engine)["status"] == "succeeded", 40)
            assert len(_scheduled(engine, "gamma")) == 1
            counts = result_counts(engine, str(_current_run(engine)["id"]))
            assert {c[3] for c in counts} == {1}
            assert len(counts) == 16 * 2
            assert worker.stop() == 0
    finally:
        cluster.kill_all()


def test_two_processes_on_one_sqlite_file_never_overlap(tmp_path: Path) -> None:
    interval_s = 2.0
    _project(tmp_path, {"delta": (4, 0.25)})
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    cluster = Cluster(
        tmp_path, url, env={"CONTINUOUS_EVAL_SCHEDULE_INTERVAL_HOURS": str(interval_s / 3600)}
    )
    try:
        cluster.start("a")
        cluster.start("b")
        with database(url) as engine:
            wait_for(
                lambda: sum(r["status"] == "succeeded" for r in _scheduled(engine, "delta")) >= 3,
                60,
            )
            assert cluster.stop_all() == [0, 0]
            rows = _scheduled(engine, "delta")
            assert len({r["scheduled_for"] for r in rows}) == len(rows)
            _assert_no_overlap(rows)
    finally:
        cluster.kill_all()
