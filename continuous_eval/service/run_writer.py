"""The one writer of a run's results: group commit through a bounded queue.

What belongs here: ``ResultWriter``, which stores whatever finished cases
have accumulated in a single transaction, as soon as the previous write is
done. The database sees a few large writes instead of thousands of small
ones, and a store that falls behind fills the queue, which holds back new
cases (see ``runner``).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from functools import partial

from continuous_eval.ports import RunStore
from continuous_eval.service.blocking import run_blocking
from continuous_eval.service.run_cases import CaseOutcome
from continuous_eval.service.run_state import RunState

BATCH_MAX = 512
"""Most results one write stores; bounds the transaction size under a burst."""


class ResultWriter:
    """Store a run's finished cases in as few transactions as they allow.

    Args:
        store: where the results go.
        io: the executor the store's blocking calls run on.
        linger_s: how long to wait after a result arrives to gather others
            into the same transaction.
    """

    def __init__(self, store: RunStore, io: Executor, *, linger_s: float) -> None:
        self._store = store
        self._io = io
        self._linger_s = linger_s

    async def write(self, state: RunState, queue: asyncio.Queue[CaseOutcome | None]) -> None:
        """Store what arrives on ``queue`` until it carries ``None``; raise when the store fails."""
        done = False
        while not done:
            first = await queue.get()
            if first is None:
                return
            results = list(first.results)
            delta = first.delta
            if self._linger_s > 0:
                # Group commit: a transaction costs ~0.6 ms of CPU whatever its
                # size, so waiting a moment for neighbours makes writes several
                # times cheaper while results still land within the linger.
                await asyncio.sleep(self._linger_s)
            # Take whatever else finished meanwhile: one transaction for all of it.
            while len(results) < BATCH_MAX:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is None:
                    done = True
                    break
                results.extend(item.results)
                delta = delta + item.delta
            save = partial(
                self._store.save_results, state.run.id, results, delta, fence=state.fence
            )
            await run_blocking(self._io, save)
