"""A tiny stand-in for a team's LLM features, so the example suite runs offline.

Each function plays the part of a feature's entry point: a support FAQ bot, a
calculator tool, and a ticket triager that answers JSON. They are deliberately
imperfect, so the example run shows failures and errors in its summary.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

_FAQ = {
    "refund": "You can request a refund within 30 days from the Orders page.",
    "password": "Use 'Forgot password' on the sign-in page to reset your password.",
    "shipping": "Standard shipping takes 3-5 business days.",
    "cancel": "You can cancel a subscription any time under Settings > Billing.",
    "invoice": "Invoices are emailed after each payment and listed under Billing.",
}


async def answer_faq(question: str) -> str:
    """Answer a support question from a fixed FAQ, as an async model call would."""
    await asyncio.sleep(0.01)  # stands in for the model's latency
    lowered = question.lower()
    for key, answer in _FAQ.items():
        if key in lowered:
            return answer
    return "Sorry, I am not sure. Please contact support."


def calculate(expression: str) -> str:
    """Evaluate simple arithmetic the way a tool-using model might (with its bugs)."""
    match = re.fullmatch(r"\s*(-?[\d.]+)\s*([+\-*/])\s*(-?[\d.]+)\s*", expression)
    if not match:
        raise ValueError(f"cannot parse {expression!r}")
    left, op, right = float(match.group(1)), match.group(2), float(match.group(3))
    if op == "+":
        return f"{left + right:g}"
    if op == "-":
        return f"{left - right:g}"
    if op == "*":
        return f"{left * right:g}"
    return f"{left / right:.2f}"  # rounds to two places: a deliberate imprecision


def triage(ticket: dict[str, Any]) -> str:
    """Route a ticket to a queue and answer JSON, as a structured-output feature would."""
    text = str(ticket.get("subject", "")) + " " + str(ticket.get("body", ""))
    lowered = text.lower()
    if "charge" in lowered or "refund" in lowered:
        queue = "billing"
    elif "crash" in lowered or "error" in lowered:
        queue = "engineering"
    else:
        queue = "general"
    urgent = "urgent" in lowered or "asap" in lowered
    if "legacy" in lowered:
        # An old code path that still answers free text instead of JSON.
        return f"queue={queue}"
    return json.dumps({"queue": queue, "urgent": urgent})


def right_queue(output: str, case: Any) -> dict[str, Any]:
    """Score triage: 1 when the answer names the expected queue."""
    answer = json.loads(output)
    expected = case.expected
    ok = answer.get("queue") == expected
    return {"score": 1.0 if ok else 0.0, "passed": ok, "rationale": f"queue {answer.get('queue')}"}
