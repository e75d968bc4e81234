"""Render a run's report as a webhook body: a generic JSON document, or Slack's message.

What belongs here: ``render_webhook``, the generic document (``event``,
``version``, ``key``, ``items`` with every field of every decision and every
fallen case, non-finite numbers as null) and its version. The Slack message
is ``alert_slack``'s.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any, Final

from continuous_eval.core.alert_slack import slack_payload
from continuous_eval.core.alert_text import finite_or_none, run_link, summary_line
from continuous_eval.core.alerting import IncidentReport
from continuous_eval.core.models import CaseDrop
from continuous_eval.core.regression import Decision

WEBHOOK_EVENTS: Final = {
    "regression": "continuous_eval.regression",
    "judge_drift": "continuous_eval.judge_drift",
    "recovery": "continuous_eval.recovery",
}
"""The ``event`` of a generic webhook document, per report kind."""

WEBHOOK_VERSION: Final = 2
"""Bumped when a field of the generic webhook document changes meaning or goes away.

2: one document per run (``items``, one per key) instead of one per regression."""


def _plain(value: object) -> Any:
    """A field as JSON: dataclasses as objects, tuples as lists, numbers finite or null."""
    if isinstance(value, float):
        return finite_or_none(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, CaseDrop):
            fields["delta"] = finite_or_none(value.after - value.before)
        return fields
    return value


def _item_document(d: Decision) -> dict[str, Any]:
    """Every field of the decision (``kind`` named ``decision``), every fallen case."""
    document: dict[str, Any] = _plain(d)
    return {"decision": document.pop("kind"), **document}


def _generic_document(report: IncidentReport, link: str | None) -> dict[str, Any]:
    return {
        "event": WEBHOOK_EVENTS[report.kind],
        "version": WEBHOOK_VERSION,
        "key": report.key,
        "kind": report.kind,
        "summary": summary_line(report),
        "suite": report.suite,
        "run_id": report.run_id,
        "features": list(report.features),
        "items": [_item_document(d) for d in report.items],
        "run_url": link,
    }


def render_webhook(
    report: IncidentReport, *, slack: bool, dashboard_url: str | None = None
) -> dict[str, Any]:
    """Render the webhook body for one run's report.

    Args:
        report: what the run changed.
        slack: a Slack incoming-webhook message (``{"text", "blocks"}``, at
            most ``MAX_CASES_SHOWN`` cases per key) when true; otherwise a
            generic JSON document (``event``, ``version``, ``key``, ``items``
            with every field of every decision and every fallen case),
            non-finite numbers as null.
        dashboard_url: linked when the report has no ``dashboard_run_url`` (http(s) only).

    Raises:
        ValueError: a link that is not http(s).
    """
    link = run_link(report, dashboard_url)
    if slack:
        return slack_payload(report, link)
    return _generic_document(report, link)
