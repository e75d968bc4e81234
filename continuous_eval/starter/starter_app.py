"""Stand-ins for your LLM features, so the starter suite runs offline.

Point the suite's targets at your own functions (``package.module:function``,
sync or async), an HTTP endpoint, or a Claude model instead.
"""

from __future__ import annotations

from typing import Any

_ANSWERS = {
    "refund": "Refunds are issued within 5 business days from the Orders page.",
    "password": "Use 'Forgot password' on the sign-in page to reset it.",
}


def greet(name: str) -> str:
    """Answer a greeting: the simplest feature there is."""
    return f"Hello, {name}!"


async def answer(question: str) -> str:
    """Answer a support question (async, as a model call would be)."""
    lowered = question.lower()
    for topic, text in _ANSWERS.items():
        if topic in lowered:
            return text
    return "Please contact support; a person will answer within a day."


def short_enough(output: str, case: object) -> dict[str, Any]:
    """A custom scorer: pass when the answer fits in 80 characters, with a reason."""
    return {
        "score": 1.0 if len(output) <= 80 else 0.0,
        "rationale": f"{len(output)} characters",
    }
