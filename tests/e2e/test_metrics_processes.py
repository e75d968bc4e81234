"""``/metrics`` of a real ``serve`` process: the database's view and the process's own counters.

The values are read the way Prometheus reads them (the text format, parsed
by prometheus_client's parser) and compared with the database.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PostgresDatabases
from tests.e2e.daemon_harness import SLOW_APP, Cluster, Serve, database, runs, wait_for

pytestmark = pytest.mark.slow

SUITES = """
suites:
  alpha:
    features:
      answers:
        dataset:
          cases:
            - {id: c1, input: 'q1:0.05'}
            - {id: c2, input: 'q2:0.05'}
            - {id: c3, input: 'x3:0.05'}
        target: {type: python, callable: 'slow_app:answer'}
        scorers:
          - {type: regex, pattern: '^q'}
          - {type: contains, value: ':'}
  beta:
    schedule: {enabled: false}
    features:
      answers:
        dataset: {cases: [{id: b1, input: 'q1:0.05'}]}
        target: {type: python, callable: 'slow_app:answer'}
        scorers: [{type: regex, pattern: 'q'}]
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _project(tmp_path: Path) -> None:
    (tmp_path / "slow_app.py").write_text(SLOW_APP)
    (tmp_path / "suites.yaml").write_text(SUITES)


def _scrape(serve: Serve) -> Samples:
    status, text = serve.get("/metrics")
    assert status == 200, text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _unix(stored: object) -> float:
    """A timestamp read with plain SQL: aware on Postgres, UTC digits in a string on SQLite."""
    when = stored if isinstance(stored, datetime) else datetime.fromisoformat(str(stored))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _succeeded(engine: sa.Engine) -> list[dict[str, object]]:
    return [
        r
        for r in runs(engine, "alpha")
        if r["run_type"] == "scheduled" and r["status"] == "succeeded"
    ]


def test_metrics_agree_with_the_database_after_a_scheduled_run(tmp_path: Path) -> None:
    _project(tmp_path)
    url = f"sqlite:///{tmp_path / 'eval.db'}"
    cluster = Cluster(tmp_path, url)
    try:
        serve = cluster.start("a")
        with database(url) as engine:
            wait_for(lambda: len(_succeeded(engine)) == 1, 30)
            (row,) = _succeeded(engine)
            with engine.connect() as conn:
                means: dict[str, float] = dict(
                    conn.execute(
                        sa.text("select scorer, mean from eval_run_scores where run_id = :r"),
                        {"r": row["id"]},
                    ).all()
                )
        samples = _scrape(serve)
        assert _value(samples, "continuous_eval_db_up") == 1
        alpha = {"suite": "alpha"}
        assert (
            _value(
                samples,
                "continuous_eval_runs_total",
                **alpha,
                run_type="scheduled",
                status="succeeded",
            )
            == 1
        )
        assert (
            _value(
                samples,
                "continuous_eval_process_runs_total",
                **alpha,
                run_type="scheduled",
                status="succeeded",
            )
            == 1
        )
        assert _value(
            samples, "continuous_eval_last_scheduled_run_timestamp_seconds", **alpha
        ) == pytest.approx(_unix(row["started_at"]), abs=1e-3)
        for scorer, mean in means.items():
            assert _value(
                samples,
                "continuous_eval_last_scheduled_score",
                **alpha,
                feature="answers",
                scorer=scorer,
            ) == pytest.approx(mean)
        assert (
            _value(
                samples,
                "continuous_eval_regressions_total",
                **alpha,
                feature="answers",
                scorer="regex",
            )
            == 0
        )
        # Every outcome of every configured suite is exposed, 0 until it happens.
        ticks = "continuous_eval_scheduler_ticks_total"
        for outcome in ("locked_elsewhere", "budget_skipped", "error"):
            for suite in ("alpha", "beta"):
                assert _value(samples, ticks, suite=suite, outcome=outcome) == 0
        # A check every 0.5 s may find alpha's first run still starting in this
        # process (benign, and timing-dependent on a loaded machine): the series
        # must exist, whatever it counts; beta is disabled and never gets that far.
        assert _value(samples, ticks, suite="alpha", outcome="gate_busy") is not None
        assert _value(samples, ticks, suite="beta", outcome="gate_busy") == 0
        assert (_value(samples, ticks, suite="beta", outcome="disabled") or 0) >= 1
        assert _value(samples, "continuous_eval_schedule_enabled", suite="beta") == 0
        assert _value(samples, "continuous_eval_schedule_interval_seconds", **alpha) == 86400
        # beta never ran: zeros, no timestamp.
        assert (
            _value(
                samples,
                "continuous_eval_runs_total",
                suite="beta",
                run_type="scheduled",
                status="succeeded",
            )
            == 0
        )
        assert (
            _value(samples, "continuous_eval_last_scheduled_run_timestamp_seconds", suite="beta")
            is None
        )
        assert serve.stop() == 0
    finally:
        cluster.kill_all()


@pytest.mark.postgres
def test_a_lost_database_leaves_metrics_answering_with_db_up_0(
    tmp_path: Path, postgres_url: str, postgres_databases: PostgresDatabases
) -> None:
    _project(tmp_path)
    cluster = Cluster(tmp_path, postgres_url)
    try:
        serve = cluster.start("a")
        with database(postgres_url) as engine:
            wait_for(lambda: len(_succeeded(engine)) == 1, 30)
        assert _value(_scrape(serve), "continuous_eval_db_up") == 1
        postgres_databases.drop(sa.make_url(postgres_url).database or "")
        began = time.monotonic()
        samples = _scrape(serve)
        assert time.monotonic() - began < 2
        assert _value(samples, "continuous_eval_db_up") == 0
        assert not any(name == "continuous_eval_runs_total" for name, _ in samples)
        # The process's own counters keep counting: the ticks now fail.
        wait_for(
            lambda: serve.metric("continuous_eval_scheduler_ticks_total", outcome="error") > 0, 20
        )
        assert serve.alive()
    finally:
        cluster.kill_all()
