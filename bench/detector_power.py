"""False-alarm and detection rates of the regression detector on synthetic judge suites.

A suite of n cases has a true quality per case drawn uniformly from
{2, 3, 4, 5}. A true drop d lowers round(d * n) randomly chosen cases by one
point. The judge reports each case's quality moved by -1 or +1 with
probability 0.15 each (clipped to 1-5), independently in every run. One
simulated pair is a baseline run and a current run of a fresh suite; the
detector sees both (previous scheduled run = baseline, same fingerprint) and
either alerts (rule ``drop``) or not.

Rates are printed per rule, suite size and true drop, with a 95% Wilson
interval on the figures the targets use, then one line per target for the
default policy at 100 cases, met or MISSED. Decisions come from
``continuous_eval.core.regression.detect_regressions`` itself; only the
simulation is vectorised. Each (size, drop) cell has its own seed derived
from ``--seed``, so figures do not depend on ``--jobs``.

    python bench/detector_power.py               # 1,000 pairs per cell, ~90 s on 2 cores
    python bench/detector_power.py --pairs 5000  # tighter intervals
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from continuous_eval.core.regression import (
    DEFAULT_POLICY,
    RegressionPolicy,
    RunScores,
    detect_regressions,
    scorer_defaults,
)
from continuous_eval.core.scoring import aggregate

DROPS = (0.0, 0.2, 0.3, 0.5, 1.0)
SIZES = (50, 100, 300)
FLIP = 0.15
"""Probability of each of the judge's -1 and +1 errors."""

FEATURE, SCORER, FINGERPRINT = "answers", "judge", "fp"
KEY = (FEATURE, SCORER)

POLICIES: dict[str, RegressionPolicy] = {
    "threshold": RegressionPolicy(judge=scorer_defaults("judge", mode="threshold")),
    "guarded (default)": DEFAULT_POLICY,
}
"""The plain threshold rule at regression_drop, and the default (guarded) policy."""

ABLATION = "threshold @ min drop"
"""The guarded policy's minimum drop with the test switched off: what the test adds."""


def _ablation_policy() -> RegressionPolicy:
    judge = DEFAULT_POLICY.judge
    return RegressionPolicy(
        judge=replace(judge, mode="threshold", regression_drop=judge.guarded_min_drop)
    )


@dataclass(frozen=True)
class Cell:
    """Alerts per policy for one suite size and true drop."""

    size: int
    drop: float
    pairs: int
    alerts: dict[str, int]
    mean_observed_drop: float


def _judge(quality: NDArray[np.int64], rng: np.random.Generator) -> NDArray[np.float64]:
    u = rng.random(quality.shape)
    noise = np.where(u < FLIP, -1, np.where(u >= 1 - FLIP, 1, 0))
    return np.clip(quality + noise, 1, 5).astype(np.float64)


def _simulate(size: int, drop: float, pairs: int, seed: int) -> Cell:
    rng = np.random.default_rng([seed, size, round(drop * 1000)])
    quality = rng.integers(2, 6, size=(pairs, size))
    lowered = round(drop * size)
    # The first `lowered` cases of a random permutation per pair fall by one
    # point; quality starts at 2, so none falls below 1.
    order = np.argsort(rng.random((pairs, size)), axis=1)
    fall = np.zeros((pairs, size), dtype=np.int64)
    np.put_along_axis(fall, order[:, :lowered], 1, axis=1)
    before = _judge(quality, rng)
    after = _judge(quality - fall, rng)

    policies = dict(POLICIES)
    policies[ABLATION] = _ablation_policy()
    alerts = dict.fromkeys(policies, 0)
    case_ids = [f"case-{i}" for i in range(size)]
    for i in range(pairs):
        baseline = _run("baseline", case_ids, before[i])
        current = _run("current", case_ids, after[i])
        for name, policy in policies.items():
            result = detect_regressions(current, [baseline], policy)
            alerts[name] += any(r.rule == "drop" for r in result.regressions)
    observed = float(np.mean(before.mean(axis=1) - after.mean(axis=1)))
    return Cell(size, drop, pairs, alerts, observed)


def _run(run_id: str, case_ids: Sequence[str], scores: NDArray[np.float64]) -> RunScores:
    values = scores.tolist()
    agg = aggregate(FEATURE, SCORER, values, errors=0, fingerprint=FINGERPRINT)
    return RunScores.build(
        run_id,
        "bench",
        "scheduled",
        1.0,
        [agg],
        {KEY: dict(zip(case_ids, values, strict=True))},
    )


def _wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (
        z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    )
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate(cell: Cell, name: str) -> str:
    return f"{100 * cell.alerts[name] / cell.pairs:6.1f}%"


def main(argv: Sequence[str] | None = None) -> None:
    """Simulate, then print the table and the targets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=1000, help="simulated pairs per cell")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--sizes", type=lambda s: tuple(int(x) for x in s.split(",")), default=SIZES
    )
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args(argv)

    started = time.perf_counter()
    tasks = [(size, drop) for size in args.sizes for drop in DROPS]
    # Biggest cells first, so the pool does not end waiting on one of them.
    tasks.sort(key=lambda t: -t[0] * (t[1] + 0.1))
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {
            task: pool.submit(_simulate, task[0], task[1], args.pairs, args.seed) for task in tasks
        }
        cells = {task: future.result() for task, future in futures.items()}
    elapsed = time.perf_counter() - started

    judge = DEFAULT_POLICY.judge
    print(
        f"Judge 1-5, quality uniform in {{2,3,4,5}}, judge error -1/+1 with p={FLIP} each; "
        f"{args.pairs} pairs per cell, seed {args.seed}, {args.jobs} jobs, {elapsed:.0f} s"
    )
    print(
        f"threshold: fall >= regression_drop {judge.regression_drop} (no test). "
        f"guarded (default): fall >= {judge.guarded_min_drop} and one-sided paired "
        f"permutation p <= {judge.alpha}. {ABLATION}: fall >= {judge.guarded_min_drop}, no test."
    )
    print()
    header = f"{'rule':<22}{'cases':>6}" + "".join(f"{f'd={d:g}':>9}" for d in DROPS)
    print("Alert rate (d=0: false alarms; d>0: detection)")
    print(header)
    print("-" * len(header))
    for name in (*POLICIES, ABLATION):
        for size in args.sizes:
            rates = "".join(f"{_rate(cells[(size, d)], name):>9}" for d in DROPS)
            print(f"{name:<22}{size:>6}{rates}")
    print()
    print("Mean observed fall of the mean (clipping at 1 and 5 shrinks it)")
    print(f"{'':<22}{'cases':>6}" + "".join(f"{f'd={d:g}':>9}" for d in DROPS))
    for size in args.sizes:
        falls = "".join(f"{cells[(size, d)].mean_observed_drop:>9.3f}" for d in DROPS)
        print(f"{'':<22}{size:>6}{falls}")

    if 100 not in args.sizes:
        return
    print()
    print("Targets, default policy at 100 cases (95% Wilson interval):")
    name = "guarded (default)"
    # (label, true drop, bound, whether the bound is a ceiling)
    targets = (
        ("false alarms at d=0", 0.0, 0.01, True),
        ("detection at d=0.5", 0.5, 0.95, False),
        ("detection at d=0.3", 0.3, 0.80, False),
    )
    for label, drop, limit, ceiling in targets:
        cell = cells[(100, drop)]
        rate = cell.alerts[name] / cell.pairs
        low, high = _wilson(cell.alerts[name], cell.pairs)
        verdict = "met" if (rate <= limit if ceiling else rate >= limit) else "MISSED"
        bound = f"{'<=' if ceiling else '>='} {100 * limit:g}%"
        print(
            f"  {label:<22}{100 * rate:6.1f}%  [{100 * low:4.1f}, {100 * high:5.1f}]"
            f"  target {bound:<7} {verdict}"
        )


if __name__ == "__main__":
    main()
