"""The Protocols the service layer needs and the types it shares with the adapters.

Keeping them in one package means the runner and the daemon can be tested
with the fakes in ``continuous_eval.testing`` and run for real with the
adapters, without either knowing which. Import from here
(``from continuous_eval.ports import RunStore``); the modules group them:
``store`` (the run store's seams), ``reader`` (the read side), ``execution``
(targets, scorers, plans) and ``runtime`` (locks, channels, the daemon's
events).
"""

from __future__ import annotations

from continuous_eval.ports.execution import (
    CaseScorer,
    Clock,
    FeaturePlan,
    PlanSource,
    RunObserver,
    RunPlan,
    StepListener,
    StreamingTarget,
    Target,
)
from continuous_eval.ports.interactions import InteractionStore
from continuous_eval.ports.reader import (
    RunReader,
)
from continuous_eval.ports.runtime import (
    AlertChannel,
    AlertEvents,
    DaemonEvents,
    JobEvents,
    RunLauncher,
    SuiteLock,
    SuiteLocks,
    SuiteSchedule,
    TickOutcome,
)
from continuous_eval.ports.store import (
    AlertOutbox,
    CaseStepStore,
    HistoryReader,
    ResultSink,
    RunHistory,
    RunLifecycle,
    RunLookup,
    RunStore,
)

__all__ = [
    "AlertChannel",
    "AlertEvents",
    "AlertOutbox",
    "CaseScorer",
    "CaseStepStore",
    "Clock",
    "DaemonEvents",
    "FeaturePlan",
    "HistoryReader",
    "InteractionStore",
    "JobEvents",
    "PlanSource",
    "ResultSink",
    "RunHistory",
    "RunLauncher",
    "RunLifecycle",
    "RunLookup",
    "RunObserver",
    "RunPlan",
    "RunReader",
    "RunStore",
    "StepListener",
    "StreamingTarget",
    "SuiteLock",
    "SuiteLocks",
    "SuiteSchedule",
    "Target",
    "TickOutcome",
]
