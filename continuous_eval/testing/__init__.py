"""Fakes that ship with the package, for the project's tests and for users' own.

Only test doubles of the ports in ``continuous_eval.ports`` belong here. They
are real implementations with inspectable state, not mocks: a test drives the
code under test and then asserts on what the fake holds. They import the core,
the ports and the errors only, never a database driver, so a unit test that
uses them never loads SQLAlchemy.

``clock`` holds ``FakeClock``; ``doubles`` the doubles a test awaits instead
of sleeping (``GatedTarget``); ``reader`` the read side over the in-memory
store (``InMemoryRunReader``); ``store`` joins the in-memory store's seams
(``runs``, ``results``, ``steps``, ``history``, ``outbox``, ``lookup``, over
``base``); ``interactions`` the interaction store in memory
(``InMemoryInteractionStore``); ``builders`` the records a test arranges
(``new_run``, ``ok``, ``failed``, ``add_finished_run``, ...), the same for
every test that builds them.
"""

from __future__ import annotations

from continuous_eval.testing.builders import (
    SLOT,
    Decide,
    add_finished_run,
    all_scores,
    cases,
    failed,
    new_run,
    ok,
    pass_fail,
    plan_run,
)
from continuous_eval.testing.clock import DEFAULT_START, FakeClock
from continuous_eval.testing.doubles import GatedTarget
from continuous_eval.testing.interactions import InMemoryInteractionStore
from continuous_eval.testing.reader import InMemoryRunReader
from continuous_eval.testing.store import InMemoryRunStore

__all__ = [
    "DEFAULT_START",
    "SLOT",
    "Decide",
    "FakeClock",
    "GatedTarget",
    "InMemoryInteractionStore",
    "InMemoryRunReader",
    "InMemoryRunStore",
    "add_finished_run",
    "all_scores",
    "cases",
    "failed",
    "new_run",
    "ok",
    "pass_fail",
    "plan_run",
]
