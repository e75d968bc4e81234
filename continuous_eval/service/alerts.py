"""From a finished scheduled run to alerts in people's inboxes: exactly once.

Two halves, joined by the outbox table:

- ``AlertPlanner`` runs inside the run's final write: it asks the detector
  for the run's decisions (``core.regression``) and turns the incidents they
  open, worsen or close into at most one report each way (``core.alerting``),
  and returns decisions and outbox rows, which the store writes in the SAME
  transaction as the run's final status. A crash before that commit loses nothing (the run
  is taken over and finished again); a crash after it leaves rows to deliver.
- ``AlertDispatcher`` delivers pending rows, on every tick and right after a
  run: claim (a lease, so two replicas never send the same row at once),
  send the stored payload with the row's idempotency key, settle. A crash
  between the send and the settle leaves the claim to expire; the row is sent
  again with the same key and byte-identical payload, which the provider
  answers with the same message id instead of a second email.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from continuous_eval.core import alerting, outage
from continuous_eval.core.alerting import IncidentReport
from continuous_eval.core.models import (
    AlertRecord,
    AlertStatus,
    DeliveryResult,
    NewAlert,
    RunRecord,
    RunStatus,
    ScoreAggregate,
)
from continuous_eval.core.outage import OutageNotice
from continuous_eval.core.regression import Decision, RunDecision
from continuous_eval.ports import AlertChannel, AlertEvents, AlertOutbox, HistoryReader, RunHistory
from continuous_eval.service.blocking import run_blocking
from continuous_eval.service.calibration import Calibrator

log = logging.getLogger(__name__)


class NullAlertEvents:
    """Counts nothing."""

    def alert(self, channel: str, status: str) -> None:
        """Ignore."""

    def regression(self, suite: str, decision: Decision) -> None:
        """Ignore."""


@dataclass(frozen=True, slots=True)
class FinishPlan:
    """What a run's final write stores besides its status: decisions and outbox rows."""

    alerts: Sequence[NewAlert] = ()
    decisions: Sequence[Decision] = ()


Detect = Callable[[HistoryReader, RunRecord, Sequence[ScoreAggregate]], RunDecision]
"""Reads what the detector needs from the store (history, case scores) and runs it."""

Render = Callable[[IncidentReport], str]
"""Turns a run's incident (or recovery) report into the exact JSON text a channel sends."""

NoticeRender = Callable[[OutageNotice], str]
"""Turns an outage notice into the exact JSON text a channel sends."""


def backoff_s(attempt: int, *, base_s: float = 30.0, cap_s: float = 3600.0) -> float:
    """Seconds to wait before the next delivery try after ``attempt`` failed tries."""
    return float(min(cap_s, base_s * 2 ** max(0, attempt - 1)))


class AlertPlanner:
    """Decides the decisions and outbox rows of a run about to end.

    Args:
        detect: runs the detector for a run (see ``Detect``).
        renderers: channel name -> report renderer; empty means no channel is
            configured, and reports are recorded ``suppressed``.
        run_url: the link to a run in the dashboard, from its id (None: no link).
        calibrator: measures the run's calibrated judges against people's labels
            and plans their agreement notices (``service.calibration``).
    """

    def __init__(
        self,
        detect: Detect,
        renderers: Mapping[str, Render],
        events: AlertEvents | None = None,
        notice_renderers: Mapping[str, NoticeRender] | None = None,
        run_url: Callable[[str], str] | None = None,
        calibrator: Calibrator | None = None,
    ) -> None:
        self._calibrator = calibrator
        self._detect = detect
        self._renderers = renderers
        self._notice_renderers = dict(notice_renderers or {})
        self._events: AlertEvents = events or NullAlertEvents()
        self._run_url = run_url

    def plan(
        self,
        store: HistoryReader,
        run: RunRecord,
        aggregates: Sequence[ScoreAggregate],
        now: datetime,
    ) -> FinishPlan:
        """Return what to store with ``run``'s final status (which ``run`` carries).

        A run that succeeded is decided (a manual one as a candidate: stored,
        never alerted); a scheduled run's decisions become at most one
        incident report and one recovery report; every scheduled run's end
        may open or close its suite's outage (``core.outage``).
        """
        rows = self._outage_rows(store, run) if run.run_type == "scheduled" else []
        rows.extend(self._calibration_rows(store, run))
        if run.status is not RunStatus.SUCCEEDED:
            return FinishPlan(rows)
        decision = self._detect(store, run, aggregates)
        for item in decision.decisions:
            # One per key on every run: detail for DEBUG, not an INFO stream.
            log.debug(
                "%s/%s: %s: %s",
                item.feature,
                item.scorer,
                item.kind.value,
                item.message,
                extra={"event": "decision", "run_id": run.id},
            )
            if item.alerting:
                self._events.regression(run.suite, item)
                log.warning(
                    "%s/%s %s (%s): %s",
                    item.feature,
                    item.scorer,
                    item.kind.value,
                    item.transition,
                    item.message,
                    extra={"event": "regression", "run_id": run.id, "suite": run.suite},
                )
        url = self._run_url(run.id) if self._run_url is not None else None
        for report in alerting.reports(decision, run_url=url):
            rows.extend(self._report_rows(report))
        return FinishPlan(rows, decision.decisions)

    def _calibration_rows(self, store: HistoryReader, run: RunRecord) -> list[NewAlert]:
        """The judges' agreement, stored, and its notices; never costs the run its decisions.

        Measured on every run that ends with ``@labels`` scores, whatever its
        status: people's labels are compared with what the judge did score.
        """
        if self._calibrator is None:
            return []
        try:
            return list(self._calibrator.plan(store, run).alerts)
        except Exception:
            log.exception(
                "judge calibration failed",
                extra={"event": "calibration_failed", "run_id": run.id, "suite": run.suite},
            )
            return []

    def _outage_rows(self, store: RunHistory, run: RunRecord) -> list[NewAlert]:
        notice = outage.decide(
            run,
            store.latest_alert(run.suite, "", "", kind="outage"),
            store.latest_alert(run.suite, "", "", kind="outage_over"),
        )
        if notice is None:
            return []
        extra = {"event": notice.kind, "run_id": run.id, "suite": run.suite}
        if notice.kind == "outage":
            log.error("%s: %s", notice.headline, notice.reason, extra=extra)
        else:
            log.warning("%s", notice.headline, extra=extra)
        base = NewAlert(
            key=notice.key,
            channel="none",
            kind=notice.kind,
            run_id=run.id,
            suite=run.suite,
            feature="",
            scorer="",
            rule=None,
            status="suppressed",
            payload="",
            summary=outage.summary(notice),
            reason="no alert channel is configured",
        )
        if not self._notice_renderers:
            return [base]  # recorded all the same: the row is the outage's state
        return [
            dataclasses.replace(
                base, channel=channel, status="pending", payload=render(notice), reason=None
            )
            for channel, render in self._notice_renderers.items()
        ]

    def _report_rows(self, report: IncidentReport) -> list[NewAlert]:
        base = NewAlert(
            key=report.key,
            channel="none",
            kind=report.kind,
            run_id=report.run_id,
            suite=report.suite,
            feature="",
            scorer="",
            rule=None,
            status="suppressed",
            payload="",
            summary=report.summary(),
            reason="no alert channel is configured",
        )
        if not self._renderers:
            return [base]  # recorded all the same, for the API and the CLI
        return [
            dataclasses.replace(
                base, channel=channel, status="pending", payload=render(report), reason=None
            )
            for channel, render in self._renderers.items()
        ]


class AlertDispatcher:
    """Delivers pending outbox rows; safe to run on every replica at once."""

    def __init__(
        self,
        store: AlertOutbox,
        channels: Mapping[str, AlertChannel],
        owner: str,
        *,
        max_attempts: int,
        claim_s: float = 120.0,
        retry_base_s: float = 30.0,
        batch: int = 20,
        events: AlertEvents | None = None,
        io_executor: Executor | None = None,
    ) -> None:
        self._io_executor = io_executor
        self._retry_base_s = retry_base_s
        self._store = store
        self._channels = channels
        self._owner = owner
        self._max_attempts = max_attempts
        self._claim_s = claim_s
        self._batch = batch
        self._events: AlertEvents = events or NullAlertEvents()
        self._busy = asyncio.Lock()

    async def deliver_due(self) -> int:
        """Deliver what is due; returns how many alerts were settled. Never raises.

        One pass at a time per process (a second caller returns at once): the
        claims already keep replicas apart, this keeps a burst of ticks from
        stacking up passes.
        """
        if self._busy.locked():
            return 0
        async with self._busy:
            try:
                return await self._pass()
            except Exception:
                log.exception("alert delivery pass failed", extra={"event": "alert_pass_failed"})
                return 0

    async def _pass(self) -> int:
        claim = partial(self._store.claim_due_alerts, self._owner, self._claim_s, self._batch)
        alerts = await run_blocking(self._io_executor, claim)
        for alert in alerts:
            await self._deliver(alert)
        return len(alerts)

    async def _deliver(self, alert: AlertRecord) -> None:
        channel = self._channels.get(alert.channel)
        if channel is None:
            result = DeliveryResult(
                "dead", reason=f"channel {alert.channel!r} is no longer configured"
            )
        else:
            try:
                result = await channel.deliver(alert.key, alert.payload, alert.destination)
            except Exception as exc:  # a channel must not raise; if one does, retry later
                result = DeliveryResult("retry", reason=f"{type(exc).__name__} while sending")
        attempt = alert.attempts + 1
        status: AlertStatus
        retry_in: float | None = None
        if result.outcome == "sent":
            status = "sent"
        elif result.outcome == "dead":
            status = "dead"
        elif attempt >= self._max_attempts:
            status = "dead"
            result = DeliveryResult(
                "dead", reason=f"gave up after {attempt} attempts: {result.reason}"
            )
        else:
            status = "pending"
            retry_in = max(
                result.retry_after_s or 0.0, backoff_s(attempt, base_s=self._retry_base_s)
            )
        settle = partial(
            self._store.settle_alert,
            alert.id,
            self._owner,
            status=status,
            provider_id=result.provider_id,
            error=result.reason,
            retry_in_s=retry_in,
        )
        settled = await run_blocking(self._io_executor, settle)
        extra = {
            "event": f"alert_{status}",
            "alert_key": alert.key,
            "channel": alert.channel,
            "attempt": attempt,
        }
        if not settled:
            log.warning("alert claim lost before settling", extra=extra)
            return
        if status == "sent":
            log.info("alert sent", extra=extra)
        elif status == "dead":
            log.error("alert dead: %s", result.reason, extra=extra)
        else:
            log.warning("alert delivery will be retried: %s", result.reason, extra=extra)
        self._events.alert(alert.channel, status)
