"""An exact test of whether a run's scores fell below each case's own known-good history.

The question an alert answers is "did these cases get worse than they used to
be?", so the evidence is per case. Each case brings its current score and the
scores it got in the known-good baseline runs (one or several). Under the null
hypothesis that nothing changed, the current score is just one more draw of
the same case: it is exchangeable with the case's history, so any of the
case's h + 1 values was equally likely to be the current one. The test
statistic is the sum of the current scores, and its null distribution is the
convolution, over cases, of "pick one of this case's values uniformly". This
is an exact permutation test, with no approximation and no resampling:

- with one baseline run it is the sign-flip test on paired differences (for
  0/1 pass rates, the exact McNemar / binomial test on discordant pairs);
- with several, a case that passed in every earlier run and fails now is
  strong evidence (p = 1/(h+1) from that case alone), a flaky case is weak,
  and a case that never varies carries no evidence either way;
- a case scored now but never in the baseline (or errored now) is not paired
  and takes no part, so errored hard cases cannot hide a drop.

The convolution is computed exactly with integers. Scores are put on a
lattice (integers for 1-5 judges and pass rates; a finer grid for fractional
scores), each case's distribution is a polynomial in x, and the product is
evaluated as one big integer with x = 2**B (B bits per coefficient, more than
the total count of outcomes needs, so coefficients never carry into each
other). The count of outcomes at or below the observed sum is the low part of
that integer, and the sum of a packed polynomial's coefficients is the integer
modulo 2**B - 1 (because 2**B = 1 modulo 2**B - 1). p is that count divided by
the number of outcomes, both exact integers; Python's int division rounds
once, correctly, so the float p is monotone in the data:

    lowering any current score never raises p

because, outcome by outcome, the pick of the lowered case either moves with
the observed sum or stays above it (proved in ``tests/unit/test_paired_test.py``
with Hypothesis against this implementation).

The lattice: every value v of a case maps to floor(v * G + 1e-9) for a grid G
chosen from the data (1 when every value is an integer). The map is monotone,
so the test stays exact and valid for the lattice values and the property
above holds; values that are not on any grid up to ``MAX_GRID`` are floored to
it, which only costs resolution below 1/``MAX_GRID``. When fine fractional
scores over many cases would make the polynomial larger than ``MAX_BITS``,
a coarser grid is used: the test is then exact for the coarser values.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby

GRIDS = (1, 2, 4, 5, 10, 20, 25, 50, 100)
"""Grids tried in order; the first that holds every value exactly is used."""

MAX_GRID = 100
"""Fractional scores off every grid are floored to 1/100."""

_ON_GRID = 1e-9

MAX_BITS = 1 << 22
"""Work bound of one test: the packed polynomial's size in bits. Fractional
scores of many cases fall back to a coarser grid (still an exact test of the
coarser values) instead of taking seconds."""


@dataclass(frozen=True, slots=True)
class CaseEvidence:
    """One case: its score now and its scores in the known-good baseline runs."""

    case_id: str
    current: float
    history: tuple[float, ...]
    """At least one value; order does not matter to the test."""

    @property
    def baseline(self) -> float:
        """The case's known-good level: the mean of its history."""
        return statistics.fmean(self.history)

    @property
    def difference(self) -> float:
        """current - baseline: negative when the case fell."""
        return self.current - self.baseline


@dataclass(frozen=True, slots=True)
class PairedTest:
    """What the exact test found for one feature x scorer."""

    n_paired: int
    """Cases with a current score and at least one baseline score."""
    current_mean: float
    """Mean current score over the paired cases."""
    baseline_mean: float
    """Mean of the cases' baseline levels, over the same cases."""
    mean_difference: float
    """current_mean - baseline_mean; negative for a fall."""
    ci_low: float | None
    """95% interval on the mean difference (t-interval over cases); None under 2 cases."""
    ci_high: float | None
    p_lower: float
    """One-sided exact p that the current scores are this low or lower by chance."""
    p_upper: float
    """One-sided exact p for this high or higher (used for two-sided anchor checks)."""
    p_floor: float
    """The smallest p-value this feature could give at all: every current score
    below the case's whole history. Above the significance level, no fall of
    any size can be significant: too few cases, or too little history."""
    z: float
    """The exact mid-p as a normal score, Phi^-1(P(T < t) + P(T = t) / 2),
    clipped to +-``Z_LIMIT``, 0 when nothing could vary: the standardised
    evidence the sequential detector adds up. Not (t - mean) / sd: when one
    flaky case is all that varies, the sum is far from normal, and one failure
    of a case that happened to pass in every reference run would count as
    -4.5 standard deviations although it is a 1-in-8 event."""

    @property
    def p_two_sided(self) -> float:
        """Twice the smaller tail, capped at 1."""
        return min(1.0, 2 * min(self.p_lower, self.p_upper))


def choose_grid(values: Iterable[float]) -> int:
    """Return the coarsest grid G on which every value lies (v * G is an integer)."""
    pending = set(values)  # a handful of distinct values, however many cases
    if all(v.is_integer() for v in pending):  # judges and pass rates: the common case
        return 1
    for grid in GRIDS:
        if all(abs(v * grid - round(v * grid)) <= _ON_GRID * max(1.0, grid) for v in pending):
            return grid
    return MAX_GRID


def _affordable(cases: Sequence[CaseEvidence], grid: int) -> int:
    """The finest grid, at most ``grid``, whose packed polynomial stays within ``MAX_BITS``."""
    span = sum(max(c.current, *c.history) - min(c.current, *c.history) for c in cases)
    bits = sum(math.log2(len(c.history) + 1) for c in cases) + 3
    for candidate in (g for g in reversed(GRIDS) if g <= grid):
        if (span * candidate + 1) * bits <= MAX_BITS:
            return candidate
    return 1


def lattice(value: float, grid: int) -> int:
    """The value's point on the grid's lattice: monotone, exact for values on the grid."""
    return math.floor(value * grid + _ON_GRID * max(1.0, grid))


def paired_test(cases: Sequence[CaseEvidence]) -> PairedTest | None:
    """Run the exact test over ``cases``; None when no case is paired.

    Raises:
        ValueError: a case has no history, or a value is not finite.
    """
    if not cases:
        return None
    values = []
    distinct: set[float] = set()
    for case in cases:
        if not case.history:
            raise ValueError(f"case {case.case_id} has no baseline score")
        row = (*case.history, case.current)
        distinct.update(row)
        values.append(row)
    if not all(math.isfinite(v) for v in distinct):
        bad = next(
            c for c, row in zip(cases, values, strict=True) if not all(map(math.isfinite, row))
        )
        raise ValueError(f"case {bad.case_id} has a score that is not a finite number")
    grid = choose_grid(distinct)
    if grid > 1:
        grid = _affordable(cases, grid)

    observed = 0  # sum over cases of (current - case minimum), on the lattice
    floor = 1.0
    polynomial = 1
    outcomes = 1
    shapes: Counter[tuple[tuple[int, int], ...]] = Counter()
    for row in values:
        points = [int(v) for v in row] if grid == 1 else [lattice(v, grid) for v in row]
        size = len(points)
        # A current below every earlier value is 1 outcome in h + 1, constant
        # cases included (they would vary then).
        floor /= size
        low = min(points)
        observed += points[-1] - low
        if max(points) > low:  # a case that never varies adds nothing random
            points.sort()
            shapes[tuple((v - low, len(list(run))) for v, run in groupby(points))] += 1
            outcomes *= size
    bits = outcomes.bit_length() + 2
    polynomial = _product(shapes, bits)
    mask = (1 << bits) - 1
    at_or_below = (polynomial & ((1 << ((observed + 1) * bits)) - 1)) % mask
    below = (polynomial & ((1 << (observed * bits)) - 1)) % mask if observed > 0 else 0
    p_lower = at_or_below / outcomes
    p_upper = (outcomes - below) / outcomes

    differences = [case.difference for case in cases]
    n = len(cases)
    mean_difference = statistics.fmean(differences)
    ci_low: float | None = None
    ci_high: float | None = None
    if n >= 2:
        spread = math.sqrt(
            math.fsum((d - mean_difference) ** 2 for d in differences) / (n - 1)
        )  # statistics.stdev is exact and slow: this runs for every key of every run
        half = t_quantile_975(n - 1) * spread / math.sqrt(n)
        ci_low, ci_high = mean_difference - half, mean_difference + half
    z = _normal_score(below + at_or_below, 2 * outcomes)
    current_mean = statistics.fmean(case.current for case in cases)
    return PairedTest(
        n_paired=n,
        current_mean=current_mean,
        baseline_mean=current_mean - mean_difference,
        mean_difference=mean_difference,
        ci_low=ci_low,
        ci_high=ci_high,
        p_lower=min(1.0, p_lower),
        p_upper=min(1.0, p_upper),
        p_floor=floor,
        z=z,
    )


Z_LIMIT = 10.0
"""Normal scores are clipped here: one run's evidence is at most this many
standard deviations, so a collapse (decided by the drop test anyway) does not
keep the sequential detector alarmed for dozens of runs after it."""


def _normal_score(twice_mid: int, twice_outcomes: int) -> float:
    """Phi^-1 of the mid-p, given as an exact fraction of two integers."""
    if twice_mid * 2 == twice_outcomes:
        return 0.0  # exactly the middle, including every case that cannot vary
    mid = twice_mid / twice_outcomes
    if not 0.0 < mid < 1.0:
        return -Z_LIMIT if twice_mid * 2 < twice_outcomes else Z_LIMIT
    z = statistics.NormalDist().inv_cdf(mid)
    return max(-Z_LIMIT, min(Z_LIMIT, z))


_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
"""Student's t 97.5% quantiles for 1 to 30 degrees of freedom (standard tables)."""


def _product(shapes: Counter[tuple[tuple[int, int], ...]], bits: int) -> int:
    """Multiply the cases' packed polynomials, one shift and add per distinct value.

    Packed with ``bits`` per coefficient, shifting by ``value * bits``
    multiplies by x**value, and no coefficient reaches 2**bits, so none carries
    into its neighbour. Shift-and-add beats big-integer multiplication here
    (each case's polynomial has at most a handful of terms).
    """
    polynomial = 1
    for shape, times in shapes.items():
        for _ in range(times):
            polynomial = sum(count * (polynomial << (value * bits)) for value, count in shape)
    return polynomial


def t_quantile_975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom.

    A table up to 30, a Cornish-Fisher expansion above (its error is under
    1e-4 there), so no statistics package is imported for an interval.
    """
    if df < 1:
        raise ValueError("df must be at least 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963984540054
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )
