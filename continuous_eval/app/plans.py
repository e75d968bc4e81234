"""Build runnable plans: targets, scorers and the judge from a scanned suite.

Adapters are imported where they are built, not at the top: an offline
``run`` then never loads the Anthropic SDK (about a second of start-up).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from continuous_eval.adapters.suite_files import (
    LoadedSuites,
    iter_cases,
)
from continuous_eval.adapters.user_code import UserCodePool
from continuous_eval.app.config import prices_from
from continuous_eval.app.scanning import ScannedFeature, ScannedSuite, scan_suite
from continuous_eval.core.fingerprint import FeatureFingerprint, fingerprint_run, hash_json
from continuous_eval.core.scorers import DeterministicScorer
from continuous_eval.core.suite import (
    AgentTarget,
    AnthropicTarget,
    Case,
    Feature,
    FrozenTarget,
    HttpTarget,
    LearnedScorer,
    LlmJudgeScorer,
    PythonScorer,
    PythonTarget,
    RecordedTarget,
    Scorer,
    scorer_name,
)
from continuous_eval.errors import ConfigError
from continuous_eval.ports import (
    CaseScorer,
    FeaturePlan,
    RunPlan,
    Target,
)
from continuous_eval.ports.evaluators import EvaluatorStore
from continuous_eval.ports.interactions import InteractionStore
from continuous_eval.ports.labels import EvalSetStore
from continuous_eval.ports.sandbox import Sandbox
from continuous_eval.settings import Settings

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

    from continuous_eval.adapters.learned_scorer import LearnedCaseScorer


class PlanBuilder:
    """Turns scanned suites into runnable plans, sharing clients between them.

    One Anthropic client serves every target and judge in the process (its
    connection pool is the point); it is created only when a suite needs it,
    so offline suites run without an API key. Likewise one sandbox (a pool
    of worker processes) runs every learned evaluator, started only when a
    suite has one.

    Args:
        settings: The process settings.
        loaded: The suite file.
        evaluators: Where ``type: learned`` scorers find their code; without
            one, a suite with a learned scorer is a config error.
        sandbox: Makes the sandbox learned code runs in (tests inject one);
            default ``adapters.sandbox.make_sandbox(settings)``, which raises
            ``SandboxUnavailable`` when it cannot isolate the code and the
            operator has not allowed running it bare.
    """

    def __init__(
        self,
        settings: Settings,
        loaded: LoadedSuites,
        *,
        evaluators: EvaluatorStore | None = None,
        sandbox: Callable[[], Sandbox] | None = None,
    ) -> None:
        self._settings = settings
        self._loaded = loaded
        self._prices = prices_from(settings)
        self._anthropic: AsyncAnthropic | None = None
        self._targets: dict[tuple[str, str], Target] = {}
        self._scorers: dict[tuple[str, str], list[CaseScorer]] = {}
        self._pools: dict[str, UserCodePool] = {}
        self._evaluators = evaluators
        self._make_sandbox = sandbox
        self._sandbox: Sandbox | None = None

    @property
    def pools(self) -> list[UserCodePool]:
        """The suites' user-code thread pools made so far (for metrics)."""
        return list(self._pools.values())

    def _pool(self, suite: str) -> UserCodePool:
        # One pool per suite, as large as its concurrency: a hung suite fills
        # its own threads and nobody else's.
        if suite not in self._pools:
            config = self._loaded.suites.suites[suite]
            size = config.concurrency or self._settings.suite_concurrency
            self._pools[suite] = UserCodePool(suite, size)
        return self._pools[suite]

    def _shared_sandbox(self) -> Sandbox:
        if self._sandbox is None:
            if self._make_sandbox is not None:
                self._sandbox = self._make_sandbox()
            else:
                from continuous_eval.adapters.sandbox import make_sandbox

                self._sandbox = make_sandbox(self._settings)
        return self._sandbox

    def _learned(self, location: str, config: LearnedScorer) -> LearnedCaseScorer:
        """The promoted version a learned scorer names; any other is a config error."""
        from continuous_eval.adapters.learned_scorer import LearnedCaseScorer
        from continuous_eval.adapters.sandbox import limits_from

        where = f"{location}.evaluator"
        if self._evaluators is None:
            raise ConfigError(
                self._loaded.file, where, "learned evaluators need the database's evaluator store"
            )
        name, version = config.ref
        found = self._evaluators.evaluator(name, version)
        if found is None:
            have = [e.ref for e in self._evaluators.list_evaluators(name)]
            known = f" (have: {', '.join(have)})" if have else " (no version of it is stored)"
            raise ConfigError(
                self._loaded.file, where, f"no learned evaluator {config.evaluator}{known}"
            )
        if not found.promoted:
            raise ConfigError(
                self._loaded.file,
                where,
                f"{config.evaluator} is not promoted; only a promoted version runs in a suite",
            )
        return LearnedCaseScorer(config, found, self._shared_sandbox(), limits_from(self._settings))

    def _client(self) -> AsyncAnthropic:
        if self._anthropic is None:
            from continuous_eval.adapters.anthropic_client import make_anthropic_client

            self._anthropic = make_anthropic_client(self._settings)
        return self._anthropic

    def _target(self, suite: str, feature: str, config: Feature) -> Target:
        # Adapters are built once per feature and reused by every run of a
        # long-running daemon: one HTTP client (and connection pool) each.
        cached = self._targets.get((suite, feature))
        if cached is not None:
            return cached
        target = config.target
        location = f"suites.{suite}.features.{feature}.target"
        built: Target
        if isinstance(target, PythonTarget):
            from continuous_eval.adapters.targets.python_target import PythonCallableTarget

            fn = self._loaded.import_callable(target.callable, f"{location}.callable")
            built = PythonCallableTarget(fn, self._pool(suite))
        elif isinstance(target, HttpTarget):
            from continuous_eval.adapters.targets.http_target import HttpTargetAdapter

            built = HttpTargetAdapter(target)
        elif isinstance(target, AnthropicTarget):
            from continuous_eval.adapters.targets.anthropic_target import AnthropicTargetAdapter

            built = AnthropicTargetAdapter(target, self._client(), self._prices)
        elif isinstance(target, FrozenTarget):
            from continuous_eval.adapters.targets.frozen_target import FrozenOutputTarget

            built = FrozenOutputTarget()
        elif isinstance(target, RecordedTarget):
            from continuous_eval.adapters.targets.frozen_target import RecordedOutputTarget

            built = RecordedOutputTarget()
        elif isinstance(target, AgentTarget):
            from continuous_eval.adapters.targets.agent_target import AgentTargetAdapter

            built = AgentTargetAdapter(target)
        else:  # pragma: no cover - the union is exhaustive
            raise ConfigError(self._loaded.file, location, "unknown target type")
        self._targets[(suite, feature)] = built
        return built

    def _scorer(self, suite: str, feature: str, index: int, config: Scorer) -> CaseScorer:
        location = f"suites.{suite}.features.{feature}.scorers[{index}]"
        if isinstance(config, LlmJudgeScorer):
            from continuous_eval.adapters.judge import LlmJudge

            return LlmJudge(config, self._client(), self._settings.judge_model, self._prices)
        if isinstance(config, PythonScorer):
            from continuous_eval.adapters.python_scorer import PythonCallableScorer

            fn = self._loaded.import_callable(config.callable, f"{location}.callable")
            return PythonCallableScorer(config, fn, self._pool(suite))
        if isinstance(config, LearnedScorer):
            return self._learned(location, config)
        return DeterministicScorer(config)

    def build_all(self, scanned: Sequence[ScannedSuite]) -> list[RunPlan]:
        """Build several suites' plans, reporting every callable that fails to import at once."""
        plans, problems = [], []
        for item in scanned:
            try:
                plans.append(self.build(item))
            except ConfigError as exc:
                problems.append(exc)
        if problems:
            raise ConfigError.combine(problems)
        return plans

    def build(self, scanned: ScannedSuite) -> RunPlan:
        """Import callables and create adapters for a scanned suite."""
        features = []
        problems = []
        for item in scanned.features:
            try:
                target = self._target(scanned.name, item.name, item.feature)
                scorers = self._feature_scorers(scanned.name, item)
            except ConfigError as exc:
                problems.append(exc)
                continue
            features.append(
                FeaturePlan(
                    name=item.name,
                    cases=partial(self._cases, scanned.name, item),
                    case_count=item.case_count,
                    target=target,
                    scorers=scorers,
                    budgeted=frozenset(
                        scorer_name(s)
                        for s in item.feature.scorers
                        if isinstance(s, LlmJudgeScorer)
                    ),
                )
            )
        if problems:
            raise ConfigError.combine(problems)
        fingerprint = fingerprint_run(
            [
                _with_code(item.fingerprint, self._scorers[(scanned.name, item.name)])
                for item in scanned.features
            ]
        )
        return RunPlan(
            suite=scanned.name,
            features=features,
            concurrency=scanned.suite.concurrency or self._settings.suite_concurrency,
            fingerprint=fingerprint.value,
            fingerprint_parts=dict(fingerprint.parts),
            pair_fingerprints=dict(fingerprint.pairs),
        )

    def _feature_scorers(self, suite: str, item: ScannedFeature) -> list[CaseScorer]:
        key = (suite, item.name)
        if key not in self._scorers:
            self._scorers[key] = [
                self._scorer(suite, item.name, i, s) for i, s in enumerate(item.feature.scorers)
            ]
        return self._scorers[key]

    def _cases(self, suite: str, item: ScannedFeature) -> Iterator[Case]:
        if item.cases is not None:
            return iter(item.cases)  # an online feature's sample, taken once
        return iter_cases(
            item.feature.dataset,
            self._loaded.base_dir,
            config_file=self._loaded.path,
            where=f"suites.{suite}.features.{item.name}.dataset",
        )

    async def aclose(self) -> None:
        """Close the targets' and the shared client's connections."""
        for target in self._targets.values():
            await target.aclose()
        self._targets.clear()
        self._scorers.clear()
        for pool in self._pools.values():
            pool.close()  # idle threads end; a hung one is a daemon thread, never waited for
        self._pools.clear()
        if self._sandbox is not None:
            await self._sandbox.aclose()  # kills every worker process
            self._sandbox = None
        if self._anthropic is not None:
            await self._anthropic.close()
            self._anthropic = None


def _with_code(
    fingerprint: FeatureFingerprint, scorers: Sequence[CaseScorer]
) -> FeatureFingerprint:
    """Fold each learned scorer's code hash into its fingerprint: other code, other baseline."""
    from continuous_eval.adapters.learned_scorer import LearnedCaseScorer

    codes = {s.name: s.code_sha256 for s in scorers if isinstance(s, LearnedCaseScorer)}
    if not codes:
        return fingerprint
    hashes = {
        name: hash_json({"config": value, "code": codes[name]}) if name in codes else value
        for name, value in fingerprint.scorers.items()
    }
    return replace(fingerprint, scorers=hashes)


class SuitePlans:
    """The daemon's plan source: each run re-reads its datasets, adapters are reused.

    Online features sample their cases from ``traffic``, the store of recorded
    interactions, in the window that ends at the run's ``as_of``; calibrated
    features judge ``labels``' labelled cases as of the same time.
    """

    def __init__(
        self,
        settings: Settings,
        loaded: LoadedSuites,
        builder: PlanBuilder,
        traffic: InteractionStore | None = None,
        labels: EvalSetStore | None = None,
    ) -> None:
        self._settings = settings
        self._loaded = loaded
        self._builder = builder
        self._traffic = traffic
        self._labels = labels

    def plan(self, suite: str, features: Sequence[str], as_of: datetime | None = None) -> RunPlan:
        """Validate and fingerprint the suite's datasets (sample its online ones), then build."""
        scanned = scan_suite(
            self._loaded,
            suite,
            features,
            self._settings,
            traffic=self._traffic,
            as_of=as_of,
            labels=self._labels,
        )
        return self._builder.build(scanned)
