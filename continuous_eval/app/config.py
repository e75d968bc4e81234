"""Settings and a suite file to the daemon's and the detector's configuration: pure.

Nothing here opens a file, a socket or a database: it reads settings (already
validated) and the loaded suite file and returns plain values.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from datetime import timedelta

from continuous_eval.adapters.suite_files import LoadedSuites
from continuous_eval.core.pricing import Price
from continuous_eval.core.regression import (
    JUDGE_DEFAULTS,
    PASS_RATE_DEFAULTS,
    RegressionPolicy,
    ScorerPolicy,
)
from continuous_eval.core.suite import (
    LearnedScorer,
    LlmJudgeScorer,
    PythonScorer,
    scorer_name,
)
from continuous_eval.ports import SuiteSchedule
from continuous_eval.service.daemon import DaemonConfig
from continuous_eval.settings import DEFAULT_DATABASE_URL, Settings


def prices_from(settings: Settings) -> dict[str, Price]:
    """Convert the settings' price table into the core's records."""
    return {
        model: Price(p.input_per_mtok, p.output_per_mtok) for model, p in settings.prices.items()
    }


def uses_default_database(settings: Settings) -> bool:
    """Whether the embedded SQLite default is in use (for messages to the user)."""
    return settings.database_url == DEFAULT_DATABASE_URL


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
                if isinstance(scorer, PythonScorer | LearnedScorer):
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
            # An online feature samples fresh traffic every run: nothing pairs.
            unpaired_features=frozenset(
                name for name, feature in suite.features.items() if feature.online
            ),
        )
    return policies


def run_url(dashboard_url: str | None) -> Callable[[str], str] | None:
    """The link to a run in alerts: ``<dashboard URL>/runs/<id>``, when a dashboard URL is set."""
    if dashboard_url is None:
        return None
    base = dashboard_url.rstrip("/")
    return lambda run_id: f"{base}/runs/{run_id}"
