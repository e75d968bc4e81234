"""Build a database's state through the real store and check a scrape against plain SQL.

Shared by the database collector's tests (``test_metrics_db.py``) and its
scale test (``test_metrics_scale.py``). The expected values (``truth``) come
from plain SQL over the tables, written independently of the collector's
queries; ``assert_agrees`` compares every database-derived series with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.adapters.metrics_db import TERMINAL_STATUSES, UNFINISHED_STATUSES
from continuous_eval.core.models import (
    CaseResult,
    NewAlert,
    ProgressDelta,
    ResultStatus,
    RunStatus,
    RunType,
    ScoreAggregate,
    Usage,
)
from continuous_eval.testing import FakeClock
from continuous_eval.testing.builders import new_run

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""A scrape: each sample's value by (name, label set)."""


# ------------------------------------------------------------------ scrapes


def scrape(registry: CollectorRegistry) -> Samples:
    """Render the registry as ``/metrics`` does and parse it back."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The sample with exactly these labels, or None when it is not exposed."""
    return samples.get((name, frozenset(labels.items())))


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample of one name, by label set."""
    return {labels: v for (n, labels), v in samples.items() if n == name}


def labelled(**labels: str) -> frozenset[tuple[str, str]]:
    """A label set, as ``series`` keys them."""
    return frozenset(labels.items())


def results(
    feature: str,
    scorer: str,
    scores: Sequence[float | None],
    *,
    judge: bool = False,
) -> list[CaseResult]:
    """One result per case; None is an errored case. Judge results carry usage."""
    made = []
    for i, score in enumerate(scores):
        usage = Usage(100 + i, 10, 0.002) if judge and score is not None else Usage()
        made.append(
            CaseResult(
                feature=feature,
                case_id=f"c{i}",
                scorer=scorer,
                status=ResultStatus.ERROR if score is None else ResultStatus.OK,
                score=score,
                error="target timed out" if score is None else None,
                usage=usage,
            )
        )
    return made


def save(store: SqlRunStore, run_id: str, rows: Sequence[CaseResult]) -> None:
    """Store results with the counters the runner would add for them."""
    judge = Usage()
    for row in rows:
        judge = judge + row.usage
    delta = ProgressDelta(
        cases_done=len({(r.feature, r.case_id) for r in rows}),
        scored=sum(r.status is ResultStatus.OK for r in rows),
        errored=sum(r.status is ResultStatus.ERROR for r in rows),
        judge_usage=judge,
        target_usage=Usage(5 * len(rows), 7 * len(rows), 0.0005 * len(rows)),
    )
    store.save_results(run_id, rows, delta)


def aggregates(rows: Sequence[CaseResult]) -> list[ScoreAggregate]:
    """Each feature x scorer's mean and counts, as the runner would store them."""
    by_pair: dict[tuple[str, str], list[CaseResult]] = {}
    for row in rows:
        by_pair.setdefault((row.feature, row.scorer), []).append(row)
    made = []
    for (feature, scorer), pair in sorted(by_pair.items()):
        scored = [r.score for r in pair if r.score is not None]
        mean = sum(scored) / len(scored) if scored else None
        made.append(
            ScoreAggregate(feature, scorer, mean, None, len(scored), len(pair) - len(scored))
        )
    return made


def start(
    store: SqlRunStore,
    run_id: str,
    suite: str = "support",
    run_type: RunType = "scheduled",
    *,
    clock: FakeClock,
    status: RunStatus = RunStatus.RUNNING,
) -> None:
    """Create a run of ``refunds`` (4 cases x 2 scorers), scheduled now if it is scheduled."""
    store.create_run(
        new_run(
            run_id,
            suite=suite,
            run_type=run_type,
            features=("refunds",),
            cases_total=4,
            total=8,
            fingerprint_parts={},
            scheduled_for=clock.now() if run_type == "scheduled" else None,
            reason="judge budget spent" if status is RunStatus.SKIPPED else None,
        ),
        status=status,
    )


def run(
    store: SqlRunStore,
    run_id: str,
    judge: Sequence[float | None],
    exact: Sequence[float | None],
    *,
    clock: FakeClock,
    suite: str = "support",
    run_type: RunType = "scheduled",
    status: RunStatus = RunStatus.SUCCEEDED,
    alerts: Sequence[NewAlert] = (),
) -> None:
    """A whole run: created, two scorers' results stored, finished with its aggregates."""
    start(store, run_id, suite, run_type, clock=clock)
    rows = results("refunds", "judge", judge, judge=True) + results("refunds", "exact", exact)
    save(store, run_id, rows)
    store.finish_run(run_id, status, None, aggregates(rows), alerts=alerts)


def regression(run_id: str, channel: str = "email", suite: str = "support") -> NewAlert:
    """A pending regression alert of ``refunds`` x ``judge``."""
    return NewAlert(
        key=f"{suite}:refunds:judge:{run_id}",
        channel=channel,
        kind="regression",
        run_id=run_id,
        suite=suite,
        feature="refunds",
        scorer="judge",
        rule="drop",
        status="pending",
        payload="{}",
        summary={"delta": -1.0},
    )


def truth(engine: sa.Engine) -> dict[str, dict[Any, float]]:
    """The values the collector must expose, by plain SQL over the whole tables."""

    def rows(sql: str) -> list[Any]:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql)))

    runs = rows("select suite, run_type, status, count(*) from eval_runs group by 1, 2, 3")
    sums = rows(
        "select suite, run_type, sum(judge_input_tokens), sum(judge_output_tokens), "
        "sum(judge_cost_usd), sum(target_input_tokens), sum(target_output_tokens), "
        "sum(target_cost_usd) from eval_runs group by 1, 2"
    )
    per_result = (
        "select r.suite, r.run_type, count(*) from eval_results x "
        "join eval_runs r on r.id = x.run_id where {} group by 1, 2"
    )
    requests = rows(per_result.format("x.input_tokens > 0 or x.output_tokens > 0"))
    errors = rows(per_result.format("x.status = 'error'"))
    regressions = rows(
        "select suite, feature, scorer, count(distinct run_id) from alerts "
        "where kind = 'regression' group by 1, 2, 3"
    )
    outbox = rows("select channel, kind, status, count(*) from alerts group by 1, 2, 3")
    return {
        "runs": {tuple(r[:3]): r[3] for r in runs},
        "judge_in": {tuple(r[:2]): r[2] for r in sums},
        "judge_out": {tuple(r[:2]): r[3] for r in sums},
        "judge_cost": {tuple(r[:2]): r[4] for r in sums},
        "target_in": {tuple(r[:2]): r[5] for r in sums},
        "target_out": {tuple(r[:2]): r[6] for r in sums},
        "target_cost": {tuple(r[:2]): r[7] for r in sums},
        "requests": {tuple(r[:2]): r[2] for r in requests},
        "errors": {tuple(r[:2]): r[2] for r in errors},
        "regressions": {tuple(r[:3]): r[3] for r in regressions},
        "outbox": {tuple(r[:3]): r[3] for r in outbox},
    }


def assert_agrees(samples: Samples, engine: sa.Engine) -> None:
    """Every database-derived series equals the plain-SQL count (zero where there is none)."""
    expected = truth(engine)
    assert value(samples, "continuous_eval_db_up") == 1
    for name, statuses in (
        ("continuous_eval_runs_total", TERMINAL_STATUSES),
        ("continuous_eval_unfinished_runs", UNFINISHED_STATUSES),
    ):
        exposed = series(samples, name)
        for labels, v in exposed.items():
            d = dict(labels)
            assert d["status"] in statuses
            assert v == expected["runs"].get((d["suite"], d["run_type"], d["status"]), 0), d
        for (suite, run_type, status), n in expected["runs"].items():
            if status in statuses:
                assert value(samples, name, suite=suite, run_type=run_type, status=status) == n

    def per_run(name: str, key: str, **extra: str) -> None:
        for suite, run_type in {k[:2] for k in expected["runs"]}:
            got = value(samples, name, suite=suite, run_type=run_type, **extra)
            assert got == pytest.approx(float(expected[key].get((suite, run_type), 0))), (
                name,
                suite,
                run_type,
            )

    per_run("continuous_eval_judge_tokens_total", "judge_in", token_type="input")
    per_run("continuous_eval_judge_tokens_total", "judge_out", token_type="output")
    per_run("continuous_eval_judge_cost_usd_total", "judge_cost")
    per_run("continuous_eval_target_tokens_total", "target_in", token_type="input")
    per_run("continuous_eval_target_tokens_total", "target_out", token_type="output")
    per_run("continuous_eval_target_cost_usd_total", "target_cost")
    per_run("continuous_eval_judge_requests_total", "requests")
    per_run("continuous_eval_case_errors_total", "errors")
    regressions = series(samples, "continuous_eval_regressions_total")
    for (suite, feature, scorer), n in expected["regressions"].items():
        assert regressions[labelled(feature=feature, scorer=scorer, suite=suite)] == n
    assert sum(regressions.values()) == sum(expected["regressions"].values())
    outbox = series(samples, "continuous_eval_outbox_alerts")
    for (channel, kind, status), n in expected["outbox"].items():
        assert outbox[labelled(channel=channel, kind=kind, status=status)] == n
    assert sum(outbox.values()) == sum(expected["outbox"].values())
