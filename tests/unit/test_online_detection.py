"""Online features through the service's detection and the app's policies.

The store reads the baseline runs' case scores whatever their ids
(``decide_finished_run``), and the suite file's online features are the
policy's unpaired ones (``regression_policies``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from continuous_eval.adapters.suite_files import LoadedSuites
from continuous_eval.app.config import regression_policies
from continuous_eval.core.decisions import Decision, DecisionKind, RegressionPolicy
from continuous_eval.core.models import CaseResult, NewRun, ProgressDelta, ResultStatus, RunStatus
from continuous_eval.core.scoring import aggregate
from continuous_eval.core.suite import parse_suite_file
from continuous_eval.service.detection import decide_finished_run
from continuous_eval.settings import Settings
from continuous_eval.testing import FakeClock
from continuous_eval.testing.builders import SLOT
from continuous_eval.testing.store import InMemoryRunStore

SUITE = "support"
POLICY = RegressionPolicy(unpaired_features=frozenset({"chat"}))


def passing(n: int, failing: int) -> list[float]:
    return [0.0 if i < failing else 1.0 for i in range(n)]


def add_online_run(
    store: InMemoryRunStore, clock: FakeClock, index: int, scores: Sequence[float]
) -> list[Decision]:
    """A scheduled run of the online feature ``chat``: its cases are this run's own traces."""
    clock.advance(timedelta(hours=1))
    run_id = f"run-{index:02d}"
    store.create_run(
        NewRun(
            id=run_id,
            suite=SUITE,
            run_type="scheduled",
            features=("chat",),
            cases_total=len(scores),
            total=len(scores),
            fingerprint="fp",
            scheduled_for=SLOT + timedelta(hours=index),
        )
    )
    results = [
        CaseResult("chat", f"trace-{index:02d}-{i:03d}", "exact", ResultStatus.OK, score=s)
        for i, s in enumerate(scores)
    ]
    store.save_results(run_id, results, ProgressDelta(cases_done=len(scores), scored=len(scores)))
    aggregates = [aggregate("chat", "exact", list(scores), 0, "fp")]
    run = store.get_run(run_id)
    decisions = list(decide_finished_run(store, run, aggregates, POLICY).decisions)
    store.finish_run(run_id, RunStatus.SUCCEEDED, None, aggregates, decisions=decisions)
    return decisions


def test_the_store_gives_the_unpaired_test_every_baseline_score() -> None:
    clock = FakeClock()
    store = InMemoryRunStore(clock)
    for i in range(1, 8):
        add_online_run(store, clock, i, passing(100, 20))
    (decision,) = add_online_run(store, clock, 8, passing(100, 40))
    assert decision.kind is DecisionKind.REGRESSED
    assert decision.baseline_run_ids == tuple(f"run-{i:02d}" for i in range(7, 0, -1))
    assert "100 interactions (baseline: 700)" in decision.message
    assert decision.fallen[0].case_id == "trace-08-000"
    # Still down the next day: measured against the same frozen runs, no new alert.
    (after,) = add_online_run(store, clock, 9, passing(100, 40))
    assert after.kind is DecisionKind.STILL_REGRESSED
    assert after.baseline_run_ids == decision.baseline_run_ids


def test_online_features_of_the_suite_file_are_the_policys_unpaired_ones() -> None:
    parsed = parse_suite_file(
        {
            "suites": {
                SUITE: {
                    "features": {
                        "chat": {
                            "dataset": {"source": "traces", "feature": "chat"},
                            "target": "recorded",
                            "scorers": [{"type": "contains", "value": "refund"}],
                        },
                        "faq": {
                            "dataset": {"cases": [{"input": "hi", "expected": "hello"}]},
                            "target": {"type": "python", "callable": "app:answer"},
                            "scorers": [{"type": "exact"}],
                        },
                    }
                }
            }
        }
    )
    path = Path("/nonexistent/suites.yaml")
    loaded = LoadedSuites(suites=parsed, path=path, base_dir=path.parent, file="suites.yaml")
    policy = regression_policies(Settings(), loaded)[SUITE]
    assert policy.unpaired_features == frozenset({"chat"})
    assert policy.unpaired("chat")
    assert not policy.unpaired("faq")
