"""Judge calibration through scheduled runs: the runner, the finish, the planner and the stores.

A suite whose feature is calibrated against an eval set of 30 labelled
cases runs on the schedule with a judge scripted to disagree with people on
more cases each run. The agreement is stored every run, falls, and raises the
"no longer agrees" notice exactly once; the run after, still under the floor,
raises nothing; the judge agreeing again sends one recovery notice. The
``@labels`` results are never a regression key. On every backend of the run
store (and the agreement store with it).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from continuous_eval.adapters.db.agreement import SqlAgreementStore
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.adapters.suite_files import LoadedSuites
from continuous_eval.adapters.targets.frozen_target import FrozenOutputTarget
from continuous_eval.app.scanning import ScannedFeature, scan_suite
from continuous_eval.core.fingerprint import fingerprint_run
from continuous_eval.core.labels import EvalCase, NewLabel
from continuous_eval.core.models import AlertRecord, NewRun, RunRecord, RunStatus, ScoreOutcome
from continuous_eval.core.suite import Case, Dataset, parse_suite_file
from continuous_eval.ports import FeaturePlan, RunPlan, RunStore
from continuous_eval.ports.agreement import AgreementStore
from continuous_eval.service.alerts import AlertPlanner
from continuous_eval.service.calibration import Calibrator
from continuous_eval.service.detection import make_detect
from continuous_eval.service.runner import Runner
from continuous_eval.settings import Settings
from continuous_eval.testing import FakeClock
from continuous_eval.testing.agreement import InMemoryAgreementStore
from continuous_eval.testing.labels import InMemoryEvalSetStore

SUITE_FILE = {
    "suites": {
        "support": {
            "features": {
                "refunds": {
                    "dataset": {
                        "cases": [
                            {"id": f"p{i}", "input": f"q{i}", "output": "a"} for i in range(5)
                        ]
                    },
                    "target": {"type": "frozen"},
                    "scorers": [{"type": "llm_judge", "name": "judge", "rubric": "Right?"}],
                    "calibration": {"eval_set": "gold", "min_kappa": 0.6, "min_cases": 20},
                }
            }
        }
    }
}
LABELS = {f"g{i:02d}": float(1 + i % 5) for i in range(30)}
"""People's rating of each labelled case."""


class DriftingJudge:
    """A judge that agrees with people except on its first ``wrong`` labelled cases,
    where it says the opposite end of the scale."""

    name = "judge"

    def __init__(self) -> None:
        self.wrong = 0

    async def score(self, output: str, case: Case) -> ScoreOutcome:
        label = LABELS.get(case.id)
        if label is None:
            return ScoreOutcome(5.0, passed=True)  # the product's own cases
        score = label
        if sorted(LABELS).index(case.id) < self.wrong:
            score = 5.0 if label <= 2 else 1.0
        return ScoreOutcome(score, passed=score >= 4)


def _cases(item: ScannedFeature) -> tuple[Case, ...]:
    if item.cases is not None:
        return item.cases  # the labelled cases, read at plan time
    assert isinstance(item.feature.dataset, Dataset)
    return tuple(item.feature.dataset.cases or ())


class World:
    def __init__(self, store: RunStore, clock: FakeClock) -> None:
        self.clock = clock
        self.store = store
        self.eval_sets = InMemoryEvalSetStore(self.clock)
        self.agreements: AgreementStore = (
            SqlAgreementStore(store.engine, clock)
            if isinstance(store, SqlRunStore)
            else InMemoryAgreementStore(clock)
        )
        parsed = parse_suite_file(SUITE_FILE)
        path = Path("/nonexistent/suites.yaml")
        self.loaded = LoadedSuites(parsed, path, path.parent, "suites.yaml")
        self.judge = DriftingJudge()
        planner = AlertPlanner(
            make_detect({}),
            {},
            calibrator=Calibrator(parsed.suites, self.eval_sets, self.agreements),
        )
        self.runner = Runner(self.store, max_concurrency=8, plan_alerts=planner.plan)
        gold = self.eval_sets.create_eval_set("gold", "1-5")
        cases = [EvalCase(cid, input=f"question {cid}", output=f"answer {cid}") for cid in LABELS]
        self.eval_sets.put_cases(gold.id, cases)
        self.eval_sets.add_labels(
            gold.id, [NewLabel(cid, "ann", value) for cid, value in LABELS.items()]
        )
        self.runs = 0

    def plan(self, as_of: datetime) -> RunPlan:
        scanned = scan_suite(
            self.loaded, "support", [], Settings(), as_of=as_of, labels=self.eval_sets
        )
        features = [
            FeaturePlan(
                name=item.name,
                cases=partial(iter, _cases(item)),
                case_count=item.case_count,
                target=FrozenOutputTarget(),
                scorers=[self.judge],
            )
            for item in scanned.features
        ]
        fingerprint = fingerprint_run([f.fingerprint for f in scanned.features])
        return RunPlan(
            suite="support",
            features=features,
            concurrency=4,
            fingerprint=fingerprint.value,
            pair_fingerprints=dict(fingerprint.pairs),
        )

    async def scheduled_run(self, wrong: int) -> RunRecord:
        self.runs += 1
        self.clock.advance(timedelta(hours=1))
        self.judge.wrong = wrong
        slot = self.clock.now()
        plan = self.plan(slot)
        run = self.store.create_run(
            NewRun(
                id=f"run-{self.runs}",
                suite="support",
                run_type="scheduled",
                features=tuple(f.name for f in plan.features),
                cases_total=plan.cases_total,
                total=plan.results_total,
                fingerprint=plan.fingerprint,
                scheduled_for=slot,
            )
        )
        return await self.runner.execute(run, plan)

    def notices(self, kind: str) -> list[AlertRecord]:
        return [a for a in self.store.list_alerts(suite="support", limit=200) if a.kind == kind]


@pytest.fixture
def world(store: RunStore, clock: FakeClock) -> Iterator[World]:
    """The stores on every backend (the eval sets in memory: their SQL store is not ours)."""
    made = World(store, clock)
    yield made
    made.runner.close()


async def test_agreement_falls_and_the_alert_fires_once_then_recovers(world: World) -> None:
    kappas: list[float] = []
    fired = []
    for wrong in (0, 2, 12, 14):
        run = await world.scheduled_run(wrong)
        assert run.status is RunStatus.SUCCEEDED
        (row,) = world.agreements.run_agreements(run.id)
        assert row.agreement.n == 30
        assert row.agreement.kappa is not None
        kappas.append(row.agreement.kappa)
        fired.append(len(world.notices("judge_agreement")))
    assert kappas[0] == pytest.approx(1.0)
    assert all(a > b for a, b in itertools.pairwise(kappas))
    assert kappas[1] >= 0.6
    assert kappas[2] < 0.6
    # Fired on the third run, exactly once; the fourth, still under, adds nothing.
    assert fired == [0, 0, 1, 1]
    (notice,) = world.notices("judge_agreement")
    assert notice.run_id == "run-3"
    assert (notice.feature, notice.scorer) == ("refunds", "judge")
    assert notice.summary["eval_set"] == "gold"
    assert notice.summary["floor"] == 0.6
    assert notice.summary["previous"] == pytest.approx(kappas[1])
    worst = notice.summary["contradictions"]
    assert isinstance(worst, list)
    assert worst[0]["gap"] == 4.0
    assert world.notices("agreement_ok") == []

    back = await world.scheduled_run(0)
    (ok,) = world.notices("agreement_ok")
    assert ok.run_id == back.id
    assert len(world.notices("judge_agreement")) == 1


async def test_labels_results_are_never_regression_keys(world: World) -> None:
    for wrong in (0, 0, 0, 0, 0, 25):
        run = await world.scheduled_run(wrong)
    keys = {(d.feature, d.scorer) for d in world.store.get_decisions(run.id)}
    assert keys == {("refunds", "judge")}
    kinds = {a.kind for a in world.store.list_alerts(suite="support", limit=200)}
    assert kinds.isdisjoint({"regression", "judge_drift"})
