"""The alert outbox's rules: what an alert row may hold and which delivery outcomes it records.

Pure, shared by ``adapters.db.store.SqlRunStore`` and
``continuous_eval.testing.InMemoryRunStore`` so both refuse the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import get_args

from continuous_eval.core.models import AlertKind, AlertStatus, NewAlert

ALERT_KINDS: list[str] = list(get_args(AlertKind))
"""Kinds an alert may have (the ``kind`` column's check constraint too)."""

ALERT_STATUSES: list[str] = list(get_args(AlertStatus))
"""Statuses an alert may have (the ``status`` column's check constraint too)."""

ALERT_KEY_MAX = 700
"""Longest alert key ``alerts.key`` holds; checked up front since SQLite would not refuse it."""

ALERT_CHANNEL_MAX = 32
"""Longest channel name ``alerts.channel`` holds."""

SETTLE_STATUSES: tuple[AlertStatus, ...] = ("sent", "pending", "dead")
"""Outcomes ``settle_alert`` records: delivered, to be tried again, given up on."""


def validate_alerts(run_id: str, new: Sequence[NewAlert]) -> list[NewAlert]:
    """Refuse alerts no store may write for ``run_id``; return them with duplicates dropped.

    Within one batch the first alert for a (key, channel) wins, as a second
    write of an existing one is ignored.

    Raises:
        ValueError: An alert of another run, an unknown kind or status, a key
            or channel too long for its column, or a summary that is not
            JSON-serialisable (a bug in the caller, not a database failure).
    """
    unique: dict[tuple[str, str], NewAlert] = {}
    for alert in new:
        if alert.run_id != run_id:
            raise ValueError(f"alert {alert.key!r} belongs to run {alert.run_id!r}, not {run_id!r}")
        if alert.kind not in ALERT_KINDS:
            raise ValueError(f"alert kind must be one of {ALERT_KINDS}, not {alert.kind!r}")
        if alert.status not in ALERT_STATUSES:
            raise ValueError(f"alert status must be one of {ALERT_STATUSES}, not {alert.status!r}")
        if not 0 < len(alert.key) <= ALERT_KEY_MAX:
            raise ValueError(f"an alert key must have 1 to {ALERT_KEY_MAX} characters")
        if not 0 < len(alert.channel) <= ALERT_CHANNEL_MAX:
            raise ValueError(f"an alert channel must have 1 to {ALERT_CHANNEL_MAX} characters")
        try:
            json.dumps(alert.summary)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the summary of alert {alert.key!r} is not JSON: {exc}") from None
        unique.setdefault((alert.key, alert.channel), alert)
    return list(unique.values())


def check_settle(status: AlertStatus, retry_in_s: float | None) -> None:
    """Refuse a delivery outcome ``settle_alert`` cannot record.

    Raises:
        ValueError: A status other than sent, pending or dead (suppression is
            decided when the alert is written, not after an attempt), or a
            negative ``retry_in_s``.
    """
    if status not in SETTLE_STATUSES:
        raise ValueError(f"settle_alert takes status {', '.join(SETTLE_STATUSES)}, not {status!r}")
    if retry_in_s is not None and not retry_in_s >= 0:
        raise ValueError(f"retry_in_s must be 0 or more, got {retry_in_s}")
