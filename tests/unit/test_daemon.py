"""The daemon in one process, over the in-memory store and fake locks, with the clock injected."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from continuous_eval.core.models import (
    Lease,
    NewRun,
    ResultStatus,
    RunRecord,
    RunStatus,
    ScoreOutcome,
    Usage,
)
from continuous_eval.core.suite import Case
from continuous_eval.errors import ConfigError, DuplicateRun, GateBusy
from continuous_eval.ports import FeaturePlan, RunPlan, SuiteSchedule, TickOutcome
from continuous_eval.service.daemon import Daemon, DaemonConfig
from continuous_eval.service.runner import Runner
from continuous_eval.testing import FakeClock, GatedTarget, InMemoryRunStore

DAY = timedelta(hours=24)


class FakeLock:
    def __init__(self, owner: FakeLocks, suite: str) -> None:
        self.suite = suite
        self._locks = owner
        self.released = False

    def check(self) -> bool:
        return not self.released and self._locks.healthy

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._locks.held.discard(self.suite)


class FakeLocks:
    """Cross-process locks as one set; `foreign` suites are held by another replica."""

    def __init__(self) -> None:
        self.held: set[str] = set()
        self.foreign: set[str] = set()
        self.healthy = True

    def try_acquire(self, suite: str, owner: str) -> FakeLock | None:
        if suite in self.held or suite in self.foreign:
            return None
        self.held.add(suite)
        return FakeLock(self, suite)

    def close(self) -> None:
        self.held.clear()


class PricedJudge:
    name = "judge"

    def __init__(self, cost: float = 0.0) -> None:
        self.cost = cost
        self.calls = 0

    async def score(self, output: str, case: Case) -> ScoreOutcome:
        self.calls += 1
        return ScoreOutcome(4.0, passed=True, usage=Usage(10, 2, self.cost))


class Plans:
    def __init__(self, cases: int, target: GatedTarget, judge: PricedJudge) -> None:
        self.cases = cases
        self.target = target
        self.judge = judge
        self.fail_with: Exception | None = None
        self.as_of: list[datetime | None] = []

    def plan(self, suite: str, features: Sequence[str], as_of: datetime | None = None) -> RunPlan:
        self.as_of.append(as_of)
        if self.fail_with is not None:
            raise self.fail_with
        items = [Case(id=f"c{i}", input=f"q{i}") for i in range(self.cases)]

        def cases() -> Iterator[Case]:
            return iter(items)

        return RunPlan(
            suite=suite,
            features=[
                FeaturePlan(
                    "f",
                    cases,
                    len(items),
                    self.target,
                    [self.judge],
                    budgeted=frozenset({"judge"}),
                )
            ],
            concurrency=4,
            fingerprint="fp",
        )


class Recorder:
    def __init__(self) -> None:
        self.ticks: list[tuple[str, TickOutcome]] = []
        self.unreadable = 0
        self.lock_changes: list[tuple[str, bool]] = []

    def tick(self, suite: str, outcome: TickOutcome) -> None:
        self.ticks.append((suite, outcome))

    def lock_held(self, suite: str, held: bool) -> None:
        self.lock_changes.append((suite, held))

    def budget_unreadable(self) -> None:
        self.unreadable += 1

    def run_finished(self, run: Any) -> None:
        return None


class World:
    def __init__(self, *, cases: int = 6, enabled: bool = True, budget: float | None = None):
        self.clock = FakeClock()
        self.store = InMemoryRunStore(self.clock)
        self.locks = FakeLocks()
        self.target = GatedTarget()
        self.judge = PricedJudge()
        self.plans = Plans(cases, self.target, self.judge)
        self.events = Recorder()
        self.runner = Runner(self.store, max_concurrency=8, write_linger_s=0)
        self.schedule = SuiteSchedule(
            enabled=enabled, interval=DAY, watchdog_s=30.0, max_attempts=3
        )
        self.daemon = self.make_daemon("replica-a", budget)

    def make_daemon(self, owner: str, budget: float | None = None) -> Daemon:
        return Daemon(
            store=self.store,
            locks=self.locks,
            runner=self.runner,
            plans=self.plans,
            config=DaemonConfig(
                owner=owner,
                schedules={"s": self.schedule},
                lease_s=1.0,
                heartbeat_s=0.02,
                drain_timeout_s=1.0,
                daily_budget_usd=budget,
            ),
            events=self.events,
        )

    def scheduled(self) -> list[Any]:
        return [r for r in self.store.list_runs(limit=100) if r.run_type == "scheduled"]


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    w.runner.close()


async def test_a_disabled_tick_touches_nothing() -> None:
    w = World(enabled=False)

    class Untouchable(InMemoryRunStore):
        def __getattribute__(self, name: str) -> Any:
            if not name.startswith("_"):
                raise AssertionError(f"the store was touched: {name}")
            return super().__getattribute__(name)

    w.store = Untouchable(w.clock)
    w.daemon = w.make_daemon("a")
    assert await w.daemon.tick_suite("s") is TickOutcome.DISABLED
    assert w.locks.held == set()
    w.runner.close()


async def test_due_runs_once_per_slot_and_again_after_the_interval(world: World) -> None:
    assert await world.daemon.tick_suite("s") is TickOutcome.RAN
    [first] = world.scheduled()
    assert first.status is RunStatus.SUCCEEDED
    assert first.scheduled_for is not None
    assert await world.daemon.tick_suite("s") is TickOutcome.NOT_DUE

    world.clock.advance(DAY)
    assert await world.daemon.tick_suite("s") is TickOutcome.RAN
    runs = world.scheduled()
    assert len(runs) == 2
    assert {r.scheduled_for for r in runs} == {first.scheduled_for, first.started_at + DAY}
    # Each run is planned as of its slot: an online feature's window ends there.
    assert world.plans.as_of == sorted(r.scheduled_for for r in runs if r.scheduled_for)
    assert world.locks.held == set()
    assert not world.daemon.gate.busy("s")


async def test_a_tick_while_shutting_down_says_stopping_and_starts_nothing(world: World) -> None:
    await world.daemon.shutdown(timeout_s=1.0)
    assert await world.daemon.tick_suite("s") is TickOutcome.STOPPING
    assert world.scheduled() == []
    assert ("s", TickOutcome.STOPPING) in world.events.ticks


async def test_a_slot_another_replica_claimed_first_is_claim_lost(world: World) -> None:
    """Between this replica's look and its insert, another one took the slot."""

    class SlotTaken(InMemoryRunStore):
        def create_run(
            self, new: NewRun, *, lease: Lease | None = None, status: RunStatus = RunStatus.RUNNING
        ) -> RunRecord:
            raise DuplicateRun("scheduled_for", "elsewhere", f"slot of {new.suite} is taken")

    world.store = SlotTaken(world.clock)
    world.daemon = world.make_daemon("replica-a")
    assert await world.daemon.tick_suite("s") is TickOutcome.CLAIM_LOST
    assert world.locks.held == set()
    assert not world.daemon.gate.busy("s")


async def test_a_slot_already_claimed_is_a_no_op(world: World) -> None:
    other = world.make_daemon("replica-b")
    await world.daemon.tick_suite("s")
    world.clock.advance(DAY)
    # Both replicas see the suite due; they claim the same slot one after the other.
    outcomes = [await other.tick_suite("s"), await world.daemon.tick_suite("s")]
    assert outcomes == [TickOutcome.RAN, TickOutcome.NOT_DUE]
    assert len(world.scheduled()) == 2


async def test_locked_elsewhere_is_counted_and_runs_nothing(world: World) -> None:
    world.locks.foreign.add("s")
    assert await world.daemon.tick_suite("s") is TickOutcome.LOCKED_ELSEWHERE
    assert world.scheduled() == []
    assert ("s", TickOutcome.LOCKED_ELSEWHERE) in world.events.ticks


async def test_a_manual_run_racing_a_tick_holds_the_gate(world: World) -> None:
    world.target.gate.clear()
    manual = await world.daemon.start_manual("s")
    assert manual.run_type == "manual"
    assert await world.daemon.tick_suite("s") is TickOutcome.GATE_BUSY
    with pytest.raises(GateBusy):
        await world.daemon.start_manual("s")
    world.target.gate.set()
    await world.daemon.settled()
    assert world.store.get_run(manual.id).status is RunStatus.SUCCEEDED
    await world.daemon.shutdown(5)
    assert world.locks.held == set()
    assert not world.daemon.gate.busy("s")
    # The gate is free again: the scheduled run goes ahead; the manual run is no baseline.
    world.daemon = world.make_daemon("a")
    assert await world.daemon.tick_suite("s") is TickOutcome.RAN


async def test_a_failing_setup_releases_gate_and_lock(world: World) -> None:
    world.plans.fail_with = ConfigError("suites.yaml", "suites.s", "dataset vanished")
    with pytest.raises(ConfigError):
        await world.daemon.start_manual("s")
    assert not world.daemon.gate.busy("s")
    assert world.locks.held == set()
    assert await world.daemon.tick_suite("s") is TickOutcome.ERROR
    assert world.locks.held == set()
    world.plans.fail_with = None
    assert await world.daemon.tick_suite("s") is TickOutcome.RAN


async def test_cap_reached_skips_and_unreadable_spend_fails_open() -> None:
    w = World(budget=1.0)

    class Spent(InMemoryRunStore):
        spend: float | None = 5.0

        def judge_spend_since(self, since: Any) -> float:
            if self.spend is None:
                raise OSError("spend table unreachable")
            return self.spend

    store = Spent(w.clock)
    w.store = store
    w.runner.close()
    w.runner = Runner(store, max_concurrency=8, write_linger_s=0)
    w.daemon = w.make_daemon("a", budget=1.0)
    assert await w.daemon.tick_suite("s") is TickOutcome.BUDGET_SKIPPED
    [skipped] = w.scheduled()
    assert skipped.status is RunStatus.SKIPPED
    assert "budget reached" in (skipped.status_reason or "")
    assert w.judge.calls == 0

    w.clock.advance(DAY)
    store.spend = None
    assert await w.daemon.tick_suite("s") is TickOutcome.RAN
    assert w.events.unreadable == 1
    w.runner.close()


async def test_a_run_that_reaches_the_cap_mid_way_ends_incomplete() -> None:
    w = World(budget=1.0, cases=8)
    w.judge.cost = 0.3
    assert await w.daemon.tick_suite("s") is TickOutcome.RAN
    [run] = w.scheduled()
    # Below the completeness floor: inconclusive, never a success (nor a baseline).
    assert run.status is RunStatus.INCONCLUSIVE
    assert "inconclusive" in (run.status_reason or "")
    assert "the daily judge budget ran out" in (run.status_reason or "")
    assert run.scored < run.total
    skipped = [r for r in w.store.worst_results(run.id, 100) if r.status is ResultStatus.SKIPPED]
    assert skipped
    w.runner.close()


async def test_the_watchdog_fails_a_hung_run_and_frees_the_suite(world: World) -> None:
    world.schedule = SuiteSchedule(enabled=True, interval=DAY, watchdog_s=0.2, max_attempts=3)
    world.daemon = world.make_daemon("a")
    world.target.gate.clear()
    assert await world.daemon.tick_suite("s") is TickOutcome.RAN
    [run] = world.scheduled()
    assert run.status is RunStatus.FAILED
    assert "watchdog" in (run.status_reason or "")
    assert world.locks.held == set()
    assert not world.daemon.gate.busy("s")


async def test_an_orphaned_run_is_taken_over_without_rerunning_finished_cases(
    world: World,
) -> None:
    plan = world.plans.plan("s", ())
    dead = world.store.create_run(
        NewRun(
            id="orphan",
            suite="s",
            run_type="scheduled",
            features=("f",),
            cases_total=plan.cases_total,
            total=plan.results_total,
            fingerprint="fp",
            scheduled_for=world.clock.now(),
        ),
        lease=Lease("dead-replica", 1.0),
    )
    # The dead replica had finished two cases before it died.
    from continuous_eval.core.models import CaseResult, Fence, ProgressDelta

    world.store.save_results(
        dead.id,
        [
            CaseResult("f", "c0", "judge", ResultStatus.OK, score=3.0),
            CaseResult("f", "c1", "judge", ResultStatus.OK, score=3.0),
        ],
        ProgressDelta(cases_done=2, scored=2),
        fence=Fence(1, "dead-replica"),
    )
    assert await world.daemon.tick_suite("s") is TickOutcome.NOT_DUE  # lease not expired yet
    world.clock.advance(timedelta(seconds=2))
    assert await world.daemon.tick_suite("s") is TickOutcome.RAN
    run = world.store.get_run("orphan")
    assert run.status is RunStatus.SUCCEEDED
    assert run.attempt == 2
    assert sorted(world.target.calls) == [f"c{i}" for i in range(2, 6)]
    assert (run.cases_done, run.scored, run.total) == (6, 6, 6)
    assert len(world.store.worst_results("orphan", 100)) == 6
    # The takeover planned as of the run's slot, so it samples what the first attempt did.
    assert world.plans.as_of[-1] == dead.scheduled_for


async def test_losing_the_lock_stops_writing_and_the_daemon_lives_on(world: World) -> None:
    world.target.delay = 0.05
    world.plans.cases = 40
    task = asyncio.create_task(world.daemon.tick_suite("s"))
    await world.target.answered(2)
    world.locks.healthy = False
    assert await task is TickOutcome.RAN
    [run] = world.scheduled()
    assert run.status is RunStatus.RUNNING  # left for a takeover once its lease expires
    written = run.cases_done
    answered = world.target.answered_count
    await world.daemon.settled()
    assert world.store.get_run(run.id).cases_done == written  # nothing written since
    assert world.target.answered_count <= answered + 8  # at most the cases in flight
    assert written < 40
    assert world.locks.held == set()


async def test_pause_resume_and_cancel(world: World) -> None:
    world.target.delay = 0.05
    world.plans.cases = 30
    run = await world.daemon.start_manual("s")
    await world.target.answered(3)
    paused = await world.daemon.control(run.id, "pause")
    assert paused.status is RunStatus.PAUSED
    await world.daemon.settled()  # the worker stores what it had in flight, then lets go
    assert not world.daemon.running
    after_pause = world.store.get_run(run.id)
    assert after_pause.status is RunStatus.PAUSED
    assert after_pause.lease_owner is None
    assert 0 < after_pause.cases_done < 30
    assert not world.daemon.gate.busy("s")

    resumed = await world.daemon.control(run.id, "resume")
    assert resumed.status is RunStatus.QUEUED
    await world.daemon.settled()
    done = world.store.get_run(run.id)
    assert done.status is RunStatus.SUCCEEDED
    assert done.cases_done == 30
    assert len(world.store.worst_results(run.id, 100)) == 30

    again = await world.daemon.control(run.id, "cancel")
    assert again.status is RunStatus.SUCCEEDED  # a finished run answers its final status

    second = await world.daemon.start_manual("s")
    await world.target.answered(done.cases_done + 3)
    cancelled = await world.daemon.control(second.id, "cancel")
    assert cancelled.status is RunStatus.CANCELLED
    await world.daemon.shutdown(5)
    final = world.store.get_run(second.id)
    assert final.status is RunStatus.CANCELLED
    assert world.store.get_aggregates(second.id)[0].n == final.scored


async def test_shutdown_releases_a_run_in_flight_for_another_replica(world: World) -> None:
    world.target.delay = 0.05
    world.plans.cases = 40
    run = await world.daemon.start_manual("s")
    await world.target.answered(3)
    await world.daemon.shutdown(5)
    released = world.store.get_run(run.id)
    assert released.status is RunStatus.INTERRUPTED
    assert released.lease_owner is None
    assert world.locks.held == set()
    assert world.store.adoptable_run("s") is not None
