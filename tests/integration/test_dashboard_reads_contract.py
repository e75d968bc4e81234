"""The dashboard's reads, the same on the in-memory reader, SQLite and Postgres.

Recent scores (the overview's sparklines), one key's trend with or without
manual runs, the newest verdicts per suite (states and open incidents) and a
key's markers (decisions that opened, worsened, recovered or reset).
"""

from __future__ import annotations

from datetime import timedelta

from continuous_eval.core.decisions import Decision, DecisionKind, Incident
from continuous_eval.core.models import RunStatus, ScoreAggregate
from continuous_eval.testing.builders import new_run
from tests.fixtures.readers import Backend


def _scheduled(
    b: Backend,
    run_id: str,
    mean: float,
    *,
    suite: str = "support",
    decisions: tuple[Decision, ...] = (),
) -> None:
    b.store.create_run(
        new_run(run_id, suite=suite, run_type="scheduled", scheduled_for=b.clock.now())
    )
    b.clock.advance(timedelta(minutes=5))
    aggs = [
        ScoreAggregate("refunds", "judge", mean, 0.1, 10, 0, "fp"),
        ScoreAggregate("tone", "judge", mean - 1, 0.2, 9, 1, "fp"),
    ]
    b.store.finish_run(run_id, RunStatus.SUCCEEDED, None, aggs, decisions=list(decisions))
    b.clock.advance(timedelta(days=1))


def _decision(
    kind: DecisionKind, *, transition: str | None = None, incident: bool = False
) -> Decision:
    return Decision(
        "refunds",
        "judge",
        kind,
        f"{kind.value}",
        rule="drop" if kind is DecisionKind.REGRESSED else None,
        transition=transition,  # type: ignore[arg-type]
        incident=Incident("s-2", "regression", -0.8) if incident else None,
        known_good=kind is DecisionKind.NOT_SIGNIFICANT,
    )


def test_recent_scores_keep_each_suites_last_runs_by_key_newest_first(backend: Backend) -> None:
    for day in range(5):
        _scheduled(backend, f"s-{day}", 4.0 + day / 10)
    _scheduled(backend, "b-0", 3.0, suite="billing")
    backend.store.create_run(new_run("manual", run_type="manual"))
    backend.store.finish_run(
        "manual", RunStatus.SUCCEEDED, None, [ScoreAggregate("refunds", "judge", 1.0, 0, 3, 0)]
    )

    points = backend.reader.recent_scores(runs=3)

    assert [(p.suite, p.feature, p.run_id) for p in points] == [
        ("billing", "refunds", "b-0"),
        ("billing", "tone", "b-0"),
        ("support", "refunds", "s-4"),
        ("support", "refunds", "s-3"),
        ("support", "refunds", "s-2"),
        ("support", "tone", "s-4"),
        ("support", "tone", "s-3"),
        ("support", "tone", "s-2"),
    ]
    assert points[2].score == 4.4
    assert points[2].n == 10
    assert points[2].run_type == "scheduled"
    assert [p.run_id for p in backend.reader.recent_scores(suite="billing")] == ["b-0", "b-0"]


def test_a_key_trend_adds_manual_runs_only_when_asked_and_honours_since(backend: Backend) -> None:
    for day in range(3):
        _scheduled(backend, f"s-{day}", 4.0)
    backend.store.create_run(new_run("manual", run_type="manual"))
    backend.store.finish_run(
        "manual", RunStatus.SUCCEEDED, None, [ScoreAggregate("refunds", "judge", 2.0, 0, 3, 0)]
    )

    scheduled = backend.reader.key_trend("support", "refunds", "judge")
    assert [p.run_id for p in scheduled] == ["s-2", "s-1", "s-0"]
    both = backend.reader.key_trend("support", "refunds", "judge", manual=True)
    assert [p.run_id for p in both] == ["manual", "s-2", "s-1", "s-0"]
    assert both[0].run_type == "manual"
    assert both[0].at == both[0].finished_at
    recent = backend.reader.key_trend("support", "refunds", "judge", since=scheduled[1].at)
    assert [p.run_id for p in recent] == ["s-2", "s-1"]
    assert backend.reader.key_trend("support", "refunds", "exact") == []
    assert [p.run_id for p in backend.reader.key_trend("support", "refunds", "judge", limit=1)] == [
        "s-2"
    ]


def test_latest_verdicts_come_from_each_suites_newest_decided_run(backend: Backend) -> None:
    _scheduled(backend, "s-0", 4.0, decisions=(_decision(DecisionKind.NOT_SIGNIFICANT),))
    regressed = _decision(DecisionKind.REGRESSED, transition="opened", incident=True)
    _scheduled(backend, "s-1", 3.0, decisions=(regressed,))
    _scheduled(backend, "s-2", 3.0)  # finished without decisions: the verdicts stay s-1's

    [verdict] = backend.reader.latest_verdicts()
    assert (verdict.run_id, verdict.suite) == ("s-1", "support")
    assert verdict.decision == regressed
    assert backend.reader.latest_verdicts(suite="billing") == []


def test_key_marks_are_the_decisions_that_changed_something(backend: Backend) -> None:
    _scheduled(backend, "s-0", 4.0, decisions=(_decision(DecisionKind.NOT_SIGNIFICANT),))
    _scheduled(
        backend,
        "s-1",
        3.0,
        decisions=(_decision(DecisionKind.REGRESSED, transition="opened", incident=True),),
    )
    _scheduled(
        backend,
        "s-2",
        3.0,
        decisions=(_decision(DecisionKind.STILL_REGRESSED, incident=True),),
    )
    _scheduled(
        backend,
        "s-3",
        4.0,
        decisions=(_decision(DecisionKind.RECOVERED, transition="recovered"),),
    )

    marks = backend.reader.key_marks("support", "refunds", "judge")
    assert [(m.run_id, m.decision.transition) for m in marks] == [
        ("s-1", "opened"),
        ("s-3", "recovered"),
    ]
    assert marks[0].decided_at < marks[1].decided_at
    later = backend.reader.key_marks("support", "refunds", "judge", since=marks[1].decided_at)
    assert [m.run_id for m in later] == ["s-3"]
    assert backend.reader.key_marks("support", "tone", "judge") == []
