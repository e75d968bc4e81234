"""The baseline, CUSUM and drift test of a key whose cases never repeat (an online feature).

Pure, the unpaired counterpart of the pairing in ``core.baselines``. The runs
are chosen the same way (``core.baselines.select``: the known-good pool, the
drift reference from before an excursion); what changes is the evidence. A
paired key compares each case with its own history; an online key's current
sample is compared with the scores of the baseline runs pooled.

Why pool the known-good runs rather than take the last one: the current
sample's own noise cannot be reduced, but the baseline's can. With one
baseline run of the same size the difference of two means has twice the
variance of one; pooling the ``baseline_window`` (7) runs brings it to 8/7 of
one, a standard error 24% smaller, which is most of the power there is to
gain (the current sample's share cannot shrink). The pool is known-good
runs only, so a regression never becomes its own baseline, exactly as for
paired keys.

Pooling assumes the pooled days are draws from the same traffic as today. A
feature whose traffic mix moves from day to day more than its sampling noise
would see that movement as evidence (in the bench a wobble of 2 points a day
raised the share of runs with a false online alert from 1.5% to 19% at
n = 100). So the runs are kept apart (``per_run``): every test here is
``core.unpaired_test.unpaired_runs_test``, the pooled test guarded by a
random-effects test whose between-run variance is measured on the history's
known-good runs (``spread_runs``). The drop test, the CUSUM's evidence and
the drift test all have the blind spot, and all get the guard: the drift
test's recent side is several runs, each with its own draw of the day, which
``core.random_effects`` counts run by run. A changed fingerprint (a new
rubric, target or sampling rule) still resets the baseline and the history
the wobble is measured on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from continuous_eval.core.baselines import DriftTest, Selection, state
from continuous_eval.core.decisions import RegressionPolicy, RunScores, ScoreKey
from continuous_eval.core.unpaired_test import UnpairedTest, unpaired_runs_test


def pooled(runs: Sequence[RunScores], key: ScoreKey) -> list[float]:
    """Every score the runs gave the key, whatever the case: the unpaired baseline sample."""
    return [score for run in runs for score in run.case_scores.get(key, {}).values()]


def per_run(runs: Sequence[RunScores], key: ScoreKey) -> list[list[float]]:
    """The key's scores run by run: the unpaired baseline, its runs kept apart.

    The grouping is what lets the test see how much the runs' means move from
    day to day (``core.random_effects``); pooled, the wobble looks like sampling.
    """
    return [list(run.case_scores.get(key, {}).values()) for run in runs]


def spread_runs(
    selection: Selection, key: ScoreKey, *, with_excursion: bool = True
) -> list[list[float]]:
    """The runs a key's day-to-day wobble is measured on: every known-good comparable run.

    More than the pool: the wobble is a property of the feature's traffic,
    and the 7 runs of a pool estimate a variance with 6 degrees of freedom,
    which the test pays for in power; a history holds up to 40 more. Runs of
    a drift excursion are left out when the excursion itself is being tested,
    so a slow decline does not widen the yardstick it is measured by.
    """
    excursion = set() if with_excursion else {run.run_id for run in selection.excursion}
    return per_run(
        [
            run
            for run in selection.comparable
            if state(run, key).known_good and run.run_id not in excursion
        ],
        key,
    )


def unpaired_cusum(
    selection: Selection,
    key: ScoreKey,
    current_scores: Mapping[str, float],
    test: UnpairedTest,
    policy: RegressionPolicy,
) -> float:
    """Return the CUSUM after this run: S = max(0, S_previous - z - k), as for paired keys.

    z is this run's evidence against the drift reference (the pool itself when
    there is no excursion and the history is no longer than the pool).
    """
    previous = state(selection.excursion[0], key).cusum if selection.excursion else 0.0
    same = [r.run_id for r in selection.reference] == [r.run_id for r in selection.pool]
    now = (
        test
        if same
        else unpaired_runs_test(
            [list(current_scores.values())],
            per_run(selection.reference, key),
            spread=spread_runs(selection, key, with_excursion=False),
            min_samples=policy.min_samples,
        )
    )
    if now is None:
        return previous
    return max(0.0, previous - now.z - policy.cusum_k)


def unpaired_drift_test(
    selection: Selection,
    key: ScoreKey,
    current_scores: Mapping[str, float],
    policy: RegressionPolicy,
) -> DriftTest | None:
    """Test whether the excursion's runs, pooled, sit below the reference runs, pooled.

    Under no change every score of both samples is a draw of the same
    traffic, so the unpaired test applies to the pooled samples; its p is
    multiplied by the runs looked at (the CUSUM looked once per run), as for
    paired keys.
    """
    recent = [list(current_scores.values()), *per_run(selection.excursion, key)]
    reference = per_run(selection.reference, key)
    found = unpaired_runs_test(
        recent,
        reference,
        spread=spread_runs(selection, key, with_excursion=False),
        min_samples=policy.min_samples,
    )
    if found is None:
        return None
    looks = 1 + len(selection.excursion)
    return DriftTest(looks, found.mean_difference, min(1.0, found.p_lower * looks))
