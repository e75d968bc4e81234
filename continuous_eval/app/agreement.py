"""The judges' agreement with people as the command line reads it: the store, opened and closed.

``continuous-eval agreement`` reads through here, so the CLI needs neither
the database adapters nor the engine's lifetime.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from continuous_eval.adapters.db.agreement import SqlAgreementStore
from continuous_eval.app.container import open_store
from continuous_eval.ports.agreement import AgreementStore
from continuous_eval.settings import Settings


@contextlib.contextmanager
def agreement_side(settings: Settings) -> Iterator[AgreementStore]:
    """Open the configured database's agreement store; close it after.

    Raises:
        ContinuousEvalError: The database could not be opened (``open_store``).
    """
    engine, store = open_store(settings)
    try:
        yield SqlAgreementStore(engine)
    finally:
        store.close()
        engine.dispose()
