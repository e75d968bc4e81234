"""The ``AgreementStore`` contract, on memory, SQLite and Postgres alike."""

from __future__ import annotations

from datetime import timedelta

import pytest

from continuous_eval.core.agreement import JudgedCase, RunAgreement, measure
from continuous_eval.testing import FakeClock
from tests.fixtures.agreement import AgreementWorld, agreement_world

__all__ = ["agreement_world"]


def row(
    run_id: str, *, feature: str = "refunds", scorer: str = "judge", bad: int = 0
) -> RunAgreement:
    cases = [
        JudgedCase(f"c{i}", score=float(1 + i % 5), passed=1 + i % 5 >= 4, label=float(1 + i % 5))
        for i in range(10)
    ]
    cases += [JudgedCase(f"x{i}", score=5.0, passed=True, label=1.0) for i in range(bad)]
    cases.append(JudgedCase("split", score=3.0, passed=False, label=None))
    return RunAgreement(run_id, "support", feature, scorer, "gold", measure(cases, "1-5"))


def test_a_run_reads_back_what_was_written(agreement_world: AgreementWorld) -> None:
    world = agreement_world
    world.make_run("r1")
    written = row("r1", bad=2)
    world.store.put_agreements([written, row("r1", scorer="another")])
    got = world.store.run_agreements("r1")
    assert [(r.feature, r.scorer) for r in got] == [("refunds", "another"), ("refunds", "judge")]
    back = got[1]
    assert back.created_at is not None
    assert back.agreement == written.agreement
    assert back.agreement.split == 1
    assert back.agreement.contradictions[0].case_id == "x0"
    assert world.store.run_agreements("nothing") == []


def test_a_second_write_replaces_the_first(agreement_world: AgreementWorld) -> None:
    world = agreement_world
    world.make_run("r1")
    world.store.put_agreements([row("r1")])
    world.store.put_agreements([row("r1", bad=3)])
    (only,) = world.store.run_agreements("r1")
    assert only.agreement.n == 13


def test_history_is_newest_first_and_limited(
    agreement_world: AgreementWorld, clock: FakeClock
) -> None:
    world = agreement_world
    for i in range(4):
        world.make_run(f"r{i}")
        world.store.put_agreements([row(f"r{i}", bad=i), row(f"r{i}", feature="other")])
        clock.advance(timedelta(hours=1))
    trend = world.store.history("support", "refunds", "judge", limit=3)
    assert [r.run_id for r in trend] == ["r3", "r2", "r1"]
    assert world.store.history("support", "nope", "judge") == []
    with pytest.raises(ValueError, match="limit"):
        world.store.history("support", "refunds", "judge", limit=0)


def test_latest_is_the_newest_row_of_each_judge(
    agreement_world: AgreementWorld, clock: FakeClock
) -> None:
    world = agreement_world
    for i in range(3):
        world.make_run(f"r{i}")
        world.store.put_agreements([row(f"r{i}", bad=i), row(f"r{i}", feature="other")])
        clock.advance(timedelta(hours=1))
    latest = world.store.latest("support")
    assert [(r.feature, r.run_id) for r in latest] == [("other", "r2"), ("refunds", "r2")]
    assert [r.feature for r in world.store.latest("support", "refunds")] == ["refunds"]
    assert world.store.latest("elsewhere") == []
