"""The backtest replay (``service.backtest``) over an in-memory store of finished scheduled runs.

A deploy that breaks two features is one incident report naming both; the
runs after it at the same low level say nothing (the incident is open); the
return is one recovery report. The stored decisions are ignored: the runs
here carry deliberately wrong ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

import pytest

from continuous_eval.core.decisions import Decision, DecisionKind, RegressionPolicy, ScorerPolicy
from continuous_eval.core.models import RunStatus, RunType
from continuous_eval.core.regression import RunScores, decide_run
from continuous_eval.core.scoring import aggregate
from continuous_eval.service.backtest import (
    Replay,
    backtest,
    scheduled_run_ids,
    with_overrides,
)
from continuous_eval.service.detection import history_limit
from continuous_eval.testing import FakeClock, InMemoryRunStore
from continuous_eval.testing.builders import add_finished_run, pass_fail

SUITE = "shop"
KEYS = (("answers", "exact"), ("search", "exact"))
CASES = 20
FALLEN = 8


def scores(fallen: int) -> list[float]:
    """Twenty pass/fail cases, the first ``fallen`` failing."""
    return pass_fail(CASES, fallen)


def add_run(
    store: InMemoryRunStore,
    clock: FakeClock,
    run_id: str,
    keyed: Mapping[tuple[str, str], Sequence[float]],
    *,
    run_type: RunType = "scheduled",
    status: RunStatus = RunStatus.SUCCEEDED,
) -> None:
    """A finished run, one hour after the previous one, stored with a misleading decision."""
    clock.advance(timedelta(hours=1))
    wrong = [
        Decision(f, s, DecisionKind.REGRESSED, "stored", transition="opened") for f, s in keyed
    ]
    add_finished_run(
        store,
        run_id,
        keyed,
        suite=SUITE,
        run_type=run_type,
        slot=clock.now() if run_type == "scheduled" else None,
        status=status,
        decide=lambda _run, _aggregates: wrong,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> InMemoryRunStore:
    """Five good runs, two with both features down, two back up; plus runs the replay skips."""
    run_store = InMemoryRunStore(clock)
    levels = [0, 0, 0, 0, 0, FALLEN, FALLEN, 0, 0]
    for n, fallen in enumerate(levels, start=1):
        add_run(run_store, clock, f"s{n:02d}", dict.fromkeys(KEYS, scores(fallen)))
        if n == 6:
            # Not history: a manual run, a failed scheduled run, another suite's.
            add_run(run_store, clock, "manual", dict.fromkeys(KEYS, scores(0)), run_type="manual")
            add_run(
                run_store,
                clock,
                "failed",
                dict.fromkeys(KEYS, scores(CASES)),
                status=RunStatus.FAILED,
            )
    return run_store


def test_a_fall_of_two_features_is_one_report_then_quiet_then_one_recovery(
    store: InMemoryRunStore,
) -> None:
    result = backtest(store, SUITE, RegressionPolicy())

    assert result.runs_replayed == 9
    assert [run.run_id for run in result.alerted] == ["s06", "s08"]
    (incident,) = result.alerted[0].reports
    assert incident.kind == "regression"
    assert {i.key for i in incident.items} == set(KEYS)
    assert {i.transition for i in incident.items} == {"opened"}
    assert {i.kind for i in incident.items} == {DecisionKind.REGRESSED}
    for item in incident.items:
        assert item.mean_difference == pytest.approx(-FALLEN / CASES)
        assert item.p_adjusted is not None
        assert item.p_adjusted <= 0.05
        assert len(item.fallen) == FALLEN
        assert item.baseline_run_ids == ("s05", "s04", "s03", "s02", "s01")
        assert "fell 0.400" in item.message
    (recovery,) = result.alerted[1].reports
    assert recovery.kind == "recovery"
    assert {i.key for i in recovery.items} == set(KEYS)
    assert {i.transition for i in recovery.items} == {"recovered"}

    assert (result.incident_reports, result.incidents_opened, result.recoveries) == (1, 2, 2)
    assert (result.worsened, result.judge_drift_opened) == (0, 0)
    assert result.keys_alerted == KEYS
    assert result.first_started_at is not None
    assert result.last_started_at is not None
    assert result.first_started_at < result.last_started_at
    # Read only: the stored (wrong) decisions are still there, and no alert was queued.
    assert store.get_decisions("s07")[0].message == "stored"
    assert store.alerts == {}


def test_a_policy_that_wants_bigger_falls_alerts_later_or_not_at_all(
    store: InMemoryRunStore,
) -> None:
    # A fall of 0.4 is below a minimum effect of 0.5, but two runs of it are a
    # sustained decline of at least half of it: the drift rule opens it a run later.
    later = backtest(store, SUITE, with_overrides(RegressionPolicy(), min_effect=0.5))
    assert [run.run_id for run in later.alerted] == ["s07", "s08"]
    assert {i.kind for i in later.alerted[0].reports[0].items} == {DecisionKind.DRIFTING}
    # Below half of 0.9 even that never fires.
    quiet = backtest(store, SUITE, with_overrides(RegressionPolicy(), min_effect=0.9))
    assert quiet.runs_replayed == 9
    assert quiet.alerted == ()
    assert quiet.keys_alerted == ()


def test_overrides_replace_each_knob_and_are_validated() -> None:
    policy = RegressionPolicy(scorers={"exact": ScorerPolicy(0.05), "judge": ScorerPolicy(0.2)})
    changed = with_overrides(policy, fdr=0.01, correction="holm", baseline_runs=3, min_effect=0.3)
    assert (changed.fdr, changed.correction, changed.baseline_window) == (0.01, "holm", 3)
    assert changed.judge == changed.pass_rate == ScorerPolicy(0.3)
    assert dict(changed.scorers) == {"exact": ScorerPolicy(0.3), "judge": ScorerPolicy(0.3)}
    assert with_overrides(policy) == policy
    with pytest.raises(ValueError, match="fdr"):
        with_overrides(policy, fdr=0.7)


def test_the_history_is_listed_oldest_first_across_pages(store: InMemoryRunStore) -> None:
    assert scheduled_run_ids(store, SUITE, page=2) == [f"s{n:02d}" for n in range(1, 10)]
    assert scheduled_run_ids(store, "other") == []


def _run(run_id: str, fallen: int) -> RunScores:
    keyed = dict.fromkeys(KEYS, scores(fallen))
    aggs = [aggregate(f, s, list(v), 0, "fp") for (f, s), v in keyed.items()]
    cases = {k: {f"c{i:02d}": v for i, v in enumerate(vals)} for k, vals in keyed.items()}
    return RunScores.build(run_id, SUITE, "scheduled", 1.0, aggs, cases)


def test_the_history_kept_is_bounded_but_keeps_an_open_incidents_baseline() -> None:
    policy = RegressionPolicy(baseline_window=2, excursion_limit=1)
    limit = history_limit(policy)
    replay = Replay(policy)
    for n in range(3):
        replay.decide(_run(f"good{n}", 0))
    opened = replay.decide(_run("down0", FALLEN))
    assert {d.transition for d in opened.decisions} == {"opened"}
    for n in range(1, limit + 5):
        still = replay.decide(_run(f"down{n}", FALLEN))
        assert {d.kind for d in still.decisions} == {DecisionKind.STILL_REGRESSED}
    history = replay.history()
    # The newest runs, plus the two known-good runs the incident is measured against.
    assert len(history) == limit + 2
    assert [r.run_id for r in history[-2:]] == ["good1", "good2"][::-1]
    back = replay.decide(_run("back", 0))
    assert {d.transition for d in back.decisions} == {"recovered"}
    replay.decide(_run("after", 0))
    assert len(replay.history()) == limit  # no open incident: nothing older is kept
    # The replay decides as the detector does, given the same history.
    again = decide_run(_run("check", 0), replay.history(), policy)
    assert replay.decide(_run("check", 0)) == again
