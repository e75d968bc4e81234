"""Stored decisions: ``core.regression.Decision`` to and from rows of ``eval_decisions``.

The next run's detector reads back only the state columns (``known_good``,
``cusum``, the incident); the API, the CLI and backtests read whole decisions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Row, select

from continuous_eval.adapters.db.tables import eval_decisions
from continuous_eval.core.models import CaseDrop
from continuous_eval.core.regression import (
    AnchorCheck,
    Decision,
    DecisionKind,
    Incident,
    IncidentKind,
    KeyState,
    ScoreKey,
    Transition,
)


def decision_rows(
    run_id: str, suite: str, decisions: Sequence[Decision], now: datetime
) -> list[dict[str, Any]]:
    """The rows to insert for a run's decisions."""
    return [_row(run_id, suite, d, now) for d in decisions]


def _row(run_id: str, suite: str, d: Decision, now: datetime) -> dict[str, Any]:
    anchor = None
    if d.anchor is not None:
        a = d.anchor
        anchor = {
            "n_paired": a.n_paired,
            "mean_difference": a.mean_difference,
            "p_value": a.p_value,
            "p_adjusted": a.p_adjusted,
            "drifted": a.drifted,
        }
    return {
        "run_id": run_id,
        "suite": suite,
        "feature": d.feature,
        "scorer": d.scorer,
        "kind": d.kind.value,
        "rule": d.rule,
        "message": d.message,
        "transition": d.transition,
        "known_good": d.known_good,
        "cusum": d.cusum,
        "incident_run_id": d.incident.opened_run_id if d.incident else None,
        "incident_kind": d.incident.kind if d.incident else None,
        "incident_worst": d.incident.worst_difference if d.incident else None,
        "current": d.current,
        "baseline": d.baseline,
        "mean_difference": d.mean_difference,
        "ci_low": d.ci_low,
        "ci_high": d.ci_high,
        "p_value": d.p_value,
        "p_adjusted": d.p_adjusted,
        "n_paired": d.n_paired,
        "corrected_difference": d.corrected_difference,
        "details": {
            "baseline_run_ids": list(d.baseline_run_ids),
            "fallen": [[c.case_id, c.before, c.after] for c in d.fallen],
            "anchor": anchor,
            "incident_baseline_run_ids": list(d.incident.baseline_run_ids) if d.incident else [],
        },
        "created_at": now,
    }


def _incident(row: Any) -> Incident | None:
    if row.incident_run_id is None:
        return None
    frozen = (row.details or {}).get("incident_baseline_run_ids", ())
    return Incident(
        row.incident_run_id,
        cast(IncidentKind, row.incident_kind),
        float(row.incident_worst or 0),
        tuple(frozen),
    )


def decision_of(row: Row[Any]) -> Decision:
    """A stored row as the decision it was."""
    details: Mapping[str, Any] = row.details or {}
    raw_anchor = details.get("anchor")
    anchor = None
    if raw_anchor:
        anchor = AnchorCheck(
            int(raw_anchor["n_paired"]),
            float(raw_anchor["mean_difference"]),
            float(raw_anchor["p_value"]),
            float(raw_anchor["p_adjusted"]),
            bool(raw_anchor["drifted"]),
        )
    return Decision(
        feature=row.feature,
        scorer=row.scorer,
        kind=DecisionKind(row.kind),
        message=row.message,
        rule=row.rule,
        current=row.current,
        baseline=row.baseline,
        mean_difference=row.mean_difference,
        ci_low=row.ci_low,
        ci_high=row.ci_high,
        p_value=row.p_value,
        p_adjusted=row.p_adjusted,
        n_paired=row.n_paired,
        baseline_run_ids=tuple(details.get("baseline_run_ids", ())),
        fallen=tuple(CaseDrop(str(c), float(b), float(a)) for c, b, a in details.get("fallen", ())),
        cusum=row.cusum,
        anchor=anchor,
        corrected_difference=row.corrected_difference,
        incident=_incident(row),
        transition=cast(Transition | None, row.transition),
        known_good=bool(row.known_good),
    )


def read_decisions(conn: Connection, run_id: str) -> list[Decision]:
    """A run's decisions, by feature and scorer."""
    c = eval_decisions.c
    stmt = select(eval_decisions).where(c.run_id == run_id).order_by(c.feature, c.scorer)
    return [decision_of(row) for row in conn.execute(stmt)]


def read_states(conn: Connection, run_ids: Sequence[str]) -> dict[str, dict[ScoreKey, KeyState]]:
    """The state columns of the given runs' decisions; a run without decisions is absent."""
    if not run_ids:
        return {}
    c = eval_decisions.c
    stmt = select(
        c.run_id,
        c.feature,
        c.scorer,
        c.known_good,
        c.cusum,
        c.incident_run_id,
        c.incident_kind,
        c.incident_worst,
        c.details,
    ).where(c.run_id.in_(list(run_ids)))
    out: dict[str, dict[ScoreKey, KeyState]] = {}
    for row in conn.execute(stmt):
        state = KeyState(bool(row.known_good), float(row.cusum), _incident(row))
        out.setdefault(row.run_id, {})[(row.feature, row.scorer)] = state
    return out
