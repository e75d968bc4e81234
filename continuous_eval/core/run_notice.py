"""The run-completion webhook: one outbox row per destination when a run ends.

Automation (a deploy pipeline, a chat bot, a ticket) wants to hear when a run
is over without polling. A run carries its destinations from creation: the
``callback_url`` its ``POST /api/runs`` named, and the run webhook every run
is reported to (``CONTINUOUS_EVAL_RUN_WEBHOOK_URL``). When the run reaches a
terminal status, the store writes one outbox row per destination in the same
transaction as that status, and the outbox delivers them like alerts: with
retries, a claim, and the same bytes on every attempt, signed per Standard
Webhooks (``adapters/webhook.py``).

Pure: the payload is built from the run as it ends, no clock is read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from continuous_eval.core.models import Callback, NewAlert, RunRecord, ScoreAggregate

NOTICE_KIND: Final = "run_finished"
"""The outbox kind of a run-completion notice."""

PAYLOAD_TYPE = "run.finished"
"""The ``type`` field of the payload (Standard Webhooks' event type)."""


def notice_key(run_id: str) -> str:
    """The idempotency key (and ``webhook-id``) of a run's completion notice."""
    return f"run:{run_id}:finished"


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def completion_payload(run: RunRecord, aggregates: Sequence[ScoreAggregate]) -> str:
    """Render the notice's body: the run's outcome, counts, cost and scores, as JSON text.

    Deterministic (sorted keys, fixed separators): the stored bytes are what
    every attempt sends and what the signature covers.
    """
    document = {
        "type": PAYLOAD_TYPE,
        "timestamp": _time(run.finished_at),
        "data": {
            "run_id": run.id,
            "suite": run.suite,
            "run_type": run.run_type,
            "status": run.status.value,
            "status_reason": run.status_reason,
            "attempt": run.attempt,
            "features": list(run.features),
            "scheduled_for": _time(run.scheduled_for),
            "started_at": _time(run.started_at),
            "finished_at": _time(run.finished_at),
            "cases_total": run.cases_total,
            "cases_done": run.cases_done,
            "results_total": run.total,
            "scored": run.scored,
            "errored": run.errored,
            "cost_usd": round(run.judge_usage.cost_usd + run.target_usage.cost_usd, 6),
            "scores": [
                {
                    "feature": a.feature,
                    "scorer": a.scorer,
                    "mean": a.mean,
                    "stderr": a.stderr,
                    "n": a.n,
                    "errors": a.errors,
                }
                for a in aggregates
            ],
        },
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def completion_notices(
    run: RunRecord, callbacks: Sequence[Callback], aggregates: Sequence[ScoreAggregate]
) -> list[NewAlert]:
    """Return the outbox rows announcing that ``run`` ended, one per callback.

    Nothing for a run that is not over. The rows are ``pending``: unlike an
    incident report, a notice has no "no channel" case, since a run
    only has callbacks someone asked for.
    """
    if not run.status.terminal or not callbacks:
        return []
    payload = completion_payload(run, aggregates)
    summary: dict[str, object] = {"status": run.status.value, "reason": run.status_reason}
    return [
        NewAlert(
            key=notice_key(run.id),
            channel=callback.channel,
            kind=NOTICE_KIND,
            run_id=run.id,
            suite=run.suite,
            feature="",
            scorer="",
            rule=None,
            status="pending",
            payload=payload,
            summary=summary,
            destination=callback.url,
        )
        for callback in callbacks
    ]
