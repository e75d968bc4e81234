"""When a suite cannot be evaluated, tell the admins once, and once more when it can again.

A scheduled run that ends ``failed`` (its provider refused every call, its
watchdog fired) or ``inconclusive`` (too few results scored) says nothing
about quality, and a quiet dashboard would be mistaken for health. So the
first such run opens an *outage* of its suite and sends one notice ("could
not evaluate suite X since ..."); the runs after it, failing the same way,
send nothing more; the first scheduled run that succeeds again closes it
with a second notice. The open/closed state is the outbox itself: the
suite's newest ``outage`` row against its newest ``outage_over`` row.

Pure: the decision and the rendering take the run and the stored rows as
arguments and read no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from continuous_eval.core.models import AlertRecord, RunRecord, RunStatus

OutageKind = Literal["outage", "outage_over"]

UNEVALUATED: Final = frozenset({RunStatus.FAILED, RunStatus.INCONCLUSIVE})
"""Ends of a scheduled run that leave its suite's quality unknown."""

WEBHOOK_EVENTS: Final = {
    "outage": "continuous_eval.outage",
    "outage_over": "continuous_eval.outage_over",
}
"""The ``event`` of a generic webhook document, per kind."""

SUBJECT_PREFIX: Final = "[continuous-eval]"


@dataclass(frozen=True, slots=True)
class OutageNotice:
    """One notice to send: an outage opened, or one closed."""

    kind: OutageKind
    suite: str
    run_id: str
    """The run that opened (or closed) the outage."""
    since: datetime | None
    """When the suite could last not be evaluated from: the opening run's start."""
    reason: str
    """Why the opening run could not evaluate (or, closing, what it did instead)."""

    @property
    def key(self) -> str:
        """The outbox key: one notice of each kind per run."""
        return f"{self.suite}:{self.kind}:{self.run_id}"

    @property
    def headline(self) -> str:
        """One line: what a subject or a chat message says first."""
        since = self.since.isoformat() if self.since else "now"
        if self.kind == "outage":
            return f"could not evaluate suite {self.suite} since {since}"
        return f"suite {self.suite} evaluates again (it could not since {since})"


def is_open(last_outage: AlertRecord | None, last_over: AlertRecord | None) -> bool:
    """Whether the suite has an outage not yet closed, from its newest rows of each kind."""
    if last_outage is None:
        return False
    return last_over is None or (last_over.created_at, last_over.id) < (
        last_outage.created_at,
        last_outage.id,
    )


def decide(
    run: RunRecord, last_outage: AlertRecord | None, last_over: AlertRecord | None
) -> OutageNotice | None:
    """Return the notice a scheduled run's end calls for, if any.

    Args:
        run: the run with its final status and reason.
        last_outage: the suite's newest ``outage`` row, if any.
        last_over: the suite's newest ``outage_over`` row, if any.
    """
    if run.run_type != "scheduled":
        return None  # the schedule is what admins rely on; a manual run is someone watching
    open_now = is_open(last_outage, last_over)
    if run.status in UNEVALUATED and not open_now:
        return OutageNotice(
            kind="outage",
            suite=run.suite,
            run_id=run.id,
            since=run.started_at,
            reason=run.status_reason or f"the run ended {run.status.value}",
        )
    if run.status is RunStatus.SUCCEEDED and open_now and last_outage is not None:
        since = last_outage.summary.get("since")
        return OutageNotice(
            kind="outage_over",
            suite=run.suite,
            run_id=run.id,
            since=datetime.fromisoformat(since) if isinstance(since, str) else None,
            reason=f"run {run.id} scored {run.scored} of {run.total} results",
        )
    return None


def summary(notice: OutageNotice) -> dict[str, object]:
    """The notice as JSON-able data, stored with the row (the API shows it)."""
    return {
        "suite": notice.suite,
        "run_id": notice.run_id,
        "since": notice.since.isoformat() if notice.since else None,
        "reason": notice.reason,
    }


def render_email(
    notice: OutageNotice, *, sender: str, recipients: list[str], dashboard_url: str | None
) -> dict[str, Any]:
    """Render the notice as the body of Resend's ``POST /emails``."""
    lines = [notice.headline[:1].upper() + notice.headline[1:] + ".", ""]
    if notice.kind == "outage":
        lines += [
            f"Run {notice.run_id} ended without a usable result: {notice.reason}",
            "",
            "Until a scheduled run succeeds again, a fall in quality cannot be seen.",
            "Check the provider's key and model, the target's health and the run's errors",
            f"(continuous-eval show {notice.run_id}).",
        ]
    else:
        lines += [f"{notice.reason}; regressions are detected again."]
    if dashboard_url:
        lines += ["", dashboard_url]
    lines += ["", f"Notice key: {notice.key}"]
    text = "\n".join(lines) + "\n"
    return {
        "from": sender,
        "to": list(recipients),
        "subject": f"{SUBJECT_PREFIX} {notice.headline}",
        "text": text,
    }


def render_webhook(
    notice: OutageNotice, *, slack: bool, dashboard_url: str | None
) -> dict[str, Any]:
    """Render the notice as a generic JSON document, or as a Slack message."""
    if slack:
        text = _slack_escape(f"{SUBJECT_PREFIX} {notice.headline}: {notice.reason}")
        if dashboard_url:
            text += f" <{dashboard_url}|open>"
        return {"text": text}
    return {
        "event": WEBHOOK_EVENTS[notice.kind],
        "version": 1,
        "key": notice.key,
        "headline": notice.headline,
        **summary(notice),
        "dashboard_url": dashboard_url,
    }


def _slack_escape(text: str) -> str:
    # Slack's three mrkdwn entities; suite names and reasons come from users.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
