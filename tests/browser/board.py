"""A real ``continuous-eval serve`` with a seeded database, for the browser tests to look at.

``open_board`` writes a history into a migrated database through
``SqlRunStore`` (what ``seed`` returns says what the pages must show), and
starts ``serve`` on it with a suite file. Two suites, ``helpdesk`` and
``billing``, carry the seeded history: scheduled every 24 h and last run
three hours ago, so nothing becomes due while the tests run.
The ``slow-*`` suites are for live runs: each case sleeps, one case at a
time, and each test that starts a run has a suite of its own (a suite runs
once at a time, and a second start would be refused).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.core.decisions import Decision, DecisionKind, Incident
from continuous_eval.core.models import (
    CaseResult,
    NewAlert,
    NewRun,
    ProgressDelta,
    ResultStatus,
    RunStatus,
    ScoreAggregate,
)
from continuous_eval.testing import FakeClock
from tests.e2e.daemon_harness import SLOW_APP, Cluster, Serve, suite_yaml

REPO = Path(__file__).resolve().parents[2]
TOKEN = "browser-token-0123456789abcdef"

APP = (
    SLOW_APP
    + """

def judge(output, case):
    return 5.0
"""
)

SEEDED_SUITES = ("billing", "helpdesk")

SLOW_SUITES = {
    # 20 cases of 0.3 s, one at a time: about 6 s, long enough to watch it move.
    "slow-progress": (20, 0.3),
    # Runs the tests cancel: long enough that they cannot end by themselves first.
    "slow-cancel": (100, 0.3),
    "slow-csrf": (100, 0.3),
}


def _feature(name: str, scorer: str) -> list[str]:
    return [
        f"      {name}:",
        "        dataset:",
        "          cases:",
        "            - {id: c01, input: 'q1:0.01', expected: 'q1:0.01'}",
        "        target: {type: python, callable: 'slow_app:answer'}",
        f"        scorers: [{scorer}]",
    ]


def suites_file() -> str:
    """The suite file ``serve`` reads: the seeded suites, then the slow ones."""
    judge = "{type: python, name: judge, callable: 'slow_app:judge'}"
    lines = ["suites:"]
    for suite, features in (
        ("helpdesk", [("refunds", judge), ("tone", judge)]),
        ("billing", [("invoices", "{type: exact}"), ("disputes", "{type: exact}")]),
    ):
        lines += [
            f"  {suite}:",
            "    schedule: {enabled: true, interval_hours: 24}",
            "    features:",
        ]
        for name, scorer in features:
            lines += _feature(name, scorer)
    slow = suite_yaml(SLOW_SUITES, concurrency=1).split("\n", 1)[1]
    return "\n".join(lines) + "\n" + slow


# ---------------------------------------------------------------------- seed


@dataclass(frozen=True)
class Seeded:
    """What was written, so the tests know what each page must show."""

    suites: tuple[str, ...]
    trend: tuple[str, str, str]
    """The (suite, feature, scorer) whose trend has the alert."""
    trend_points: int
    """Scheduled runs of that key."""
    regressed_run: str
    """The newest scheduled run of ``helpdesk``: it opened the incident."""
    base_run: str
    """The run before it, the incident's newest known-good run."""
    fallen: tuple[str, ...]
    """Case ids that fell from ``base_run`` to ``regressed_run``, largest fall first."""
    alerts: int
    """Outbox rows written."""


def _run_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"continuous-eval/browser/{name}"))


# refunds: base score, score in the regressed run (None: the target failed).
REFUNDS = {
    "c01": (5, 5), "c02": (4, 2), "c03": (5, 5), "c04": (4, 5), "c05": (4, None),
    "c06": (5, 3), "c07": (4, 4), "c08": (5, 1), "c09": (4, 4), "c10": (4, 4),
}  # fmt: skip
TONE = {f"c{i:02d}": (4, 3 if i == 4 else 4) for i in range(1, 11)}
FALLEN = ("c08", "c02", "c06", "c04")
"""refunds c08 (-4), c02 and c06 (-2), tone c04 (-1): the compare page's order."""

QUESTIONS = {
    "c01": "Can I return shoes I wore once?",
    "c02": "My refund for order 1002 has not arrived after 10 days.",
    "c03": "Do you refund shipping costs?",
    "c04": "I was charged twice for the same order.",
    "c05": "Can I get a refund in cash instead of to my card?",
    "c06": "The jacket arrived torn. What now?",
    "c07": "How long does a refund take?",
    "c08": "Can I get a refund 40 days after delivery?",
    "c09": "Do gift cards get refunded?",
    "c10": "Can someone else return my order for me?",
}


def _result(feature: str, case: str, score: int | None, run: str) -> CaseResult:
    question = QUESTIONS[case]
    common: dict[str, Any] = {
        "input_excerpt": json.dumps({"question": question, "locale": "en-GB"}),
        "expected_excerpt": f"A polite answer to {question!r} that follows the refund policy.",
        "latency_ms": 800.0,
    }
    if score is None:
        return CaseResult(
            feature,
            case,
            "judge",
            ResultStatus.ERROR,
            error="target timed out after 30 s",
            **common,
        )
    return CaseResult(
        feature,
        case,
        "judge",
        ResultStatus.OK,
        score=float(score),
        passed=score >= 4,
        output_excerpt=f"[{run}] Thanks for asking. About {question.lower()} ...",
        rationale=f"Scored {score}: "
        + ("follows the policy." if score >= 4 else "contradicts the 30-day policy."),
        **common,
    )


def _aggregate(feature: str, scores: Sequence[int | None]) -> ScoreAggregate:
    ok = [float(s) for s in scores if s is not None]
    mean = sum(ok) / len(ok)
    var = sum((s - mean) ** 2 for s in ok) / (len(ok) - 1)
    return ScoreAggregate(
        feature, "judge", mean, math.sqrt(var / len(ok)), len(ok), len(scores) - len(ok), "fp"
    )


def _steady(feature: str, mean: float, n: int = 10, scorer: str = "judge") -> ScoreAggregate:
    return ScoreAggregate(feature, scorer, mean, 0.12, n, 0, "fp")


def _new_run(run_id: str, suite: str, features: tuple[str, ...], slot: datetime) -> NewRun:
    return NewRun(
        id=run_id,
        suite=suite,
        run_type="scheduled",
        features=features,
        cases_total=10,
        total=10 * len(features),
        fingerprint="fp",
        fingerprint_parts={"dataset": "d1", "rubric": "r1"},
        scheduled_for=slot,
    )


def _helpdesk(store: SqlRunStore, clock: FakeClock, newest: datetime, runs: int) -> list[str]:
    ids = [_run_id(f"helpdesk-{i}") for i in range(runs)]
    features = ("refunds", "tone")
    for i, run_id in enumerate(ids):
        slot = newest - timedelta(days=runs - 1 - i)
        clock.set(slot)
        store.create_run(_new_run(run_id, "helpdesk", features, slot))
        # A run of an LLM-judged suite takes a while: its decisions come well after its slot.
        clock.advance(timedelta(minutes=39))
        last, base = i == runs - 1, i == runs - 2
        if last or base:
            pick = 1 if last else 0
            results = [_result("refunds", c, s[pick], run_id) for c, s in REFUNDS.items()]
            results += [_result("tone", c, s[pick], run_id) for c, s in TONE.items()]
            errors = sum(r.status is ResultStatus.ERROR for r in results)
            delta = ProgressDelta(10, len(results) - errors, errors)
            store.save_results(run_id, results, delta)
            aggregates = [
                _aggregate("refunds", [s[pick] for s in REFUNDS.values()]),
                _aggregate("tone", [s[pick] for s in TONE.values()]),
            ]
        else:
            aggregates = [_steady("refunds", 4.3 + 0.1 * math.sin(i)), _steady("tone", 3.9)]
        clock.advance(timedelta(minutes=1))
        store.finish_run(
            run_id,
            RunStatus.SUCCEEDED,
            None,
            aggregates,
            decisions=_decisions(ids[: i + 1], aggregates, regressed=last),
            alerts=_alerts(run_id) if last else (),
        )
    return ids


def _decisions(
    ids: Sequence[str], aggregates: Sequence[ScoreAggregate], *, regressed: bool
) -> list[Decision]:
    run_id, known_good = ids[-1], tuple(reversed(ids[:-1]))[:7]
    if not known_good:
        return [Decision(a.feature, "judge", DecisionKind.NO_BASELINE, "") for a in aggregates]
    out = []
    for a in aggregates:
        if regressed and a.feature == "refunds":
            out.append(
                Decision(
                    "refunds", "judge", DecisionKind.REGRESSED,
                    "refunds · judge fell by 0.73 (from 4.40 to 3.67 over 9 paired cases, "
                    "p = 0.031 adjusted)",
                    rule="drop", current=3.67, baseline=4.4, mean_difference=-0.73,
                    ci_low=-1.41, ci_high=-0.06, p_value=0.016, p_adjusted=0.031, n_paired=9,
                    baseline_run_ids=known_good, transition="opened",
                    incident=Incident(run_id, "regression", -0.73, known_good),
                )
            )  # fmt: skip
        else:
            out.append(
                Decision(
                    a.feature, "judge", DecisionKind.NOT_SIGNIFICANT,
                    f"{a.feature} · judge is at its known-good level",
                    mean_difference=0.0, p_value=0.8, p_adjusted=0.8, n_paired=10,
                    baseline_run_ids=known_good, known_good=True,
                )
            )  # fmt: skip
    return out


def _alerts(run_id: str) -> list[NewAlert]:
    key = f"helpdesk:refunds:judge:{run_id}"
    summary: dict[str, object] = {"difference": -0.73}
    return [
        NewAlert(
            key, "none", "regression", run_id, "helpdesk", "refunds", "judge", "drop",
            "suppressed", "", summary, reason="no alert channel is configured",
        ),
        NewAlert(
            key, "webhook", "regression", run_id, "helpdesk", "refunds", "judge", "drop",
            "dead", "{}", summary, reason="the webhook answered 404 on 8 attempts",
        ),
    ]  # fmt: skip


def _billing(store: SqlRunStore, clock: FakeClock, newest: datetime, runs: int) -> None:
    for i in range(runs):
        run_id = _run_id(f"billing-{i}")
        slot = newest - timedelta(days=runs - 1 - i, minutes=30)
        clock.set(slot)
        store.create_run(_new_run(run_id, "billing", ("invoices",), slot))
        clock.advance(timedelta(minutes=3))
        aggregates = [_steady("invoices", 0.9 + 0.02 * (i % 3), scorer="exact")]
        store.finish_run(run_id, RunStatus.SUCCEEDED, None, aggregates)


def seed(database_url: str, now: datetime, *, helpdesk_runs: int = 12) -> Seeded:
    """Write the history the pages show: ``helpdesk`` regressed in its newest run."""
    newest = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    clock = FakeClock(newest)
    store = SqlRunStore(make_engine(database_url), clock)
    try:
        ids = _helpdesk(store, clock, newest, helpdesk_runs)
        _billing(store, clock, newest, 6)
    finally:
        store.close()
    return Seeded(
        suites=SEEDED_SUITES,
        trend=("helpdesk", "refunds", "judge"),
        trend_points=helpdesk_runs,
        regressed_run=ids[-1],
        base_run=ids[-2],
        fallen=FALLEN,
        alerts=2,
    )


# ---------------------------------------------------------------------- serve


@dataclass
class Board:
    """``serve`` on the seeded database, and its admin API."""

    serve: Serve
    seeded: Seeded

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.serve.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def api(self, method: str, path: str, body: object | None = None) -> tuple[int, Any]:
        """Call the admin API with the bearer token; the status and the JSON answer."""
        answer = httpx.request(
            method,
            self.url(path),
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        return answer.status_code, answer.json() if answer.content else None

    def start_run(self, suite: str) -> str:
        """Start a manual run through the API; its id."""
        status, body = self.api("POST", "/api/runs", {"suite": suite})
        assert status == 202, (status, body)
        run_id: str = body["run_id"]
        return run_id

    def run(self, run_id: str) -> dict[str, Any]:
        status, body = self.api("GET", f"/api/runs/{run_id}")
        assert status == 200, (status, body)
        run: dict[str, Any] = body
        return run


def _pythonpath() -> str:
    # The code under test is this checkout's, whatever the virtualenv was installed from.
    return os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)


@contextlib.contextmanager
def open_board(workdir: Path, database_url: str) -> Iterator[Board]:
    """Seed a migrated database and serve it; stop ``serve`` at the end."""
    (workdir / "slow_app.py").write_text(APP)
    (workdir / "suites.yaml").write_text(suites_file())
    seeded = seed(database_url, datetime.now(UTC))
    cluster = Cluster(
        workdir,
        database_url,
        env={
            "PYTHONPATH": _pythonpath(),
            "CONTINUOUS_EVAL_API_TOKENS": json.dumps([TOKEN]),
            # Only the suite file's `schedule:` turns scheduling on, and the
            # first scheduling tick is an hour away: no run starts on its own.
            "CONTINUOUS_EVAL_SCHEDULE_ENABLED": "false",
            "CONTINUOUS_EVAL_SCHEDULE_STARTUP_DELAY_S": "3600",
        },
        command=["serve"],
    )
    serve = cluster.start("dashboard")
    try:
        yield Board(serve, seeded)
    finally:
        try:
            cluster.stop_all()
        finally:
            cluster.kill_all()
