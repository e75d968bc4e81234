"""Wire the retention job from the settings: its rules, its stores, its lock and its metrics.

Only the translation of settings into ``core.retention.RetentionPolicy`` and
the assembly of ``service.retention.RetentionTick`` belong here; ``serve``
schedules the tick every ``retention_interval_s``.
"""

from __future__ import annotations

from continuous_eval.adapters.db.locks import make_suite_locks
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.adapters.suite_files import LoadedSuites
from continuous_eval.app.config import regression_policies
from continuous_eval.app.container import interaction_store
from continuous_eval.core.interactions import RetentionRule
from continuous_eval.core.retention import RetentionPolicy
from continuous_eval.ports import RetentionEvents
from continuous_eval.service.retention import RetentionJob, RetentionTick
from continuous_eval.settings import Settings


def retention_policy(settings: Settings) -> RetentionPolicy:
    """The global rule and the per-feature overrides of the settings (unset: no limit / inherit)."""
    return RetentionPolicy(
        RetentionRule(settings.retention_days, settings.retention_max_rows),
        {
            feature: RetentionRule(override.days, override.max_rows)
            for feature, override in settings.retention_features.items()
        },
    )


def retention_tick(
    settings: Settings,
    loaded: LoadedSuites,
    store: SqlRunStore,
    *,
    owner: str,
    events: RetentionEvents | None = None,
) -> RetentionTick:
    """The scheduled retention pass over the run store's database; ``close()`` it at shutdown.

    It takes its own suite locks (on the store's engine, on the database's
    clock) under ``RETENTION_LOCK``, so only one replica deletes at a time.
    """
    job = RetentionJob(
        interaction_store(store.engine),
        store,
        retention_policy(settings),
        regression_policies(settings, loaded),
        events=events,
    )
    locks = make_suite_locks(store.engine, lease_seconds=settings.run_lease_s)
    return RetentionTick(job, locks, owner, store.db_now, events=events)
