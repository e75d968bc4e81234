"""How long recorded traffic and raw results live: the effective rule per feature, and cutoffs.

Pure. The settings give a global age and row cap (``retention_days``,
``retention_max_rows``; unset means no limit) and per-feature overrides
(``retention_features``) whose unset fields inherit the global value, so an
override that only caps rows keeps the global age. The raw results of runs
follow the global age only: a run spans several features, and results are
deleted per run (their aggregates, decisions and alerts are never deleted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from continuous_eval.core.interactions import RetentionRule
from continuous_eval.core.lifecycle import require_aware


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """The global rule and the per-feature overrides, as configured.

    In an override, a None field means "as the global rule", not "no limit":
    the settings cannot lift a global limit for one feature, only change it.
    """

    default: RetentionRule
    overrides: Mapping[str, RetentionRule] = field(default_factory=dict)

    def rule(self, feature: str) -> RetentionRule:
        """The effective rule of one feature: its override's fields, else the global ones."""
        found = self.overrides.get(feature)
        if found is None:
            return self.default
        return RetentionRule(
            max_age_days=(
                self.default.max_age_days if found.max_age_days is None else found.max_age_days
            ),
            max_rows=self.default.max_rows if found.max_rows is None else found.max_rows,
        )

    def results_cutoff(self, now: datetime) -> datetime | None:
        """Before this, the raw results of finished runs go; None: kept forever."""
        return cutoff(now, self.default.max_age_days)


def cutoff(now: datetime, max_age_days: float | None) -> datetime | None:
    """``now`` less the age limit: rows that started before it are too old. None: no limit.

    Raises:
        ValueError: ``now`` is naive, or the age is not positive.
    """
    require_aware(now, "now")
    if max_age_days is None:
        return None
    if max_age_days <= 0:
        raise ValueError(f"a retention age must be positive, got {max_age_days} days")
    return now - timedelta(days=max_age_days)
