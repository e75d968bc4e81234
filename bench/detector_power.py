"""False alarms and power of the regression detector on simulated histories of scheduled runs.

The model (fixed by the issue):

- Judge keys (1-5): each case's true quality is uniform in {2, 3, 4, 5}; a true
  drop d lowers round(d * n) random cases by one point. In every run the judge
  moves each case's score by -1 or +1 with total probability p (p/2 each way,
  p = 0.3 unless said otherwise), clipped to 1..5, independently per case and run.
- Pass-rate keys (0/1): each case truly passes with probability 0.8 (drawn once
  per history), every observation is flipped with probability 0.1; a drop d
  turns round(d * n) truly passing cases into failing ones.
- A history is a sequence of scheduled runs decided one after the other by
  ``continuous_eval.core.regression.decide_run`` itself, each seeing the
  earlier runs (newest first, as many as the service reads) with the states
  their decisions stored. Unless a target says otherwise 7 stable runs
  precede the run under test, whose decision is what counts. An alert is a decision whose
  ``alerting`` is true (an incident opened or worsened).

The targets (``TARGETS``, one ``target NAME: rate [95% Wilson interval] (goal)
met|missed`` line each): a judge key of 100 cases, no change / drop 0.5 / 0.3
(<= 1%, >= 95%, >= 85%); the 150-key suite (50 features x two judges and a pass
rate, n=100), one run after the warm-up: any alert (<= 5%), and, in a what-if
branch of the same run, one judge key down 0.5 alerted (>= 95%); a decline of
0.1 per run after 10 stable runs, alerted within 5 (>= 90%); 30 stable runs
(<= 5% with any alert); the suite with pass-rate keys of 500 cases, one down
0.10 (>= 90%); 10 cases that always passed, 4 now failing, alone and inside
the suite (>= 95%); one flaky case in 20 over 30 runs (<= 1%); a judge 0.3
stricter on the target and on 100 anchors: labelled judge drift (>= 90%),
called a regression (<= 5%). The figures (``FIGURES``, no goal, mean and 95%
interval over histories): the suite over a month of 30 stable runs, CUSUMs and
incidents carried (the share of its runs with any alert, and the false
incidents it opens), the share of 0.15 step drops alerted within runs 1..6
after the step (and on its day), and the 0.3 detection at p = 0.15.

Each cell is simulated in chunks of 25 histories, each chunk seeded from
``--seed``, the cell name and the chunk index, so figures depend neither on
``--jobs`` nor on scheduling. The simulation is vectorised with numpy and
costs about 1% of the time; the rest is ``decide_run`` (the exact paired
tests and the pooled drift test), most of it in the 150-key suites: the
month runs ``--suite-histories`` (default 100) histories, 37 decisions of 150
keys each. On two cores the default takes about an hour
(``--cells`` runs a subset; progress goes to stderr).

    python bench/detector_power.py                   # 1,000 histories per cell
    python bench/detector_power.py --histories 200   # a quicker look
    python bench/detector_power.py --cells judge_n100,stable_30,flaky_case
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from continuous_eval.core.regression import (
    DEFAULT_POLICY,
    Decision,
    DecisionKind,
    RunDecision,
    RunScores,
    ScoreKey,
    decide_run,
)
from continuous_eval.core.scoring import aggregate
from continuous_eval.service.detection import history_limit

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Bools = NDArray[np.bool_]
Rng = np.random.Generator
Tally = dict[str, list[float]]
"""Per outcome name, one value per simulated history."""

SUITE, FINGERPRINT = "bench", "fp"
N = 100
NOISE = 0.3
PASS_PROBABILITY, FLIP = 0.8, 0.1
WARMUP = 7
HISTORY_KEPT = history_limit(DEFAULT_POLICY)
"""Earlier runs given to each decision: as many as the service reads."""
CHUNK = 25
KEY: ScoreKey = ("answers", "judge")
PASS_KEY: ScoreKey = ("answers", "pass")
JUDGE_KEYS = [(f"feature-{i:02d}", j) for i in range(50) for j in ("judge-a", "judge-b")]
PASS_KEYS = [(f"feature-{i:02d}", "pass") for i in range(50)]
SMALL_KEY: ScoreKey = ("feature-small", "pass")

_IDS: dict[tuple[str, int], list[str]] = {}


def _ids(prefix: str, n: int) -> list[str]:
    if (prefix, n) not in _IDS:
        _IDS[prefix, n] = [f"{prefix}{i:03d}" for i in range(n)]
    return _IDS[prefix, n]


def _judge(quality: Ints, rng: Rng, p: float = NOISE) -> Floats:
    """The judge's scores of cases of this true quality: -1/+1 with p/2 each, clipped."""
    u = rng.random(quality.shape)
    step: Ints = (u >= 1 - p / 2).astype(np.int64) - (u < p / 2).astype(np.int64)
    scores: Ints = np.clip(quality + step, 1, 5)
    return scores.astype(np.float64)


def _observe(truth: Bools, rng: Rng, flip: float = FLIP) -> Floats:
    """Pass/fail observations of these true states, each flipped with ``flip``."""
    return (truth ^ (rng.random(truth.shape) < flip)).astype(np.float64)


def _among(rng: Rng, pool: Bools, k: int) -> Bools:
    """A mask of k random entries among the true ones of ``pool``."""
    mask = np.zeros(pool.shape, dtype=np.bool_)
    mask[rng.choice(np.flatnonzero(pool), size=k, replace=False)] = True
    return mask


class History:
    """Scheduled runs fed to ``decide_run`` one by one, each with its decisions' states."""

    def __init__(self) -> None:
        self.runs: list[RunScores] = []
        self.count = 0

    def decide(
        self,
        scores: Mapping[ScoreKey, Floats],
        anchors: Mapping[ScoreKey, Floats] | None = None,
        *,
        keep: bool = True,
    ) -> RunDecision:
        """Decide the next run; with ``keep`` it joins the history (else a what-if branch)."""
        run_id = f"run-{self.count:03d}"
        lists = {key: values.tolist() for key, values in scores.items()}
        aggs = [
            aggregate(k[0], k[1], v, errors=0, fingerprint=FINGERPRINT) for k, v in lists.items()
        ]
        cases = {k: dict(zip(_ids("c", len(v)), v, strict=True)) for k, v in lists.items()}
        anchored = {
            k: dict(zip(_ids("a", len(v)), v.tolist(), strict=True))
            for k, v in (anchors or {}).items()
        }
        current = RunScores.build(
            run_id, SUITE, "scheduled", 1.0, aggs, cases, anchor_scores=anchored
        )
        result = decide_run(current, self.runs)
        if keep:
            self.runs.insert(
                0, replace(current, states={d.key: d.state() for d in result.decisions})
            )
            del self.runs[HISTORY_KEPT:]
            self.count += 1
        return result


def _alerts(result: RunDecision) -> list[Decision]:
    return [d for d in result.decisions if d.alerting]


def _alerted(result: RunDecision, key: ScoreKey) -> bool:
    d = result.for_key(*key)
    return d is not None and d.alerting


def _judge_key(
    rng: Rng,
    histories: int,
    *,
    drop: float,
    ramp: bool = False,
    p: float = NOISE,
    stable: int = WARMUP,
    after: int = 1,
) -> Tally:
    """One judge key n=100: ``stable`` runs, then ``after`` runs at the true drop.

    With ``ramp`` the drop of declining run k is ``drop * k`` (cumulative, the
    same cases stay lowered). ``first``: alerted on the first changed run;
    ``any``: alerted on any of the ``after`` runs (the history stops there).
    """
    tally: Tally = {"first": [], "any": []}
    for _ in range(histories):
        quality = rng.integers(2, 6, N)
        order = rng.permutation(N)
        history = History()
        for _ in range(stable):
            history.decide({KEY: _judge(quality, rng, p)})
        alerted_at = 0
        for k in range(1, after + 1):
            lowered = np.zeros(N, dtype=np.int64)
            lowered[order[: round((drop * k if ramp else drop) * N)]] = 1
            if _alerts(history.decide({KEY: _judge(quality - lowered, rng, p)})):
                alerted_at = k
                break
        tally["first"].append(float(alerted_at == 1))
        tally["any"].append(float(alerted_at > 0))
    return tally


def _small_collapse(rng: Rng, histories: int) -> Tally:
    """10 cases that passed in 7 runs (no noise), 4 of them fail now."""
    tally: Tally = {"alert": []}
    for _ in range(histories):
        history = History()
        for _ in range(WARMUP):
            history.decide({PASS_KEY: np.ones(10)})
        now = np.ones(10)
        now[rng.choice(10, size=4, replace=False)] = 0.0
        tally["alert"].append(float(bool(_alerts(history.decide({PASS_KEY: now})))))
    return tally


def _flaky_case(rng: Rng, histories: int) -> Tally:
    """20 cases, 19 always pass and one passes with probability 0.7: any alert in 30 runs."""
    tally: Tally = {"any": []}
    for _ in range(histories):
        history = History()
        alerted = False
        for t in range(WARMUP + 30):
            scores = np.ones(20)
            scores[0] = float(rng.random() < 0.7)
            if _alerts(history.decide({PASS_KEY: scores})) and t >= WARMUP:
                alerted = True
                break
        tally["any"].append(float(alerted))
    return tally


def _judge_drift(rng: Rng, histories: int) -> Tally:
    """The judge turns 0.3 stricter on target and anchor cases alike; the product is unchanged."""
    tally: Tally = {"labelled": [], "called": []}
    everything = np.ones(N, dtype=np.bool_)
    for _ in range(histories):
        quality, anchor_quality = rng.integers(2, 6, N), rng.integers(2, 6, N)
        history = History()
        for _ in range(WARMUP):
            history.decide({KEY: _judge(quality, rng)}, {KEY: _judge(anchor_quality, rng)})
        strict = _among(rng, everything, round(0.3 * N)).astype(np.int64)
        strict_anchor = _among(rng, everything, round(0.3 * N)).astype(np.int64)
        result = history.decide(
            {KEY: _judge(quality - strict, rng)}, {KEY: _judge(anchor_quality - strict_anchor, rng)}
        )
        d = result.decisions[0]
        drifted = d.kind is DecisionKind.JUDGE_DRIFT or (d.anchor is not None and d.anchor.drifted)
        tally["labelled"].append(float(drifted))
        tally["called"].append(float(d.kind in (DecisionKind.REGRESSED, DecisionKind.DRIFTING)))
    return tally


def _suite(rng: Rng, histories: int, *, variant: str) -> Tally:
    """The 150-key suite (100 judge keys, 50 pass-rate keys), 7 warm-up runs, then:

    ``one``: one stable run (the target's "one run"), and a what-if branch of
    it where one judge key drops 0.5. ``month``: 30 stable runs, every one
    counted (CUSUMs and incidents carried from run to run). ``n500``:
    pass-rate keys of 500 cases, one drops 0.10. ``small``: plus a 10-case
    pass-rate key, always passing (no noise), 4 of whose cases now fail.
    """
    pass_n = 500 if variant == "n500" else N
    runs = WARMUP + (30 if variant == "month" else 1)
    tally: Tally = {"any_false": [], "detect": [], "month": [], "runs_alerted": []}
    for _ in range(histories):
        quality = rng.integers(2, 6, (len(JUDGE_KEYS), N))
        truth = rng.random((len(PASS_KEYS), pass_n)) < PASS_PROBABILITY
        history = History()
        month, alerted_runs = 0, 0
        for t in range(runs):
            scores = dict(zip(JUDGE_KEYS, _judge(quality, rng), strict=True))
            scores |= dict(zip(PASS_KEYS, _observe(truth, rng), strict=True))
            if variant == "small":
                scores[SMALL_KEY] = np.ones(10)
            if t < WARMUP:
                history.decide(scores)
                continue
            if t == WARMUP and variant == "one":
                lowered = _among(rng, np.ones(N, dtype=np.bool_), round(0.5 * N))
                dropped = scores | {JUDGE_KEYS[0]: _judge(quality[0] - lowered, rng)}
                branch = history.decide(dropped, keep=False)
                tally["detect"].append(float(_alerted(branch, JUDGE_KEYS[0])))
                tally["any_false"].append(float(bool(_alerts(history.decide(scores)))))
                continue
            if t == WARMUP and variant == "n500":
                fallen = truth[0] & ~_among(rng, truth[0], round(0.10 * pass_n))
                scores[PASS_KEYS[0]] = _observe(fallen, rng)
                tally["detect"].append(float(_alerted(history.decide(scores), PASS_KEYS[0])))
                continue
            elif t == WARMUP and variant == "small":
                collapsed = np.ones(10)
                collapsed[rng.choice(10, size=4, replace=False)] = 0.0
                scores[SMALL_KEY] = collapsed
                tally["detect"].append(float(_alerted(history.decide(scores), SMALL_KEY)))
                continue
            alerts = len(_alerts(history.decide(scores)))
            alerted_runs += alerts > 0
            month += alerts
        if variant == "month":
            # Every stable run after the warm-up is a run with no true change
            # (CUSUMs and incidents carried): the share of them with an alert,
            # one value per history, so the interval counts histories, not runs.
            tally["runs_alerted"].append(alerted_runs / (runs - WARMUP))
            tally["month"].append(float(month))
    return tally


CellFn = Callable[[Rng, int], Tally]
CELLS: dict[str, tuple[float, CellFn]] = {
    # name: (relative cost per history, simulation)
    "suite_150_month": (12.0, lambda rng, h: _suite(rng, h, variant="month")),
    "suite_n500": (3.5, lambda rng, h: _suite(rng, h, variant="n500")),
    "suite_150": (1.3, lambda rng, h: _suite(rng, h, variant="one")),
    "suite_small": (1.3, lambda rng, h: _suite(rng, h, variant="small")),
    "stable_30": (0.5, lambda rng, h: _judge_key(rng, h, drop=0.0, after=30)),
    "step_0.15": (0.2, lambda rng, h: _judge_key(rng, h, drop=0.15, after=6)),
    "drift_0.1": (0.2, lambda rng, h: _judge_key(rng, h, drop=0.1, ramp=True, stable=10, after=5)),
    "judge_n100": (0.1, lambda rng, h: _judge_key(rng, h, drop=0.0)),
    "judge_n100_0.5": (0.1, lambda rng, h: _judge_key(rng, h, drop=0.5)),
    "judge_n100_0.3": (0.1, lambda rng, h: _judge_key(rng, h, drop=0.3)),
    "judge_n100_0.3_p015": (0.1, lambda rng, h: _judge_key(rng, h, drop=0.3, p=0.15)),
    "judge_drift": (0.2, _judge_drift),
    "flaky_case": (0.1, _flaky_case),
    "small_n10": (0.01, _small_collapse),
}

TARGETS: tuple[tuple[str, str, str, str, float], ...] = (
    # (target, cell, outcome, "<=" or ">=", goal)
    ("judge_n100_false_alarm", "judge_n100", "any", "<=", 0.01),
    ("judge_n100_detect_0.5", "judge_n100_0.5", "any", ">=", 0.95),
    ("judge_n100_detect_0.3", "judge_n100_0.3", "any", ">=", 0.85),
    ("suite_150_any_false_alert", "suite_150", "any_false", "<=", 0.05),
    ("suite_150_detect_one_key_0.5", "suite_150", "detect", ">=", 0.95),
    ("drift_0.1_within_5_runs", "drift_0.1", "any", ">=", 0.90),
    ("stable_30_runs_any_alert", "stable_30", "any", "<=", 0.05),
    ("passrate_n500_detect_0.10", "suite_n500", "detect", ">=", 0.90),
    ("small_n10_collapse_detect", "small_n10", "alert", ">=", 0.95),
    ("small_n10_collapse_detect_in_suite", "suite_small", "detect", ">=", 0.95),
    ("single_flaky_case_alerts", "flaky_case", "any", "<=", 0.01),
    ("judge_drift_labelled", "judge_drift", "labelled", ">=", 0.90),
    ("judge_drift_called_regression", "judge_drift", "called", "<=", 0.05),
)

FIGURES: tuple[tuple[str, str, str], ...] = (
    ("suite_150_month_share_of_runs_alerted", "suite_150_month", "runs_alerted"),
    ("suite_150_false_incidents_per_month", "suite_150_month", "month"),
    ("step_0.15_missed_then_caught_within_5", "step_0.15", "any"),
    ("step_0.15_alerted_on_its_day", "step_0.15", "first"),
    ("judge_n100_detect_0.3_p015", "judge_n100_0.3_p015", "any"),
)


def _chunk(name: str, index: int, size: int, seed: int) -> tuple[str, int, Tally, float]:
    """Simulate one chunk of a cell (in a worker process)."""
    started = time.perf_counter()
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), index])
    tally = CELLS[name][1](rng, size)
    return name, index, tally, time.perf_counter() - started


def _wilson(successes: float, trials: int, z: float = 1.96) -> tuple[float, float]:
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials**2)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def _share(values: list[float]) -> str:
    low, high = _wilson(sum(values), len(values))
    return f"{100 * sum(values) / len(values):.1f}% [{100 * low:.1f}%, {100 * high:.1f}%]"


def _mean(values: list[float]) -> str:
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1))
    half = 1.96 * sd / math.sqrt(len(values))
    return f"{mean:.2f} [{mean - half:.2f}, {mean + half:.2f}]"


def main(argv: list[str] | None = None) -> None:
    """Simulate the cells, then print one line per target and figure."""
    args = _arguments(argv)
    started = time.perf_counter()
    tallies, seconds = _simulate(args)
    print(
        f"detector power: {args.histories} histories per cell ({args.suite_histories} for the "
        f"150-key suite's month), seed {args.seed}, "
        f"{args.jobs} jobs; judge noise p={NOISE}, pass-rate flips {FLIP}"
    )
    for name, spent in seconds.items():
        print(f"cell {name}: {spent:.0f} s of worker time")
    _report(tallies)
    print(f"wall time: {time.perf_counter() - started:.0f} s")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--histories", type=int, default=1000, help="histories per cell")
    parser.add_argument(
        "--suite-histories",
        type=int,
        default=100,
        help="histories of the 150-key suite's month (each decides 150 keys 37 times)",
    )
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated cell names")
    args = parser.parse_args(argv)
    args.names = [c for c in args.cells.split(",") if c]
    unknown = sorted(set(args.names) - set(CELLS))
    if unknown:
        parser.error(f"unknown cells {unknown}; known: {', '.join(CELLS)}")
    return args


def _simulate(args: argparse.Namespace) -> tuple[dict[str, Tally], dict[str, float]]:
    """Run every chunk of every cell in worker processes; return the tallies and worker time."""
    names: list[str] = args.names

    def count(name: str) -> int:
        return int(args.suite_histories if name == "suite_150_month" else args.histories)

    tasks = [
        (name, i, min(CHUNK, count(name) - start))
        for name in names
        for i, start in enumerate(range(0, count(name), CHUNK))
    ]
    tasks.sort(key=lambda t: -CELLS[t[0]][0] * t[2])  # the longest first
    parts: dict[str, dict[int, Tally]] = {name: {} for name in names}
    seconds = dict.fromkeys(names, 0.0)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures: list[Future[tuple[str, int, Tally, float]]] = [
            pool.submit(_chunk, name, i, size, args.seed) for name, i, size in tasks
        ]
        for future in as_completed(futures):
            name, i, tally, spent = future.result()
            parts[name][i] = tally
            seconds[name] += spent
            done = sum(len(v) for v in parts.values())
            print(f"[{done}/{len(tasks)}] {name} chunk {i}: {spent:.0f} s", file=sys.stderr)
    tallies: dict[str, Tally] = {name: {} for name in names}
    for name in names:
        for i in sorted(parts[name]):
            for outcome, values in parts[name][i].items():
                tallies[name].setdefault(outcome, []).extend(values)
    return tallies, seconds


def _report(tallies: dict[str, Tally]) -> None:
    for target, cell, outcome, op, goal in TARGETS:
        if cell not in tallies:
            continue
        values = tallies[cell][outcome]
        rate = sum(values) / len(values)
        met = rate <= goal + 1e-12 if op == "<=" else rate + 1e-12 >= goal
        verdict = "met" if met else "missed"
        print(f"target {target}: {_share(values)} (goal {op} {100 * goal:g}%) {verdict}")
    for figure, cell, outcome in FIGURES:
        if cell in tallies:
            values = tallies[cell][outcome]
            shown = _mean(values) if outcome in {"month", "runs_alerted"} else _share(values)
            print(f"figure {figure}: {shown}")


if __name__ == "__main__":
    main()
