"""Decide whether a scheduled run regressed against the scheduled runs before it.

Everything here is pure: runs come in as small records (:class:`RunScores`),
a :class:`DetectionResult` comes out with the :class:`Regression` records to
alert on and a :class:`Note` for every feature x scorer that did not alert,
saying why ("baseline reset", "no baseline", "incomplete run", "not
significant", ...), so the caller can log or show it.

Rules, per feature x scorer of the current run:

- **drop**: the current mean is below the previous scheduled run's mean (same
  fingerprint) by at least the scorer's minimum drop. In ``threshold`` mode
  the minimum is ``regression_drop`` and nothing else is asked. In
  ``guarded`` mode (the default) the minimum is the smaller
  ``guarded_min_drop``, and a one-sided paired permutation test over the
  cases scored in both runs must also find the fall significant at
  ``alpha``.
- **drift**: the current mean is below the median of the means of the last
  ``drift_window`` scheduled runs with the same fingerprint (at least
  ``drift_min_runs`` of them) by at least ``regression_drop``. No test: the
  median of several runs is a steadier baseline than one run, the full
  ``regression_drop`` is the bar, and a slow decline is exactly what a
  paired test against one run cannot see. When both rules fire, one
  :class:`Regression` is emitted (the drop, which carries a p-value and a
  baseline run) because both would share one alert key; the drift is noted.
- **validity**: a manual current run never alerts and manual runs are never
  baselines; a run (or a feature x scorer of it) below the completeness floor
  never alerts and is never a baseline; a changed fingerprint is a baseline
  reset, never a regression.

Boundaries count: a fall of exactly the threshold alerts. Means are floats,
so 0.95 - 0.90 comes out as 0.04999999999999993; every comparison against a
threshold therefore allows ``EPSILON`` (1e-9, absolute). Scores live on
0..5, so rounding error in a mean is around 1e-15 and a fall that differs
from the threshold by less than 1e-9 is the threshold. A fall of at most
``EPSILON`` is no fall at all.

The noise guard is a sign-flip permutation test
(``scipy.stats.permutation_test`` with ``permutation_type="samples"`` on
the per-case differences, statistic: their sum, ``alternative="less"``).
Chosen over Wilcoxon signed-rank because:

- it tests the mean difference, the same quantity the rule thresholds and
  the alert reports; Wilcoxon asks about ranks, and on 1-5 integer scores
  most differences are 0 or +-1, so it degenerates into massive ties
  handled by a normal approximation and tie corrections;
- ties and zero differences need no special handling: a zero difference is
  the same under either sign, so it adds nothing to any resample, and the
  null distribution is built from the data themselves (exact for up to 10
  paired cases at the default 1,999 resamples, Monte Carlo above);
- it is monotone: lowering any current case score never raises the
  p-value. The one-sided p-value is the share of sign patterns S with
  sum(d_i for i flipped) >= 0; lowering any d_i can only turn such a pattern
  false. With Monte Carlo resamples the sign patterns come from a generator
  seeded from the policy and depend only on the number of paired cases, so
  the property holds for the computed value too (for integer scores, whose
  sums are exact). Wilcoxon's tie-corrected variance can move either way
  when a tie breaks. Hence: in guarded mode, lowering current case scores
  (keeping the paired cases) never turns an alert off.
- it is one-sided because only falls alert; an improvement is never a
  regression.

With fewer paired cases than the test needs to ever reach ``alpha``
(2**-n > alpha, fewer than 5 at 0.05; also when the per-case scores of the
baseline are missing) the guard cannot decide, and the plain threshold rule
decides instead, with a ``guard_fallback`` note: a tiny feature that
collapses still alerts.

Default policy and why (``python bench/detector_power.py``: synthetic suites,
true quality uniform in {2,3,4,5}, a true drop d lowers round(d*n) cases by
one point, the judge moves each score by -1 or +1 with probability 0.15
each, 1,000 pairs per cell, seed 20240601):

- 1-5 judge: ``guarded``, ``guarded_min_drop=0.2``, ``alpha=0.05``;
  ``regression_drop=0.5`` for threshold mode, drift and the guard's
  fallback. At 100 cases: 0.2% false alarms (0.4% over 5,000 pairs), 100%
  detection of a true drop of 0.5 and 86.0% of 0.3 (87.6% over 5,000
  pairs); the targets were <= 1%, >= 95% and >= 80%. The plain threshold
  rule at 0.5 never cries wolf but catches only 33% of true 0.5 drops:
  clipping at 1 and 5 shrinks an observed fall to about 0.92 of the true
  one, so most true 0.5 drops show up just under 0.5.
  Why 0.2: at 100 cases judge noise puts the standard deviation of a
  difference of means at about 0.072, so 1% false alarms needs a bar of at
  least about 0.17, and 80% detection of a true 0.3 (observed about 0.28)
  a bar of at most about 0.21; 0.2 leaves margin on both sides.
  Why the test: at 100 cases and more it changes nothing (the 0.2 floor is
  stricter than p <= 0.05 there); on small features, where one run's noise
  alone exceeds 0.2, it is what keeps the lower floor safe: at 20 cases
  2.7% false alarms with the test, 12.8% with the 0.2 floor alone. Small
  suites pay in power instead: at 50 cases 2.7% false alarms and 70%
  detection of a true 0.3 (the 1% target holds from about 100 cases on).
- 0/1 pass rate (and any score in 0..1): ``guarded``, both minimums 0.05,
  ``alpha=0.05``. No benchmark covers pass rates yet, so the guard does not
  lower the bar there; it only stops a single flaky case (0.05 of a
  20-case feature) from alerting. On 0/1 scores the sign-flip test is a
  sign test on the cases that changed (McNemar's test).

The scale comes from ``RegressionPolicy.scorers`` when the scorer is listed
there (callers know which scorers are judges); otherwise it is inferred from
every number the detector looks at for that feature x scorer (the per-case
scores of both runs and the means of the runs compared): all within 0..1
means a pass rate, anything above 1 a 1-5 judge. A judge never scores below
1, so the only judge data read as a pass rate is all 1s in every run, where
nothing can fall and both readings decide the same.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

# numpy and scipy cost about 60 MB and a second of start-up, so they are
# imported only when a comparison is made, not by every command that imports
# this module.
if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

from continuous_eval.core.models import (
    CaseDrop,
    Regression,
    RegressionRule,
    RunRecord,
    RunType,
    ScoreAggregate,
)

ScoreKey = tuple[str, str]
"""(feature, scorer)."""

Scale = Literal["judge", "pass_rate"]
"""``judge``: 1-5 scores; ``pass_rate``: 0/1 scores (or any score in 0..1)."""

DetectorMode = Literal["guarded", "threshold"]
"""``guarded``: a smaller minimum drop plus a paired test; ``threshold``: the plain rule."""

EPSILON = 1e-9
"""Absolute slack on every threshold comparison, for float noise in means."""


@dataclass(frozen=True, slots=True)
class ScorerPolicy:
    """How large a fall of one scorer's mean must be, and how it is confirmed."""

    regression_drop: float
    """Minimum fall for the threshold rule, for the drift rule, and for the
    guarded rule when the guard cannot decide (too few paired cases)."""
    guarded_min_drop: float
    """Minimum fall for the guarded rule, which also needs the paired test."""
    mode: DetectorMode = "guarded"
    alpha: float = 0.05
    """One-sided significance level of the paired test (guarded mode)."""

    def __post_init__(self) -> None:
        if not self.regression_drop > 0:
            raise ValueError("regression_drop must be positive")
        if not self.guarded_min_drop > 0:
            raise ValueError("guarded_min_drop must be positive")
        if self.mode not in ("guarded", "threshold"):
            raise ValueError(f"mode must be 'guarded' or 'threshold', not {self.mode!r}")
        if not 0 < self.alpha < 0.5:
            raise ValueError("alpha must be in (0, 0.5)")


JUDGE_DEFAULTS = ScorerPolicy(regression_drop=0.5, guarded_min_drop=0.2)
"""1-5 judge scores; the numbers come from bench/detector_power.py (module docstring)."""

PASS_RATE_DEFAULTS = ScorerPolicy(regression_drop=0.05, guarded_min_drop=0.05)
"""0/1 scores: five points of pass rate; the guard filters noise but lowers no bar."""


def scorer_defaults(scale: Scale, *, mode: DetectorMode | None = None) -> ScorerPolicy:
    """Return the default policy for a scale, optionally in another mode.

    Args:
        scale: ``judge`` for 1-5 judge scores, ``pass_rate`` for 0/1 scores.
        mode: ``threshold`` for the plain rule; None keeps the default (guarded).
    """
    if scale == "judge":
        base = JUDGE_DEFAULTS
    elif scale == "pass_rate":
        base = PASS_RATE_DEFAULTS
    else:
        raise ValueError(f"unknown scale {scale!r}")
    return base if mode is None else replace(base, mode=mode)


def infer_scale(values: Iterable[float]) -> Scale:
    """Guess a scorer's scale from the scores and means seen: all within 0..1 is a pass rate.

    A 1-5 judge never scores below 1, so judge data only reads as a pass rate
    when every value is 1, where no fall is possible under either reading.
    """
    return "pass_rate" if all(0.0 <= v <= 1.0 for v in values) else "judge"


@dataclass(frozen=True, slots=True)
class RegressionPolicy:
    """Every knob of the detector; the defaults are the documented policy."""

    completeness_floor: float = 0.9
    """Minimum scored/total for a run (and n/(n+errors) for a feature x scorer)
    to alert or to serve as a baseline; reaching it exactly is complete."""
    drift_window: int = 7
    """K: how many earlier comparable runs the drift median looks at."""
    drift_min_runs: int = 3
    """Fewer comparable runs than this and drift is not checked: the median of
    two runs is just their mean, no steadier than the drop rule's baseline."""
    top_cases: int = 5
    """How many of the cases that fell the most a regression carries."""
    judge: ScorerPolicy = JUDGE_DEFAULTS
    """For scorers inferred to be 1-5 judges."""
    pass_rate: ScorerPolicy = PASS_RATE_DEFAULTS
    """For scorers inferred to be 0/1 (or 0..1)."""
    scorers: Mapping[str, ScorerPolicy] = field(default_factory=dict)
    """Per scorer name; a listed scorer skips scale inference."""
    n_resamples: int = 1999
    """Resamples of the permutation test above the exact limit (2**n > n_resamples).
    1,999 puts the Monte Carlo error of a p-value near 0.05 at about 0.005."""
    seed: int = 0
    """Seeds the test's resampling, so a decision is a pure function of its inputs."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.completeness_floor <= 1.0:
            raise ValueError("completeness_floor must be in [0, 1]")
        if self.drift_window < 1:
            raise ValueError("drift_window must be at least 1")
        if not 1 <= self.drift_min_runs <= self.drift_window:
            raise ValueError("drift_min_runs must be in [1, drift_window]")
        if self.top_cases < 0:
            raise ValueError("top_cases must not be negative")
        if self.n_resamples < 1:
            raise ValueError("n_resamples must be positive")
        smallest_p = 1 / (self.n_resamples + 1)
        for policy in (self.judge, self.pass_rate, *self.scorers.values()):
            if policy.mode == "guarded" and policy.alpha < smallest_p:
                raise ValueError(
                    f"alpha {policy.alpha} is below the smallest p-value "
                    f"{smallest_p:.2g} that {self.n_resamples} resamples can give"
                )

    def for_scorer(self, scorer: str, observed: Iterable[float] = ()) -> ScorerPolicy:
        """Return the scorer's policy: its override, else the defaults of its inferred scale."""
        override = self.scorers.get(scorer)
        if override is not None:
            return override
        return self.judge if infer_scale(observed) == "judge" else self.pass_rate


DEFAULT_POLICY = RegressionPolicy()
"""The documented default policy."""


@dataclass(frozen=True, slots=True)
class RunScores:
    """One run as the detector sees it: identity, completeness and scores."""

    run_id: str
    suite: str
    run_type: RunType
    completeness: float
    """Scored results / expected results (``RunRecord.completeness``)."""
    aggregates: Mapping[ScoreKey, ScoreAggregate]
    """Per (feature, scorer); each carries its mean and fingerprint."""
    case_scores: Mapping[ScoreKey, Mapping[str, float]] = field(default_factory=dict)
    """Per (feature, scorer): case id -> score, scored cases only. Needed for
    the current run and the baseline of the drop rule; optional elsewhere
    (without them the guard falls back to the threshold rule and no worst
    cases are reported)."""

    @classmethod
    def build(
        cls,
        run_id: str,
        suite: str,
        run_type: RunType,
        completeness: float,
        aggregates: Iterable[ScoreAggregate],
        case_scores: Mapping[ScoreKey, Mapping[str, float]] | None = None,
    ) -> RunScores:
        """Index aggregates (a list, as ``aggregate_rows`` returns) by (feature, scorer).

        Raises:
            ValueError: an aggregate appears twice, or completeness is outside 0..1.
        """
        if not 0.0 <= completeness <= 1.0:
            raise ValueError(f"completeness of run {run_id} must be in [0, 1]")
        indexed: dict[ScoreKey, ScoreAggregate] = {}
        for agg in aggregates:
            key = (agg.feature, agg.scorer)
            if key in indexed:
                raise ValueError(f"run {run_id} has two aggregates for {key}")
            indexed[key] = agg
        return cls(run_id, suite, run_type, completeness, indexed, dict(case_scores or {}))

    @classmethod
    def from_record(
        cls,
        run: RunRecord,
        aggregates: Iterable[ScoreAggregate],
        case_scores: Mapping[ScoreKey, Mapping[str, float]] | None = None,
    ) -> RunScores:
        """Take id, suite, run type and completeness from a stored run."""
        return cls.build(run.id, run.suite, run.run_type, run.completeness, aggregates, case_scores)


class NoteKind(StrEnum):
    """Why a feature x scorer (or a whole run) raised no alert."""

    MANUAL_RUN = "manual_run"
    """The current run is manual: manual runs never alert."""
    INCOMPLETE_RUN = "incomplete_run"
    """The current run, or this feature x scorer of it, is below the completeness floor."""
    NO_SCORES = "no_scores"
    """The current run scored no case of this feature x scorer."""
    IGNORED_RUN = "ignored_run"
    """An earlier run was not used as a baseline (manual, or incomplete)."""
    NO_BASELINE = "no_baseline"
    """No earlier usable scheduled run measured this feature x scorer."""
    BASELINE_RESET = "baseline_reset"
    """The newest earlier measurement has another fingerprint: a fresh start."""
    NO_DROP = "no_drop"
    """The score rose or stayed equal."""
    BELOW_THRESHOLD = "below_threshold"
    """The score fell by less than the rule's minimum drop."""
    NOT_SIGNIFICANT = "not_significant"
    """The score fell enough, but the paired test did not confirm it at alpha."""
    GUARD_FALLBACK = "guard_fallback"
    """Too few paired cases for the test to reach alpha; the threshold rule decided."""
    TOO_FEW_RUNS = "too_few_runs"
    """Drift needs more comparable runs than there are."""
    SUPERSEDED = "superseded"
    """Drift fired too, but the drop's alert already covers this feature x scorer."""


@dataclass(frozen=True, slots=True)
class Note:
    """Why one rule did not alert for one feature x scorer, with the numbers behind it."""

    kind: NoteKind
    feature: str | None
    """None for a note about the whole run (an ignored earlier run)."""
    scorer: str | None
    rule: RegressionRule | None
    """None when the note stopped both rules."""
    message: str
    """One line for logs and the UI."""
    baseline: float | None = None
    current: float | None = None
    p_value: float | None = None
    cases_paired: int | None = None
    baseline_run_id: str | None = None


@dataclass(frozen=True, slots=True)
class DetectionResult:
    """What the detector found for one run: regressions to alert on, and notes."""

    suite: str
    run_id: str
    regressions: tuple[Regression, ...]
    """At most one per feature x scorer (they share an alert key)."""
    notes: tuple[Note, ...]

    def notes_for(self, feature: str, scorer: str) -> tuple[Note, ...]:
        """Return the notes of one feature x scorer."""
        return tuple(n for n in self.notes if n.feature == feature and n.scorer == scorer)


def paired_p_value(
    before: Sequence[float], after: Sequence[float], *, n_resamples: int = 1999, seed: int = 0
) -> float:
    """Return the one-sided p-value that ``after`` is lower than ``before``, case by case.

    A sign-flip permutation test on the summed differences (see the module
    docstring for why this test). Exact while 2**n <= n_resamples, Monte Carlo
    with a generator seeded by ``seed`` above.

    Raises:
        ValueError: the sequences differ in length or hold fewer than two cases.
    """
    if len(before) != len(after):
        raise ValueError("before and after must pair up case by case")
    if len(before) < 2:
        raise ValueError("the paired test needs at least two cases")
    import numpy as np

    diff = np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)
    if not np.any(diff):
        # Every resample sums to 0 <= 0: the test would return exactly 1.
        return 1.0
    return _permutation_p_value(diff, n_resamples=n_resamples, seed=seed)


def _sum_last_axis(x: NDArray[np.float64], axis: int) -> NDArray[np.float64]:
    # The sum, not the mean: for integer scores it is exact, which keeps the
    # p-value exactly monotone (no rounding in a division by n).
    import numpy as np

    total: NDArray[np.float64] = np.sum(x, axis=axis)
    return total


def _permutation_p_value(diff: NDArray[np.float64], *, n_resamples: int, seed: int) -> float:
    # Batches bound memory at about a million (resample, case) cells whatever the
    # suite size; scipy draws the same sign patterns whatever the batch.
    import numpy as np

    # scipy ships no type information (scipy-stubs is not a dependency); its use
    # is confined to this function, which converts the result to float.
    from scipy import stats  # type: ignore[import-untyped]

    batch = max(1, min(n_resamples, 1_000_000 // diff.size))
    result = stats.permutation_test(
        (diff,),
        _sum_last_axis,
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_resamples,
        batch=batch,
        alternative="less",
        rng=np.random.default_rng(seed),
    )
    return float(result.pvalue)


def min_paired_cases(alpha: float) -> int:
    """Return the fewest paired cases with which the test can reach ``alpha`` (2**-n <= alpha)."""
    return max(2, math.ceil(math.log2(1 / alpha)))


def detect_regressions(
    current: RunScores,
    history: Sequence[RunScores],
    policy: RegressionPolicy = DEFAULT_POLICY,
) -> DetectionResult:
    """Check every feature x scorer of the current run against the earlier scheduled runs.

    Args:
        current: the run just finished, with its per-case scores.
        history: earlier runs of the same suite, newest first. Manual and
            incomplete runs are skipped (and noted); pass the per-case scores
            of at least the newest scheduled run, which the paired test needs.
        policy: thresholds, test settings and per-scorer overrides.

    Returns:
        The regressions to alert on, at most one per feature x scorer, and
        notes saying why everything else did not alert.

    Raises:
        ValueError: an earlier run belongs to another suite, is the current
            run, or appears twice. These are the caller's bugs, not data.
    """
    _validate_history(current, history)
    keys = sorted(current.aggregates)
    if current.run_type != "scheduled":
        skipped = [_note(NoteKind.MANUAL_RUN, key, None, "manual runs never alert") for key in keys]
        return DetectionResult(current.suite, current.run_id, (), tuple(skipped))
    if _below(current.completeness, policy.completeness_floor):
        message = (
            f"run completeness {current.completeness:.3f} is below the floor "
            f"{policy.completeness_floor:.3f}"
        )
        skipped = [_note(NoteKind.INCOMPLETE_RUN, key, None, message) for key in keys]
        return DetectionResult(current.suite, current.run_id, (), tuple(skipped))

    notes: list[Note] = []
    baselines: list[RunScores] = []
    for run in history:
        if run.run_type != "scheduled":
            reason = "manual runs are never baselines"
        elif _below(run.completeness, policy.completeness_floor):
            reason = f"completeness {run.completeness:.3f} is below the floor"
        else:
            baselines.append(run)
            continue
        notes.append(
            Note(
                NoteKind.IGNORED_RUN,
                None,
                None,
                None,
                f"run {run.run_id}: {reason}",
                baseline_run_id=run.run_id,
            )
        )

    regressions: list[Regression] = []
    for key in keys:
        found, key_notes = _check_key(current, key, baselines, policy)
        if found is not None:
            regressions.append(found)
        notes.extend(key_notes)
    return DetectionResult(current.suite, current.run_id, tuple(regressions), tuple(notes))


def _validate_history(current: RunScores, history: Sequence[RunScores]) -> None:
    seen = {current.run_id}
    for run in history:
        if run.suite != current.suite:
            raise ValueError(
                f"run {run.run_id} belongs to suite {run.suite!r}, not {current.suite!r}"
            )
        if run.run_id in seen:
            raise ValueError(f"run {run.run_id} appears twice (or is the current run)")
        seen.add(run.run_id)


def _below(value: float, floor: float) -> bool:
    return value + EPSILON < floor


def _reaches(drop: float, minimum: float) -> bool:
    """Whether a fall reaches a threshold; the boundary counts (see EPSILON)."""
    return drop + EPSILON >= minimum


def _key_incomplete(agg: ScoreAggregate, floor: float) -> bool:
    attempted = agg.n + agg.errors
    return attempted > 0 and _below(agg.n / attempted, floor)


def _note(
    kind: NoteKind,
    key: ScoreKey,
    rule: RegressionRule | None,
    message: str,
    *,
    baseline: float | None = None,
    current: float | None = None,
    baseline_run_id: str | None = None,
) -> Note:
    return Note(
        kind,
        key[0],
        key[1],
        rule,
        message,
        baseline=baseline,
        current=current,
        baseline_run_id=baseline_run_id,
    )


def _check_key(
    current: RunScores,
    key: ScoreKey,
    baselines: Sequence[RunScores],
    policy: RegressionPolicy,
) -> tuple[Regression | None, list[Note]]:
    agg = current.aggregates[key]
    if agg.mean is None:
        return None, [_note(NoteKind.NO_SCORES, key, None, "no case was scored")]
    if _key_incomplete(agg, policy.completeness_floor):
        message = f"{agg.n} scored, {agg.errors} errors: below the completeness floor"
        return None, [_note(NoteKind.INCOMPLETE_RUN, key, None, message)]

    # The comparable history: earlier usable measurements of this key, newest
    # first, up to the first one taken under another fingerprint.
    comparable: list[tuple[RunScores, float]] = []
    reset_by: RunScores | None = None
    for run in baselines:
        base = run.aggregates.get(key)
        if base is None or base.mean is None or _key_incomplete(base, policy.completeness_floor):
            continue
        if base.fingerprint != agg.fingerprint:
            reset_by = run
            break
        comparable.append((run, base.mean))
    if not comparable:
        if reset_by is not None:
            message = (
                f"fingerprint changed since run {reset_by.run_id}: baseline reset, "
                "this run is the new baseline"
            )
            return None, [
                _note(
                    NoteKind.BASELINE_RESET,
                    key,
                    None,
                    message,
                    current=agg.mean,
                    baseline_run_id=reset_by.run_id,
                )
            ]
        return None, [
            _note(
                NoteKind.NO_BASELINE,
                key,
                None,
                "no earlier scheduled run measured this",
                current=agg.mean,
            )
        ]

    window = comparable[: policy.drift_window]
    previous, _ = comparable[0]
    cur_cases = current.case_scores.get(key, {})
    prev_cases = previous.case_scores.get(key, {})
    observed = [
        agg.mean,
        *(mean for _, mean in window),
        *cur_cases.values(),
        *prev_cases.values(),
    ]
    scorer_policy = policy.for_scorer(key[1], observed)

    drop_found, notes = _check_drop(current, key, agg.mean, comparable[0], scorer_policy, policy)
    drift_found, drift_notes = _check_drift(
        current, key, agg.mean, window, reset_by, scorer_policy, policy
    )
    notes.extend(drift_notes)
    if drop_found is not None:
        if drift_found is not None:
            notes.append(
                _note(
                    NoteKind.SUPERSEDED,
                    key,
                    "drift",
                    f"drift fired too ({drift_found.baseline:.3f} median -> "
                    f"{drift_found.current:.3f}); the drop's alert covers it",
                    baseline=drift_found.baseline,
                    current=drift_found.current,
                )
            )
        return drop_found, notes
    return drift_found, notes


def _check_drop(
    current: RunScores,
    key: ScoreKey,
    current_mean: float,
    previous: tuple[RunScores, float],
    scorer_policy: ScorerPolicy,
    policy: RegressionPolicy,
) -> tuple[Regression | None, list[Note]]:
    prev_run, baseline = previous
    cur_cases = current.case_scores.get(key, {})
    prev_cases = prev_run.case_scores.get(key, {})
    paired = sorted(cur_cases.keys() & prev_cases.keys())
    drop = baseline - current_mean

    def note(kind: NoteKind, message: str, p_value: float | None = None) -> Note:
        return Note(
            kind,
            key[0],
            key[1],
            "drop",
            message,
            baseline=baseline,
            current=current_mean,
            p_value=p_value,
            cases_paired=len(paired),
            baseline_run_id=prev_run.run_id,
        )

    moved = f"{baseline:.3f} -> {current_mean:.3f} (run {prev_run.run_id})"
    if drop <= EPSILON:
        return None, [note(NoteKind.NO_DROP, f"no fall: {moved}")]

    notes: list[Note] = []
    p_value: float | None = None
    if scorer_policy.mode == "threshold":
        minimum = scorer_policy.regression_drop
    else:
        minimum = scorer_policy.guarded_min_drop
        if not _reaches(drop, minimum):
            message = f"fell {drop:.3f}, below the minimum {minimum:.3f}: {moved}"
            return None, [note(NoteKind.BELOW_THRESHOLD, message)]
        needed = min_paired_cases(scorer_policy.alpha)
        if len(paired) < needed:
            minimum = scorer_policy.regression_drop
            message = (
                f"{len(paired)} paired cases, the test needs {needed} to reach alpha "
                f"{scorer_policy.alpha}: the threshold {minimum:.3f} decides"
            )
            notes.append(note(NoteKind.GUARD_FALLBACK, message))
        else:
            p_value = paired_p_value(
                [prev_cases[c] for c in paired],
                [cur_cases[c] for c in paired],
                n_resamples=policy.n_resamples,
                seed=policy.seed,
            )
            if p_value > scorer_policy.alpha:
                message = (
                    f"fell {drop:.3f} but p={p_value:.4f} > alpha {scorer_policy.alpha} "
                    f"over {len(paired)} paired cases: {moved}"
                )
                notes.append(note(NoteKind.NOT_SIGNIFICANT, message, p_value))
                return None, notes
    if not _reaches(drop, minimum):
        message = f"fell {drop:.3f}, below the minimum {minimum:.3f}: {moved}"
        notes.append(note(NoteKind.BELOW_THRESHOLD, message))
        return None, notes

    worst = _worst_cases(cur_cases, {c: prev_cases[c] for c in paired}, policy.top_cases)
    found = Regression(
        suite=current.suite,
        feature=key[0],
        scorer=key[1],
        rule="drop",
        run_id=current.run_id,
        baseline_run_id=prev_run.run_id,
        baseline=baseline,
        current=current_mean,
        delta=current_mean - baseline,
        p_value=p_value,
        cases_paired=len(paired),
        worst_cases=worst,
    )
    return found, notes


def _check_drift(
    current: RunScores,
    key: ScoreKey,
    current_mean: float,
    window: Sequence[tuple[RunScores, float]],
    reset_by: RunScores | None,
    scorer_policy: ScorerPolicy,
    policy: RegressionPolicy,
) -> tuple[Regression | None, list[Note]]:
    if len(window) < policy.drift_min_runs:
        since = f" since the fingerprint changed (run {reset_by.run_id})" if reset_by else ""
        message = (
            f"{len(window)} comparable earlier runs{since}; drift needs {policy.drift_min_runs}"
        )
        return None, [_note(NoteKind.TOO_FEW_RUNS, key, "drift", message, current=current_mean)]
    median = statistics.median(mean for _, mean in window)
    drop = median - current_mean
    moved = f"median of {len(window)} runs {median:.3f} -> {current_mean:.3f}"
    if drop <= EPSILON:
        message = f"no fall: {moved}"
        return None, [
            _note(NoteKind.NO_DROP, key, "drift", message, baseline=median, current=current_mean)
        ]
    if not _reaches(drop, scorer_policy.regression_drop):
        message = f"fell {drop:.3f}, below the minimum {scorer_policy.regression_drop:.3f}: {moved}"
        return None, [
            _note(
                NoteKind.BELOW_THRESHOLD,
                key,
                "drift",
                message,
                baseline=median,
                current=current_mean,
            )
        ]

    # Per case, the median over the window runs that brought per-case scores.
    cur_cases = current.case_scores.get(key, {})
    history: dict[str, list[float]] = {}
    for run, _ in window:
        for case_id, score in run.case_scores.get(key, {}).items():
            if case_id in cur_cases:
                history.setdefault(case_id, []).append(score)
    before = {case_id: statistics.median(scores) for case_id, scores in history.items()}
    found = Regression(
        suite=current.suite,
        feature=key[0],
        scorer=key[1],
        rule="drift",
        run_id=current.run_id,
        baseline_run_id=None,
        baseline=median,
        current=current_mean,
        delta=current_mean - median,
        p_value=None,
        cases_paired=len(before),
        worst_cases=_worst_cases(cur_cases, before, policy.top_cases),
    )
    return found, []


def _worst_cases(
    after: Mapping[str, float], before: Mapping[str, float], top: int
) -> tuple[CaseDrop, ...]:
    """The cases that fell the most, worst first; ties by case id so the order is stable."""
    fell = [
        CaseDrop(case_id, before[case_id], after[case_id])
        for case_id in before
        if case_id in after and after[case_id] < before[case_id]
    ]
    fell.sort(key=lambda d: (d.after - d.before, d.case_id))
    return tuple(fell[:top])
