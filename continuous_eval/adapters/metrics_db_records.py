"""The records a database scrape reads into, and the label values it zero-fills.

What belongs here: the frozen records shared by the queries
(``metrics_db_queries``), the families builder (``metrics_db_families``) and
the collector (``metrics_db``), and the status, run type and alert label sets
they enumerate. Kept apart so the families builder needs no SQL and the
queries no ``prometheus_client``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from continuous_eval.core.models import AlertKind, AlertStatus, RunStatus, RunType

TERMINAL_STATUSES: tuple[str, ...] = tuple(s.value for s in RunStatus if s.terminal)
"""Statuses counted by ``continuous_eval_runs_total``: a run never leaves them."""

UNFINISHED_STATUSES: tuple[str, ...] = tuple(s.value for s in RunStatus if not s.terminal)
"""Statuses counted by the ``continuous_eval_unfinished_runs`` gauge."""

RUN_TYPES: tuple[RunType, ...] = ("scheduled", "manual")
ALERT_KINDS: tuple[AlertKind, ...] = ("regression", "recovery")
ALERT_STATUSES: tuple[AlertStatus, ...] = ("pending", "sent", "dead", "suppressed")

RunKey = tuple[str, str, str]
"""(suite, run_type, status)."""

ScorerKey = tuple[str, str, str]
"""(suite, feature, scorer)."""


@dataclass(frozen=True, slots=True)
class RunTotals:
    """Sums over a set of runs; the unit the incremental cache adds up."""

    runs: int = 0
    errored: int = 0
    """Results with status ``error`` (``eval_runs.errored``)."""
    judge_requests: int = 0
    """Results that recorded judge usage (input or output tokens above zero)."""
    judge_input_tokens: int = 0
    judge_output_tokens: int = 0
    judge_cost_usd: float = 0.0
    target_input_tokens: int = 0
    target_output_tokens: int = 0
    target_cost_usd: float = 0.0

    def __add__(self, other: RunTotals) -> RunTotals:
        return RunTotals(
            runs=self.runs + other.runs,
            errored=self.errored + other.errored,
            judge_requests=self.judge_requests + other.judge_requests,
            judge_input_tokens=self.judge_input_tokens + other.judge_input_tokens,
            judge_output_tokens=self.judge_output_tokens + other.judge_output_tokens,
            judge_cost_usd=self.judge_cost_usd + other.judge_cost_usd,
            target_input_tokens=self.target_input_tokens + other.target_input_tokens,
            target_output_tokens=self.target_output_tokens + other.target_output_tokens,
            target_cost_usd=self.target_cost_usd + other.target_cost_usd,
        )


@dataclass(frozen=True, slots=True)
class DbSnapshot:
    """Everything one scrape read from the database."""

    runs: Mapping[RunKey, RunTotals]
    last_run_at: Mapping[str, datetime]
    """Per suite: ``started_at`` of the newest scheduled run, any status."""
    last_success_at: Mapping[str, datetime]
    """Per suite: ``started_at`` of the newest succeeded scheduled run."""
    last_scores: Mapping[ScorerKey, float | None]
    """Means of that succeeded run's ``eval_run_scores``; None when nothing was scored."""
    regressions: Mapping[ScorerKey, int]
    """Distinct regression alerts (runs), whatever their delivery status."""
    alerts: Mapping[tuple[str, str, str], int]
    """Outbox rows by (channel, kind, status)."""


@dataclass(frozen=True, slots=True)
class RunCache:
    """Settled runs summed once: those created before ``watermark`` and terminal."""

    watermark: datetime | None = None
    settled: Mapping[RunKey, RunTotals] = field(default_factory=dict)
    open_ids: frozenset[str] = frozenset()
    """Runs created before the watermark that were not terminal when it passed them."""
