"""Adjusted p-values for a family of comparisons: all the keys of one run, decided together.

A suite of 150 feature x scorer keys tested one by one at 0.05 raises a false
alarm in almost every run. Deciding them as one family bounds the error of the
run as a whole:

- ``bh`` (Benjamini-Hochberg, the default): controls the false discovery rate,
  the expected share of false alarms among the alerts, at q. When nothing
  changed at all, any alert is a false one, so the chance of any false alert
  in the run is at most q too. It keeps the power to find several real
  regressions at once (a deploy that breaks three features).
- ``holm``: controls the chance of any false alert at q whatever else is
  true, at the price of power when many keys are tested.

Both are valid for discrete p-values (they only get more conservative).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Correction = Literal["bh", "holm"]
"""``bh``: Benjamini-Hochberg false discovery rate; ``holm``: Holm's family-wise error."""


def adjust(p_values: Sequence[float], method: Correction) -> list[float]:
    """Return the adjusted p-values, in the input's order.

    A comparison is significant at level q when its adjusted p-value is at
    most q; ties and order of input do not matter.

    Raises:
        ValueError: an unknown method or a p-value outside [0, 1].
    """
    for p in p_values:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-value {p} is outside [0, 1]")
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    if method == "bh":
        running = 1.0
        for rank in range(m, 0, -1):
            i = order[rank - 1]
            # max(p, ...): p * m / rank can round just below p when rank == m.
            running = min(running, max(p_values[i], p_values[i] * m / rank))
            adjusted[i] = running
    elif method == "holm":
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, p_values[i] * (m - rank)))
            adjusted[i] = running
    else:
        raise ValueError(f"unknown correction {method!r}: use 'bh' or 'holm'")
    return adjusted
