"""One-sided tests that a run's scores fell below a baseline sample of other cases.

An online feature scores a fresh sample of recorded traffic every run: its
case ids are trace ids that never come back, so nothing pairs with the
baseline runs and ``core.paired_test`` has no evidence. What is left is two
samples of the same feature's traffic, the current run's and the baseline's,
and the question "is the current sample stochastically lower?". Under the
null hypothesis that nothing changed, every score of both samples is a draw
from one distribution (the sampling is a hash of the trace id, so a run is a
random sample of its window), and the tests below are valid:

- **0/1 scores** (pass rates): Fisher's exact test, one-sided, conditional on
  the total number of passes. Computed exactly with integers (hypergeometric
  counts by ``math.comb``), no approximation: it is never anticonservative,
  whatever the pass rate or the sizes, which matters for a rule that runs
  for every key of every run. Boschloo's test is somewhat more powerful but
  costs a search over a nuisance parameter per key; Fisher's conservatism is
  the price of an exact level, shown in ``bench/online_detector.py``.
- **Any other scores** (1-5 judges, fractional scores): the Mann-Whitney U
  test, one-sided, with the normal approximation corrected for ties and for
  continuity (``scipy.stats.mannwhitneyu(method="asymptotic")`` computes the
  same p, checked in the tests). Judges' 1-5 scores are heavily tied, which
  rules out the exact no-ties distribution; from 10 scores a side up the
  approximation holds its level (the bench measures it). It is computed here
  in a few lines: the daemon does not import scipy (``bench/startup.py``),
  and scipy ships no type information for the strict type check.

Below ``MIN_SAMPLES`` scores on either side the test abstains (returns None)
and the key says "insufficient evidence": too little traffic to say anything
a person should act on. Not because the tests lose their level there: in
``bench/online_detector.py`` (a sample of n against 7 pooled samples of n,
4,000 tests a cell) their size at 5% stays at 2.4-5.3% for every score type
from n = 10 up. Because of power: the test alone finds a 0.5-point fall of a
1-5 judge 34% of the time at n = 10, 55% at 20, 70% at 30, and a 10-point
fall of a pass rate 10%, 19%, 28%. Under 30 a quiet key would mostly mean
"could not tell", so it says so, every run, where a person sees it and can
raise the feature's sample size.
"""

from __future__ import annotations

import math
import operator
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from continuous_eval.core.paired_test import Z_LIMIT, t_quantile_975
from continuous_eval.core.random_effects import random_effects_test

MIN_SAMPLES = 30
"""Fewest scores, in the current sample and in the baseline's, for the test to decide."""

_BINARY = frozenset((0.0, 1.0))

Method = Literal["fisher", "mann_whitney"]
"""``fisher``: exact two-proportion test of 0/1 scores; ``mann_whitney``: rank test."""


@dataclass(frozen=True, slots=True)
class UnpairedTest:
    """What the unpaired test found for one feature x scorer."""

    method: Method
    n_current: int
    """Scores in the current run's sample."""
    n_baseline: int
    """Scores in the baseline sample (the known-good runs pooled)."""
    current_mean: float
    baseline_mean: float
    mean_difference: float
    """current_mean - baseline_mean; negative for a fall."""
    ci_low: float
    """95% Welch interval on the difference in means."""
    ci_high: float
    p_lower: float
    """One-sided p that the current sample is this low or lower by chance."""
    p_floor: float
    """The smallest p any current sample of this size could give against this
    baseline (every current score below every baseline score; for 0/1, every
    current case failing). Above the level, no fall can be significant."""
    z: float
    """The evidence as a normal score (negative for a fall), clipped to
    +-``Z_LIMIT``: what the sequential detector adds up, as for paired keys."""
    p_pooled: float | None = None
    """The pooled test's own p when the baseline's runs were known
    (``unpaired_runs_test``): ``p_lower`` is the larger of it and the
    random-effects p, and so are ``z`` and the interval. None: pooled only."""
    between_run_sd: float | None = None
    """The estimated sd of the runs' true means (``core.random_effects``), when known."""

    @property
    def n_paired(self) -> int:
        """The current sample's size, where a paired key gives its count of paired cases.

        Decisions and messages show it as the key's n; an online key pairs nothing.
        """
        return self.n_current


def is_binary(values: Sequence[float]) -> bool:
    """Whether every score is 0 or 1 (a pass rate)."""
    return set(values) <= _BINARY


def unpaired_test(
    current: Sequence[float],
    baseline: Sequence[float],
    *,
    min_samples: int = MIN_SAMPLES,
) -> UnpairedTest | None:
    """Test whether ``current`` is lower than ``baseline``; None below ``min_samples`` a side.

    Fisher's exact test when every score of both samples is 0 or 1, else
    Mann-Whitney U (ties corrected, continuity corrected).

    Raises:
        ValueError: a score is not a finite number, or ``min_samples`` is below 2.
    """
    if min_samples < 2:
        raise ValueError("min_samples must be at least 2")
    if not (all(map(math.isfinite, current)) and all(map(math.isfinite, baseline))):
        raise ValueError("a score is not a finite number")
    if len(current) < min_samples or len(baseline) < min_samples:
        return None
    if is_binary(current) and is_binary(baseline):
        method: Method = "fisher"
        p_lower, p_floor, z = _fisher(current, baseline)
    else:
        method = "mann_whitney"
        p_lower, p_floor, z = _mann_whitney(current, baseline)
    cur_mean, base_mean = statistics.fmean(current), statistics.fmean(baseline)
    low, high = _welch_interval(current, baseline, cur_mean - base_mean)
    return UnpairedTest(
        method=method,
        n_current=len(current),
        n_baseline=len(baseline),
        current_mean=cur_mean,
        baseline_mean=base_mean,
        mean_difference=cur_mean - base_mean,
        ci_low=low,
        ci_high=high,
        p_lower=min(1.0, p_lower),
        p_floor=min(1.0, p_floor),
        z=z,
    )


def unpaired_runs_test(
    recent: Sequence[Sequence[float]],
    reference: Sequence[Sequence[float]],
    *,
    spread: Sequence[Sequence[float]] | None = None,
    min_samples: int = MIN_SAMPLES,
) -> UnpairedTest | None:
    """The pooled test of the recent runs against the reference runs, guarded against a wobble.

    The pooled test (``unpaired_test``) is exact when every run samples one
    population; the random-effects test (``core.random_effects``) holds its
    level when the runs' true means move from day to day, and is near the
    pooled test when they do not. Neither is valid in both worlds alone (the
    random-effects test leans on a normal approximation and an estimated
    variance; the pooled one ignores the wobble), so the key keeps the larger
    p, the weaker z and the wider interval: valid in either world, at the
    price of the power of the weaker test. Without two reference runs of two
    scores or more the wobble cannot be estimated and the pooled test stands.
    ``spread``: the runs the wobble is measured on (default ``reference``;
    see ``core.random_effects.random_effects_test``).

    Raises:
        ValueError: as ``unpaired_test``.
    """
    pooled = unpaired_test(
        [s for run in recent for s in run],
        [s for run in reference for s in run],
        min_samples=min_samples,
    )
    if pooled is None:
        return None
    wobble = random_effects_test(recent, reference, spread=spread)
    if wobble is None:
        return pooled
    half = t_quantile_975(max(1, math.floor(wobble.df))) * wobble.se
    return replace(
        pooled,
        p_lower=max(pooled.p_lower, wobble.p_lower),
        z=max(pooled.z, _normal_score(wobble.p_lower)),
        ci_low=min(pooled.ci_low, pooled.mean_difference - half),
        ci_high=max(pooled.ci_high, pooled.mean_difference + half),
        p_pooled=pooled.p_lower,
        between_run_sd=math.sqrt(wobble.tau2),
    )


def _fisher(current: Sequence[float], baseline: Sequence[float]) -> tuple[float, float, float]:
    """(p_lower, p_floor, z) of Fisher's exact test: passes now vs passes in the baseline.

    Given the total passes k, the current passes follow the hypergeometric
    law of n1 draws from n1 + n2 with k successes. Counts are exact integers;
    the one division at the end rounds once.
    """
    n1, n2 = len(current), len(baseline)
    passed, base_passed = round(math.fsum(current)), round(math.fsum(baseline))
    total = passed + base_passed
    failed = n1 + n2 - total
    low = max(0, total - n2)
    # count(x) = C(total, x) * C(failed, n1 - x); the next one follows by an
    # exact integer ratio (the quotient is the next count, an integer).
    count = math.comb(total, low) * math.comb(failed, n1 - low)
    at_or_below = count
    for x in range(low, passed):
        count = count * (total - x) * (n1 - x) // ((x + 1) * (failed - n1 + x + 1))
        at_or_below += count
    outcomes = math.comb(n1 + n2, n1)
    p_lower = at_or_below / outcomes
    # Every current case failing, with the baseline as it is.
    p_floor = math.comb(n1 + n2 - base_passed, n1) / outcomes
    z = _normal_score((2 * at_or_below - count) / (2 * outcomes))
    return p_lower, p_floor, z


def _mann_whitney(
    current: Sequence[float], baseline: Sequence[float]
) -> tuple[float, float, float]:
    """(p_lower, p_floor, z) of the rank test, normal approximation with tie correction."""
    n1, n2 = len(current), len(baseline)
    n = n1 + n2
    counts = Counter(current)
    counts.update(baseline)
    ties = 0
    below = 0  # ranks start at 1; tied scores share the mean of their ranks
    mid_rank: dict[float, float] = {}
    for value, size in sorted(counts.items()):
        mid_rank[value] = below + (size + 1) / 2
        ties += size**3 - size
        below += size
    rank_sum = math.fsum(mid_rank[v] * c for v, c in Counter(current).items())
    u = rank_sum - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    untied = math.sqrt(n1 * n2 * (n + 1) / 12)
    p_floor = _phi((0.5 - mean) / untied)
    if variance <= 0:
        return 1.0, p_floor, 0.0  # every score equal: nothing can be said
    sd = math.sqrt(variance)
    p_lower = _phi((u - mean + 0.5) / sd)
    z = max(-Z_LIMIT, min(Z_LIMIT, (u - mean) / sd))
    return p_lower, p_floor, z


def _welch_interval(
    current: Sequence[float], baseline: Sequence[float], difference: float
) -> tuple[float, float]:
    """95% interval on the difference in means, unequal variances (Welch-Satterthwaite df)."""
    v1 = _variance(current) / len(current)
    v2 = _variance(baseline) / len(baseline)
    se = math.sqrt(v1 + v2)
    if se == 0:
        return difference, difference
    df = (v1 + v2) ** 2 / (
        v1**2 / (len(current) - 1) + v2**2 / (len(baseline) - 1)
    )  # both variances zero is excluded above
    half = t_quantile_975(max(1, math.floor(df))) * se
    return difference - half, difference + half


def _variance(values: Sequence[float]) -> float:
    """Sample variance in floating point (``statistics.variance`` is exact, and slow here)."""
    n = len(values)
    mean = math.fsum(values) / n
    squares = math.fsum(map(operator.mul, values, values))
    return max(0.0, squares - n * mean * mean) / (n - 1)


_NORMAL = statistics.NormalDist()


def _phi(x: float) -> float:
    return _NORMAL.cdf(x)


def _normal_score(mid_p: float) -> float:
    """Phi^-1 of a mid-p, clipped to +-``Z_LIMIT``."""
    if mid_p <= 0.0:
        return -Z_LIMIT
    if mid_p >= 1.0:
        return Z_LIMIT
    return max(-Z_LIMIT, min(Z_LIMIT, _NORMAL.inv_cdf(mid_p)))
