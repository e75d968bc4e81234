"""False alarms and power of the regression detector on online features (unpaired samples).

An online feature scores a fresh sample of traffic every run, so its keys are
tested unpaired (``continuous_eval.core.unpaired_test``) against the known-good
runs' scores pooled, in the same run-level family as the paired keys. The model:

- The suite: 5 online features x 3 scorers, each run a fresh sample of n
  interactions (n = 50, 100 or 200): ``judge`` (1-5, heavily tied: each
  interaction's rating drawn from P(1..5) = 0.05, 0.10, 0.20, 0.35, 0.30),
  ``pass`` (0/1, passes with probability 0.8) and ``score`` (fractional 0-1,
  Beta(7, 3): mean 0.7, sd 0.14); plus 4 paired features x (a 1-5 judge and a
  pass rate) over 100 fixed cases, modelled as in ``bench/detector_power.py``
  (true quality uniform in 2..5 moved -1/+1 with p = 0.3; pass truth 0.8 with
  10% flips). 23 keys in one family. (``bench/detector_power.py`` measures
  the paired detector on its own 150-key suite; here the paired keys are
  there to share the family, and few, because their exact tests cost most
  of the time.)
- A month: 7 warm-up runs, then 30 daily runs with no change, decided one
  after the other by ``decide_run`` with the states their decisions stored
  (CUSUMs and incidents carried). Reported: the share of runs with any alert,
  and the share of months with any alert (online keys, paired keys, either).
- Power: after the warm-up, a what-if branch of the next run where one online
  key fell: ``pass`` by 5 or 10 points of pass rate, ``score`` by 0.05 or 0.10
  in mean (every score shifted down, clipped at 0), ``judge`` by 0.3 or 0.5
  points (each interaction lowered one point with that probability, clipped
  at 1: a fall of 0.95 times that). Alerted on that run, inside the whole suite's family.
- Minimum sample size: the unpaired test alone, a sample of n against 7 runs
  of n pooled, n = 10 to 50: its size at the 5% level per score type, and its
  power for the 10-point and 0.5-point drops (the figures behind ``MIN_SAMPLES``).

A day-to-day wobble of the traffic (``--day-sd``: each run's pass rate and
score mean moved by a normal draw of that sd, the judge's ratings too) shows
what the pooled test assumes (days are samples of the same traffic) and what
the random-effects guard (``core.random_effects``) buys back. The guard
measures the wobble on the history's known-good runs: power right after the
7 warm-up runs is its worst case, ``--power-runs 30`` shows a settled history. ``--fdr`` sets
the family's level (what a month-level bound costs in power).

Each chunk of 10 months or histories is seeded from ``--seed``, its kind, n
and index, so figures do not depend on ``--jobs``. A month (37 decisions of
23 keys) costs about 8 s, a power history about 1.3 s; the default run takes
about 3 minutes on two cores, the figures in the README about 25:

    python bench/online_detector.py                                   # a quick look
    python bench/online_detector.py --months 60 --histories 200       # the README's figures
    python bench/online_detector.py --sizes 100 --fdr 0.002           # a month-level bound
    python bench/online_detector.py --sizes 100 --day-sd 0.02         # a wobbling traffic mix
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from continuous_eval.core.regression import (
    RegressionPolicy,
    RunDecision,
    RunScores,
    ScoreKey,
    decide_run,
)
from continuous_eval.core.scoring import aggregate
from continuous_eval.core.unpaired_test import unpaired_test
from continuous_eval.service.detection import history_limit

Floats = NDArray[np.float64]
Rng = np.random.Generator
Tally = dict[str, list[float]]

SUITE, FINGERPRINT = "bench-online", "fp"
ONLINE = [f"online-{i}" for i in range(5)]
PAIRED = [f"paired-{i}" for i in range(4)]
ONLINE_KEYS = [(f, s) for f in ONLINE for s in ("judge", "pass", "score")]
PAIRED_KEYS = [(f, s) for f in PAIRED for s in ("judge", "pass")]
POLICY = RegressionPolicy(unpaired_features=frozenset(ONLINE))
HISTORY_KEPT = history_limit(POLICY)
_FDR: list[float] = []
"""``--fdr``, when given: the family's level in the worker processes."""
WARMUP, MONTH, PAIRED_N = 7, 30, 100
RATINGS = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
RATING_P = np.array([0.05, 0.10, 0.20, 0.35, 0.30])
PASS_P, BETA = 0.8, (7.0, 3.0)
DROPS: tuple[tuple[str, float], ...] = (
    ("pass", 0.05),
    ("pass", 0.10),
    ("score", 0.05),
    ("score", 0.10),
    ("judge", 0.3),
    ("judge", 0.5),
)
MIN_N = (10, 20, 30, 50)


def _online(rng: Rng, scorer: str, n: int, drop: float = 0.0, wobble: float = 0.0) -> Floats:
    """A fresh sample of n interactions' scores; ``drop`` is the true fall, ``wobble`` the day's."""
    if scorer == "pass":
        p = min(1.0, max(0.0, PASS_P - drop + wobble))
        return (rng.random(n) < p).astype(np.float64)
    if scorer == "score":
        values: Floats = np.clip(rng.beta(*BETA, n) - drop + wobble, 0.0, 1.0)
        return values
    ratings: Floats = rng.choice(RATINGS, size=n, p=RATING_P)
    # A day's wobble (and a drop) lowers or raises ratings one point with that probability.
    lowered = rng.random(n) < max(0.0, drop - wobble)
    raised = rng.random(n) < max(0.0, wobble - drop)
    moved: Floats = np.clip(ratings - lowered + raised, 1.0, 5.0)
    return moved


class Paired:
    """The paired features' fixed cases: their true quality and pass state, drawn once a month."""

    def __init__(self, rng: Rng) -> None:
        self.quality = rng.integers(2, 6, (len(PAIRED), PAIRED_N))
        self.truth = rng.random((len(PAIRED), PAIRED_N)) < PASS_P

    def scores(self, rng: Rng) -> dict[ScoreKey, Floats]:
        u = rng.random(self.quality.shape)
        step = (u >= 0.85).astype(np.int64) - (u < 0.15).astype(np.int64)
        judged = np.clip(self.quality + step, 1, 5).astype(np.float64)
        observed = (self.truth ^ (rng.random(self.truth.shape) < 0.1)).astype(np.float64)
        out: dict[ScoreKey, Floats] = {}
        for i, feature in enumerate(PAIRED):
            out[feature, "judge"] = judged[i]
            out[feature, "pass"] = observed[i]
        return out


class History:
    """Scheduled runs fed to ``decide_run`` one by one, each with its decisions' states."""

    def __init__(self) -> None:
        self.runs: list[RunScores] = []
        self.count = 0

    def decide(self, scores: Mapping[ScoreKey, Floats], *, keep: bool = True) -> RunDecision:
        run_id = f"run-{self.count:03d}"
        lists = {key: values.tolist() for key, values in scores.items()}
        aggs = [
            aggregate(k[0], k[1], v, errors=0, fingerprint=FINGERPRINT) for k, v in lists.items()
        ]
        cases = {
            # Online case ids are trace ids, never seen again; paired ids repeat.
            k: {(f"{run_id}/t{i}" if k[0] in ONLINE else f"c{i}"): s for i, s in enumerate(v)}
            for k, v in lists.items()
        }
        current = RunScores.build(run_id, SUITE, "scheduled", 1.0, aggs, cases)
        result = decide_run(current, self.runs, _policy())
        if keep:
            states = {d.key: d.state() for d in result.decisions}
            self.runs.insert(0, replace(current, states=states))
            del self.runs[HISTORY_KEPT:]
            self.count += 1
        return result


def _policy() -> RegressionPolicy:
    return replace(POLICY, fdr=_FDR[0]) if _FDR else POLICY


def _run_scores(rng: Rng, paired: Paired, n: int, day_sd: float) -> dict[ScoreKey, Floats]:
    scores = paired.scores(rng)
    for key in ONLINE_KEYS:
        wobble = float(rng.normal(0.0, day_sd)) if day_sd > 0 else 0.0
        scores[key] = _online(rng, key[1], n, wobble=wobble)
    return scores


def _month(rng: Rng, n: int, day_sd: float) -> Tally:
    """One month of stable runs after the warm-up: which runs carried a false alert."""
    paired = Paired(rng)
    history = History()
    runs = {"online": 0.0, "paired": 0.0, "any": 0.0}
    for t in range(WARMUP + MONTH):
        result = history.decide(_run_scores(rng, paired, n, day_sd))
        if t < WARMUP:
            continue
        alerts = [d for d in result.decisions if d.alerting]
        runs["online"] += any(d.feature in ONLINE for d in alerts)
        runs["paired"] += any(d.feature not in ONLINE for d in alerts)
        runs["any"] += bool(alerts)
    tally: Tally = {f"runs_{k}": [v / MONTH] for k, v in runs.items()}
    return tally | {f"month_{k}": [float(v > 0)] for k, v in runs.items()}


def _power(rng: Rng, n: int, day_sd: float, runs: int = WARMUP) -> Tally:
    """``runs`` stable runs, then what-if branches of the next run with one online key down."""
    paired = Paired(rng)
    history = History()
    for _ in range(runs):
        history.decide(_run_scores(rng, paired, n, day_sd))
    base = _run_scores(rng, paired, n, day_sd)
    tally: Tally = {}
    for scorer, drop in DROPS:
        key = (ONLINE[0], scorer)
        branch = history.decide(base | {key: _online(rng, scorer, n, drop)}, keep=False)
        decision = branch.for_key(*key)
        tally[f"detect_{scorer}_{drop:g}"] = [float(decision is not None and decision.alerting)]
    return tally


def _min_n(rng: Rng, n: int, trials: int) -> Tally:
    """The unpaired test alone: a sample of n against 7 pooled samples of n, at the 5% level."""
    tally: Tally = {}
    cases = [(s, 0.0) for s in ("judge", "pass", "score")] + [("pass", 0.10), ("judge", 0.5)]
    for scorer, drop in cases:
        hits = []
        for _ in range(trials):
            current = _online(rng, scorer, n, drop).tolist()
            baseline = _online(rng, scorer, 7 * n).tolist()
            test = unpaired_test(current, baseline, min_samples=2)
            hits.append(float(test is not None and test.p_lower <= 0.05))
        tally[f"{scorer}_{drop:g}"] = hits
    return tally


def _task(
    kind: str,
    n: int,
    count: int,
    seed: int,
    index: int,
    day_sd: float,
    fdr: float | None,
    power_runs: int = WARMUP,
) -> tuple[str, int, Tally]:
    if fdr is not None:
        _FDR[:] = [fdr]
    rng = np.random.default_rng([seed, zlib.crc32(f"{kind}/{n}".encode()), index])
    if kind == "min_n":
        return kind, n, _min_n(rng, n, count)
    tally: Tally = {}
    for _ in range(count):
        found = _month(rng, n, day_sd) if kind == "month" else _power(rng, n, day_sd, power_runs)
        for name, values in found.items():
            tally.setdefault(name, []).extend(values)
    return kind, n, tally


def _wilson(successes: float, trials: int, z: float = 1.96) -> tuple[float, float]:
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials**2)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def _share(values: list[float]) -> str:
    low, high = _wilson(sum(values), len(values))
    return f"{100 * sum(values) / len(values):5.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def _mean(values: list[float]) -> str:
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1))
    half = 1.96 * sd / math.sqrt(len(values))
    return f"{100 * mean:5.2f}% [{100 * max(0.0, mean - half):.2f}, {100 * (mean + half):.2f}]"


def main(argv: list[str] | None = None) -> None:
    """Simulate months and the minimum-n table; print one line per figure."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--months", type=int, default=6, help="simulated months per n")
    parser.add_argument("--histories", type=int, default=30, help="power histories per n")
    parser.add_argument(
        "--trials", type=int, default=2000, help="tests per cell of the min-n table"
    )
    parser.add_argument(
        "--day-sd", type=float, default=0.0, help="day-to-day wobble of the traffic"
    )
    parser.add_argument("--fdr", type=float, help="the family's level (default: the policy's)")
    parser.add_argument(
        "--power-runs",
        type=int,
        default=WARMUP,
        help="stable runs before a power branch (the wobble is measured on them)",
    )
    parser.add_argument(
        "--sizes", default="50,100,200", help="online sample sizes, comma-separated"
    )
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    args.sizes = tuple(int(n) for n in args.sizes.split(",") if n)
    started = time.perf_counter()
    chunk = 10
    tasks: list[tuple[str, int, int, int]] = [
        ("month", n, min(chunk, args.months - start), i)
        for n in args.sizes
        for i, start in enumerate(range(0, args.months, chunk))
    ]
    tasks += [
        ("power", n, min(chunk, args.histories - start), i)
        for n in args.sizes
        for i, start in enumerate(range(0, args.histories, chunk))
    ]
    tasks += [("min_n", n, args.trials, 0) for n in MIN_N]
    tasks.sort(key=lambda t: {"month": 0, "power": 1, "min_n": 2}[t[0]])
    results: dict[tuple[str, int], Tally] = {}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [
            pool.submit(_task, k, n, c, args.seed, i, args.day_sd, args.fdr, args.power_runs)
            for k, n, c, i in tasks
        ]
        for done, future in enumerate(futures, 1):
            kind, n, tally = future.result()
            merged = results.setdefault((kind, n), {})
            for name, values in tally.items():
                merged.setdefault(name, []).extend(values)
            print(f"[{done}/{len(tasks)}] {kind} n={n}", file=sys.stderr)
    _report(results, args)
    print(f"wall time: {time.perf_counter() - started:.0f} s")


def _report(results: Mapping[tuple[str, int], Tally], args: argparse.Namespace) -> None:
    print(
        f"online detector: {args.months} months per n ({WARMUP} warm-up + {MONTH} runs), "
        f"{args.histories} power histories per n ({args.power_runs} runs before), "
        f"{len(ONLINE_KEYS)} online + {len(PAIRED_KEYS)} paired keys, "
        f"{POLICY.correction} at {args.fdr or POLICY.fdr:g}, "
        f"day sd {args.day_sd:g}, seed {args.seed}"
    )
    for n in args.sizes:
        tally = results["month", n]
        for who in ("any", "online", "paired"):
            print(
                f"figure false_alarm n={n} {who:6s}: runs alerted {_mean(tally[f'runs_{who}'])}, "
                f"months with an alert {_share(tally[f'month_{who}'])}"
            )
    for scorer, drop in DROPS:
        cells = "  ".join(
            f"n={n}: {_share(results['power', n][f'detect_{scorer}_{drop:g}'])}" for n in args.sizes
        )
        print(f"figure power {scorer} -{drop:g}: {cells}")
    labels: dict[str, Callable[[str], str]] = {
        "judge_0": lambda s: f"size judge 1-5  {s}",
        "pass_0": lambda s: f"size pass 0/1   {s}",
        "score_0": lambda s: f"size score 0-1  {s}",
        "pass_0.1": lambda s: f"power pass -0.10 {s}",
        "judge_0.5": lambda s: f"power judge -0.5 {s}",
    }
    for name, label in labels.items():
        cells = "  ".join(f"n={n}: {_share(results['min_n', n][name])}" for n in (10, 20, 30, 50))
        print(f"figure min_n {label(cells)}")


if __name__ == "__main__":
    main()
