"""Aggregate per-case scores into per feature x scorer summaries.

Errors are counted apart and never enter the mean: a judge that failed says
nothing about quality, and counting it as zero would turn an outage into a
fake regression.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence

from continuous_eval.core.models import ResultStatus, ScoreAggregate

ScoreRow = tuple[str, str, ResultStatus, float | None]
"""(feature, scorer, status, score), as the store streams them."""


def aggregate(
    feature: str,
    scorer: str,
    scores: Sequence[float],
    errors: int,
    fingerprint: str = "",
) -> ScoreAggregate:
    """Summarise one feature x scorer: mean, standard error of the mean, n and errors.

    The standard error needs two scores; with fewer it is None rather than 0,
    because zero would claim a certainty one sample cannot give.
    """
    n = len(scores)
    mean = statistics.fmean(scores) if n else None
    stderr = statistics.stdev(scores) / math.sqrt(n) if n >= 2 else None
    return ScoreAggregate(feature, scorer, mean, stderr, n, errors, fingerprint)


def aggregate_rows(
    rows: Iterable[ScoreRow],
    expected: Sequence[tuple[str, str]] = (),
    fingerprints: Mapping[tuple[str, str], str] | None = None,
) -> list[ScoreAggregate]:
    """Aggregate a stream of result rows grouped by (feature, scorer).

    Only one group's scores are held at a time, so a run of any size
    aggregates in bounded memory. ``expected`` lists the pairs that must
    appear even with no rows (reported with n=0), so an empty feature is
    visible instead of silently missing. The result is sorted by feature,
    scorer.
    """
    fps = fingerprints or {}
    out: dict[tuple[str, str], ScoreAggregate] = {}
    for key, group in itertools.groupby(rows, key=lambda row: (row[0], row[1])):
        scores: list[float] = []
        errors = 0
        for _, _, status, score in group:
            if status is ResultStatus.OK and score is not None:
                scores.append(score)
            elif status is ResultStatus.ERROR:
                errors += 1
        if key in out:
            raise ValueError(f"rows for {key} are not grouped together")
        out[key] = aggregate(key[0], key[1], scores, errors, fps.get(key, ""))
    for key in expected:
        if key not in out:
            out[key] = aggregate(key[0], key[1], [], 0, fps.get(key, ""))
    return [out[key] for key in sorted(out)]
