"""The daemon: scheduled ticks, manual runs, takeovers, and graceful shutdown.

The daemon talks to ports only; the scheduler (APScheduler), the HTTP app
and the database are adapters wired in ``app.container``. The store and lock calls
are blocking and go to worker threads; a lock release is blocking on purpose,
in ``finally``, so that no cancellation can skip it.

Only the facade belongs in this module: ``Daemon`` joins the daemon's seams,
one module each: ``daemon_ticks`` (the tick, claims and takeovers),
``daemon_manual`` (manual runs), ``daemon_execution`` (a run under its
heartbeat and watchdog), ``daemon_controls`` (cancel, pause, resume) and
``daemon_shutdown``, over ``daemon_base`` (config, state, helpers); the
steps of one tick are drawn in ``daemon_ticks``. ``DaemonConfig``,
``NullEvents`` and ``RunGate``, defined here before the split, are
re-exported.
"""

from __future__ import annotations

from continuous_eval.service.daemon_base import DaemonConfig, NullEvents, RunGate
from continuous_eval.service.daemon_controls import DaemonControls
from continuous_eval.service.daemon_manual import DaemonManualRuns
from continuous_eval.service.daemon_shutdown import DaemonShutdown

__all__ = ["Daemon", "DaemonConfig", "NullEvents", "RunGate"]


class Daemon(DaemonControls, DaemonManualRuns, DaemonShutdown):
    """Schedules, runs, takes over and controls runs for the suites of one config.

    One class per seam, joined by inheritance as ``SqlRunStore`` joins the
    store's: the seams share one set of ports, the runs in flight and the
    background tasks (``daemon_base.DaemonBase``), and call each other (a
    tick, a manual run and a resume all end in ``_execute``), so the facade
    needs no forwarding method.
    """
