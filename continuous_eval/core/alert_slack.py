"""Render a run's report as a Slack incoming-webhook message (``{"text", "blocks"}``).

What belongs here: the Slack layout (a header, an introduction, one section
per key, a context line and a button) and Slack's limits on it (header and
section lengths, the number of blocks). Names taken from a suite go through
Slack's three mrkdwn entities and lose their backticks inside code spans.
"""

from __future__ import annotations

import shlex
from typing import Any, Final

from continuous_eval.core.alert_text import (
    SUBJECT_PREFIX,
    cut,
    fallen_cases,
    intro,
    key_facts,
    key_heading,
    num,
    one_line,
    plural,
    signed,
    summary_line,
)
from continuous_eval.core.alerting import IncidentReport
from continuous_eval.core.regression import Decision

_SLACK_HEADER_CHARS: Final = 150  # Slack refuses a header block's text above this
_SLACK_TEXT_CHARS: Final = 3000  # ... and a section's text above this
_SLACK_MAX_KEYS: Final = 20  # one section per key; a message holds at most 50 blocks


def _slack_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _codeable(text: str) -> str:
    # A backtick in a name would close a code span early.
    return one_line(text).replace("`", "'")


def _slack_key(report: IncidentReport, d: Decision) -> dict[str, Any]:
    heading = _slack_escape(_codeable(key_heading(d)))
    lines = [f"*{heading}*"]
    lines += [_slack_escape(f"{label}: {value}") for label, value in key_facts(d)]
    notes, shown, left_out = fallen_cases(report, d)
    lines += [f"_{_slack_escape(note)}_" for note in notes]
    cases = [
        _slack_escape(
            f"{_codeable(c.case_id)}: {num(c.before)} -> {num(c.after)} "
            f"({signed(c.after - c.before)})"
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
            head += "\n" + (body if len(body) <= room else cut(body[:-3], room - 3) + "```")
    return _section(head)


def _section(mrkdwn: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(mrkdwn, _SLACK_TEXT_CHARS)}}


def slack_payload(report: IncidentReport, link: str | None) -> dict[str, Any]:
    """Return the Slack message of a report; ``link`` (already checked) becomes a button."""
    summary = summary_line(report)
    header = {"type": "plain_text", "text": cut(summary, _SLACK_HEADER_CHARS), "emoji": False}
    blocks = [{"type": "header", "text": header}, _section(_slack_escape(intro(report)))]
    blocks += [_slack_key(report, d) for d in report.items[:_SLACK_MAX_KEYS]]
    hidden = len(report.items) - _SLACK_MAX_KEYS
    if hidden > 0:
        command = f"continuous-eval show {shlex.quote(one_line(report.run_id))} --decisions"
        more = f"... and {plural(hidden, 'more key')}, all listed in `{_codeable(command)}`"
        blocks.append(_section(_slack_escape(more)))
    context = f"run `{_slack_escape(_codeable(report.run_id))}` · key `"
    context += f"{_slack_escape(_codeable(report.key))}`"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    if link is not None:
        button = {"type": "button", "text": {"type": "plain_text", "text": "Open the run"}}
        blocks.append({"type": "actions", "elements": [{**button, "url": link}]})
    # ``text`` is what notifications and clients without blocks show.
    return {"text": _slack_escape(f"{SUBJECT_PREFIX} {summary}"), "blocks": blocks}
