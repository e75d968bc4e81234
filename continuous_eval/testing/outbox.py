"""``MemoryAlertOutbox``: the ``AlertOutbox`` port in dictionaries.

Only the deliverer's side of the outbox belongs here: claim, settle, list,
with the due rule of ``SqlAlertOutbox`` and the settle rule of ``core.outbox``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from continuous_eval.core.lifecycle import check_limit, check_seconds
from continuous_eval.core.models import AlertRecord, AlertStatus
from continuous_eval.core.outbox import check_settle
from continuous_eval.testing.base import MemoryStoreBase


class MemoryAlertOutbox(MemoryStoreBase):
    """Claim due alerts, settle delivery attempts, list the outbox; see ``SqlRunStore``."""

    def claim_due_alerts(self, owner: str, lease_s: float, limit: int) -> list[AlertRecord]:
        """Claim due pending alerts, oldest first; see ``SqlRunStore.claim_due_alerts``."""
        check_seconds(lease_s)
        check_limit(limit)
        with self._lock:
            now = self.clock.now()
            due = sorted(
                (alert for alert in self.alerts.values() if _due(alert, now)),
                key=lambda alert: (alert.created_at, alert.id),
            )[:limit]
            claimed = [
                replace(alert, claimed_by=owner, claimed_until=now + timedelta(seconds=lease_s))
                for alert in due
            ]
            for alert in claimed:
                self.alerts[alert.id] = alert
            return claimed

    def settle_alert(
        self,
        alert_id: int,
        owner: str,
        *,
        status: AlertStatus,
        provider_id: str | None = None,
        error: str | None = None,
        retry_in_s: float | None = None,
    ) -> bool:
        """Record a delivery attempt's outcome; see ``SqlRunStore.settle_alert``."""
        check_settle(status, retry_in_s)
        with self._lock:
            alert = self.alerts.get(alert_id)
            if alert is None or alert.claimed_by != owner or alert.status != "pending":
                return False
            now = self.clock.now()
            settled = replace(
                alert,
                status=status,
                attempts=alert.attempts + 1,
                claimed_by=None,
                claimed_until=None,
                last_error=error if error is not None else alert.last_error,
            )
            if status == "sent":
                settled = replace(settled, sent_at=now, provider_id=provider_id)
            elif status == "pending":
                settled = replace(
                    settled, next_attempt_at=now + timedelta(seconds=retry_in_s or 0.0)
                )
            self.alerts[alert_id] = settled
            return True

    def list_alerts(
        self, *, status: AlertStatus | None = None, suite: str | None = None, limit: int = 50
    ) -> list[AlertRecord]:
        """Return alerts matching every given filter, newest first; see ``SqlRunStore``."""
        check_limit(limit)
        with self._lock:
            matching = [
                alert
                for alert in self.alerts.values()
                if (status is None or alert.status == status)
                and (suite is None or alert.suite == suite)
            ]
        matching.sort(key=lambda alert: (alert.created_at, alert.id), reverse=True)
        return matching[:limit]


def _due(alert: AlertRecord, now: datetime) -> bool:
    """Whether ``alert`` may be claimed at ``now``: the rule of ``SqlRunStore.claim_due_alerts``."""
    return (
        alert.status == "pending"
        and (alert.next_attempt_at is None or alert.next_attempt_at <= now)
        and (alert.claimed_until is None or alert.claimed_until < now)
    )
