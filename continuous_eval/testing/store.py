"""``InMemoryRunStore``: the ``RunStore`` port in dictionaries, joined from its seams.

Only the facade belongs here; each seam is a module of this package, named
like its SQL counterpart under ``adapters/db`` so the two read side by side.
"""

from __future__ import annotations

from continuous_eval.testing.history import MemoryRunHistory
from continuous_eval.testing.lookup import MemoryRunLookup
from continuous_eval.testing.outbox import MemoryAlertOutbox
from continuous_eval.testing.results import MemoryResultSink
from continuous_eval.testing.runs import MemoryRunLifecycle
from continuous_eval.testing.steps import MemoryCaseSteps


class InMemoryRunStore(
    MemoryRunLifecycle,
    MemoryResultSink,
    MemoryCaseSteps,
    MemoryRunHistory,
    MemoryAlertOutbox,
    MemoryRunLookup,
):
    """A ``RunStore`` in dictionaries, with the same semantics as ``SqlRunStore``.

    It raises the same errors for the same inputs (``DuplicateRun``,
    ``RunFinished``, ``RunNotFound``, ``LeaseLost``, ``ValueError``) and
    orders the same way; ``tests/integration/test_store_contract.py`` and
    ``test_store_leases.py`` run one suite against both. Its clock doubles as
    "the database's clock" for leases, so a test expires a lease by advancing
    a ``FakeClock``. Thread-safe through one lock. The attributes are public so
    tests can assert on (or arrange) the stored state directly.

    Joined by inheritance, like ``SqlRunStore``: the seams share one set of
    dictionaries and one lock (``base.MemoryStoreBase``), and a test that
    needs a store that fails in one place subclasses this class and
    overrides that one method.

    Args:
        clock: Source of the timestamps the store writes and of lease times.
    """
