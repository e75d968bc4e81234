"""Outage notices: opened once by a scheduled run that could not evaluate, closed once."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

from continuous_eval.core import outage
from continuous_eval.core.models import NewRun, RunRecord, RunStatus
from continuous_eval.core.regression import RunDecision
from continuous_eval.service.alerts import AlertPlanner
from continuous_eval.testing import FakeClock, InMemoryRunStore


def _run(store: InMemoryRunStore, run_id: str, run_type: str = "scheduled") -> RunRecord:
    return store.create_run(
        NewRun(
            id=run_id,
            suite="support",
            run_type=run_type,  # type: ignore[arg-type]
            features=("f",),
            cases_total=4,
            total=4,
            fingerprint="fp",
        )
    )


def _planner(with_email: bool = True) -> AlertPlanner:
    renderers = {
        "email": lambda n: json.dumps(
            outage.render_email(
                n, sender="ce <a@example.com>", recipients=["o@example.com"], dashboard_url=None
            )
        )
    }
    return AlertPlanner(
        lambda store, run, aggregates: RunDecision(run.suite, run.id, False, "bh", 0, ()),
        {},
        notice_renderers=renderers if with_email else {},
    )


def _end(
    store: InMemoryRunStore, planner: AlertPlanner, run: RunRecord, status: RunStatus, why: str
) -> None:
    final = dataclasses.replace(run, status=status, status_reason=why)
    planned = planner.plan(store, final, [], store.db_now())
    store.finish_run(run.id, status, why, [], alerts=planned.alerts)


def _kinds(store: InMemoryRunStore) -> list[tuple[str, str, str]]:
    return [(a.kind, a.run_id, a.status) for a in sorted(store.list_alerts(), key=lambda a: a.id)]


def test_one_notice_per_outage_and_one_when_it_is_over() -> None:
    clock = FakeClock()
    store = InMemoryRunStore(clock)
    planner = _planner()
    refused = "stopped after 5 cases in a row were refused by the provider: Anthropic 401"
    for run_id in ("r1", "r2", "r3"):
        _end(store, planner, _run(store, run_id), RunStatus.FAILED, refused)
        clock.advance(timedelta(hours=1))
    _end(store, planner, _run(store, "r4"), RunStatus.INCONCLUSIVE, "inconclusive: 0 of 4")
    clock.advance(timedelta(hours=1))
    _end(store, planner, _run(store, "r5"), RunStatus.SUCCEEDED, "")
    _end(store, planner, _run(store, "r6"), RunStatus.SUCCEEDED, "")
    clock.advance(timedelta(hours=1))
    _end(store, planner, _run(store, "r7"), RunStatus.FAILED, "watchdog")  # a new outage

    assert _kinds(store) == [
        ("outage", "r1", "pending"),
        ("outage_over", "r5", "pending"),
        ("outage", "r7", "pending"),
    ]
    first = next(a for a in store.list_alerts() if a.run_id == "r1")
    email = json.loads(first.payload)
    assert email["subject"].startswith("[continuous-eval] could not evaluate suite support since")
    assert refused in email["text"]
    assert first.summary["reason"] == refused
    over = next(a for a in store.list_alerts() if a.run_id == "r5")
    assert over.summary["since"] == first.summary["since"]  # since the outage began


def test_without_a_channel_the_outage_is_still_recorded() -> None:
    store = InMemoryRunStore(FakeClock())
    planner = _planner(with_email=False)
    _end(store, planner, _run(store, "r1"), RunStatus.FAILED, "down")
    _end(store, planner, _run(store, "r2"), RunStatus.FAILED, "down")
    assert _kinds(store) == [("outage", "r1", "suppressed")]


def test_manual_runs_open_no_outage() -> None:
    store = InMemoryRunStore(FakeClock())
    _end(store, _planner(), _run(store, "m1", "manual"), RunStatus.FAILED, "down")
    assert _kinds(store) == []


def test_the_webhook_and_slack_forms() -> None:
    notice = outage.OutageNotice("outage", "a<b>&c", "r1", None, "401 <refused>")
    generic = outage.render_webhook(notice, slack=False, dashboard_url="https://ce.example.com")
    assert generic["event"] == "continuous_eval.outage"
    assert generic["key"] == "a<b>&c:outage:r1"
    slack = outage.render_webhook(notice, slack=True, dashboard_url=None)
    assert slack["text"] == (
        "[continuous-eval] could not evaluate suite a&lt;b&gt;&amp;c since now: 401 &lt;refused&gt;"
    )
