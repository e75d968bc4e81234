"""The regression and alert half of the ``RunStore`` contract, on every backend.

The outbox (``finish_run(alerts=...)``, claims, settling, listing) and the
detector's reads (``scheduled_history``, ``case_scores``, ``latest_alert``),
against the in-memory fake, SQLite and Postgres. Claims and retries that
must look expired or due are arranged by writing times in the past
(``arrange``) or by advancing the store's fake clock, which every backend's
outbox runs on; nothing waits for time to pass. The SQL-only tests at the end
show that a store with no clock, as in production, is on the database's.
"""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, delete, event, select, text, update

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.adapters.db.tables import alerts as alerts_table
from continuous_eval.adapters.db.tables import eval_runs
from continuous_eval.core.models import (
    AlertKind,
    AlertRecord,
    AlertStatus,
    Fence,
    Lease,
    NewAlert,
    ProgressDelta,
    ResultStatus,
    RunStatus,
)
from continuous_eval.errors import LeaseLost, RunFinished, RunNotFound
from continuous_eval.ports import RunStore
from continuous_eval.testing import FakeClock, InMemoryRunStore
from continuous_eval.testing.builders import SLOT, failed, new_run, ok
from tests.fixtures.database import database_clock

LEASE = Lease("worker-1", 30.0)
FENCE = Fence(1, "worker-1")


def alert(
    run_id: str = "run-1",
    feature: str = "refunds",
    *,
    channel: str = "email",
    kind: AlertKind = "regression",
    status: AlertStatus = "pending",
    scorer: str = "judge",
    suite: str = "support",
    key: str | None = None,
    payload: str = '{"subject": "refunds fell"}',
) -> NewAlert:
    """A NewAlert with the key the detector would give it."""
    return NewAlert(
        key=key or f"{suite}:{feature}:{scorer}:{run_id}",
        channel=channel,
        kind=kind,
        run_id=run_id,
        suite=suite,
        feature=feature,
        scorer=scorer,
        rule="drop" if kind == "regression" else None,
        status=status,
        payload=payload,
        summary={"baseline": 4.5, "current": 3.0, "worst": [{"case": "7", "delta": -2.0}]},
        reason="cooldown" if status == "suppressed" else None,
    )


def finish(store: RunStore, run_id: str, *alerts: NewAlert, **overrides: object) -> None:
    """Create a leased run and finish it ``succeeded`` with ``alerts``."""
    store.create_run(new_run(run_id, **overrides), lease=LEASE)
    store.finish_run(run_id, RunStatus.SUCCEEDED, None, [], fence=FENCE, alerts=alerts)


def arrange(store: RunStore, alert_id: int, **values: Any) -> None:
    """Overwrite columns of a stored alert, as if time had passed."""
    if isinstance(store, InMemoryRunStore):
        store.alerts[alert_id] = replace(store.alerts[alert_id], **values)
        return
    assert isinstance(store, SqlRunStore)
    with store.engine.begin() as conn:
        conn.execute(update(alerts_table).where(alerts_table.c.id == alert_id).values(**values))


def an_hour_ago(store: RunStore) -> datetime:
    return store.db_now() - timedelta(hours=1)


def only(alerts: list[AlertRecord]) -> AlertRecord:
    assert len(alerts) == 1, alerts
    return alerts[0]


def keys(alerts: list[AlertRecord]) -> list[tuple[str, str]]:
    return [(a.key, a.channel) for a in alerts]


# ------------------------------------------------------------ the outbox


def test_finish_run_writes_the_alerts_with_the_run(store: RunStore, clock: FakeClock) -> None:
    store.create_run(new_run(), lease=LEASE)
    clock.advance(seconds=5)
    email = alert()
    muted = alert(channel="none", status="suppressed", payload="")

    finished = store.finish_run(
        "run-1", RunStatus.SUCCEEDED, None, [], fence=FENCE, alerts=[email, muted]
    )

    assert finished.status is RunStatus.SUCCEEDED
    stored = store.list_alerts()
    assert keys(stored) == [
        ("support:refunds:judge:run-1", "none"),  # same created_at: the later id first
        ("support:refunds:judge:run-1", "email"),
    ]
    sent, suppressed = stored[1], stored[0]
    assert sent.id < suppressed.id
    assert (sent.kind, sent.run_id, sent.suite, sent.feature, sent.scorer, sent.rule) == (
        "regression",
        "run-1",
        "support",
        "refunds",
        "judge",
        "drop",
    )
    assert sent.status == "pending"
    assert sent.payload == email.payload
    assert sent.summary == email.summary
    assert sent.created_at == clock.now() == finished.finished_at
    assert sent.attempts == 0
    assert sent.next_attempt_at is None
    assert (sent.claimed_by, sent.claimed_until, sent.sent_at) == (None, None, None)
    assert (sent.last_error, sent.provider_id, sent.reason) == (None, None, None)
    assert suppressed.status == "suppressed"
    assert suppressed.payload == ""
    assert suppressed.reason == "cooldown"


def test_a_refused_finish_writes_no_alert(store: RunStore) -> None:
    store.create_run(new_run(), lease=LEASE)

    with pytest.raises(LeaseLost):
        store.finish_run(
            "run-1", RunStatus.SUCCEEDED, None, [], fence=Fence(1, "other"), alerts=[alert()]
        )
    assert store.list_alerts() == []
    assert store.get_run("run-1").status is RunStatus.RUNNING

    store.finish_run("run-1", RunStatus.SUCCEEDED, None, [], fence=FENCE)
    with pytest.raises(RunFinished):
        store.finish_run("run-1", RunStatus.FAILED, "again", [], alerts=[alert()])
    with pytest.raises(RunNotFound):
        store.finish_run("nope", RunStatus.SUCCEEDED, None, [], alerts=[alert("nope")])
    assert store.list_alerts() == []


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (alert("run-2"), "belongs to run 'run-2'"),
        (replace(alert(), kind="bogus"), "alert kind"),  # type: ignore[arg-type]
        (replace(alert(), status="queued"), "alert status"),  # type: ignore[arg-type]
        (replace(alert(), key="k" * 701), "alert key"),
        (replace(alert(), channel=""), "alert channel"),
        (replace(alert(), summary={"when": datetime(2025, 1, 1, tzinfo=UTC)}), "not JSON"),
    ],
)
def test_finish_run_refuses_alerts_it_cannot_store(
    store: RunStore, bad: NewAlert, message: str
) -> None:
    store.create_run(new_run(), lease=LEASE)

    with pytest.raises(ValueError, match=message):
        store.finish_run("run-1", RunStatus.SUCCEEDED, None, [], fence=FENCE, alerts=[bad])

    assert store.get_run("run-1").status is RunStatus.RUNNING
    assert store.list_alerts() == []


def test_an_alert_already_in_the_outbox_is_left_as_it_is(store: RunStore) -> None:
    first = alert(payload="first")
    finish(store, "run-1", first, replace(first, payload="same batch"))
    stored = only(store.list_alerts())
    assert stored.payload == "first"
    assert only(store.claim_due_alerts("worker-1", 30, 10)).id == stored.id
    assert store.settle_alert(stored.id, "worker-1", status="sent", provider_id="re_1")

    # Another finish writing the same (key, channel): a retried finish, a second replica.
    finish(store, "run-2", replace(first, run_id="run-2", payload="second"))
    again = only(store.list_alerts())
    assert (again.id, again.status, again.payload) == (stored.id, "sent", "first")

    # The same key on another channel is another alert.
    finish(store, "run-3", replace(first, run_id="run-3", channel="webhook"))
    assert keys(store.list_alerts()) == [(first.key, "webhook"), (first.key, "email")]


# ------------------------------------------------------------------ claims


def test_claims_are_exclusive_while_they_last(store: RunStore) -> None:
    finish(store, "run-1", alert())
    before = store.db_now()

    claimed = only(store.claim_due_alerts("replica-a", 30, 10))
    after = store.db_now()

    assert claimed.claimed_by == "replica-a"
    assert claimed.claimed_until is not None
    assert before + timedelta(seconds=30) <= claimed.claimed_until
    assert claimed.claimed_until <= after + timedelta(seconds=30)
    assert only(store.list_alerts()) == claimed
    assert store.claim_due_alerts("replica-b", 30, 10) == []
    assert store.claim_due_alerts("replica-a", 30, 10) == []  # not even its own again

    arrange(store, claimed.id, claimed_until=an_hour_ago(store))  # replica-a died mid-send

    taken = only(store.claim_due_alerts("replica-b", 30, 10))
    assert (taken.id, taken.key, taken.payload) == (claimed.id, claimed.key, claimed.payload)
    assert taken.claimed_by == "replica-b"
    assert taken.attempts == 0  # a claim is not an attempt; only a settled one counts
    assert not store.settle_alert(claimed.id, "replica-a", status="sent", provider_id="late")
    assert store.settle_alert(claimed.id, "replica-b", status="sent", provider_id="re_2")
    assert only(store.list_alerts()).provider_id == "re_2"


def test_a_claim_expires_on_the_stores_clock(store: RunStore, clock: FakeClock) -> None:
    finish(store, "run-1", alert())
    claimed = only(store.claim_due_alerts("replica-a", 0.2, 10))
    assert store.claim_due_alerts("replica-b", 30, 10) == []

    clock.advance(seconds=0.25)

    assert only(store.claim_due_alerts("replica-b", 30, 10)).id == claimed.id


def test_claims_take_the_oldest_due_alerts_first(store: RunStore, clock: FakeClock) -> None:
    finish(store, "run-1", alert(feature="b"), alert(feature="a"))
    clock.advance(seconds=1)
    finish(store, "run-2", alert("run-2", feature="c"))
    muted = alert("run-3", status="suppressed", payload="")
    clock.advance(seconds=1)
    finish(store, "run-3", muted)

    first = store.claim_due_alerts("w", 30, 2)
    rest = store.claim_due_alerts("w", 30, 10)

    # Ties on created_at go by id, that is by insertion order.
    assert [a.feature for a in first] == ["b", "a"]
    assert [a.feature for a in rest] == ["c"]  # a suppressed alert is never sent
    assert store.claim_due_alerts("w", 30, 10) == []


def test_concurrent_claimers_split_the_alerts(store: RunStore) -> None:
    finish(store, "run-1", *(alert(feature=f"f{i:02}") for i in range(20)))
    barrier = threading.Barrier(2)
    claims: dict[str, list[AlertRecord]] = {}

    def claim(owner: str) -> None:
        barrier.wait()
        claims[owner] = store.claim_due_alerts(owner, 30, 10)

    threads = [threading.Thread(target=claim, args=(owner,)) for owner in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    ids = {owner: {a.id for a in claimed} for owner, claimed in claims.items()}
    assert len(ids["a"]) == len(ids["b"]) == 10
    assert not ids["a"] & ids["b"]
    owners = {a.id: a.claimed_by for a in store.list_alerts()}
    assert all(owners[i] == owner for owner, claimed in ids.items() for i in claimed)


@pytest.mark.parametrize(("lease_s", "limit"), [(0.0, 1), (-1.0, 1), (30.0, 0)])
def test_claim_refuses_a_bad_lease_or_limit(store: RunStore, lease_s: float, limit: int) -> None:
    with pytest.raises(ValueError, match=r"0 seconds|limit"):
        store.claim_due_alerts("w", lease_s, limit)


# ------------------------------------------------------------------ settle


def test_settle_is_guarded_by_the_claim(store: RunStore) -> None:
    finish(store, "run-1", alert())
    unclaimed = only(store.list_alerts())

    assert not store.settle_alert(unclaimed.id, "worker-1", status="sent")
    assert not store.settle_alert(10_000, "worker-1", status="sent")
    claimed = only(store.claim_due_alerts("worker-1", 30, 10))
    assert not store.settle_alert(claimed.id, "worker-2", status="dead", error="nope")
    assert only(store.list_alerts()) == claimed  # nothing written

    assert store.settle_alert(claimed.id, "worker-1", status="dead", error="HTTP 422")
    assert not store.settle_alert(claimed.id, "worker-1", status="sent")  # settled already


def test_a_sent_alert_is_stamped_and_never_claimed_again(store: RunStore) -> None:
    finish(store, "run-1", alert())
    claimed = only(store.claim_due_alerts("worker-1", 30, 10))
    before = store.db_now()

    assert store.settle_alert(claimed.id, "worker-1", status="sent", provider_id="re_123")

    sent = only(store.list_alerts())
    after = store.db_now()
    assert sent.status == "sent"
    assert sent.provider_id == "re_123"
    assert sent.sent_at is not None
    assert before <= sent.sent_at <= after
    assert sent.attempts == 1
    assert (sent.claimed_by, sent.claimed_until) == (None, None)
    arrange(store, sent.id, next_attempt_at=an_hour_ago(store))
    assert store.claim_due_alerts("worker-1", 30, 10) == []


def test_a_dead_alert_keeps_its_error_and_is_never_claimed_again(store: RunStore) -> None:
    finish(store, "run-1", alert())
    claimed = only(store.claim_due_alerts("worker-1", 30, 10))

    assert store.settle_alert(claimed.id, "worker-1", status="dead", error="HTTP 422: bad from")

    dead = only(store.list_alerts())
    assert dead.status == "dead"
    assert dead.last_error == "HTTP 422: bad from"
    assert dead.attempts == 1
    assert (dead.sent_at, dead.provider_id, dead.claimed_by) == (None, None, None)
    assert store.claim_due_alerts("worker-1", 30, 10) == []


def test_a_failed_attempt_is_retried_when_due(store: RunStore) -> None:
    finish(store, "run-1", alert())
    claimed = only(store.claim_due_alerts("worker-1", 30, 10))
    before = store.db_now()

    assert store.settle_alert(
        claimed.id, "worker-1", status="pending", error="HTTP 503", retry_in_s=60
    )

    waiting = only(store.list_alerts())
    after = store.db_now()
    assert waiting.status == "pending"
    assert waiting.attempts == 1
    assert waiting.last_error == "HTTP 503"
    assert waiting.next_attempt_at is not None
    assert before + timedelta(seconds=60) <= waiting.next_attempt_at
    assert waiting.next_attempt_at <= after + timedelta(seconds=60)
    assert (waiting.claimed_by, waiting.claimed_until) == (None, None)
    assert store.claim_due_alerts("worker-2", 30, 10) == []

    arrange(store, waiting.id, next_attempt_at=an_hour_ago(store))

    retried = only(store.claim_due_alerts("worker-2", 30, 10))
    assert (retried.id, retried.payload, retried.attempts) == (claimed.id, claimed.payload, 1)
    assert store.settle_alert(retried.id, "worker-2", status="pending", retry_in_s=None)
    # No delay: due again at once; the last error stays until another replaces it.
    again = only(store.claim_due_alerts("worker-3", 30, 10))
    assert (again.attempts, again.last_error) == (2, "HTTP 503")
    assert store.settle_alert(again.id, "worker-3", status="sent", provider_id="re_9")
    assert only(store.list_alerts()).attempts == 3


@pytest.mark.parametrize(
    ("status", "retry_in_s", "message"),
    [("suppressed", None, "settle_alert takes status"), ("pending", -1.0, "retry_in_s")],
)
def test_settle_refuses_what_it_cannot_record(
    store: RunStore, status: AlertStatus, retry_in_s: float | None, message: str
) -> None:
    finish(store, "run-1", alert())
    claimed = only(store.claim_due_alerts("worker-1", 30, 10))

    with pytest.raises(ValueError, match=message):
        store.settle_alert(claimed.id, "worker-1", status=status, retry_in_s=retry_in_s)

    assert only(store.list_alerts()) == claimed


# ------------------------------------------------------- detector's reads


def test_scheduled_history_is_succeeded_scheduled_runs_newest_first(
    store: RunStore, clock: FakeClock
) -> None:
    def scheduled(run_id: str, hour: int, status: RunStatus, **overrides: object) -> None:
        clock.set(SLOT + timedelta(hours=hour))
        fields: dict[str, object] = {
            "run_type": "scheduled",
            "scheduled_for": SLOT + timedelta(hours=hour),
            **overrides,
        }
        if status is RunStatus.SKIPPED:
            store.create_run(new_run(run_id, **fields), status=RunStatus.SKIPPED)
            return
        store.create_run(new_run(run_id, **fields), lease=LEASE)
        if status.terminal:
            store.finish_run(run_id, status, None, [], fence=FENCE)

    scheduled("s1", 1, RunStatus.SUCCEEDED)
    scheduled("s2", 2, RunStatus.SUCCEEDED)
    scheduled("failed", 3, RunStatus.FAILED)
    scheduled("skipped", 4, RunStatus.SKIPPED)
    scheduled("cancelled", 5, RunStatus.CANCELLED)
    scheduled("manual", 6, RunStatus.SUCCEEDED, run_type="manual", scheduled_for=None)
    scheduled("other-suite", 7, RunStatus.SUCCEEDED, suite="billing")
    scheduled("running", 8, RunStatus.RUNNING)
    scheduled("s3b", 9, RunStatus.SUCCEEDED)
    scheduled("s3a", 9, RunStatus.SUCCEEDED, scheduled_for=SLOT + timedelta(hours=10))
    scheduled("s4", 11, RunStatus.SUCCEEDED)

    def history(before_hour: float, limit: int = 10) -> list[str]:
        before = SLOT + timedelta(hours=before_hour)
        return [run.id for run in store.scheduled_history("support", before=before, limit=limit)]

    # Same started_at: the larger id first.
    assert history(12) == ["s4", "s3b", "s3a", "s2", "s1"]
    assert history(11) == ["s3b", "s3a", "s2", "s1"]  # strictly before
    assert history(12, limit=2) == ["s4", "s3b"]
    assert history(1) == []
    assert [
        r.id for r in store.scheduled_history("billing", before=SLOT + timedelta(days=1), limit=5)
    ] == ["other-suite"]
    with pytest.raises(ValueError, match="limit"):
        store.scheduled_history("support", before=SLOT, limit=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.scheduled_history("support", before=datetime(2025, 3, 1), limit=5)  # noqa: DTZ001


def test_case_scores_holds_only_scored_results(store: RunStore) -> None:
    store.create_run(new_run())
    store.save_results(
        "run-1",
        [
            ok("1", 4.0),
            ok("2", 2.0),
            failed("3"),
            ok("1", 1.0, scorer="exact"),
            ok("1", 5.0, feature="tone"),
        ],
        ProgressDelta(),
    )
    skipped = replace(ok("4", 0.0), status=ResultStatus.SKIPPED, score=None)
    store.save_results("run-1", [skipped], ProgressDelta())

    assert store.case_scores("run-1") == {
        ("refunds", "exact"): {"1": 1.0},
        ("refunds", "judge"): {"1": 4.0, "2": 2.0},
        ("tone", "judge"): {"1": 5.0},
    }
    store.create_run(new_run("empty"))
    assert store.case_scores("empty") == {}
    with pytest.raises(RunNotFound):
        store.case_scores("nope")


def test_latest_alert_is_the_newest_of_its_kind(store: RunStore, clock: FakeClock) -> None:
    assert store.latest_alert("support", "refunds", "judge", kind="regression") is None

    finish(store, "run-1", alert(), alert(channel="webhook"), alert(feature="tone"))
    tie = store.latest_alert("support", "refunds", "judge", kind="regression")
    assert tie is not None
    assert (tie.run_id, tie.channel) == ("run-1", "webhook")  # same created_at: the later id

    clock.advance(seconds=3600)
    finish(store, "run-2", alert("run-2", status="suppressed", payload=""))
    clock.advance(seconds=60)
    finish(store, "run-3", alert("run-3", kind="recovery"), alert("run-3", scorer="exact"))

    latest = store.latest_alert("support", "refunds", "judge", kind="regression")
    assert latest is not None
    assert (latest.run_id, latest.status) == ("run-2", "suppressed")  # any status counts
    recovery = store.latest_alert("support", "refunds", "judge", kind="recovery")
    assert recovery is not None
    assert recovery.run_id == "run-3"
    assert store.latest_alert("billing", "refunds", "judge", kind="regression") is None


def test_list_alerts_filters_and_limits(store: RunStore, clock: FakeClock) -> None:
    finish(store, "run-1", alert(), alert(feature="tone", status="suppressed", payload=""))
    clock.advance(seconds=1)
    finish(store, "run-2", alert("run-2", suite="billing"), suite="billing")

    assert [a.run_id for a in store.list_alerts()] == ["run-2", "run-1", "run-1"]
    assert [a.feature for a in store.list_alerts(limit=2)] == ["refunds", "tone"]
    assert [a.feature for a in store.list_alerts(status="suppressed")] == ["tone"]
    assert [a.run_id for a in store.list_alerts(suite="billing")] == ["run-2"]
    assert [a.feature for a in store.list_alerts(suite="support", status="pending")] == ["refunds"]
    assert store.list_alerts(status="sent") == []
    with pytest.raises(ValueError, match="limit"):
        store.list_alerts(limit=0)


# ---------------------------------------------------------------- SQL only


def test_without_a_clock_claims_and_retries_are_on_the_database_clock(
    db_engine: Engine,
) -> None:
    store = SqlRunStore(db_engine)  # as in production
    finish(store, "run-1", alert(), alert(channel="webhook"))

    before = database_clock(db_engine)
    first, second = store.claim_due_alerts("w", 30, 10)
    after = database_clock(db_engine)

    assert first.claimed_until is not None
    assert first.claimed_until == second.claimed_until  # one statement, one now
    assert before + timedelta(seconds=30) <= first.claimed_until
    assert first.claimed_until <= after + timedelta(seconds=30)
    assert store.claim_due_alerts("w2", 30, 10) == []
    assert store.settle_alert(first.id, "w", status="pending", retry_in_s=60)
    assert store.settle_alert(second.id, "w", status="sent", provider_id="re_1")
    waiting, sent = sorted(store.list_alerts(), key=lambda a: a.id)
    settled = database_clock(db_engine)
    assert waiting.next_attempt_at is not None
    assert after + timedelta(seconds=60) <= waiting.next_attempt_at
    assert waiting.next_attempt_at <= settled + timedelta(seconds=60)
    assert sent.sent_at is not None
    assert after <= sent.sent_at <= settled


def test_an_injected_clock_times_the_claims_too(db_engine: Engine) -> None:
    far_past = FakeClock(datetime(2001, 1, 1, tzinfo=UTC))
    store = SqlRunStore(db_engine, far_past)
    finish(store, "run-1", alert())

    claimed = only(store.claim_due_alerts("w", 30, 10))

    assert claimed.created_at == far_past.now()
    assert claimed.claimed_until == far_past.now() + timedelta(seconds=30)
    # The database's clock is decades past that claim; only the store's counts.
    assert store.claim_due_alerts("w2", 30, 10) == []
    assert store.settle_alert(claimed.id, "w", status="pending", retry_in_s=60)
    assert store.claim_due_alerts("w2", 30, 10) == []
    far_past.advance(seconds=60)
    assert only(store.claim_due_alerts("w2", 30, 10)).id == claimed.id


def test_an_injected_clock_is_the_stores_only_time_source(
    db_engine: Engine, clock: FakeClock
) -> None:
    store = SqlRunStore(db_engine, clock)
    statements: list[str] = []

    def capture(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(db_engine, "before_cursor_execute", capture)
    try:
        store.db_now()
        store.create_run(new_run(), lease=LEASE)
        store.renew_lease("run-1", FENCE, 30)
        store.save_results("run-1", [ok("1", 4.0)], ProgressDelta(1, 1), fence=FENCE)
        store.control_run("run-1", "pause")
        store.release_run("run-1", FENCE, RunStatus.PAUSED)
        store.control_run("run-1", "resume")
        assert store.adoptable_run("support") is not None
        assert store.adopt_run("run-1", 1, Lease("worker-2", 30), max_attempts=3) is not None
        store.finish_run(
            "run-1", RunStatus.SUCCEEDED, None, [], fence=Fence(2, "worker-2"), alerts=[alert()]
        )
        store.create_run(new_run("gives-up"), lease=LEASE)
        store.release_run("gives-up", FENCE, RunStatus.INTERRUPTED)
        store.adopt_run("gives-up", 1, Lease("worker-2", 30), max_attempts=1)
        store.create_run(new_run("cancelled"), status=RunStatus.QUEUED)
        store.control_run("cancelled", "cancel")
        claimed = only(store.claim_due_alerts("w", 30, 10))
        store.settle_alert(claimed.id, "w", status="pending", retry_in_s=5)
        clock.advance(seconds=5)
        store.settle_alert(only(store.claim_due_alerts("w", 30, 10)).id, "w", status="sent")
    finally:
        event.remove(db_engine, "before_cursor_execute", capture)

    assert len(statements) > 20
    on_the_database_clock = re.compile(r"\bnow\(|strftime|current_timestamp|localtimestamp", re.I)
    assert [sql for sql in statements if on_the_database_clock.search(sql)] == []
    [sent] = store.list_alerts()
    assert sent.sent_at == clock.now()


def test_sqlite_claim_and_retry_times_are_stored_in_the_column_text_format(
    migrated_sqlite_url: str,
) -> None:
    # SQLite compares the text: times computed in SQL must look exactly like
    # the datetimes SQLAlchemy writes, or due and expiry checks go wrong.
    engine = make_engine(migrated_sqlite_url)
    try:
        store = SqlRunStore(engine, FakeClock())
        finish(store, "run-1", alert(), alert(channel="webhook"))
        first, second = store.claim_due_alerts("w", 30, 10)
        store.settle_alert(first.id, "w", status="pending", retry_in_s=1.5)
        store.settle_alert(second.id, "w", status="sent")
        store.claim_due_alerts("w", 30, 10)
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT created_at, next_attempt_at, sent_at, claimed_until FROM alerts")
            ).all()
    finally:
        engine.dispose()

    values = [value for row in rows for value in row if value is not None]
    assert len(values) == 4
    for value in values:
        assert isinstance(value, str)
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", value), value


def test_deleting_a_run_deletes_its_alerts(db_engine: Engine) -> None:
    store = SqlRunStore(db_engine, FakeClock())
    finish(store, "run-1", alert())
    finish(store, "run-2", alert("run-2"))

    with db_engine.begin() as conn:
        conn.execute(delete(eval_runs).where(eval_runs.c.id == "run-1"))

    assert [a.run_id for a in store.list_alerts()] == ["run-2"]


@pytest.mark.postgres
def test_postgres_claims_skip_alerts_another_claimer_has_locked(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        store = SqlRunStore(engine, FakeClock())
        finish(store, "run-1", alert(feature="a"), alert(feature="b"))
        claimed: list[AlertRecord] = []
        with engine.connect() as other, other.begin():
            # Another replica's claim, caught between its SELECT and its commit.
            other.execute(
                select(alerts_table.c.id).where(alerts_table.c.feature == "a").with_for_update()
            )
            claimer = threading.Thread(
                target=lambda: claimed.extend(store.claim_due_alerts("w", 30, 10))
            )
            claimer.start()
            claimer.join(timeout=5)
            waited = claimer.is_alive()
            other.rollback()
        claimer.join(timeout=5)
    finally:
        engine.dispose()

    assert not waited, "the claim waited for a locked row instead of skipping it"
    assert [a.feature for a in claimed] == ["b"]
