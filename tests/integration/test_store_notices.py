"""Run-completion notices in the outbox, on every backend: written with the run's end, once.

Every path that ends a run writes one ``run_finished`` row per callback in
the same transaction: finishing, an admin's cancel, giving up after too many
attempts, and a scheduled slot recorded as skipped.
"""

from __future__ import annotations

import json

import pytest

from continuous_eval.core.models import (
    Callback,
    Fence,
    Lease,
    RunStatus,
    ScoreAggregate,
)
from continuous_eval.core.run_notice import notice_key
from continuous_eval.errors import RunFinished
from continuous_eval.ports import RunStore
from continuous_eval.testing.builders import SLOT, new_run

HOOK = "https://ci.example.com/hooks/deploy?token=t0k3n"
EVERY_RUN = "https://automation.example.com/runs"
BOTH = (Callback("callback", HOOK), Callback("run_webhook", EVERY_RUN))


def notices(store: RunStore) -> list[tuple[str, str, str | None]]:
    return [
        (a.key, a.channel, a.destination)
        for a in store.list_alerts(limit=50)
        if a.kind == "run_finished"
    ]


def test_finishing_writes_one_notice_per_callback_with_the_outcome(store: RunStore) -> None:
    store.create_run(new_run("r1", callbacks=BOTH))
    aggregate = ScoreAggregate("refunds", "judge", 4.25, 0.1, 3, 0, "fp")
    store.finish_run("r1", RunStatus.SUCCEEDED, None, [aggregate])

    assert sorted(notices(store)) == [
        (notice_key("r1"), "callback", HOOK),
        (notice_key("r1"), "run_webhook", EVERY_RUN),
    ]
    first, second = (a for a in store.list_alerts() if a.kind == "run_finished")
    assert first.payload == second.payload  # one body, whoever receives it
    assert first.status == "pending"
    body = json.loads(first.payload)
    assert body["type"] == "run.finished"
    assert body["data"]["run_id"] == "r1"
    assert body["data"]["status"] == "succeeded"
    assert body["data"]["scores"] == [
        {"feature": "refunds", "scorer": "judge", "mean": 4.25, "stderr": 0.1, "n": 3, "errors": 0}
    ]
    assert store.get_run("r1").callbacks == BOTH


def test_a_refused_second_finish_writes_no_second_notice(store: RunStore) -> None:
    store.create_run(new_run("r1", callbacks=BOTH[:1]))
    store.finish_run("r1", RunStatus.FAILED, "target down", [])
    with pytest.raises(RunFinished):
        store.finish_run("r1", RunStatus.SUCCEEDED, None, [])
    assert notices(store) == [(notice_key("r1"), "callback", HOOK)]
    (notice,) = store.list_alerts()
    assert json.loads(notice.payload)["data"]["status_reason"] == "target down"


def test_a_cancel_ends_the_run_and_writes_its_notice_once(store: RunStore) -> None:
    store.create_run(new_run("r1", callbacks=BOTH[:1]))
    assert store.control_run("r1", "cancel").status is RunStatus.CANCELLED
    store.control_run("r1", "cancel")  # already cancelled: nothing changes
    assert notices(store) == [(notice_key("r1"), "callback", HOOK)]
    (notice,) = store.list_alerts()
    assert json.loads(notice.payload)["data"]["status"] == "cancelled"


def test_a_pause_is_no_end(store: RunStore) -> None:
    store.create_run(new_run("r1", callbacks=BOTH[:1]), lease=Lease("w", 30))
    assert store.control_run("r1", "pause").status is RunStatus.PAUSED
    assert notices(store) == []


def test_giving_up_after_the_last_attempt_writes_the_notice(store: RunStore) -> None:
    store.create_run(new_run("r1", callbacks=BOTH[:1]), status=RunStatus.QUEUED)
    taken = store.adopt_run("r1", 0, Lease("w", 30), max_attempts=1)
    assert taken is not None
    assert taken.status is RunStatus.RUNNING  # attempt 1 of 1
    store.release_run("r1", Fence(1, "w"), RunStatus.INTERRUPTED)
    assert notices(store) == []

    failed = store.adopt_run("r1", 1, Lease("w", 30), max_attempts=1)

    assert failed is not None
    assert failed.status is RunStatus.FAILED
    assert notices(store) == [(notice_key("r1"), "callback", HOOK)]


def test_a_skipped_slot_is_announced(store: RunStore) -> None:
    skipped = new_run(
        "s1", run_type="scheduled", scheduled_for=SLOT, reason="budget spent", callbacks=BOTH[1:]
    )
    store.create_run(skipped, status=RunStatus.SKIPPED)
    assert notices(store) == [(notice_key("s1"), "run_webhook", EVERY_RUN)]


def test_a_run_without_callbacks_writes_no_notice(store: RunStore) -> None:
    store.create_run(new_run("r1"))
    store.finish_run("r1", RunStatus.SUCCEEDED, None, [])
    assert notices(store) == []
    assert store.get_run("r1").callbacks == ()
