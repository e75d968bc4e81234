"""An exact test of whether a case's recent runs sit low among all of its runs.

The sequential detector pools the runs of an excursion (the current one and
the ones before it since the CUSUM left 0) and asks whether, together, they
fell below the reference runs from before it. Under no change each case's
recent scores are just r of its r + m values, every choice of r equally
likely (sampling without replacement), so the statistic, the sum of the
recent scores over cases, has an exact null distribution: per case the
distribution of the sum of a uniform r-subset of the case's values, and
across cases their convolution.

A normal approximation of that sum is wrong exactly where it matters: when
only one or two cases ever vary (one flaky case in a feature that otherwise
always passes), the sum is far from normal and its tail is far heavier than
the normal one. So the distribution is computed: per case by a small dynamic
programme over (values chosen, their sum), across cases by convolution. The
counts are carried as probabilities in floating point (the number of subsets
of 100 cases has hundreds of digits), which rounds at about 1e-15, far below
any significance level.

numpy is imported when the test runs, not with the module: the CLI and the
daemon start without it, and this test runs only when a CUSUM alarms.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from continuous_eval.core.paired_test import GRIDS, choose_grid, lattice

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

MAX_SPAN = 200_000
"""Work bound: the support of the convolved sum, in lattice steps. Fine
fractional scores over many cases and runs use a coarser grid (still an exact
test of the coarser values) instead of a long computation."""


@dataclass(frozen=True, slots=True)
class CaseRuns:
    """One case: its scores in the recent runs and in the reference runs."""

    recent: tuple[float, ...]
    reference: tuple[float, ...]


def subset_p_lower(cases: Sequence[CaseRuns]) -> float:
    """P(the recent scores' sum is this low or lower) when nothing changed.

    Cases without a recent or a reference score take no part. Returns 1.0
    when no case could vary.

    Raises:
        ValueError: a score is not a finite number.
    """
    rows = [(c.recent, c.reference) for c in cases if c.recent and c.reference]
    values = [v for recent, reference in rows for v in (*recent, *reference)]
    if not all(math.isfinite(v) for v in values):
        raise ValueError("a score is not a finite number")
    grid = _affordable(rows, choose_grid(values))
    import numpy as np

    total = np.ones(1)
    observed = 0
    for recent, reference in rows:
        points = [lattice(v, grid) for v in (*recent, *reference)]
        low = min(points)
        counts = Counter(p - low for p in points)
        if len(counts) == 1:
            continue  # a case that never varies adds a constant, not chance
        observed += sum(lattice(v, grid) - low for v in recent)
        total = np.convolve(total, _subset_sums(tuple(sorted(counts.items())), len(recent)))
    if total.size == 1:
        return 1.0
    return float(min(1.0, total[: observed + 1].sum()))


def _affordable(rows: Sequence[tuple[tuple[float, ...], tuple[float, ...]]], grid: int) -> int:
    """The finest grid, at most ``grid``, whose convolved support stays within ``MAX_SPAN``."""
    span = sum(len(r) * (max(*r, *m) - min(*r, *m)) for r, m in rows)
    for candidate in (g for g in reversed(GRIDS) if g <= grid):
        if span * candidate <= MAX_SPAN:
            return candidate
    return 1


@lru_cache(maxsize=4096)
def _subset_sums(shape: tuple[tuple[int, int], ...], chosen: int) -> NDArray[np.float64]:
    """The distribution of the sum of ``chosen`` values drawn without replacement.

    ``shape`` lists (value, count) of the case's values (offsets from its
    minimum). The programme runs over table[j, s], the number of ways to pick
    j values summing to s, one distinct value at a time.
    """
    import numpy as np

    width = chosen * max(value for value, _ in shape) + 1
    table = np.zeros((chosen + 1, width))
    table[0, 0] = 1.0
    for value, count in shape:
        grown = np.zeros_like(table)
        for taken in range(min(count, chosen) + 1):
            shift = value * taken
            grown[taken:, shift:] += (
                math.comb(count, taken) * table[: chosen + 1 - taken, : width - shift]
            )
        table = grown
    size = sum(count for _, count in shape)
    result: NDArray[np.float64] = table[chosen] / math.comb(size, chosen)
    return result
