"""Render a run's report as an email: the body of Resend's ``POST /emails``.

What belongs here: the plain-text and HTML parts of the email and
``render_email``, which checks the addresses and puts them together. Names
taken from a suite are HTML-escaped in the HTML part; the subject and every
single line of the text part have control characters stripped
(``alert_text.one_line``).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from itertools import groupby
from typing import Any

from continuous_eval.core.alert_text import (
    MAX_SUBJECT_CHARS,
    SUBJECT_PREFIX,
    cut,
    fallen_cases,
    intro,
    key_facts,
    key_heading,
    num,
    one_line,
    run_link,
    signed,
    summary_line,
)
from continuous_eval.core.alerting import IncidentReport


def _email_text(report: IncidentReport, link: str | None) -> str:
    lines = [intro(report)]
    for feature, decisions in groupby(report.items, key=lambda d: d.feature):
        title = f"Feature {one_line(feature)}"
        lines += ["", title, "=" * len(title)]
        for d in decisions:
            facts = key_facts(d)
            width = max(len(label) for label, _ in facts)
            lines += ["", key_heading(d)]
            lines += [f"  {label.ljust(width)}  {value}" for label, value in facts]
            notes, shown, left_out = fallen_cases(report, d)
            lines += [f"  {note}" for note in notes]
            if not shown:
                continue
            lines.append("  Cases that fell, worst first (known-good -> now):")
            case_width = max(len(one_line(c.case_id)) for c in shown)
            lines += [
                f"    {one_line(c.case_id).ljust(case_width)}  {num(c.before)} -> "
                f"{num(c.after)}  ({signed(c.after - c.before)})"
                for c in shown
            ]
            if left_out:
                lines.append(f"    {left_out}")
    if link is not None:
        lines += ["", f"Run: {link}"]
    lines += ["", f"Alert key: {one_line(report.key)}"]
    return "\n".join(lines) + "\n"


_CELL = 'style="padding:4px 10px;border:1px solid #ddd;text-align:{align}"'
_TABLE = '<table style="border-collapse:collapse;font-family:monospace">'


def _cell(value: str, tag: str = "td", align: str = "left") -> str:
    return f"<{tag} {_CELL.format(align=align)}>{html.escape(value, quote=True)}</{tag}>"


def _row(cells: Sequence[str], tag: str = "td") -> str:
    inner = "".join(_cell(c, tag, "right" if i else "left") for i, c in enumerate(cells))
    return f"<tr>{inner}</tr>"


def _email_html(report: IncidentReport, link: str | None) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html><body style="font-family:sans-serif">',
        f"<h2>{esc(summary_line(report))}</h2>",
        f"<p>{esc(intro(report))}</p>",
    ]
    for feature, decisions in groupby(report.items, key=lambda d: d.feature):
        parts.append(f"<h3>Feature {esc(one_line(feature))}</h3>")
        for d in decisions:
            parts += [f"<h4>{esc(key_heading(d))}</h4>", _TABLE]
            parts += [
                f"<tr>{_cell(label, 'th')}{_cell(value)}</tr>" for label, value in key_facts(d)
            ]
            parts.append("</table>")
            notes, shown, left_out = fallen_cases(report, d)
            parts += [f"<p><b>{esc(note)}</b></p>" for note in notes]
            if not shown:
                continue
            parts += ["<p>Cases that fell, worst first:</p>", _TABLE]
            parts.append(_row(["case", "known-good", "now", "change"], "th"))
            parts += [
                _row([c.case_id, num(c.before), num(c.after), signed(c.after - c.before)])
                for c in shown
            ]
            parts.append("</table>")
            if left_out:
                parts.append(f"<p>{esc(left_out)}</p>")
    if link is not None:
        parts.append(f'<p><a href="{esc(link, quote=True)}">Open the run</a></p>')
    parts.append(f'<p style="color:#888;font-size:small">Alert key: {esc(report.key)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_email(
    report: IncidentReport,
    *,
    sender: str,
    recipients: Sequence[str],
    dashboard_url: str | None = None,
) -> dict[str, Any]:
    """Render the email for one run's report, as the body of Resend's ``POST /emails``.

    Args:
        report: what the run changed (the incident report, or the recovery report).
        sender: the ``from`` address, e.g. ``continuous-eval <alerts@example.com>``.
        recipients: the ``to`` addresses (at least one; always sent as a list).
        dashboard_url: linked when the report has no ``dashboard_run_url`` (http(s) only).

    Returns:
        ``{"from", "to", "subject", "text", "html"}``; pass it to
        ``canonical_json`` for the text to store and send.

    Raises:
        ValueError: no sender, no recipient, or a link that is not http(s).
    """
    if not sender.strip():
        raise ValueError("an alert email needs a sender")
    to = list(recipients)
    if not to or not all(r.strip() for r in to):
        raise ValueError("an alert email needs at least one recipient, and no blank one")
    link = run_link(report, dashboard_url)
    return {
        "from": sender,
        "to": to,
        "subject": cut(f"{SUBJECT_PREFIX} {summary_line(report)}", MAX_SUBJECT_CHARS),
        "text": _email_text(report, link),
        "html": _email_html(report, link),
    }
