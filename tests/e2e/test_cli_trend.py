"""``continuous-eval trend``: the drift endpoint's rows as a table, from a real process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from continuous_eval.adapters.clock import SystemClock
from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.core.models import NewRun, RunStatus, RunType, ScoreAggregate
from tests.e2e.cli_harness import cli


def _seed(url: str) -> None:
    store = SqlRunStore(make_engine(url), SystemClock())
    start = datetime(2025, 2, 1, 6, tzinfo=UTC)
    try:
        for day in range(4):
            run_types: tuple[RunType, ...] = ("scheduled", "manual")
            for run_type in run_types:
                run_id = f"{run_type}-{day}"
                store.create_run(
                    NewRun(
                        id=run_id,
                        suite="support",
                        run_type=run_type,
                        features=("faq",),
                        cases_total=10,
                        total=10,
                        fingerprint="fp",
                        scheduled_for=start + timedelta(days=day)
                        if run_type == "scheduled"
                        else None,
                    ),
                    status=RunStatus.RUNNING,
                )
                scores = [
                    ScoreAggregate(
                        "faq", "judge", 4.0 - day / 10, 0.05, 10, day, "abcdef0123456789"
                    ),
                    ScoreAggregate("other", "judge", 2.0, None, 1, 0, "fp2"),
                ]
                store.finish_run(run_id, RunStatus.SUCCEEDED, None, scores)
    finally:
        store.close()


def test_trend_prints_scheduled_runs_newest_first(migrated_sqlite_url: str, tmp_path: Path) -> None:
    _seed(migrated_sqlite_url)
    env = {"CONTINUOUS_EVAL_DATABASE_URL": migrated_sqlite_url}
    shown = cli("trend", "--feature", "faq", "--limit", "3", cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    lines = [line for line in shown.stdout.splitlines() if "scheduled-" in line]
    assert [line.split("│")[10].strip() for line in lines] == [
        "scheduled-3",
        "scheduled-2",
        "scheduled-1",
    ]
    assert "manual-" not in shown.stdout
    assert "3.700" in lines[0]
    assert "2025-02-04 06:00" in lines[0]
    assert "abcdef012345" in lines[0]
    assert "other" not in shown.stdout

    everything = cli("trend", "--suite", "support", "--scorer", "judge", cwd=tmp_path, env=env)
    assert everything.returncode == 0, everything.stderr
    assert everything.stdout.count("scheduled-") == 8

    empty = cli("trend", "--suite", "nope", cwd=tmp_path, env=env)
    assert empty.returncode == 0
    assert "no scheduled run has scores yet" in empty.stdout
