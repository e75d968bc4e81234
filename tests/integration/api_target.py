"""The system under test of the HTTP API tests: a Python target the test can hold and release.

``answer("hold")`` blocks until the test sets ``RELEASE``; ``answer("q:0.05")``
sleeps 50 ms. The server runs in the test's process (a background thread),
so the test controls exactly when cases finish.
"""

from __future__ import annotations

import threading
import time

RELEASE = threading.Event()
"""Set to let every held case finish; the fixture sets it again on teardown."""


def answer(question: str) -> str:
    """Answer after the delay (or the release) the question asks for."""
    if question.startswith("hold"):
        if not RELEASE.wait(timeout=60):
            raise TimeoutError("the test never released the held case")
        return question
    time.sleep(float(question.split(":")[1]))
    return question
