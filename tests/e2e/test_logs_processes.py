"""``serve``'s log lines as an SRE reads them: JSON, INFO by default, run lines name the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.daemon_harness import SLOW_APP, Cluster, database, runs, suite_yaml, wait_for

pytestmark = pytest.mark.slow

TOKEN = "tok-logs-0123456789abcdef"


def test_serve_writes_json_lines_with_the_run_on_every_run_line(
    tmp_path: Path, migrated_sqlite_url: str
) -> None:
    (tmp_path / "slow_app.py").write_text(SLOW_APP)
    (tmp_path / "suites.yaml").write_text(suite_yaml({"alpha": (3, 0.05)}))
    cluster = Cluster(
        tmp_path, migrated_sqlite_url, env={"CONTINUOUS_EVAL_API_TOKENS": f'["{TOKEN}"]'}
    )
    serve = cluster.start("logs-1")  # stderr is a file: `auto` means JSON
    try:
        with database(migrated_sqlite_url) as engine:
            wait_for(lambda: any(r["status"] == "succeeded" for r in runs(engine)), 30)
        assert serve.get("/readyz")[0] == 200
    finally:
        assert cluster.stop_all() == [0]

    lines = [json.loads(line) for line in serve.output().splitlines() if line.strip()]
    assert lines, "serve wrote nothing"
    for line in lines:
        assert {"timestamp", "level", "logger", "message"} <= set(line), line
    assert TOKEN not in serve.output()
    by_event = {line.get("event"): line for line in lines}
    (run,) = [r for r in runs_of(migrated_sqlite_url) if r["status"] == "succeeded"][:1]
    for event in ("run_started", "run_ended"):
        line = by_event[event]
        assert line["level"] == "INFO"
        assert line["run_id"] == run["id"]
        assert line["suite"] == "alpha"
        assert line["attempt"] == 1
        assert line["owner"] == "logs-1"
        assert line["slot"]
    assert by_event["run_ended"]["status"] == "succeeded"
    assert by_event["serve_start"]["level"] == "INFO"
    # Alembic's and APScheduler's routine steps stay out at INFO.
    assert not [line for line in lines if str(line["logger"]).startswith(("alembic", "apsch"))]


def runs_of(url: str) -> list[dict[str, object]]:
    with database(url) as engine:
        return runs(engine)
