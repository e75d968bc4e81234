"""Render a run's incident report into what a channel sends: an email, a webhook, a Slack message.

One report per run (``core.alerting.IncidentReport``): every key that became
news in the run, grouped by feature with the worst fall first, or every key
that recovered in it. Pure and deterministic: no clock, no I/O, no
randomness. The same report always renders the same dict, and
``canonical_json`` turns that dict into the exact text stored in the outbox
and sent, unchanged, on every retry, so the provider's idempotency recognises
a retry after a crash as the same request rather than a conflicting one.

Everything taken from a suite (suite, feature, scorer and case names, run ids,
the detector's messages) is escaped for where it lands: HTML entities in the
email's HTML part, Slack's three mrkdwn entities in Slack blocks, control
characters stripped from the subject and every single line.

Only what every channel shares at the end belongs in this module: the
stored bytes (``canonical_json``) and the renderers the alert planner calls,
validated when they are built. The report's words are in ``alert_text``, the
formats in ``alert_email``, ``alert_slack`` and ``alert_webhook``.
``render_email``, ``render_webhook``, ``summary_line`` and the constants,
defined here before that split, are re-exported.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Final

from continuous_eval.core.alert_email import render_email
from continuous_eval.core.alert_text import MAX_CASES_SHOWN, SUBJECT_PREFIX, summary_line
from continuous_eval.core.alert_webhook import WEBHOOK_EVENTS, WEBHOOK_VERSION, render_webhook
from continuous_eval.core.alerting import IncidentReport
from continuous_eval.core.models import CaseDrop
from continuous_eval.core.regression import AnchorCheck, Decision, DecisionKind

__all__ = [
    "MAX_CASES_SHOWN",
    "SUBJECT_PREFIX",
    "WEBHOOK_EVENTS",
    "WEBHOOK_VERSION",
    "canonical_json",
    "email_renderer",
    "render_email",
    "render_webhook",
    "summary_line",
    "webhook_renderer",
]


def canonical_json(payload: object) -> str:
    """Return the one JSON text of ``payload``: the outbox stores it and every retry sends it.

    Sorted keys, no whitespace, ASCII only (so the text is the same bytes in
    any column, driver or transport) and no NaN. ``canonical_json(json.loads(t))
    == t`` for any ``t`` it produced, so a channel may parse the stored text
    and serialise it again without changing a byte.

    Raises:
        ValueError: the payload holds NaN or infinity.
        TypeError: the payload holds something JSON cannot represent.
    """
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def email_renderer(
    *, sender: str, recipients: Sequence[str], dashboard_url: str | None = None
) -> Callable[[IncidentReport], str]:
    """Return a renderer of the stored email text, validated now rather than at the first alert.

    The alert planner calls it inside the run's final write, where a
    configuration error would be the wrong failure; building it at start-up
    surfaces the error there instead.
    """
    frozen = tuple(recipients)
    for probe in _PROBES:
        render_email(probe, sender=sender, recipients=frozen, dashboard_url=dashboard_url)

    def render(report: IncidentReport) -> str:
        return canonical_json(
            render_email(report, sender=sender, recipients=frozen, dashboard_url=dashboard_url)
        )

    return render


def webhook_renderer(
    *, slack: bool, dashboard_url: str | None = None
) -> Callable[[IncidentReport], str]:
    """Return a renderer of the stored webhook text (generic JSON or Slack), validated now."""
    for probe in _PROBES:
        canonical_json(render_webhook(probe, slack=slack, dashboard_url=dashboard_url))

    def render(report: IncidentReport) -> str:
        return canonical_json(render_webhook(report, slack=slack, dashboard_url=dashboard_url))

    return render


_PROBE_DECISION: Final = Decision(
    "probe", "probe", DecisionKind.REGRESSED, "probe", rule="drop", current=0.0, baseline=1.0,
    mean_difference=-1.0, ci_low=-1.0, ci_high=-1.0, p_value=0.001, p_adjusted=0.001,
    n_paired=1, baseline_run_ids=("probe",), fallen=(CaseDrop("probe", 1.0, 0.0),),
    anchor=AnchorCheck(1, -0.5, 0.001, 0.001, drifted=True), corrected_difference=-0.5,
    transition="opened",
)  # fmt: skip
_PROBES: Final = (
    IncidentReport("probe", "probe", "regression", (_PROBE_DECISION,)),
    IncidentReport("probe", "probe", "judge_drift", (_PROBE_DECISION,)),
    IncidentReport("probe", "probe", "recovery", (_PROBE_DECISION,)),
)
"""Reports rendered once when a renderer is built, to fail fast on bad settings."""
