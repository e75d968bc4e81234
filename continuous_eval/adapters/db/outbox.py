"""``SqlAlertOutbox``: the ``AlertOutbox`` port, claiming, settling and listing alerts in SQL.

Only the deliverer's side of the outbox belongs here; rows are written by the
run's final transaction (``runs``), and ``core.outbox`` holds the rules of a
settle. Claims and retries are on the store's clock: in production the
database's, shared by every replica (see ``base.StoreTime``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select, update

from continuous_eval.adapters.db.base import SqlStoreBase
from continuous_eval.adapters.db.rows import alert_record
from continuous_eval.adapters.db.tables import alerts as alerts_table
from continuous_eval.core.lifecycle import check_limit, check_seconds
from continuous_eval.core.models import AlertRecord, AlertStatus
from continuous_eval.core.outbox import check_settle


class SqlAlertOutbox(SqlStoreBase):
    """Claim due alerts, settle delivery attempts, list the outbox."""

    def claim_due_alerts(self, owner: str, lease_s: float, limit: int) -> list[AlertRecord]:
        """Claim up to ``limit`` due pending alerts for ``owner``, oldest first, and return them.

        Due, by the store's clock: ``pending``, ``next_attempt_at`` null or
        not in the future, and no claim or an expired one. The claim sets
        ``claimed_by`` and ``claimed_until`` = the store's now + ``lease_s``.
        One statement, WITH due AS (the due ids) UPDATE ... WHERE id IN due
        RETURNING: on Postgres the CTE takes the rows FOR UPDATE SKIP LOCKED,
        so concurrent claimers split the alerts instead of waiting for each
        other; SQLite's BEGIN IMMEDIATE serialises them. Either way an alert is claimed by
        one owner at a time.

        Raises:
            ValueError: ``lease_s`` is not positive or ``limit`` below 1.
        """
        check_seconds(lease_s)
        check_limit(limit)
        a = alerts_table.c
        at = self._time.now()
        now = at.expression()
        due = (
            select(a.id)
            .where(
                a.status == "pending",
                or_(a.next_attempt_at.is_(None), a.next_attempt_at <= now),
                or_(a.claimed_until.is_(None), a.claimed_until < now),
            )
            .order_by(a.created_at, a.id)
            .limit(limit)
        )
        if self._dialect == "postgresql":
            # MATERIALIZED: the due ids are chosen and locked exactly once. As a
            # plain IN (subquery) the planner may rescan it, and with SKIP
            # LOCKED a rescan can pick other rows and claim more than ``limit``.
            chosen = due.with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED")
        else:
            chosen = due.cte("due")
        claim = (
            update(alerts_table)
            .where(a.id.in_(select(chosen.c.id)))
            .values(claimed_by=owner, claimed_until=at.expression(lease_s))
            .returning(*alerts_table.c)
        )
        with self._translate("claim due alerts"), self._writer.begin() as conn:
            claimed = [alert_record(row) for row in conn.execute(claim).all()]
        # RETURNING gives no order.
        return sorted(claimed, key=lambda alert: (alert.created_at, alert.id))

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
        """Record the outcome of a delivery attempt; False when ``owner`` no longer holds it.

        One UPDATE guarded on (id, ``claimed_by`` = owner, ``pending``): a
        replica whose claim was taken over, or an alert already settled,
        writes nothing. A claim that expired but that nobody took over still
        settles (the send did happen). Sets attempts + 1 and clears the claim;
        ``sent`` stamps ``sent_at`` (the store's now) and ``provider_id``;
        ``pending`` sets ``next_attempt_at`` = the store's now + ``retry_in_s``
        (None: due at once); ``error``, when given, replaces ``last_error``.

        Raises:
            ValueError: See ``check_settle``.
        """
        check_settle(status, retry_in_s)
        a = alerts_table.c
        values: dict[str, Any] = {
            "status": status,
            "attempts": a.attempts + 1,
            "claimed_by": None,
            "claimed_until": None,
        }
        at = self._time.now()
        if status == "sent":
            values.update(sent_at=at.expression(), provider_id=provider_id)
        elif status == "pending":
            values["next_attempt_at"] = at.expression(retry_in_s or 0.0)
        if error is not None:
            values["last_error"] = error
        stmt = (
            update(alerts_table)
            .where(a.id == alert_id, a.claimed_by == owner, a.status == "pending")
            .values(values)
        )
        with self._translate(f"settle alert {alert_id}"), self._writer.begin() as conn:
            return bool(conn.execute(stmt).rowcount == 1)

    def list_alerts(
        self, *, status: AlertStatus | None = None, suite: str | None = None, limit: int = 50
    ) -> list[AlertRecord]:
        """Return up to ``limit`` alerts matching every given filter, newest first (then by id).

        Raises:
            ValueError: ``limit`` below 1.
        """
        check_limit(limit)
        a = alerts_table.c
        stmt = select(alerts_table).order_by(a.created_at.desc(), a.id.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(a.status == status)
        if suite is not None:
            stmt = stmt.where(a.suite == suite)
        with self._translate("list alerts"), self._engine.connect() as conn:
            return [alert_record(row) for row in conn.execute(stmt)]
