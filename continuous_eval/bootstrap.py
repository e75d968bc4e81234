"""Wire the pieces: settings and a suite file in, a store and runnable plans out.

This is one of the few modules allowed to know every adapter; the service
layer only sees the ports. Adapters are imported where they are built, not
at the top: an offline ``run`` then never loads the Anthropic SDK, the email
SDK or the web stack (about a second and 60 MB of start-up between them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from continuous_eval.adapters.db import migrate
from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.adapters.suite_files import (
    LoadedSuites,
    iter_cases,
    scan_dataset,
)
from continuous_eval.adapters.user_code import UserCodePool
from continuous_eval.core.fingerprint import FeatureFingerprint, fingerprint_run, hash_json
from continuous_eval.core.pricing import Price
from continuous_eval.core.regression import (
    JUDGE_DEFAULTS,
    PASS_RATE_DEFAULTS,
    RegressionPolicy,
    ScorerPolicy,
)
from continuous_eval.core.scorers import DeterministicScorer
from continuous_eval.core.secrets import Scrubber
from continuous_eval.core.suite import (
    ANCHOR_SUFFIX,
    AnthropicTarget,
    Case,
    Feature,
    FrozenTarget,
    HttpTarget,
    LlmJudgeScorer,
    PythonScorer,
    PythonTarget,
    Scorer,
    Suite,
    scorer_name,
)
from continuous_eval.errors import ConfigError, ContinuousEvalError
from continuous_eval.ports import (
    AlertChannel,
    CaseScorer,
    FeaturePlan,
    RunPlan,
    SuiteSchedule,
    Target,
)
from continuous_eval.service.alerts import AlertDispatcher, AlertPlanner, NoticeRender, Render
from continuous_eval.service.daemon import Daemon, DaemonConfig
from continuous_eval.service.detection import make_detect
from continuous_eval.service.runner import Runner
from continuous_eval.settings import DEFAULT_DATABASE_URL, Settings

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic
    from sqlalchemy import Engine

    from continuous_eval.adapters.metrics import DaemonMetrics


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
        migrate.upgrade_if_behind(engine)
    else:
        migrate.require_head(engine)
    # No clock: every time the store writes is the database's (see SqlRunStore).
    return engine, SqlRunStore(engine)


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
    # What is measured, not how alerts are tuned: a new threshold keeps the baseline.
    payload = scorer.model_dump(mode="json", by_alias=True, exclude={"regression_drop"})
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
    # A run's features name its anchors too (``<feature>@anchors``); they come with it.
    named = (f.removesuffix(ANCHOR_SUFFIX) for f in features)
    selected = list(dict.fromkeys(named)) or list(suite.features)
    unknown = [f for f in selected if f not in suite.features]
    if unknown:
        raise ConfigError(
            loaded.file,
            f"suites.{suite_name}.features",
            f"no feature named {unknown[0]!r} (have: {', '.join(suite.features)})",
        )
    scanned = []
    problems: list[ConfigError] = []
    for name in selected:
        configured = suite.features[name]
        anchors = configured.anchor_feature()
        parts = [(name, configured, "dataset")]
        if anchors is not None:
            parts.append((name + ANCHOR_SUFFIX, anchors, "anchors"))
        for run_name, feature, field in parts:
            where = f"suites.{suite_name}.features.{name}.{field}"
            try:
                scan = scan_dataset(
                    feature.dataset, loaded.base_dir, config_file=loaded.path, where=where
                )
                if isinstance(feature.target, FrozenTarget):
                    _check_frozen_outputs(loaded, feature, where)
            except ConfigError as exc:
                problems.append(exc)  # every dataset's first problem, in one report
                continue
            fp = FeatureFingerprint(
                feature=run_name,
                dataset=scan.sha256,
                target=hash_json(feature.target.model_dump(mode="json")),
                scorers={
                    scorer_name(s): _scorer_hash(s, settings.judge_model) for s in feature.scorers
                },
            )
            scanned.append(ScannedFeature(run_name, feature, scan.count, fp))
    if problems:
        raise ConfigError.combine(problems)
    return ScannedSuite(suite_name, suite, tuple(scanned))


def _check_frozen_outputs(loaded: LoadedSuites, feature: Feature, where: str) -> None:
    """Every case of a frozen target needs its ``output``; say which one has none."""
    for case in iter_cases(feature.dataset, loaded.base_dir, config_file=loaded.path, where=where):
        if case.output is None:
            raise ConfigError(loaded.file, f"{where} case {case.id!r}", "has no 'output' to score")


def scan_suites(
    loaded: LoadedSuites, names: Sequence[str], features: Sequence[str], settings: Settings
) -> list[ScannedSuite]:
    """Scan several suites, reporting the problems of all of them at once."""
    scanned, problems = [], []
    for name in names:
        try:
            scanned.append(scan_suite(loaded, name, features, settings))
        except ConfigError as exc:
            problems.append(exc)
    if problems:
        raise ConfigError.combine(problems)
    return scanned


def import_callables(loaded: LoadedSuites, scanned: Sequence[ScannedSuite]) -> None:
    """Import every Python target and scorer the suites name, reporting all failures at once.

    ``check-config`` uses it to prove a suite file runnable without building
    clients (and so without an API key).
    """
    problems = []
    for suite in scanned:
        for item in suite.features:
            where = f"suites.{suite.name}.features.{item.name}"
            specs = []
            if isinstance(item.feature.target, PythonTarget):
                specs.append((item.feature.target.callable, f"{where}.target.callable"))
            for i, scorer in enumerate(item.feature.scorers):
                if isinstance(scorer, PythonScorer):
                    specs.append((scorer.callable, f"{where}.scorers[{i}].callable"))
            for spec, location in specs:
                try:
                    loaded.import_callable(spec, location)
                except ConfigError as exc:
                    problems.append(exc)
    if problems:
        raise ConfigError.combine(problems)


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
        self._targets: dict[tuple[str, str], Target] = {}
        self._scorers: dict[tuple[str, str], list[CaseScorer]] = {}
        self._pools: dict[str, UserCodePool] = {}

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
        fingerprint = fingerprint_run([f.fingerprint for f in scanned.features])
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
        if self._anthropic is not None:
            await self._anthropic.close()
            self._anthropic = None


class SuitePlans:
    """The daemon's plan source: each run re-reads its datasets, adapters are reused."""

    def __init__(self, settings: Settings, loaded: LoadedSuites, builder: PlanBuilder) -> None:
        self._settings = settings
        self._loaded = loaded
        self._builder = builder

    def plan(self, suite: str, features: Sequence[str]) -> RunPlan:
        """Validate and fingerprint the suite's datasets, then build the plan."""
        return self._builder.build(scan_suite(self._loaded, suite, features, self._settings))


def daemon_config(settings: Settings, loaded: LoadedSuites) -> DaemonConfig:
    """Resolve each suite's schedule (suite file overrides over settings)."""
    schedules = {}
    for name, suite in loaded.suites.suites.items():
        override = suite.schedule
        enabled = settings.schedule_enabled if override.enabled is None else override.enabled
        hours = override.interval_hours or settings.schedule_interval_hours
        schedules[name] = SuiteSchedule(
            enabled=enabled,
            interval=timedelta(hours=hours),
            watchdog_s=override.watchdog_s or settings.run_watchdog_s,
            max_attempts=override.max_attempts or settings.run_max_attempts,
        )
    owner = settings.instance_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    return DaemonConfig(
        owner=owner,
        schedules=schedules,
        lease_s=settings.run_lease_s,
        heartbeat_s=settings.run_heartbeat_s,
        # Leave a little of the shutdown budget for releasing runs and locks.
        drain_timeout_s=max(0.0, settings.shutdown_timeout_s - 2.0),
        daily_budget_usd=settings.daily_judge_budget_usd,
        run_webhook_url=(
            settings.run_webhook_url.get_secret_value() if settings.run_webhook_url else None
        ),
    )


def regression_policies(settings: Settings, loaded: LoadedSuites) -> dict[str, RegressionPolicy]:
    """Build each suite's detector policy from the settings and the scorers' types.

    The scale comes from the config, not from guessing at scores: a judge
    scores 1-5, deterministic scorers 0/1; a python scorer's scale is
    inferred from its scores unless it sets ``regression_drop``.
    """
    policies = {}
    for suite_name, suite in loaded.suites.suites.items():
        scorers: dict[str, ScorerPolicy] = {}
        for feature in suite.features.values():
            for scorer in feature.scorers:
                drop = scorer.regression_drop or settings.regression_drop
                if isinstance(scorer, PythonScorer):
                    if drop is None:
                        continue  # scale inferred from its scores
                    policy = ScorerPolicy(min_effect=drop)
                else:
                    policy = (
                        JUDGE_DEFAULTS if isinstance(scorer, LlmJudgeScorer) else PASS_RATE_DEFAULTS
                    )
                    if drop is not None:
                        policy = ScorerPolicy(min_effect=drop)
                scorers[scorer_name(scorer)] = policy
        policies[suite_name] = RegressionPolicy(
            scorers=scorers,
            completeness_floor=settings.completeness_floor,
            correction=settings.regression_correction,
            fdr=settings.regression_fdr,
            baseline_window=settings.regression_baseline_runs,
        )
    return policies


def run_url(dashboard_url: str | None) -> Callable[[str], str] | None:
    """The link to a run in alerts: ``<dashboard URL>/runs/<id>``, when a dashboard URL is set."""
    if dashboard_url is None:
        return None
    base = dashboard_url.rstrip("/")
    return lambda run_id: f"{base}/runs/{run_id}"


def readiness(engine: Engine) -> str | None:
    """Return None when the database answers at the current schema, else why not."""
    try:
        return migrate.schema_problem(engine)
    except ContinuousEvalError as exc:
        return str(exc)


@dataclasses.dataclass
class AlertWiring:
    """The configured alert channels and their payload renderers."""

    renderers: dict[str, Render]
    channels: dict[str, AlertChannel]
    notice_renderers: dict[str, NoticeRender] = dataclasses.field(default_factory=dict)
    """The outage notices' renderers, per channel (``core.outage``)."""

    async def aclose(self) -> None:
        """Close the channels' HTTP clients (a channel serving two names, once)."""
        for channel in {id(c): c for c in self.channels.values()}.values():
            await channel.aclose()


def alert_wiring(settings: Settings) -> AlertWiring:
    """Build the channels the settings turn on; none means alerts are recorded ``suppressed``.

    Email needs a Resend key, a sender and recipients together; ``Settings``
    refuses a partial email configuration.
    """
    from continuous_eval.core import outage
    from continuous_eval.core.alert_render import canonical_json, email_renderer, webhook_renderer

    renderers: dict[str, Render] = {}
    notices: dict[str, NoticeRender] = {}
    channels: dict[str, AlertChannel] = {}
    dashboard = settings.alert_dashboard_url
    key = settings.resend_api_key
    if key is not None and settings.alert_email_from and settings.alert_email_to:
        from continuous_eval.adapters.resend_email import ResendEmailChannel

        renderers["email"] = email_renderer(
            sender=settings.alert_email_from,
            recipients=settings.alert_email_to,
            dashboard_url=settings.alert_dashboard_url,
        )
        sender, recipients = settings.alert_email_from, list(settings.alert_email_to)
        notices["email"] = lambda n: canonical_json(
            outage.render_email(n, sender=sender, recipients=recipients, dashboard_url=dashboard)
        )
        channels["email"] = ResendEmailChannel(
            key,
            settings.resend_api_url,
            timeout_s=settings.alert_timeout_s,
            attempts=settings.alert_call_attempts,
            max_retry_after_s=settings.alert_max_retry_after_s,
        )
    if settings.alert_webhook_url is not None:
        from continuous_eval.adapters.webhook import WebhookChannel

        renderers["webhook"] = webhook_renderer(
            slack=settings.alert_webhook_slack, dashboard_url=settings.alert_dashboard_url
        )
        slack = settings.alert_webhook_slack
        notices["webhook"] = lambda n: canonical_json(
            outage.render_webhook(n, slack=slack, dashboard_url=dashboard)
        )
        channels["webhook"] = WebhookChannel(
            settings.alert_webhook_url,
            slack=settings.alert_webhook_slack,
            timeout_s=settings.alert_timeout_s,
            attempts=settings.alert_call_attempts,
            max_retry_after_s=settings.alert_max_retry_after_s,
        )
    if settings.run_webhook_secret is not None:
        from continuous_eval.adapters.webhook import Signer, WebhookChannel

        # Run-completion notices: each row carries its URL; the payload is
        # rendered when the run ends (core.run_notice), so no renderer here.
        signed = WebhookChannel(
            None,
            signer=Signer(settings.run_webhook_secret),
            timeout_s=settings.alert_timeout_s,
            attempts=settings.alert_call_attempts,
            max_retry_after_s=settings.alert_max_retry_after_s,
            name="callback",
        )
        channels["callback"] = channels["run_webhook"] = signed
    return AlertWiring(renderers, channels, notices)


@contextlib.asynccontextmanager
async def local_daemon(
    settings: Settings, loaded: LoadedSuites, events: DaemonMetrics | None = None
) -> AsyncIterator[tuple[Daemon, SqlRunStore, PlanBuilder]]:
    """Wire a daemon over the configured database, and close everything on the way out.

    The CLI's ``run`` (through ``Daemon.run_now``), ``serve`` and the
    benchmarks share this, so each takes the same gate, lock, lease and
    outbox path.
    """
    from continuous_eval.adapters.db.locks import make_suite_locks

    alerts = alert_wiring(settings)
    engine, store = open_store(settings)
    locks = make_suite_locks(engine, lease_seconds=settings.run_lease_s)
    builder = PlanBuilder(settings, loaded)
    config = daemon_config(settings, loaded)
    planner = AlertPlanner(
        make_detect(regression_policies(settings, loaded)),
        alerts.renderers,
        events,
        notice_renderers=alerts.notice_renderers,
        run_url=run_url(settings.alert_dashboard_url),
    )
    # The daemon's and the outbox's blocking calls: a pool of their own, so user
    # code filling the default pool can never starve them, shut down (waiting
    # for calls in flight) before the engine is disposed of.
    io = ThreadPoolExecutor(max_workers=8, thread_name_prefix="continuous-eval-io")
    dispatcher = AlertDispatcher(
        store,
        alerts.channels,
        config.owner,
        max_attempts=settings.alert_max_attempts,
        claim_s=settings.alert_claim_s,
        retry_base_s=settings.alert_retry_base_s,
        events=events,
        io_executor=io,
    )
    runner = Runner(
        store,
        max_concurrency=settings.max_concurrency,
        excerpt_chars=settings.result_excerpt_chars,
        plan_alerts=planner.plan,
        scrub=Scrubber(settings.secret_values()),
        breaker_refusals=settings.breaker_refusals,
        completeness_floor=settings.completeness_floor,
    )
    daemon = Daemon(
        store=store,
        locks=locks,
        runner=runner,
        plans=SuitePlans(settings, loaded, builder),
        config=config,
        events=events,
        deliver_alerts=dispatcher.deliver_due,
        io_executor=io,
    )
    try:
        yield daemon, store, builder
    finally:
        await builder.aclose()
        await alerts.aclose()
        runner.close()
        io.shutdown(wait=True)
        locks.close()
        store.close()
        engine.dispose()
