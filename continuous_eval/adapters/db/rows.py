"""Rows of the run store's tables to and from the core's records.

Only mapping belongs here: no query, no connection. Every seam of the SQL store
(and ``queries``, which reads runs for the API) turns rows into records the
same way, so a column added to a table is mapped in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row

from continuous_eval.core.models import (
    AlertKind,
    AlertRecord,
    AlertStatus,
    Callback,
    CaseResult,
    NewAlert,
    ResultRecord,
    ResultStatus,
    RunRecord,
    RunStatus,
    RunType,
    ScoreAggregate,
    Usage,
)
from continuous_eval.core.outbox import ALERT_KINDS, ALERT_STATUSES
from continuous_eval.errors import StoreError


def _run_type(value: str) -> RunType:
    if value == "scheduled":
        return "scheduled"
    if value == "manual":
        return "manual"
    raise StoreError(f"unknown run_type {value!r} in the database")


def callbacks_to_json(callbacks: Sequence[Callback]) -> list[dict[str, str]] | None:
    """Store a run's callbacks as JSON (None for none, which old rows also hold)."""
    return [{"channel": c.channel, "url": c.url} for c in callbacks] or None


def callbacks_from_json(value: Any) -> tuple[Callback, ...]:
    """Read a run's callbacks back; rows from before the column read as none."""
    found = []
    for item in value or ():
        channel = item.get("channel")
        if channel not in ("callback", "run_webhook"):
            raise StoreError(f"unknown callback channel {channel!r} in the database")
        found.append(Callback(channel, str(item["url"])))
    return tuple(found)


def run_record(row: Row[*tuple[Any, ...]]) -> RunRecord:
    """Read a row of ``eval_runs`` as a ``RunRecord``."""
    m = row._mapping
    return RunRecord(
        id=m["id"],
        suite=m["suite"],
        run_type=_run_type(m["run_type"]),
        status=RunStatus(m["status"]),
        status_reason=m["status_reason"],
        attempt=m["attempt"],
        features=tuple(m["features"]),
        created_at=m["created_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        scheduled_for=m["scheduled_for"],
        cases_total=m["cases_total"],
        cases_done=m["cases_done"],
        total=m["total"],
        scored=m["scored"],
        errored=m["errored"],
        judge_usage=Usage(m["judge_input_tokens"], m["judge_output_tokens"], m["judge_cost_usd"]),
        target_usage=Usage(
            m["target_input_tokens"], m["target_output_tokens"], m["target_cost_usd"]
        ),
        fingerprint=m["fingerprint"],
        fingerprint_parts=dict(m["fingerprint_parts"] or {}),
        idempotency_key=m["idempotency_key"],
        spec_hash=m["spec_hash"],
        lease_owner=m["lease_owner"],
        lease_expires_at=m["lease_expires_at"],
        heartbeat_at=m["heartbeat_at"],
        callbacks=callbacks_from_json(m["callbacks"]),
    )


def result_key(result: CaseResult) -> tuple[str, str, str]:
    """The unique key of a result within its run: (feature, scorer, case id)."""
    return (result.feature, result.scorer, result.case_id)


def result_row(run_id: str, result: CaseResult, now: datetime) -> dict[str, Any]:
    """The ``eval_results`` row of one case x scorer result, stamped ``now``."""
    return {
        "run_id": run_id,
        "feature": result.feature,
        "case_id": result.case_id,
        "scorer": result.scorer,
        "status": ResultStatus(result.status).value,
        "score": result.score,
        "passed": result.passed,
        "output_excerpt": result.output_excerpt,
        "error": result.error,
        "rationale": result.rationale,
        "latency_ms": result.latency_ms,
        "input_tokens": result.usage.input_tokens,
        "output_tokens": result.usage.output_tokens,
        "cost_usd": result.usage.cost_usd,
        "attempt": result.attempt,
        "created_at": now,
        "input_excerpt": result.input_excerpt,
        "expected_excerpt": result.expected_excerpt,
        "trace_id": result.trace_id,
    }


def result_record(row: Row[*tuple[Any, ...]]) -> ResultRecord:
    """Read a row of ``eval_results`` as a ``ResultRecord``."""
    m = row._mapping
    return ResultRecord(
        id=int(m["id"]),
        run_id=m["run_id"],
        feature=m["feature"],
        case_id=m["case_id"],
        scorer=m["scorer"],
        status=ResultStatus(m["status"]),
        score=m["score"],
        passed=m["passed"],
        output_excerpt=m["output_excerpt"],
        error=m["error"],
        rationale=m["rationale"],
        latency_ms=m["latency_ms"],
        usage=Usage(m["input_tokens"], m["output_tokens"], m["cost_usd"]),
        attempt=m["attempt"],
        created_at=m["created_at"],
        input_excerpt=m["input_excerpt"],
        expected_excerpt=m["expected_excerpt"],
        trace_id=m["trace_id"],
    )


def score_rows(run_id: str, aggregates: Sequence[ScoreAggregate]) -> list[dict[str, Any]]:
    """One ``eval_run_scores`` row per (feature, scorer); the last aggregate for a pair wins."""
    return list({(a.feature, a.scorer): _score_row(run_id, a) for a in aggregates}.values())


def _score_row(run_id: str, aggregate: ScoreAggregate) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "feature": aggregate.feature,
        "scorer": aggregate.scorer,
        "mean": aggregate.mean,
        "stderr": aggregate.stderr,
        "n": aggregate.n,
        "errors": aggregate.errors,
        "fingerprint": aggregate.fingerprint or None,
    }


def aggregate_record(row: Row[*tuple[Any, ...]]) -> ScoreAggregate:
    """Read a row of ``eval_run_scores`` as a ``ScoreAggregate``."""
    return ScoreAggregate(
        feature=row.feature,
        scorer=row.scorer,
        mean=row.mean,
        stderr=row.stderr,
        n=row.n,
        errors=row.errors,
        fingerprint=row.fingerprint or "",
    )


def alert_row(alert: NewAlert, now: datetime) -> dict[str, Any]:
    """The outbox row of a new alert: no attempts, no ``next_attempt_at`` (due at once)."""
    return {
        "key": alert.key,
        "channel": alert.channel,
        "kind": alert.kind,
        "run_id": alert.run_id,
        "suite": alert.suite,
        "feature": alert.feature,
        "scorer": alert.scorer,
        "rule": alert.rule,
        "status": alert.status,
        "payload": alert.payload,
        "summary": dict(alert.summary),
        "reason": alert.reason,
        "attempts": 0,
        "next_attempt_at": None,
        "last_error": None,
        "provider_id": None,
        "created_at": now,
        "sent_at": None,
        "claimed_by": None,
        "claimed_until": None,
        "destination": alert.destination,
    }


def _alert_kind(value: str) -> AlertKind:
    if value in ALERT_KINDS:
        return cast(AlertKind, value)
    raise StoreError(f"unknown alert kind {value!r} in the database")


def _alert_status(value: str) -> AlertStatus:
    if value in ALERT_STATUSES:
        return cast(AlertStatus, value)
    raise StoreError(f"unknown alert status {value!r} in the database")


def alert_record(row: Row[*tuple[Any, ...]]) -> AlertRecord:
    """Read a row of the outbox as an ``AlertRecord``."""
    m = row._mapping
    return AlertRecord(
        id=m["id"],
        key=m["key"],
        channel=m["channel"],
        kind=_alert_kind(m["kind"]),
        run_id=m["run_id"],
        suite=m["suite"],
        feature=m["feature"],
        scorer=m["scorer"],
        rule=m["rule"],
        status=_alert_status(m["status"]),
        payload=m["payload"],
        summary=dict(m["summary"]),
        reason=m["reason"],
        attempts=m["attempts"],
        next_attempt_at=m["next_attempt_at"],
        last_error=m["last_error"],
        provider_id=m["provider_id"],
        created_at=m["created_at"],
        sent_at=m["sent_at"],
        claimed_by=m["claimed_by"],
        claimed_until=m["claimed_until"],
        destination=m["destination"],
    )
