"""What every part of the daemon shares: its config, its state and its helpers.

What belongs here: ``DaemonConfig``, the in-process ``RunGate``, the
``NullEvents`` default, and ``DaemonBase``, which holds the ports, the runs in
flight and the background tasks, and the helpers every seam calls (blocking
calls on the I/O executor, leases, callbacks, today's spend). The seams are
subclasses of it, one module each (``daemon_ticks``, ``daemon_manual``,
``daemon_execution``, ``daemon_controls``, ``daemon_shutdown``), joined in
``daemon.Daemon``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TypeVar

from continuous_eval.core.budget import day_start
from continuous_eval.core.models import Callback, Lease, NewRun, RunRecord, RunType
from continuous_eval.ports import (
    DaemonEvents,
    PlanSource,
    RunPlan,
    RunStore,
    SuiteLocks,
    SuiteSchedule,
    TickOutcome,
)
from continuous_eval.service.blocking import run_blocking
from continuous_eval.service.run_control import RunControl
from continuous_eval.service.runner import Runner

# Every seam logs under the name the daemon logged under before it was split:
# operators filter on it, and the README shows it.
log = logging.getLogger("continuous_eval.service.daemon")

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """How the daemon behaves; built from settings in ``app.config``."""

    owner: str
    """This replica's name in leases and locks."""
    schedules: Mapping[str, SuiteSchedule]
    lease_s: float
    heartbeat_s: float
    drain_timeout_s: float
    daily_budget_usd: float | None
    run_webhook_url: str | None = None
    """Every run's completion is posted here (``core.run_notice``)."""


class NullEvents:
    """Reports nowhere; for tests and the CLI."""

    def tick(self, suite: str, outcome: TickOutcome) -> None:
        """Ignore."""

    def lock_held(self, suite: str, held: bool) -> None:
        """Ignore."""

    def budget_unreadable(self) -> None:
        """Ignore."""

    def run_finished(self, run: RunRecord) -> None:
        """Ignore."""


class RunGate:
    """In-process mutual exclusion per suite, shared by scheduled ticks and manual runs.

    Try, never wait: a tick that finds the suite busy counts ``gate_busy`` and
    moves on, and a manual request gets a conflict at once.
    """

    def __init__(self) -> None:
        self._busy: set[str] = set()

    def try_enter(self, suite: str) -> bool:
        """Take the suite's gate if it is free."""
        if suite in self._busy:
            return False
        self._busy.add(suite)
        return True

    def leave(self, suite: str) -> None:
        """Free the suite's gate; harmless when not held."""
        self._busy.discard(suite)

    def busy(self, suite: str) -> bool:
        """Whether the suite is running in this process."""
        return suite in self._busy


class DaemonBase:
    """The daemon's ports, state and shared helpers; the seams build on it."""

    def __init__(
        self,
        *,
        store: RunStore,
        locks: SuiteLocks,
        runner: Runner,
        plans: PlanSource,
        config: DaemonConfig,
        events: DaemonEvents | None = None,
        deliver_alerts: Callable[[], Awaitable[int]] | None = None,
        io_executor: Executor | None = None,
    ) -> None:
        self._deliver_alerts = deliver_alerts
        # The daemon's own blocking calls (store, locks) go here, never to the
        # default pool that sync user code shares; the owner shuts it down
        # (waiting) before it disposes of the engine.
        self._io_executor = io_executor
        self._store = store
        self._locks = locks
        self._runner = runner
        self._plans = plans
        self._config = config
        self._events: DaemonEvents = events or NullEvents()
        self.gate = RunGate()
        self._active: dict[str, RunControl] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self._stopping = False

    @property
    def owner(self) -> str:
        """This replica's lease owner name."""
        return self._config.owner

    def _lease(self) -> Lease:
        return Lease(self.owner, self._config.lease_s)

    def _callbacks(self, callback_url: str | None) -> tuple[Callback, ...]:
        """Where a new run's completion is posted: the request's URL and the run webhook."""
        found = []
        if callback_url is not None:
            found.append(Callback("callback", callback_url))
        if self._config.run_webhook_url is not None:
            found.append(Callback("run_webhook", self._config.run_webhook_url))
        return tuple(found)

    async def _spend_today(self, now: datetime) -> float | None:
        try:
            return await self._io(partial(self._store.judge_spend_since, day_start(now)))
        except Exception as exc:
            log.warning(
                "could not read today's judge spend: %s", exc, extra={"event": "budget_read_failed"}
            )
            return None

    def _spawn(self, coro: Awaitable[object]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _io(self, fn: Callable[[], _T]) -> _T:
        return await run_blocking(self._io_executor, fn)


def new_run(
    plan: RunPlan,
    run_type: RunType,
    *,
    scheduled_for: datetime | None = None,
    run_id: str | None = None,
    idempotency_key: str | None = None,
    spec_hash: str | None = None,
    callbacks: tuple[Callback, ...] = (),
) -> NewRun:
    """Build the new run of a plan, under a fresh id unless the caller chose one."""
    return NewRun(
        id=run_id or str(uuid.uuid4()),
        suite=plan.suite,
        run_type=run_type,
        features=tuple(f.name for f in plan.features),
        cases_total=plan.cases_total,
        total=plan.results_total,
        fingerprint=plan.fingerprint,
        fingerprint_parts=plan.fingerprint_parts,
        scheduled_for=scheduled_for,
        idempotency_key=idempotency_key,
        spec_hash=spec_hash,
        callbacks=callbacks,
    )
