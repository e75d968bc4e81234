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
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import re
import shlex
from collections.abc import Callable, Sequence
from enum import Enum
from itertools import groupby
from typing import Any, Final

from continuous_eval.core.alerting import IncidentReport
from continuous_eval.core.models import CaseDrop
from continuous_eval.core.regression import AnchorCheck, Decision, DecisionKind

SUBJECT_PREFIX: Final = "[continuous-eval]"
"""Starts every subject, so people can filter alerts in their mail client."""

MAX_CASES_SHOWN: Final = 10
"""Worst cases listed per key in an email or a message; the rest are counted, not listed."""

WEBHOOK_EVENTS: Final = {
    "regression": "continuous_eval.regression",
    "judge_drift": "continuous_eval.judge_drift",
    "recovery": "continuous_eval.recovery",
}
"""The ``event`` of a generic webhook document, per report kind."""

WEBHOOK_VERSION: Final = 2
"""Bumped when a field of the generic webhook document changes meaning or goes away.

2: one document per run (``items``, one per key) instead of one per regression."""

_MAX_SUBJECT_CHARS: Final = 250
_SLACK_HEADER_CHARS: Final = 150  # Slack refuses a header block's text above this
_SLACK_TEXT_CHARS: Final = 3000  # ... and a section's text above this
_SLACK_MAX_KEYS: Final = 20  # one section per key; a message holds at most 50 blocks
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]+")
_JUDGE_SENTENCE: Final = (
    "The judge's scores of the frozen anchor outputs moved: the judge changed, "
    "not necessarily the product."
)
_NONE_FELL: Final = "No paired case fell."
_NONE_PAIRED: Final = "No case was scored both now and in the known-good runs."
_RULES: Final = {
    "drop": "drop: a significant paired fall against the known-good runs",
    "drift": "drift: a sustained decline over recent runs (CUSUM)",
}
_TRANSITION_WORDS: Final = {
    "opened": "new incident",
    "worsened": "fell further",
    "recovered": "recovered",
    "reset": "baseline reset",
}


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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _key_name(d: Decision) -> str:
    return _one_line(f"{d.feature}/{d.scorer}")


def _fit(head: str, parts: Sequence[str], tail: str, limit: int) -> str:
    """``head`` + as many ``parts`` as fit (then ``+N more``) + ``tail``, within ``limit``."""
    for shown in range(len(parts), 0, -1):
        rest = len(parts) - shown
        more = f", +{rest} more" if rest else ""
        text = head + ", ".join(parts[:shown]) + more + tail
        if len(text) <= limit:
            return text
    return _cut(head + (parts[0] if parts else "") + tail, limit)


def _worst_per_feature_first(items: Sequence[Decision]) -> list[Decision]:
    """The worst key of each feature (in report order), then the other keys."""
    firsts = [next(group) for _, group in groupby(items, key=lambda d: d.feature)]
    return firsts + [d for d in items if all(d is not f for f in firsts)]


def summary_line(report: IncidentReport) -> str:
    """Return the one-line summary, e.g. ``support: 2 features regressed (refunds/judge -0.62)``.

    The subject, the Slack header and fallback text and the webhook's
    ``summary`` share it, so an alert reads the same wherever it lands. It
    leaves room for the subject prefix within the subject's 250 characters.
    """
    limit = _MAX_SUBJECT_CHARS - len(SUBJECT_PREFIX) - 1
    suite = _one_line(report.suite)
    if not report.items:
        return _cut(f"{suite}: nothing to report for run {_one_line(report.run_id)}", limit)
    if report.kind == "recovery":
        return _fit(f"{suite}: recovered: ", [_key_name(d) for d in report.items], "", limit)
    regressions, drift = report.regressions, report.judge_drift
    if regressions:
        features = len({d.feature for d in regressions})
        parts = [
            f"{_key_name(d)} {_signed(d.mean_difference, 2)}"
            for d in _worst_per_feature_first(regressions)
        ]
        tail = f"); judge drift on {_plural(len(drift), 'key')}" if drift else ")"
        head = f"{suite}: {_plural(features, 'feature')} regressed ("
        return _fit(head, parts, tail, limit)
    shifts = [(d, d.anchor.mean_difference if d.anchor else None) for d in drift]
    parts = [f"{_key_name(d)} ({_signed(shift, 2)} on anchors)" for d, shift in shifts]
    return _fit(f"{suite}: the judge moved on ", parts, "", limit)


def _heading(d: Decision) -> str:
    """``refunds/judge: regressed, new incident (drop)``."""
    words = [d.kind.value.replace("_", " ")]
    if d.transition == "recovered" and d.kind is not DecisionKind.RECOVERED:
        words = ["recovered", "the judge is back"]  # a judge-drift incident closed
    elif d.transition is not None and _TRANSITION_WORDS[d.transition] not in words:
        words.append(_TRANSITION_WORDS[d.transition])
    rule = f" ({d.rule})" if d.rule is not None else ""
    return f"{_key_name(d)}: {', '.join(words)}{rule}"


def _facts(d: Decision) -> list[tuple[str, str]]:
    """The numbers of one key, as (label, value) rows shared by every format."""
    interval = "n/a" if d.ci_low is None else f"{_signed(d.ci_low)} to {_signed(d.ci_high)}"
    rows = [("rule", _RULES[d.rule])] if d.rule is not None else []
    rows += [
        ("known-good -> now", f"{_num(d.baseline)} -> {_num(d.current)}"),
        ("mean difference", f"{_signed(d.mean_difference)} (95% interval {interval})"),
        ("p / adjusted p", f"{_p_value(d.p_value)} / {_p_value(d.p_adjusted)}"),
        ("cases paired", str(d.n_paired)),
        ("baseline runs", ", ".join(d.baseline_run_ids) or "none"),
    ]
    if (a := d.anchor) is not None:
        moved = f"{_signed(a.mean_difference)} over {a.n_paired} anchors"
        p = f"p {_p_value(a.p_value)}, adjusted p {_p_value(a.p_adjusted)}"
        rows.append(("judge anchors", f"{'moved' if a.drifted else 'steady'}: {moved}, {p}"))
    if d.corrected_difference is not None:
        corrected = f"{_signed(d.corrected_difference)} (the fall minus the judge's shift)"
        rows.append(("corrected difference", corrected))
    rows.append(("detector says", d.message))
    return [(label, _one_line(value)) for label, value in rows]


def _cases(report: IncidentReport, d: Decision) -> tuple[list[str], Sequence[CaseDrop], str]:
    """Notes to say before the cases, the cases listed (worst first), and what was left out."""
    moved = d.kind is DecisionKind.JUDGE_DRIFT or (d.anchor is not None and d.anchor.drifted)
    notes = [_JUDGE_SENTENCE] if moved else []
    if not d.fallen:
        notes.append(_NONE_FELL if d.n_paired else _NONE_PAIRED)
    more = len(d.fallen) - MAX_CASES_SHOWN
    command = f"continuous-eval show {shlex.quote(_one_line(report.run_id))} --decisions"
    left_out = f"... and {more} more, all listed in `{command}`" if more > 0 else ""
    return notes, d.fallen[:MAX_CASES_SHOWN], left_out


def _intro(report: IncidentReport) -> str:
    suite, run = _one_line(report.suite), _one_line(report.run_id)
    if report.kind == "recovery":
        judge = any(d.kind is not DecisionKind.RECOVERED for d in report.items)
        back = "back at their known-good level" + (", or their judge is back" if judge else "")
        return (
            f"Run {run} of suite {suite} closed {_plural(len(report.items), 'incident')}: {back}."
        )
    text = f"Scheduled run {run} of suite {suite}"
    regressions, drift = report.regressions, report.judge_drift
    if regressions:
        features = len({d.feature for d in regressions})
        text += f" regressed on {_plural(features, 'feature')} ({_plural(len(regressions), 'key')})"
        text += f"; the judge moved on {_plural(len(drift), 'key')}" if drift else ""
    else:
        text += f": the judge moved on {_plural(len(drift), 'key')}"
    return text + ". Features are listed worst first."


def _check_link(url: str | None) -> None:
    # The URL comes from settings, but an email or a Slack button must never
    # carry a javascript: or data: link, whoever configured it.
    if url is not None and not url.startswith(("https://", "http://")):
        raise ValueError("dashboard_url must be an http:// or https:// URL")


def _link(report: IncidentReport, dashboard_url: str | None) -> str | None:
    """The run's page when the report has one, else the dashboard; both http(s) only."""
    _check_link(dashboard_url)
    _check_link(report.dashboard_run_url)
    return report.dashboard_run_url if report.dashboard_run_url is not None else dashboard_url


# ----------------------------------------------------------------------- email


def _email_text(report: IncidentReport, link: str | None) -> str:
    lines = [_intro(report)]
    for feature, decisions in groupby(report.items, key=lambda d: d.feature):
        title = f"Feature {_one_line(feature)}"
        lines += ["", title, "=" * len(title)]
        for d in decisions:
            facts = _facts(d)
            width = max(len(label) for label, _ in facts)
            lines += ["", _heading(d)]
            lines += [f"  {label.ljust(width)}  {value}" for label, value in facts]
            notes, shown, left_out = _cases(report, d)
            lines += [f"  {note}" for note in notes]
            if not shown:
                continue
            lines.append("  Cases that fell, worst first (known-good -> now):")
            case_width = max(len(_one_line(c.case_id)) for c in shown)
            lines += [
                f"    {_one_line(c.case_id).ljust(case_width)}  {_num(c.before)} -> "
                f"{_num(c.after)}  ({_signed(c.after - c.before)})"
                for c in shown
            ]
            if left_out:
                lines.append(f"    {left_out}")
    if link is not None:
        lines += ["", f"Run: {link}"]
    lines += ["", f"Alert key: {_one_line(report.key)}"]
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
        f"<p>{esc(_intro(report))}</p>",
    ]
    for feature, decisions in groupby(report.items, key=lambda d: d.feature):
        parts.append(f"<h3>Feature {esc(_one_line(feature))}</h3>")
        for d in decisions:
            parts += [f"<h4>{esc(_heading(d))}</h4>", _TABLE]
            parts += [f"<tr>{_cell(label, 'th')}{_cell(value)}</tr>" for label, value in _facts(d)]
            parts.append("</table>")
            notes, shown, left_out = _cases(report, d)
            parts += [f"<p><b>{esc(note)}</b></p>" for note in notes]
            if not shown:
                continue
            parts += ["<p>Cases that fell, worst first:</p>", _TABLE]
            parts.append(_row(["case", "known-good", "now", "change"], "th"))
            parts += [
                _row([c.case_id, _num(c.before), _num(c.after), _signed(c.after - c.before)])
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
    link = _link(report, dashboard_url)
    return {
        "from": sender,
        "to": to,
        "subject": _cut(f"{SUBJECT_PREFIX} {summary_line(report)}", _MAX_SUBJECT_CHARS),
        "text": _email_text(report, link),
        "html": _email_html(report, link),
    }


# --------------------------------------------------------------------- webhook


def _plain(value: object) -> Any:
    """A field as JSON: dataclasses as objects, tuples as lists, numbers finite or null."""
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, CaseDrop):
            fields["delta"] = _finite(value.after - value.before)
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


def _slack_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _codeable(text: str) -> str:
    # A backtick in a name would close a code span early.
    return _one_line(text).replace("`", "'")


def _slack_key(report: IncidentReport, d: Decision) -> dict[str, Any]:
    heading = _slack_escape(_codeable(_heading(d)))
    lines = [f"*{heading}*"]
    lines += [_slack_escape(f"{label}: {value}") for label, value in _facts(d)]
    notes, shown, left_out = _cases(report, d)
    lines += [f"_{_slack_escape(note)}_" for note in notes]
    cases = [
        _slack_escape(
            f"{_codeable(c.case_id)}: {_num(c.before)} -> {_num(c.after)} "
            f"({_signed(c.after - c.before)})"
        )
        for c in shown
    ]
    if left_out:
        cases.append(_slack_escape(_codeable(left_out)))
    head = "\n".join(lines)
    if cases:
        body = "```" + "\n".join(cases) + "```"
        room = _SLACK_TEXT_CHARS - len(head) - 1
        if room >= 10:
            head += "\n" + (body if len(body) <= room else _cut(body[:-3], room - 3) + "```")
    return _section(head)


def _section(mrkdwn: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(mrkdwn, _SLACK_TEXT_CHARS)}}


def _slack_payload(report: IncidentReport, link: str | None) -> dict[str, Any]:
    summary = summary_line(report)
    header = {"type": "plain_text", "text": _cut(summary, _SLACK_HEADER_CHARS), "emoji": False}
    blocks = [{"type": "header", "text": header}, _section(_slack_escape(_intro(report)))]
    blocks += [_slack_key(report, d) for d in report.items[:_SLACK_MAX_KEYS]]
    hidden = len(report.items) - _SLACK_MAX_KEYS
    if hidden > 0:
        command = f"continuous-eval show {shlex.quote(_one_line(report.run_id))} --decisions"
        more = f"... and {_plural(hidden, 'more key')}, all listed in `{_codeable(command)}`"
        blocks.append(_section(_slack_escape(more)))
    context = f"run `{_slack_escape(_codeable(report.run_id))}` · key `"
    context += f"{_slack_escape(_codeable(report.key))}`"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    if link is not None:
        button = {"type": "button", "text": {"type": "plain_text", "text": "Open the run"}}
        blocks.append({"type": "actions", "elements": [{**button, "url": link}]})
    # ``text`` is what notifications and clients without blocks show.
    return {"text": _slack_escape(f"{SUBJECT_PREFIX} {summary}"), "blocks": blocks}


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
    link = _link(report, dashboard_url)
    if slack:
        return _slack_payload(report, link)
    return _generic_document(report, link)


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
