"""A test of a fall that allows the traffic to move from run to run (a random-effects model).

The pooled tests of ``core.unpaired_test`` assume every known-good run is a
sample of one population: the only noise is which interactions were sampled.
Real traffic wobbles: one day's mix of questions is easier than another's, so
each run's true mean is a draw around the feature's mean. With k baseline runs
of n scores, the difference between today's mean and the baseline's then has
variance

    s_w^2 / n_cur + s_w^2 / N + tau^2 * (1 + sum(n_i^2) / N^2)

(s_w^2 the within-run variance, N the pooled size, tau^2 the variance of the
run means themselves: today's run brings its own draw, and the baseline mean
averages k of them, 1/k of tau^2 when the runs are of one size). The pooled
tests see only the first two terms; a wobble of 2 points a day on a pass rate
of 80% sampled 100 a run adds a quarter to that variance, and at the levels a
family of keys works at, that alone makes a run in five alert falsely.

tau^2 is estimated by the method of moments:
tau^2 = max(0, var(run means) - mean(s_i^2 / n_i)). The variance of the run
means is unbiased for tau^2 plus the average sampling variance of a mean,
which each run's own s_i^2 / n_i estimates without bias. Unweighted, rather
than DerSimonian-Laird's inverse-variance weights: a feature samples about
the same n every run, where the weights are equal anyway, and weights built
from estimated variances add bias with few runs. The runs it is measured on
(``spread``) are the history's known-good runs, not only the pool's 7: the
wobble is a property of the feature's traffic, and 7 run means give it only
6 degrees of freedom. The runs under test never widen their own yardstick.

The reference distribution is Student's t with Satterthwaite's degrees of
freedom for the mean squares actually estimated: the variance of the run
means (runs - 1 degrees of freedom) and the within-run variance (hundreds).
Measured on the pool itself, with runs of one size, the variance of the
difference is exactly (1 + 1/k) var(run means) and the test is the
classical one of a new observation against k earlier ones: t with k - 1
degrees of freedom. Its tails at a family's levels (p ~ 0.002) are far
heavier than the normal's (4.5 against 2.9 at k = 7): a normal reference
would trust a variance estimated from 7 numbers as if it were known.
Measured on 30 runs the degrees of freedom approach 29 (3.1). When the estimate is
0 the test is the plain normal test of two means, and the exact test's p is
almost always the larger: on steady traffic the guard costs little.

Pure and dependency-free (the daemon imports no statistics package): the t
distribution is computed here through the regularised incomplete beta
function (a continued fraction, checked against scipy in the tests).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

_EPS = 1e-15
_MAX_TERMS = 300


@dataclass(frozen=True, slots=True)
class RandomEffectsTest:
    """The fall of the recent runs' mean below the reference runs', allowing a run-to-run wobble."""

    tau2: float
    """Estimated variance of the true run means (0: no wobble beyond sampling)."""
    within_variance: float
    """The reference runs' pooled within-run variance of a score."""
    se: float
    """Standard error of the difference in means, both noises counted."""
    df: float
    """Satterthwaite's degrees of freedom of that standard error."""
    t: float
    """(recent mean - reference mean) / se; negative for a fall."""
    p_lower: float
    """One-sided p of a t this low or lower with ``df`` degrees of freedom."""


def _summary(values: Sequence[float]) -> tuple[int, float, float]:
    """(n, mean, sample variance) of a run's scores."""
    n = len(values)
    mean = math.fsum(values) / n
    return n, mean, math.fsum((v - mean) ** 2 for v in values) / (n - 1)


@dataclass(frozen=True, slots=True)
class Wobble:
    """What a set of runs says of the movement of their means (the method of moments)."""

    runs: int
    """Runs with 2 scores or more, the ones counted."""
    means_variance: float
    """Sample variance of their means (k - 1 degrees of freedom)."""
    sampling: float
    """Mean of s_i^2 / n_i: the part of that variance sampling explains."""

    @property
    def tau2(self) -> float:
        """The variance of the runs' true means, truncated at 0."""
        return max(0.0, self.means_variance - self.sampling)


def wobble(runs: Sequence[Sequence[float]]) -> Wobble | None:
    """The runs' spread of means; None with fewer than 2 runs of 2 scores or more."""
    summaries = [_summary(run) for run in runs if len(run) >= 2]
    if len(summaries) < 2:
        return None
    means = [mean for _, mean, _ in summaries]
    sampling = statistics.fmean(var / n for n, _, var in summaries)
    return Wobble(len(summaries), statistics.variance(means), sampling)


def between_run_variance(runs: Sequence[Sequence[float]]) -> float:
    """tau^2: the variance of the runs' true means, by the method of moments (0 if below).

    Runs of fewer than 2 scores are left out (they have no within variance);
    fewer than 2 runs left give 0: a single run says nothing of the wobble.
    """
    found = wobble(runs)
    return 0.0 if found is None else found.tau2


def random_effects_test(
    recent: Sequence[Sequence[float]],
    reference: Sequence[Sequence[float]],
    *,
    spread: Sequence[Sequence[float]] | None = None,
) -> RandomEffectsTest | None:
    """Test whether the recent runs' pooled mean is below the reference runs' pooled mean.

    ``recent`` is one run (the current sample) for a run's drop test, or the
    current run and its excursion for the drift test; each side is a list of
    runs so the between-run part of the variance counts each side's runs.
    ``spread`` are the runs tau^2 is estimated from (default: ``reference``):
    the wobble is a property of the feature's traffic, so every known-good
    run of the history can measure it, while the baseline mean stays the
    pool's. With k = 7 runs the estimate has 6 degrees of freedom and the
    test pays for them in power; with the 30 or so a history holds, little.

    None when fewer than 2 runs of ``spread`` have 2 scores or more (the
    wobble cannot be estimated), a side is empty, or every reference score
    is equal.
    """
    recent = [run for run in recent if run]
    usable = [run for run in reference if len(run) >= 2]
    moved = wobble(usable if spread is None else spread)
    if not recent or not usable or moved is None:
        return None
    n_recent = sum(map(len, recent))
    n_reference = sum(map(len, usable))
    recent_mean = math.fsum(math.fsum(run) for run in recent) / n_recent
    reference_mean = math.fsum(math.fsum(run) for run in usable) / n_reference
    df_within = max(1, n_reference - len(usable))
    within = math.fsum((n - 1) * var for n, _, var in map(_summary, usable)) / df_within
    sampling = within * (1 / n_recent + 1 / n_reference)
    weight = (
        math.fsum(len(run) ** 2 for run in recent) / n_recent**2
        + math.fsum(len(run) ** 2 for run in usable) / n_reference**2
    )
    variance = sampling + weight * moved.tau2
    if variance <= 0:
        return None  # every reference score equal: the exact test says what can be said
    if moved.tau2 > 0:
        # Satterthwaite on the mean squares actually estimated: the variance
        # of the run means (runs - 1 df) and the rest (the within part).
        df = variance**2 / (
            (weight * moved.means_variance) ** 2 / (moved.runs - 1)
            + (sampling - weight * moved.sampling) ** 2 / df_within
        )
    else:
        df = df_within
    se = math.sqrt(variance)
    t = (recent_mean - reference_mean) / se
    return RandomEffectsTest(moved.tau2, within, se, df, t, student_cdf(t, df))


def student_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` > 0 degrees of freedom (any real df)."""
    if df <= 0:
        raise ValueError("df must be positive")
    if math.isinf(t):
        return 0.0 if t < 0 else 1.0
    x = df / (df + t * t)
    tail = 0.5 * _incomplete_beta(df / 2, 0.5, x)
    return tail if t < 0 else 1.0 - tail


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularised incomplete beta function (Lentz's continued fraction)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b), evaluated by the modified Lentz method."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, _MAX_TERMS):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < _EPS:
            break
    return result
