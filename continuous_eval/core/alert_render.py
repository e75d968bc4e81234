"""Render a regression into what a channel sends: an email, a webhook or a Slack message.

Pure and deterministic: no clock, no I/O, no randomness. The same
``Regression`` always renders the same dict, and ``canonical_json`` turns that
dict into the exact text stored in the outbox and sent, unchanged, on every
retry. That byte-identity is what lets the provider's idempotency recognise a
retry after a crash as the same request rather than a conflicting one.

Everything taken from a suite (suite, feature, scorer and case names, run ids)
is escaped for where it lands: HTML entities in the email's HTML part, Slack's
three mrkdwn entities in Slack blocks, control characters stripped from the
subject line.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

from continuous_eval.core.models import CaseDrop, Regression

SUBJECT_PREFIX: Final = "[continuous-eval]"
"""Starts every subject, so people can filter alerts in their mail client."""

MAX_CASES_SHOWN: Final = 10
"""Worst cases listed in an email or a message; the rest are counted, not listed."""

WEBHOOK_EVENT: Final = "continuous_eval.regression"
"""The ``event`` of a generic webhook document."""

WEBHOOK_VERSION: Final = 1
"""Bumped when a field of the generic webhook document changes meaning or goes away."""

_MAX_SUBJECT_CHARS: Final = 250
_SLACK_HEADER_CHARS: Final = 150  # Slack refuses a header block's text above this
_SLACK_TEXT_CHARS: Final = 3000  # ... and a section's text above this
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]+")


# ------------------------------------------------------------------ formatting


def _finite(value: float | None) -> float | None:
    """The value, or None when it is missing or not a finite number (JSON has no NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _num(value: float | None, digits: int = 3) -> str:
    finite = _finite(value)
    return "n/a" if finite is None else f"{finite:.{digits}f}"


def _signed(value: float | None, digits: int = 3) -> str:
    finite = _finite(value)
    return "n/a" if finite is None else f"{finite:+.{digits}f}"


def _p_value(value: float | None) -> str:
    finite = _finite(value)
    if finite is None:
        return "n/a"
    return "<0.001" if finite < 0.001 else f"{finite:.3f}"


def _one_line(text: str) -> str:
    """Text safe for a header or a single line: control characters become one space."""
    return _CONTROL.sub(" ", text).strip()


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _fall(regression: Regression) -> str:
    """``fell 0.62`` for a fall; ``changed +0.10`` should a rise ever be reported."""
    delta = _finite(regression.delta)
    if delta is None:
        return "changed (n/a)"
    return f"fell {-delta:.2f}" if delta < 0 else f"changed {delta:+.2f}"


def summary_line(regression: Regression) -> str:
    """Return the one-line summary: ``support: refunds/judge fell 0.62 (4.10 -> 3.48)``.

    The subject, the Slack fallback text and the webhook's ``summary`` share it,
    so an alert reads the same wherever it lands.
    """
    line = (
        f"{regression.suite}: {regression.feature}/{regression.scorer} {_fall(regression)} "
        f"({_num(regression.baseline, 2)} -> {_num(regression.current, 2)})"
    )
    return _one_line(line)


def _rule_text(regression: Regression) -> str:
    if regression.rule == "drop":
        against = regression.baseline_run_id or "n/a"
        return f"drop (against the previous scheduled run {against})"
    return "drift (against the median of recent scheduled runs)"


def _shown_cases(regression: Regression) -> tuple[Sequence[CaseDrop], int]:
    cases = regression.worst_cases
    return cases[:MAX_CASES_SHOWN], max(0, len(cases) - MAX_CASES_SHOWN)


def _check_link(dashboard_url: str | None) -> None:
    # The URL comes from settings, but an email or a Slack button must never
    # carry a javascript: or data: link, whoever configured it.
    if dashboard_url is not None and not dashboard_url.startswith(("https://", "http://")):
        raise ValueError("dashboard_url must be an http:// or https:// URL")


# ----------------------------------------------------------------------- email


def _email_text(regression: Regression, dashboard_url: str | None) -> str:
    rows = [
        ("suite", regression.suite),
        ("feature/scorer", f"{regression.feature}/{regression.scorer}"),
        ("rule", _rule_text(regression)),
        ("baseline", _num(regression.baseline)),
        ("current", _num(regression.current)),
        ("delta", _signed(regression.delta)),
        ("p-value", _p_value(regression.p_value)),
        ("cases paired", str(regression.cases_paired)),
        ("run", regression.run_id),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"A scheduled run of suite {_one_line(regression.suite)} regressed.", ""]
    lines += [f"  {label.ljust(width)}  {_one_line(value)}" for label, value in rows]
    shown, more = _shown_cases(regression)
    lines.append("")
    if shown:
        lines.append("Worst cases (before -> after):")
        case_width = max(len(_one_line(case.case_id)) for case in shown)
        for case in shown:
            lines.append(
                f"  {_one_line(case.case_id).ljust(case_width)}  {_num(case.before)} -> "
                f"{_num(case.after)}  ({_signed(case.after - case.before)})"
            )
        if more:
            lines.append(f"  ... and {more} more")
    else:
        lines.append("No case was scored in both runs, so there are no per-case changes.")
    if dashboard_url is not None:
        lines += ["", f"Dashboard: {dashboard_url}"]
    lines += ["", f"Alert key: {_one_line(regression.key)}"]
    return "\n".join(lines) + "\n"


_CELL = 'style="padding:4px 10px;border:1px solid #ddd;text-align:{align}"'


def _cell(value: str, tag: str = "td", align: str = "left") -> str:
    return f"<{tag} {_CELL.format(align=align)}>{html.escape(value, quote=True)}</{tag}>"


def _row(cells: Sequence[str], tag: str = "td") -> str:
    return (
        "<tr>"
        + "".join(_cell(c, tag, "left" if i == 0 else "right") for i, c in enumerate(cells))
        + "</tr>"
    )


def _email_html(regression: Regression, dashboard_url: str | None) -> str:
    esc = html.escape
    table = '<table style="border-collapse:collapse;font-family:monospace">'
    head = ["feature/scorer", "rule", "baseline", "current", "delta", "p-value", "cases paired"]
    fell = [
        f"{regression.feature}/{regression.scorer}",
        regression.rule,
        _num(regression.baseline),
        _num(regression.current),
        _signed(regression.delta),
        _p_value(regression.p_value),
        str(regression.cases_paired),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html><body style="font-family:sans-serif">',
        f"<h2>{esc(summary_line(regression))}</h2>",
        f"<p>A scheduled run of suite <b>{esc(regression.suite)}</b> regressed: "
        f"{esc(_rule_text(regression))}.</p>",
        table,
        _row(head, "th"),
        _row(fell),
        "</table>",
    ]
    shown, more = _shown_cases(regression)
    if shown:
        parts += ["<h3>Worst cases</h3>", table, _row(["case", "before", "after", "change"], "th")]
        parts += [
            _row([c.case_id, _num(c.before), _num(c.after), _signed(c.after - c.before)])
            for c in shown
        ]
        parts.append("</table>")
        if more:
            parts.append(f"<p>... and {more} more.</p>")
    else:
        parts.append("<p>No case was scored in both runs, so there are no per-case changes.</p>")
    runs = f"<p>Run <code>{esc(regression.run_id)}</code>"
    if regression.baseline_run_id is not None:
        runs += f", baseline run <code>{esc(regression.baseline_run_id)}</code>"
    parts.append(runs + ".</p>")
    if dashboard_url is not None:
        parts.append(f'<p><a href="{esc(dashboard_url, quote=True)}">Open the dashboard</a></p>')
    parts.append(f'<p style="color:#888;font-size:small">Alert key: {esc(regression.key)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_email(
    regression: Regression,
    *,
    sender: str,
    recipients: Sequence[str],
    dashboard_url: str | None = None,
) -> dict[str, Any]:
    """Render the email for one regression, as the body of Resend's ``POST /emails``.

    Args:
        regression: what fell.
        sender: the ``from`` address, e.g. ``continuous-eval <alerts@example.com>``.
        recipients: the ``to`` addresses (at least one; always sent as a list).
        dashboard_url: linked from the email when given (http or https only).

    Returns:
        ``{"from", "to", "subject", "text", "html"}``; pass it to
        ``canonical_json`` for the text to store and send.

    Raises:
        ValueError: no sender, no recipient, or a dashboard URL that is not http(s).
    """
    if not sender.strip():
        raise ValueError("an alert email needs a sender")
    to = list(recipients)
    if not to or not all(r.strip() for r in to):
        raise ValueError("an alert email needs at least one recipient, and no blank one")
    _check_link(dashboard_url)
    subject = _cut(f"{SUBJECT_PREFIX} {summary_line(regression)}", _MAX_SUBJECT_CHARS)
    return {
        "from": sender,
        "to": to,
        "subject": subject,
        "text": _email_text(regression, dashboard_url),
        "html": _email_html(regression, dashboard_url),
    }


# --------------------------------------------------------------------- webhook


def _generic_document(regression: Regression, dashboard_url: str | None) -> dict[str, Any]:
    return {
        "event": WEBHOOK_EVENT,
        "version": WEBHOOK_VERSION,
        "key": regression.key,
        "summary": summary_line(regression),
        "suite": regression.suite,
        "feature": regression.feature,
        "scorer": regression.scorer,
        "rule": regression.rule,
        "run_id": regression.run_id,
        "baseline_run_id": regression.baseline_run_id,
        "baseline": _finite(regression.baseline),
        "current": _finite(regression.current),
        "delta": _finite(regression.delta),
        "p_value": _finite(regression.p_value),
        "cases_paired": regression.cases_paired,
        "worst_cases": [
            {
                "case_id": c.case_id,
                "before": _finite(c.before),
                "after": _finite(c.after),
                "delta": _finite(c.after - c.before),
            }
            for c in regression.worst_cases
        ],
        "dashboard_url": dashboard_url,
    }


def _slack_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _codeable(text: str) -> str:
    # A backtick in a name would close a code span early.
    return _one_line(text).replace("`", "'")


def _slack_code(text: str) -> str:
    return _slack_escape(_codeable(text))


def _slack_payload(regression: Regression, dashboard_url: str | None) -> dict[str, Any]:
    summary = summary_line(regression)
    fields = [
        ("Rule", _rule_text(regression)),
        ("Baseline", _num(regression.baseline)),
        ("Current", _num(regression.current)),
        ("Delta", _signed(regression.delta)),
        ("p-value", _p_value(regression.p_value)),
        ("Cases paired", str(regression.cases_paired)),
    ]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _cut(f"Regression: {summary}", _SLACK_HEADER_CHARS),
                "emoji": False,
            },
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{name}*\n{_slack_escape(value)}"}
                for name, value in fields
            ],
        },
    ]
    shown, more = _shown_cases(regression)
    if shown:
        lines = [
            _slack_escape(
                f"{_codeable(c.case_id)}: {_num(c.before)} -> "
                f"{_num(c.after)} ({_signed(c.after - c.before)})"
            )
            for c in shown
        ]
        if more:
            lines.append(f"... and {more} more")
        body = "*Worst cases*\n```" + "\n".join(lines) + "```"
        if len(body) > _SLACK_TEXT_CHARS:
            body = _cut(body[:-3], _SLACK_TEXT_CHARS - 3) + "```"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body}})
    context = f"run `{_slack_code(regression.run_id)}`"
    if regression.baseline_run_id is not None:
        context += f" · baseline `{_slack_code(regression.baseline_run_id)}`"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    if dashboard_url is not None:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open the dashboard"},
                        "url": dashboard_url,
                    }
                ],
            }
        )
    # ``text`` is what notifications and clients without blocks show.
    return {"text": _slack_escape(f"{SUBJECT_PREFIX} {summary}"), "blocks": blocks}


def render_webhook(
    regression: Regression, *, slack: bool, dashboard_url: str | None = None
) -> dict[str, Any]:
    """Render the webhook body for one regression.

    Args:
        regression: what fell.
        slack: a Slack incoming-webhook message (``{"text", "blocks"}``) when
            true; otherwise a generic JSON document with every field of the
            regression (``event``, ``version``, ``key``, the scores, the worst
            cases), non-finite numbers as null.
        dashboard_url: linked from the message when given (http or https only).

    Raises:
        ValueError: a dashboard URL that is not http(s).
    """
    _check_link(dashboard_url)
    if slack:
        return _slack_payload(regression, dashboard_url)
    return _generic_document(regression, dashboard_url)


# ----------------------------------------------------------------- the bytes


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
) -> Callable[[Regression], str]:
    """Return a renderer of the stored email text, validated now rather than at the first alert.

    The alert planner calls it inside the run's final write, where a
    configuration error would be the wrong failure; building it at start-up
    surfaces the error there instead.
    """
    frozen = tuple(recipients)
    render_email(_PROBE, sender=sender, recipients=frozen, dashboard_url=dashboard_url)

    def render(regression: Regression) -> str:
        return canonical_json(
            render_email(regression, sender=sender, recipients=frozen, dashboard_url=dashboard_url)
        )

    return render


def webhook_renderer(
    *, slack: bool, dashboard_url: str | None = None
) -> Callable[[Regression], str]:
    """Return a renderer of the stored webhook text (generic JSON or Slack), validated now."""
    _check_link(dashboard_url)

    def render(regression: Regression) -> str:
        return canonical_json(render_webhook(regression, slack=slack, dashboard_url=dashboard_url))

    return render


_PROBE: Final = Regression(
    suite="probe",
    feature="probe",
    scorer="probe",
    rule="drop",
    run_id="probe",
    baseline_run_id=None,
    baseline=1.0,
    current=0.0,
    delta=-1.0,
    p_value=None,
    cases_paired=0,
    worst_cases=(),
)
"""A regression rendered once when a renderer is built, to fail fast on bad settings."""
