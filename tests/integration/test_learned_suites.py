"""Suites with ``type: learned`` scorers: promoted versions run in the real sandbox.

The plan builder finds the version in an ``EvaluatorStore`` (the in-memory
fake here), refuses an unknown or unpromoted one as a config error naming the
suite key, folds the code's hash into the fingerprint, and a run over the
real bubblewrap pool records a limit hit as the case's error with its reason.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from continuous_eval.adapters.sandbox import WorkerPool, limits_from
from continuous_eval.adapters.sandbox.command import worker_command
from continuous_eval.adapters.suite_files import LoadedSuites, load_suite_file
from continuous_eval.app.plans import PlanBuilder
from continuous_eval.app.scanning import scan_suite
from continuous_eval.core.evaluators import EvaluatorMetrics, NewEvaluator
from continuous_eval.core.models import RunStatus
from continuous_eval.errors import ConfigError, SandboxUnavailable
from continuous_eval.ports import RunPlan
from continuous_eval.service.runner import Runner
from continuous_eval.settings import Settings
from continuous_eval.testing import InMemoryRunStore
from continuous_eval.testing.builders import plan_run
from continuous_eval.testing.evaluators import InMemoryEvaluatorStore
from tests.fixtures.sandbox import bwrap_path

pytestmark = pytest.mark.slow

SETTINGS = Settings(sandbox_cpu_s=1, sandbox_wall_s=4, sandbox_memory_mb=256)

REFUND_CODE = (
    "import re\n\ndef score(output, case):\n"
    "    return {'score': 1.0 if re.search('refund', output) else 0.0, 'reason': 'looked'}\n"
)
HOG_CODE = "def score(output, case):\n    return len(b' ' * 2_000_000_000)\n"
RATIO_CODE = "def score(output, case):\n    return len(output) / 10\n"

METRICS = EvaluatorMetrics(accuracy=0.9, precision=0.9, recall=0.9, train_cases=8, test_cases=4)


def _add(store: InMemoryEvaluatorStore, name: str, code: str, *, promote: bool = True) -> None:
    made = store.add_evaluator(
        NewEvaluator(name=name, eval_set="s", code=code, model="m", prompt="p", metrics=METRICS)
    )
    if promote:
        store.promote(name, made.version, floor=0.5)


def _suite_file(tmp_path: Path, scorers: list[dict[str, object]]) -> LoadedSuites:
    cases = [
        {"id": "a", "input": "q", "output": "you get a refund"},
        {"id": "b", "input": "q", "output": "no"},
    ]
    config = {
        "suites": {
            "support": {
                "features": {
                    "refunds": {
                        "dataset": {"cases": cases},
                        "target": {"type": "frozen"},
                        "scorers": scorers,
                    }
                }
            }
        }
    }
    path = tmp_path / "suites.yaml"
    path.write_text(json.dumps(config))
    return load_suite_file(path)


@pytest.fixture
async def sandbox() -> AsyncIterator[WorkerPool]:
    limits = limits_from(SETTINGS)
    pool = WorkerPool(worker_command(limits, bwrap=bwrap_path()), limits, size=2)
    yield pool
    await pool.aclose()


def _plan(loaded: LoadedSuites, builder: PlanBuilder) -> RunPlan:
    return builder.build(scan_suite(loaded, "support", [], SETTINGS))


def test_the_suite_file_names_a_bad_ref_by_its_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as bad:
        _suite_file(tmp_path, [{"type": "learned", "evaluator": "refund"}])
    assert "suites.support.features.refunds.scorers[0].evaluator" in str(bad.value)
    assert "NAME@VERSION" in str(bad.value)


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        ("missing@1", "no learned evaluator missing@1 (no version of it is stored)"),
        ("refund@5", "no learned evaluator refund@5 (have: refund@1, refund@2)"),
        ("refund@2", "refund@2 is not promoted; only a promoted version runs in a suite"),
    ],
)
def test_an_unknown_or_unpromoted_version_is_a_config_error(
    tmp_path: Path, ref: str, problem: str
) -> None:
    evaluators = InMemoryEvaluatorStore()
    _add(evaluators, "refund", REFUND_CODE)
    _add(evaluators, "refund", REFUND_CODE, promote=False)
    loaded = _suite_file(tmp_path, [{"type": "learned", "evaluator": ref}])
    builder = PlanBuilder(SETTINGS, loaded, evaluators=evaluators, sandbox=_no_sandbox)
    with pytest.raises(ConfigError) as bad:
        _plan(loaded, builder)
    assert bad.value.location == "suites.support.features.refunds.scorers[0].evaluator"
    assert bad.value.problem == problem


def test_without_an_evaluator_store_a_learned_scorer_is_a_config_error(tmp_path: Path) -> None:
    loaded = _suite_file(tmp_path, [{"type": "learned", "evaluator": "refund@1"}])
    with pytest.raises(ConfigError) as bad:
        _plan(loaded, PlanBuilder(SETTINGS, loaded, sandbox=_no_sandbox))
    assert bad.value.problem == "learned evaluators need the database's evaluator store"


def _no_sandbox() -> WorkerPool:
    raise AssertionError("the sandbox must not be made for a plan that fails")


async def test_the_fingerprint_includes_the_versions_code(
    tmp_path: Path, sandbox: WorkerPool
) -> None:
    loaded = _suite_file(tmp_path, [{"type": "learned", "evaluator": "refund@1"}])
    fingerprints = []
    for code in (REFUND_CODE, REFUND_CODE, RATIO_CODE):
        evaluators = InMemoryEvaluatorStore()
        _add(evaluators, "refund", code)
        builder = PlanBuilder(SETTINGS, loaded, evaluators=evaluators, sandbox=lambda: sandbox)
        plan = _plan(loaded, builder)
        fingerprints.append(plan.pair_fingerprints[("refunds", "learned")])
    assert fingerprints[0] == fingerprints[1]
    assert fingerprints[0] != fingerprints[2]


async def test_a_run_scores_with_learned_code_and_records_a_limit_hit_as_an_error(
    tmp_path: Path, sandbox: WorkerPool
) -> None:
    evaluators = InMemoryEvaluatorStore()
    _add(evaluators, "refund", REFUND_CODE)
    _add(evaluators, "hog", HOG_CODE)
    _add(evaluators, "ratio", RATIO_CODE)
    scorers: list[dict[str, object]] = [
        {"type": "learned", "evaluator": "refund@1", "name": "refund"},
        {"type": "learned", "evaluator": "hog@1", "name": "hog"},
        {"type": "learned", "evaluator": "ratio@1", "name": "ratio", "pass_threshold": 1.0},
    ]
    loaded = _suite_file(tmp_path, scorers)
    builder = PlanBuilder(SETTINGS, loaded, evaluators=evaluators, sandbox=lambda: sandbox)
    plan = _plan(loaded, builder)
    store = InMemoryRunStore()
    runner = Runner(store, max_concurrency=4, completeness_floor=0.0)
    try:
        done = await runner.execute(plan_run(store, plan), plan)
    finally:
        runner.close()
    assert done.status is RunStatus.SUCCEEDED
    results = {(r.case_id, r.scorer): r for r in store.worst_results(done.id, limit=50)}
    assert len(results) == 6
    refund_a, refund_b = results[("a", "refund")], results[("b", "refund")]
    assert (refund_a.status, refund_a.score, refund_a.passed) == ("ok", 1.0, True)
    assert refund_a.rationale == "looked"
    assert (refund_b.score, refund_b.passed) == (0.0, False)
    for case in ("a", "b"):
        hog = results[(case, "hog")]
        assert hog.status == "error"
        assert hog.error == "scorer failed: learned evaluator hog@1 hit its memory limit (256 MB)"
    ratio_a, ratio_b = results[("a", "ratio")], results[("b", "ratio")]
    assert (ratio_a.score, ratio_a.passed) == (1.6, True)  # 16 characters / 10, over 1.0
    assert (ratio_b.score, ratio_b.passed) == (0.2, False)
    await builder.aclose()
    assert sandbox.pids == []  # the builder closed the sandbox with its pools


def test_without_a_sandbox_learned_code_is_refused_at_plan_time(tmp_path: Path) -> None:
    evaluators = InMemoryEvaluatorStore()
    _add(evaluators, "refund", REFUND_CODE)
    loaded = _suite_file(tmp_path, [{"type": "learned", "evaluator": "refund@1"}])
    settings = Settings(sandbox="none")  # and allow_unsandboxed is off by default
    builder = PlanBuilder(settings, loaded, evaluators=evaluators)
    with pytest.raises(SandboxUnavailable) as refused:
        builder.build(scan_suite(loaded, "support", [], settings))
    assert "CONTINUOUS_EVAL_ALLOW_UNSANDBOXED=true" in str(refused.value)
