"""Wire the pieces: settings and a suite file in, a store and runnable plans out.

This is one of the few modules allowed to know every adapter; the service
layer only sees the ports.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from continuous_eval.adapters.clock import SystemClock
from continuous_eval.adapters.db import migrate
from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.adapters.judge import LlmJudge
from continuous_eval.adapters.python_scorer import PythonCallableScorer
from continuous_eval.adapters.suite_files import (
    LoadedSuites,
    iter_cases,
    scan_dataset,
)
from continuous_eval.adapters.targets.anthropic_target import AnthropicTargetAdapter
from continuous_eval.adapters.targets.http_target import HttpTargetAdapter
from continuous_eval.adapters.targets.python_target import PythonCallableTarget
from continuous_eval.core.fingerprint import FeatureFingerprint, fingerprint_run, hash_json
from continuous_eval.core.pricing import Price
from continuous_eval.core.scorers import DeterministicScorer
from continuous_eval.core.suite import (
    AnthropicTarget,
    Case,
    Feature,
    HttpTarget,
    LlmJudgeScorer,
    PythonScorer,
    PythonTarget,
    Scorer,
    Suite,
    scorer_name,
)
from continuous_eval.errors import ConfigError
from continuous_eval.ports import CaseScorer, Target
from continuous_eval.service.runner import FeaturePlan, RunPlan
from continuous_eval.settings import DEFAULT_DATABASE_URL, Settings

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic
    from sqlalchemy import Engine

log = logging.getLogger(__name__)


def prices_from(settings: Settings) -> dict[str, Price]:
    """Convert the settings' price table into the core's records."""
    return {
        model: Price(p.input_per_mtok, p.output_per_mtok) for model, p in settings.prices.items()
    }


def open_store(settings: Settings, *, migrate_embedded: bool = True) -> tuple[Engine, SqlRunStore]:
    """Connect to the configured database and return its engine and run store.

    On SQLite, the embedded default, migrations are applied here so a new user
    needs no separate step; on Postgres the schema must already be at head
    (``continuous-eval db upgrade``), because several replicas racing to
    migrate a shared production database is how outages start.
    """
    engine = make_engine(settings.database_url)
    if engine.dialect.name == "sqlite" and migrate_embedded:
        migrate.upgrade(engine)
    else:
        migrate.require_head(engine)
    return engine, SqlRunStore(engine, SystemClock())


def uses_default_database(settings: Settings) -> bool:
    """Whether the embedded SQLite default is in use (for messages to the user)."""
    return settings.database_url == DEFAULT_DATABASE_URL


@dataclass(frozen=True)
class ScannedFeature:
    """A feature whose dataset has been read through once and found valid."""

    name: str
    feature: Feature
    case_count: int
    fingerprint: FeatureFingerprint


@dataclass(frozen=True)
class ScannedSuite:
    """A suite ready to be built into a plan: every selected dataset validated."""

    name: str
    suite: Suite
    features: tuple[ScannedFeature, ...]


def select_suites(loaded: LoadedSuites, suite: str | None) -> list[str]:
    """Return the suites to run: the one named, or all of them in file order."""
    names = list(loaded.suites.suites)
    if suite is None:
        return names
    if suite not in loaded.suites.suites:
        raise ConfigError(
            loaded.file, "suites", f"no suite named {suite!r} (have: {', '.join(names)})"
        )
    return [suite]


def _scorer_hash(scorer: Scorer, judge_model: str) -> str:
    payload = scorer.model_dump(mode="json", by_alias=True)
    if isinstance(scorer, LlmJudgeScorer):
        payload["model"] = scorer.model or judge_model
    return hash_json(payload)


def scan_suite(
    loaded: LoadedSuites, suite_name: str, features: Sequence[str], settings: Settings
) -> ScannedSuite:
    """Validate a suite's selected datasets end to end (streaming) and fingerprint them.

    Called before a run is created, so a bad row at line 19,000 stops the run
    before any money is spent and no run is left ``running``.
    """
    suite = loaded.suites.suites[suite_name]
    selected = list(features) or list(suite.features)
    unknown = [f for f in selected if f not in suite.features]
    if unknown:
        raise ConfigError(
            loaded.file,
            f"suites.{suite_name}.features",
            f"no feature named {unknown[0]!r} (have: {', '.join(suite.features)})",
        )
    scanned = []
    for name in selected:
        feature = suite.features[name]
        where = f"suites.{suite_name}.features.{name}.dataset"
        scan = scan_dataset(feature.dataset, loaded.base_dir, config_file=loaded.path, where=where)
        fp = FeatureFingerprint(
            feature=name,
            dataset=scan.sha256,
            target=hash_json(feature.target.model_dump(mode="json")),
            scorers={
                scorer_name(s): _scorer_hash(s, settings.judge_model) for s in feature.scorers
            },
        )
        scanned.append(ScannedFeature(name, feature, scan.count, fp))
    return ScannedSuite(suite_name, suite, tuple(scanned))


class PlanBuilder:
    """Turns scanned suites into runnable plans, sharing clients between them.

    One Anthropic client serves every target and judge in the process (its
    connection pool is the point); it is created only when a suite needs it,
    so offline suites run without an API key.
    """

    def __init__(self, settings: Settings, loaded: LoadedSuites) -> None:
        self._settings = settings
        self._loaded = loaded
        self._prices = prices_from(settings)
        self._anthropic: AsyncAnthropic | None = None
        self._targets: list[Target] = []

    def _client(self) -> AsyncAnthropic:
        if self._anthropic is None:
            from continuous_eval.adapters.anthropic_client import make_anthropic_client

            self._anthropic = make_anthropic_client(self._settings)
        return self._anthropic

    def _target(self, suite: str, feature: str, config: Feature) -> Target:
        target = config.target
        location = f"suites.{suite}.features.{feature}.target"
        built: Target
        if isinstance(target, PythonTarget):
            fn = self._loaded.import_callable(target.callable, f"{location}.callable")
            built = PythonCallableTarget(fn)
        elif isinstance(target, HttpTarget):
            built = HttpTargetAdapter(target)
        elif isinstance(target, AnthropicTarget):
            built = AnthropicTargetAdapter(target, self._client(), self._prices)
        else:  # pragma: no cover - the union is exhaustive
            raise ConfigError(self._loaded.file, location, "unknown target type")
        self._targets.append(built)
        return built

    def _scorer(self, suite: str, feature: str, index: int, config: Scorer) -> CaseScorer:
        location = f"suites.{suite}.features.{feature}.scorers[{index}]"
        if isinstance(config, LlmJudgeScorer):
            return LlmJudge(config, self._client(), self._settings.judge_model, self._prices)
        if isinstance(config, PythonScorer):
            fn = self._loaded.import_callable(config.callable, f"{location}.callable")
            return PythonCallableScorer(config, fn)
        return DeterministicScorer(config)

    def build(self, scanned: ScannedSuite) -> RunPlan:
        """Import callables and create adapters for a scanned suite."""
        features = []
        for item in scanned.features:
            features.append(
                FeaturePlan(
                    name=item.name,
                    cases=partial(self._cases, scanned.name, item),
                    case_count=item.case_count,
                    target=self._target(scanned.name, item.name, item.feature),
                    scorers=[
                        self._scorer(scanned.name, item.name, i, s)
                        for i, s in enumerate(item.feature.scorers)
                    ],
                )
            )
        fingerprint = fingerprint_run([f.fingerprint for f in scanned.features])
        return RunPlan(
            suite=scanned.name,
            features=features,
            concurrency=scanned.suite.concurrency or self._settings.suite_concurrency,
            fingerprint=fingerprint.value,
            fingerprint_parts=dict(fingerprint.parts),
            pair_fingerprints=dict(fingerprint.pairs),
        )

    def _cases(self, suite: str, item: ScannedFeature) -> Iterator[Case]:
        return iter_cases(
            item.feature.dataset,
            self._loaded.base_dir,
            config_file=self._loaded.path,
            where=f"suites.{suite}.features.{item.name}.dataset",
        )

    async def aclose(self) -> None:
        """Close the targets' and the shared client's connections."""
        for target in self._targets:
            await target.aclose()
        self._targets.clear()
        if self._anthropic is not None:
            await self._anthropic.close()
            self._anthropic = None
