"""The words and numbers of an incident report, shared by every channel's format.

What belongs here: how a report reads whatever it is sent as. The one-line
summary (the subject, the Slack header, the webhook's ``summary``), each
key's heading and facts, the cases listed and left out, the introduction,
the run's link, and the number formatting and single-line cleaning they use.
The email (``alert_email``), Slack (``alert_slack``) and generic webhook
(``alert_webhook``) formats lay these out and escape them for where they
land, so an alert says the same thing in every channel.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Sequence
from itertools import groupby
from typing import Final

from continuous_eval.core.alerting import IncidentReport
from continuous_eval.core.models import CaseDrop
from continuous_eval.core.regression import Decision, DecisionKind

SUBJECT_PREFIX: Final = "[continuous-eval]"
"""Starts every subject, so people can filter alerts in their mail client."""

MAX_CASES_SHOWN: Final = 10
"""Worst cases listed per key in an email or a message; the rest are counted, not listed."""

MAX_SUBJECT_CHARS: Final = 250
"""Longest subject sent; ``summary_line`` leaves room for the prefix within it."""

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


def finite_or_none(value: float | None) -> float | None:
    """The value, or None when it is missing or not a finite number (JSON has no NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def num(value: float | None, digits: int = 3) -> str:
    """Format a number to ``digits`` places, or ``n/a``."""
    finite = finite_or_none(value)
    return "n/a" if finite is None else f"{finite:.{digits}f}"


def signed(value: float | None, digits: int = 3) -> str:
    """Format a difference with its sign, or ``n/a``."""
    finite = finite_or_none(value)
    return "n/a" if finite is None else f"{finite:+.{digits}f}"


def _p_value(value: float | None) -> str:
    finite = finite_or_none(value)
    if finite is None:
        return "n/a"
    return "<0.001" if finite < 0.001 else f"{finite:.3f}"


def one_line(text: str) -> str:
    """Text safe for a header or a single line: control characters become one space."""
    return _CONTROL.sub(" ", text).strip()


def cut(text: str, limit: int) -> str:
    """Shorten ``text`` to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def plural(n: int, word: str) -> str:
    """``1 key``, ``2 keys``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _key_name(d: Decision) -> str:
    return one_line(f"{d.feature}/{d.scorer}")


def _fit(head: str, parts: Sequence[str], tail: str, limit: int) -> str:
    """``head`` + as many ``parts`` as fit (then ``+N more``) + ``tail``, within ``limit``."""
    for shown in range(len(parts), 0, -1):
        rest = len(parts) - shown
        more = f", +{rest} more" if rest else ""
        text = head + ", ".join(parts[:shown]) + more + tail
        if len(text) <= limit:
            return text
    return cut(head + (parts[0] if parts else "") + tail, limit)


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
    limit = MAX_SUBJECT_CHARS - len(SUBJECT_PREFIX) - 1
    suite = one_line(report.suite)
    if not report.items:
        return cut(f"{suite}: nothing to report for run {one_line(report.run_id)}", limit)
    if report.kind == "recovery":
        return _fit(f"{suite}: recovered: ", [_key_name(d) for d in report.items], "", limit)
    regressions, drift = report.regressions, report.judge_drift
    if regressions:
        features = len({d.feature for d in regressions})
        parts = [
            f"{_key_name(d)} {signed(d.mean_difference, 2)}"
            for d in _worst_per_feature_first(regressions)
        ]
        tail = f"); judge drift on {plural(len(drift), 'key')}" if drift else ")"
        head = f"{suite}: {plural(features, 'feature')} regressed ("
        return _fit(head, parts, tail, limit)
    shifts = [(d, d.anchor.mean_difference if d.anchor else None) for d in drift]
    parts = [f"{_key_name(d)} ({signed(shift, 2)} on anchors)" for d, shift in shifts]
    return _fit(f"{suite}: the judge moved on ", parts, "", limit)


def key_heading(d: Decision) -> str:
    """``refunds/judge: regressed, new incident (drop)``."""
    words = [d.kind.value.replace("_", " ")]
    if d.transition == "recovered" and d.kind is not DecisionKind.RECOVERED:
        words = ["recovered", "the judge is back"]  # a judge-drift incident closed
    elif d.transition is not None and _TRANSITION_WORDS[d.transition] not in words:
        words.append(_TRANSITION_WORDS[d.transition])
    rule = f" ({d.rule})" if d.rule is not None else ""
    return f"{_key_name(d)}: {', '.join(words)}{rule}"


def key_facts(d: Decision) -> list[tuple[str, str]]:
    """The numbers of one key, as (label, value) rows shared by every format."""
    interval = "n/a" if d.ci_low is None else f"{signed(d.ci_low)} to {signed(d.ci_high)}"
    rows = [("rule", _RULES[d.rule])] if d.rule is not None else []
    rows += [
        ("known-good -> now", f"{num(d.baseline)} -> {num(d.current)}"),
        ("mean difference", f"{signed(d.mean_difference)} (95% interval {interval})"),
        ("p / adjusted p", f"{_p_value(d.p_value)} / {_p_value(d.p_adjusted)}"),
        ("cases paired", str(d.n_paired)),
        ("baseline runs", ", ".join(d.baseline_run_ids) or "none"),
    ]
    if (a := d.anchor) is not None:
        moved = f"{signed(a.mean_difference)} over {a.n_paired} anchors"
        p = f"p {_p_value(a.p_value)}, adjusted p {_p_value(a.p_adjusted)}"
        rows.append(("judge anchors", f"{'moved' if a.drifted else 'steady'}: {moved}, {p}"))
    if d.corrected_difference is not None:
        corrected = f"{signed(d.corrected_difference)} (the fall minus the judge's shift)"
        rows.append(("corrected difference", corrected))
    rows.append(("detector says", d.message))
    return [(label, one_line(value)) for label, value in rows]


def fallen_cases(report: IncidentReport, d: Decision) -> tuple[list[str], Sequence[CaseDrop], str]:
    """Notes to say before the cases, the cases listed (worst first), and what was left out."""
    moved = d.kind is DecisionKind.JUDGE_DRIFT or (d.anchor is not None and d.anchor.drifted)
    notes = [_JUDGE_SENTENCE] if moved else []
    if not d.fallen:
        notes.append(_NONE_FELL if d.n_paired else _NONE_PAIRED)
    more = len(d.fallen) - MAX_CASES_SHOWN
    command = f"continuous-eval show {shlex.quote(one_line(report.run_id))} --decisions"
    left_out = f"... and {more} more, all listed in `{command}`" if more > 0 else ""
    return notes, d.fallen[:MAX_CASES_SHOWN], left_out


def intro(report: IncidentReport) -> str:
    """The sentence that opens every format: which run, which suite, what changed."""
    suite, run = one_line(report.suite), one_line(report.run_id)
    if report.kind == "recovery":
        judge = any(d.kind is not DecisionKind.RECOVERED for d in report.items)
        back = "back at their known-good level" + (", or their judge is back" if judge else "")
        return f"Run {run} of suite {suite} closed {plural(len(report.items), 'incident')}: {back}."
    text = f"Scheduled run {run} of suite {suite}"
    regressions, drift = report.regressions, report.judge_drift
    if regressions:
        features = len({d.feature for d in regressions})
        text += f" regressed on {plural(features, 'feature')} ({plural(len(regressions), 'key')})"
        text += f"; the judge moved on {plural(len(drift), 'key')}" if drift else ""
    else:
        text += f": the judge moved on {plural(len(drift), 'key')}"
    return text + ". Features are listed worst first."


def _check_link(url: str | None) -> None:
    # The URL comes from settings, but an email or a Slack button must never
    # carry a javascript: or data: link, whoever configured it.
    if url is not None and not url.startswith(("https://", "http://")):
        raise ValueError("dashboard_url must be an http:// or https:// URL")


def run_link(report: IncidentReport, dashboard_url: str | None) -> str | None:
    """The run's page when the report has one, else the dashboard; both http(s) only."""
    _check_link(dashboard_url)
    _check_link(report.dashboard_run_url)
    return report.dashboard_run_url if report.dashboard_run_url is not None else dashboard_url
