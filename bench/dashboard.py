"""Server time and page weight of the dashboard's overview and trend pages, on Postgres.

The database is ``bench/trend_query.py``'s (its builder, imported): a year of
daily scheduled runs plus a weekly manual run of one suite with 50 features x
3 scorers, 200 result rows per run x feature. To it this adds what the
detector would have stored, one ``eval_decisions`` row per run x key: quiet
runs (``no regression``, known-good, a handful of fallen cases in
``details``), and on each key an incident or two a year (a drop, a drift or a
judge drift) that opens, sometimes worsens, and recovers a few days later,
the odd baseline reset, and on a few keys an incident still open at the end.
Manual runs get candidate decisions. The scratch database (``bench_dashboard``
on the server of ``CONTINUOUS_EVAL_BENCH_POSTGRES_URL``) is dropped and
created at the start and dropped at the end.

The app is the real one (``create_app`` over ``SqlRunStore`` and
``SqlRunReader`` on a Postgres engine) under uvicorn on a free port in a
background thread, signed in through the sign-in form, driven over real
HTTP with sequential requests after a warm-up. The figure against the
target is the app's time to answer: an outer ASGI wrapper stamps each
response with ``Server-Timing: app;dur=...`` (request received to the
response's start, which the pages only send once rendered); the client's
round trip is printed beside it, and the server's CPU per request (its
threads' CPU time, which a busy machine inflates far less than the clock;
Postgres's share is not in it). Targets: p95 <= 100 ms for ``/`` and for a
trend (``days=365`` and ``days=0``); every page <= 300 KB (1 KB = 1000
bytes) of HTML, CSS and JS as it loads them (the page and the ``/ui/static/``
files it references, uncompressed). Then EXPLAIN (ANALYZE, BUFFERS) of each
dashboard read, as the reader sends it: time, scans and indexes.

    python bench/dashboard.py                       # 50 x 3, 365 days, 200 requests
    python bench/dashboard.py --days 90 --requests 50 --results-per-feature 0
    python bench/dashboard.py --plans               # the full plans too
    python bench/dashboard.py --no-gc-freeze        # without serve's gc.freeze() of start-up

Run it from the repository root; with a virtualenv installed from another
checkout, ``PYTHONPATH=.`` makes it measure this one's package.

The exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import sqlalchemy as sa
import trend_query  # bench/trend_query.py: the database builder
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from continuous_eval.adapters.clock import SystemClock
from continuous_eval.adapters.db.decisions import decision_rows
from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.migrate import upgrade
from continuous_eval.adapters.db.queries import SqlRunReader
from continuous_eval.adapters.db.store import SqlRunStore
from continuous_eval.adapters.db.tables import eval_decisions, eval_runs
from continuous_eval.adapters.http.app import create_app
from continuous_eval.core.decisions import AnchorCheck, Decision, DecisionKind, Incident
from continuous_eval.core.models import CaseDrop
from continuous_eval.fakes.server import BackgroundServer
from continuous_eval.ports import SuiteSchedule
from continuous_eval.settings import Settings

DATABASE = "bench_dashboard"
SUITE = "bench"  # the suite trend_query's builder writes
TOKEN = "bench-token"  # noqa: S105 (a throwaway token for a local server)
TARGET_P95_MS = 100.0
TARGET_WEIGHT_BYTES = 300_000
CASES = 67  # trend_query's result rows name case-000 .. case-066
STATIC = re.compile(r'(?:href|src)="(/ui/static/[^"]+)"')


# ---------------------------------------------------------------- the database


def _scorer_names(count: int) -> list[str]:
    named = ["judge", "exact", "regex"]
    return named[:count] + [f"scorer-{i}" for i in range(len(named), count)]


def _build(url: str, args: argparse.Namespace) -> list[str]:
    """Runs, scores and results (trend_query's builder), then decisions; the lines to print."""
    # The builder reads its sizes from its module; set them to the ones asked for.
    trend_query.FEATURES = [f"feature-{i:02d}" for i in range(args.features)]
    trend_query.SCORERS = _scorer_names(args.scorers)
    trend_query.ROWS_PER_FEATURE = args.results_per_feature
    runs, results, seconds = trend_query._load(url, args.days)
    started = time.perf_counter()
    decisions, marks, open_keys = _store_decisions(url, args.seed, args.open_incidents)
    keys = args.features * args.scorers
    return [
        f"database: {runs} runs ({args.days} days scheduled + weekly manual), "
        f"{runs * keys:,} score rows, {results:,} result rows (trend_query's builder, "
        f"{seconds:.1f} s)",
        f"decisions: {decisions:,} rows, {marks:,} of them markers (opened, worsened, "
        f"recovered, reset), incidents open at the end on {len(open_keys)} keys "
        f"({time.perf_counter() - started:.1f} s)",
    ]


@dataclass
class _KeyLife:
    """One key's detector state as the runs go by, and what happens to it on which day."""

    feature: str
    scorer: str
    events: dict[int, str]
    good: list[str] = field(default_factory=list)
    incident: Incident | None = None


def _events(rng: random.Random, days: int, open_at_end: bool) -> dict[int, str]:
    """Day -> what happens: an incident opens (drop, drift, judge), worsens, recovers; a reset."""
    events: dict[int, str] = {}
    last = days - 20 if open_at_end else days
    day = rng.randint(10, 90)
    while day + 12 < last:
        kind = rng.choice(("drop", "drop", "drift", "judge"))
        length = rng.randint(2, 10)
        events[day] = f"open:{kind}"
        if kind != "judge" and length > 3 and rng.random() < 0.3:
            events[day + 2] = "worsen"
        events[day + length] = "recover"
        day += length + rng.randint(60, 240)
    if open_at_end:
        events[days - rng.randint(3, 15)] = "open:drop"
    reset = rng.randint(1, days - 1) if days > 2 else 0
    if rng.random() < 0.1 and not any(abs(reset - d) < 12 for d in events):
        events[reset] = "reset"
    return events


def _runs_in_order(url: str) -> list[tuple[str, str, datetime]]:
    r = eval_runs.c
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(r.id, r.run_type, r.finished_at).order_by(r.finished_at, r.id)
        ).all()
    engine.dispose()
    return [(row.id, row.run_type, row.finished_at) for row in rows]


def _store_decisions(url: str, seed: int, open_incidents: int) -> tuple[int, int, list[str]]:
    """Insert one decision per run x key, in run order; return (rows, markers, open keys)."""
    rng = random.Random(seed)
    pairs = [(f, s) for f in trend_query.FEATURES for s in trend_query.SCORERS]
    open_at = set(rng.sample(range(len(pairs)), min(open_incidents, len(pairs))))
    runs = _runs_in_order(url)
    days = sum(1 for _, run_type, _ in runs if run_type == "scheduled")
    lives = [_KeyLife(f, s, _events(rng, days, i in open_at)) for i, (f, s) in enumerate(pairs)]
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    count = marks = 0
    batch: list[dict[str, Any]] = []
    with engine.begin() as conn:
        day = 0
        for run_id, run_type, finished in runs:
            if run_type == "scheduled":
                decided = [_scheduled(rng, life, run_id, day) for life in lives]
                day += 1
            else:
                decided = [_candidate(rng, life) for life in lives]
            marks += sum(1 for d in decided if d.transition is not None)
            batch += decision_rows(run_id, SUITE, decided, finished)
            if len(batch) >= 5000:
                conn.execute(sa.insert(eval_decisions), batch)
                count, batch = count + len(batch), []
        if batch:
            conn.execute(sa.insert(eval_decisions), batch)
            count += len(batch)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE eval_decisions"))
    engine.dispose()
    open_keys = [f"{life.feature}/{life.scorer}" for life in lives if life.incident is not None]
    return count, marks, open_keys


def _fallen(rng: random.Random, low: int, high: int, depth: float) -> tuple[CaseDrop, ...]:
    cases = rng.sample(range(CASES), min(CASES, rng.randint(low, high)))
    drops = [
        CaseDrop(f"case-{c:03d}", before, round(max(1.0, before - rng.uniform(0.5, depth)), 2))
        for c in cases
        for before in [round(rng.uniform(3.5, 5.0), 2)]
    ]
    return tuple(sorted(drops, key=lambda d: d.after - d.before))


def _quiet(rng: random.Random, life: _KeyLife, difference: float, fallen: int) -> Decision:
    """The decision of a run compared with the key's known-good runs."""
    baseline = round(rng.uniform(3.3, 3.7), 3)
    current = round(baseline + difference, 3)
    p = rng.uniform(0.05, 1.0) if difference > -0.2 else rng.uniform(1e-5, 1e-3)
    moved = f"{baseline:.3f} -> {current:.3f} over 66 cases"
    return Decision(
        life.feature,
        life.scorer,
        DecisionKind.NOT_SIGNIFICANT,
        f"no regression: {difference:+.3f}, adjusted p={min(1.0, 2 * p):.2g} ({moved})",
        current=current,
        baseline=baseline,
        mean_difference=difference,
        ci_low=difference - 0.12,
        ci_high=difference + 0.12,
        p_value=p,
        p_adjusted=min(1.0, 2 * p),
        n_paired=66,
        baseline_run_ids=tuple(reversed(life.good[-7:])),
        fallen=_fallen(rng, 2, fallen, 1.5),
        cusum=round(rng.uniform(0.0, 3.0), 3),
        known_good=True,
    )


def _scheduled(rng: random.Random, life: _KeyLife, run_id: str, day: int) -> Decision:
    """The key's decision in the scheduled run of ``day``, its state carried forward."""
    event = life.events.get(day)
    if not life.good:
        d = replace(
            _quiet(rng, life, 0.0, 2),
            kind=DecisionKind.NO_BASELINE,
            message="no known-good run measured this key yet: this run starts the baseline",
            fallen=(),
        )
    elif event is not None and event.startswith("open:"):
        d = _opened(rng, life, run_id, event.removeprefix("open:"))
    elif life.incident is not None:
        d = _in_incident(rng, life, life.incident, event)
    elif event == "reset":
        d = replace(
            _quiet(rng, life, 0.0, 2),
            kind=DecisionKind.BASELINE_RESET,
            message=f"fingerprint changed since run {life.good[-1]}: baseline reset",
            baseline_run_ids=(),
            transition="reset",
        )
        life.good.clear()
    else:
        d = _quiet(rng, life, round(rng.gauss(0.0, 0.04), 3), 6)
    life.incident = d.incident
    if d.known_good:
        life.good.append(run_id)
    return d


def _opened(rng: random.Random, life: _KeyLife, run_id: str, kind: str) -> Decision:
    difference = round(-rng.uniform(0.3, 0.8), 3)
    d = _quiet(rng, life, difference, 12)
    moved = f"{d.baseline:.3f} -> {d.current:.3f} over 66 cases"
    frozen = d.baseline_run_ids
    if kind == "judge":
        anchor = AnchorCheck(20, difference, 1e-4, 4e-4, True)
        message = (
            f"the judge moved {difference:+.3f} on 20 anchors (adjusted p=0.0004); "
            f"the target's change is confounded ({moved})"
        )
        return replace(
            d, kind=DecisionKind.JUDGE_DRIFT, message=message, anchor=anchor,
            corrected_difference=round(rng.gauss(0, 0.03), 3), transition="opened",
            incident=Incident(run_id, "judge_drift", difference, frozen), known_good=False,
            cusum=0.0,
        )  # fmt: skip
    dropped = kind == "drop"
    why = (
        f"fell {-difference:.3f} (adjusted p={d.p_adjusted:.2g})"
        if dropped
        else "a sustained decline: CUSUM 9.4 over the last 6 runs (adjusted p=0.003)"
    )
    return replace(
        d, kind=DecisionKind.REGRESSED if dropped else DecisionKind.DRIFTING,
        rule="drop" if dropped else "drift", message=f"{why}: {moved}", transition="opened",
        incident=Incident(run_id, "regression", difference, frozen), known_good=False,
        cusum=0.0,
    )  # fmt: skip


def _in_incident(
    rng: random.Random, life: _KeyLife, incident: Incident, event: str | None
) -> Decision:
    """A run of a key with an open incident: recovered, fallen further, or still down."""
    if event == "recover":
        d = _quiet(rng, life, round(rng.gauss(0.0, 0.03), 3), 6)
        if incident.kind == "judge_drift":
            return replace(d, transition="recovered")
        message = d.message.replace("no regression: ", "back at the known-good level (")
        return replace(
            d, kind=DecisionKind.RECOVERED, transition="recovered", cusum=0.0,
            message=message.split(", adjusted")[0] + "): incident closed",
        )  # fmt: skip
    worse = event == "worsen"
    difference = round(incident.worst_difference - (0.25 if worse else -0.05), 3)
    d = _quiet(rng, life, difference, 14)
    moved = f"{d.baseline:.3f} -> {d.current:.3f} over 66 cases"
    if incident.kind == "judge_drift":
        return replace(
            d, kind=DecisionKind.JUDGE_DRIFT, incident=incident, known_good=False,
            message=f"the judge moved {difference:+.3f} on 20 anchors; confounded ({moved})",
        )  # fmt: skip
    if worse:
        return replace(
            d, kind=DecisionKind.REGRESSED, rule="drop", transition="worsened", known_good=False,
            incident=replace(incident, worst_difference=difference),
            message=f"fell further since the incident opened ({moved})",
        )  # fmt: skip
    return replace(
        d, kind=DecisionKind.STILL_REGRESSED, incident=incident, known_good=False,
        message=f"still down since run {incident.opened_run_id} ({moved})",
    )  # fmt: skip


def _candidate(rng: random.Random, life: _KeyLife) -> Decision:
    """A manual run, decided as a candidate: never a baseline, no incident, no transition."""
    return replace(_quiet(rng, life, round(rng.gauss(0.0, 0.05), 3), 6), known_good=False)


# ---------------------------------------------------------------- the server


class _ServerTiming:
    """Outermost ASGI layer: ``Server-Timing: app;dur=<ms>`` from request to response start."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - started) * 1000
                stamp = (b"server-timing", f"app;dur={ms:.3f}".encode())
                message = {**message, "headers": [*message.get("headers", []), stamp]}
            await send(message)

        await self.app(scope, receive, timed)


class _NoDaemon:
    """The pages measured start and control no run."""

    async def start_manual(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("not in this benchmark")

    async def control(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("not in this benchmark")


def _app(engine: sa.Engine, url: str) -> ASGIApp:
    schedule = SuiteSchedule(
        enabled=True, interval=timedelta(days=1), watchdog_s=3600, max_attempts=3
    )
    app = create_app(
        settings=Settings(database_url=url, api_tokens=[SecretStr(TOKEN)]),
        readiness=lambda: None,
        registry=CollectorRegistry(),
        daemon=_NoDaemon(),
        store=SqlRunStore(engine, SystemClock()),
        reader=SqlRunReader(engine),
        suites={SUITE: list(trend_query.FEATURES)},
        schedules={SUITE: schedule},
    )
    return _ServerTiming(app)


def _signed_in(base_url: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=30)
    form = client.get("/ui/signin")
    form.raise_for_status()
    found = re.search(r'name="signin_nonce" value="([^"]*)"', form.text)
    if found is None:
        raise SystemExit("the sign-in page has no signin_nonce field")
    done = client.post("/ui/signin", data={"token": TOKEN, "signin_nonce": found.group(1)})
    if done.status_code != 303 or "ce_session" not in client.cookies:
        raise SystemExit(f"sign-in failed: {done.status_code} {done.text[:200]}")
    return client


# ---------------------------------------------------------------- measuring


@dataclass
class _Figures:
    label: str
    server: list[float]
    client: list[float]
    weight: dict[str, int]
    gzipped: int
    what: str
    cpu_ms: float
    """The server's CPU per request: every thread of this process but the client's."""


def _get(client: httpx.Client, path: str) -> httpx.Response:
    response = client.get(path)
    if response.status_code != 200:
        raise SystemExit(f"GET {path}: {response.status_code} {response.text[:200]}")
    return response


def _server_ms(response: httpx.Response) -> float:
    return float(response.headers["server-timing"].removeprefix("app;dur="))


def _weight(client: httpx.Client, page: httpx.Response) -> tuple[dict[str, int], int]:
    """Bytes of the page and of each static file it references; and of all of them gzipped."""
    sizes = {"(page HTML)": len(page.content)}
    gzipped = len(gzip.compress(page.content))
    for path in dict.fromkeys(STATIC.findall(page.text)):
        body = _get(client, path).content
        sizes[path] = len(body)
        gzipped += len(gzip.compress(body))
    return sizes, gzipped


def _measure(
    client: httpx.Client,
    label: str,
    path: str,
    args: argparse.Namespace,
    what: Callable[[str], str],
) -> _Figures:
    for _ in range(args.warmup):
        _get(client, path)
    server, rounds = [], []
    cpu = _server_cpu_s()
    for _ in range(args.requests):
        started = time.perf_counter()
        response = _get(client, path)
        rounds.append((time.perf_counter() - started) * 1000)
        server.append(_server_ms(response))
    cpu_ms = (_server_cpu_s() - cpu) * 1000 / args.requests
    sizes, gzipped = _weight(client, response)
    return _Figures(label, server, rounds, sizes, gzipped, what(response.text), cpu_ms)


def _server_cpu_s() -> float:
    """CPU seconds of this process but the calling thread's (uvicorn's loop, the pool).

    Beside the wall-clock figures because a shared machine's load inflates
    those; Postgres's own CPU is not in it (EXPLAIN below shows its part).
    The process's total counts threads that have ended too.
    """
    return time.process_time() - time.thread_time()


def _overview_what(html: str) -> str:
    keys = html.count('<tr class="key"')
    listed = re.search(r'<table class="incidents">(.*?)</table>', html, re.S)
    incidents = listed.group(1).count("<tr>") - 1 if listed else 0  # less the header row
    if keys == 0:
        raise SystemExit("the overview shows no key: the benchmark measured nothing")
    return f"{keys} key rows, {incidents} open incidents listed"


def _trend_what(html: str) -> str:
    found = re.search(r'<script type="application/json" id="trend-data">(.*?)</script>', html)
    if found is None:
        raise SystemExit("the trend page has no chart data")
    chart = json.loads(found.group(1))
    if not chart["scheduled"]:
        raise SystemExit("the trend came back empty: the benchmark measured nothing")
    return f"{len(chart['scheduled'])} points, {len(chart['marks'])} markers"


def _p(samples: Sequence[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100)
    return statistics.median(samples), q[94]


def _report(figures: Sequence[_Figures]) -> bool:
    """Print the table and the verdicts; return whether every target was met."""
    print(f"\n{'page':<18} {'server p50':>10} {'p95':>8} {'client p50':>11} {'p95':>8}"
          f" {'CPU/req':>8} {'weight':>10} {'gzipped':>9}  shows")  # fmt: skip
    for f in figures:
        (s50, s95), (c50, c95) = _p(f.server), _p(f.client)
        total = sum(f.weight.values())
        print(
            f"{f.label:<18} {s50:8.2f}ms {s95:6.2f}ms {c50:9.2f}ms {c95:6.2f}ms {f.cpu_ms:6.2f}ms"
            f" {total / 1000:8.1f}KB {f.gzipped / 1000:7.1f}KB  {f.what}"
        )
    print("\npage weight, uncompressed (the page and the static files it references):")
    for f in figures:
        parts = ", ".join(f"{path} {size / 1000:.1f}" for path, size in f.weight.items())
        print(f"  {f.label:<16} {parts} (KB)")
    ok = True
    print()
    for f in figures:
        p95 = _p(f.server)[1]
        total = sum(f.weight.values())
        for name, met, value in (
            (f"server p95 <= {TARGET_P95_MS:.0f} ms", p95 <= TARGET_P95_MS, f"{p95:.2f} ms"),
            (
                f"weight <= {TARGET_WEIGHT_BYTES // 1000} KB",
                total <= TARGET_WEIGHT_BYTES,
                f"{total / 1000:.1f} KB",
            ),
        ):
            ok = ok and met
            print(f"target {f.label}, {name}: {'PASS' if met else 'FAIL'} ({value})")
    return ok


# ---------------------------------------------------------------- the plans


def _statements(engine: sa.Engine, read: Callable[[], object]) -> list[tuple[str, Any]]:
    """The SELECTs ``read`` sends, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def listen(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", listen)
    try:
        read()
    finally:
        sa.event.remove(engine, "before_cursor_execute", listen)
    return seen


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _walk(child)


def _summary(plan: dict[str, Any]) -> list[str]:
    top = plan["Plan"]
    buffers = top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)
    lines = [
        f"{plan['Execution Time']:.2f} ms execution, {plan['Planning Time']:.2f} ms planning, "
        f"{buffers:,} buffers, {top['Actual Rows']:,} rows"
    ]
    for node in _walk(top):
        if "Scan" not in node["Node Type"]:
            continue
        index = f" using {node['Index Name']}" if "Index Name" in node else ""
        table = f" on {node['Relation Name']}" if "Relation Name" in node else ""
        rows = node["Actual Rows"] * node["Actual Loops"]
        lines.append(
            f"{node['Node Type']}{index}{table}: {rows:,} rows, {node['Actual Loops']} loops"
        )
    return lines


def _plans(engine: sa.Engine, key: tuple[str, str], now: datetime, full: bool) -> None:
    reader = SqlRunReader(engine)
    feature, scorer = key
    year = now - timedelta(days=365)
    reads: dict[str, Callable[[], object]] = {
        "recent_scores (overview)": lambda: reader.recent_scores(runs=30),
        "latest_verdicts (overview)": reader.latest_verdicts,
        "key_trend days=365": lambda: reader.key_trend(SUITE, feature, scorer, since=year),
        "key_marks days=365": lambda: reader.key_marks(SUITE, feature, scorer, since=year),
        "key_trend days=0": lambda: reader.key_trend(SUITE, feature, scorer),
        "key_marks days=0": lambda: reader.key_marks(SUITE, feature, scorer),
    }
    print("\nEXPLAIN (ANALYZE, BUFFERS) of the dashboard's reads, warm:")
    with engine.connect() as conn:
        for label, read in reads.items():
            for statement, parameters in _statements(engine, read):
                conn.exec_driver_sql(statement, parameters).all()
                result = conn.exec_driver_sql(
                    f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}", parameters
                ).scalar_one()
                first, *scans = _summary(result[0])
                print(f"  {label:<27} {first}")
                for line in scans:
                    print(f"  {'':<29}{line}")
                if full:
                    text = conn.exec_driver_sql(
                        f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters
                    ).scalars()
                    print("\n".join(f"      {line}" for line in text))


# ---------------------------------------------------------------- main


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--scorers", type=int, default=3)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument(
        "--results-per-feature", type=int, default=200, help="raw result rows per run x feature"
    )
    parser.add_argument("--open-incidents", type=int, default=4, help="keys with one at the end")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--plans", action="store_true", help="print the full query plans too")
    parser.add_argument("--keep", action="store_true", help="leave the database in place")
    parser.add_argument(
        "--no-gc-freeze",
        dest="gc_freeze",
        action="store_false",
        help="leave start-up objects to the collector (serve freezes them, gc.freeze())",
    )
    args = parser.parse_args()
    if args.days < 2 or args.features < 1 or args.scorers < 1 or args.requests < 2:
        parser.error("need --days >= 2, --features >= 1, --scorers >= 1, --requests >= 2")
    return args


def _pages(client: httpx.Client, key: tuple[str, str], args: argparse.Namespace) -> list[_Figures]:
    def trend(days: int) -> str:
        query = {"suite": SUITE, "feature": key[0], "scorer": key[1], "days": days}
        return f"/ui/trend?{urlencode(query)}"

    print(
        f"\nHTTP (uvicorn in process, real sockets), {args.requests} sequential requests"
        f" per page after {args.warmup} warm-up; trend key {key[0]} · {key[1]}"
    )
    before = os.getloadavg()[0]
    figures = [
        _measure(client, "overview /", "/", args, _overview_what),
        _measure(client, "trend days=365", trend(365), args, _trend_what),
        _measure(client, "trend days=0", trend(0), args, _trend_what),
    ]
    # Latency on a busy machine is the machine's: say how busy it was.
    print(
        f"load average (1 min): {before:.2f} before, {os.getloadavg()[0]:.2f} after,"
        f" on {os.cpu_count()} CPUs"
    )
    return figures


def _freeze() -> None:
    """Move every object alive now out of the collector's reach, as ``serve`` does at start-up.

    A page that builds thousands of objects triggers full collections, and
    each walks every object the process holds (the app's modules, the
    schema, the SDKs); on the overview they are most of the slow tail.
    """
    gc.collect()
    gc.freeze()
    print(f"gc.freeze() after start-up, as serve does: {gc.get_freeze_count():,} objects")


def _busiest_key(engine: sa.Engine) -> tuple[str, str]:
    """The key with the most markers (opened, worsened, recovered, reset), for the trend."""
    d = eval_decisions.c
    stmt = (
        sa.select(d.feature, d.scorer)
        .where(d.transition.is_not(None))
        .group_by(d.feature, d.scorer)
        .order_by(sa.func.count().desc(), d.feature, d.scorer)
        .limit(1)
    )
    with engine.connect() as conn:
        row = conn.execute(stmt).one()
    return row.feature, row.scorer


def main() -> None:
    """Build the database, serve the app, measure the pages, print the plans, drop the database."""
    args = _arguments()

    server_url = os.environ.get("CONTINUOUS_EVAL_BENCH_POSTGRES_URL", trend_query.DEFAULT_PG)
    url = sa.make_url(server_url).set(database=DATABASE).render_as_string(hide_password=False)
    trend_query._drop_database(server_url, DATABASE)
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{DATABASE}"'))
    admin.dispose()
    engine = make_engine(url)
    try:
        upgrade(url)
        print("\n".join(_build(url, args)))
        key = _busiest_key(engine)
        server = BackgroundServer(_app(engine, url), name="dashboard")
        server.start()
        try:
            client = _signed_in(server.base_url)
            if args.gc_freeze:
                _freeze()
            try:
                figures = _pages(client, key, args)
            finally:
                client.close()
        finally:
            server.stop()
        ok = _report(figures)
        _plans(engine, key, datetime.now(UTC), args.plans)
    finally:
        engine.dispose()
        if not args.keep:
            trend_query._drop_database(server_url, DATABASE)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
