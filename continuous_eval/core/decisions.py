"""The detector's vocabulary: its policy, the runs it reads and the decisions it writes.

Pure data, shared by the decision rules (``core.regression``), the baseline
selection (``core.baselines``), the alert reports (``core.alerting``), the
store that keeps decisions and the views that show them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from continuous_eval.core.error_control import Correction
from continuous_eval.core.models import CaseDrop, RunType, ScoreAggregate
from continuous_eval.core.unpaired_test import MIN_SAMPLES

ScoreKey = tuple[str, str]
"""(feature, scorer)."""

Scale = Literal["judge", "pass_rate"]
"""``judge``: 1-5 scores; ``pass_rate``: 0/1 scores (or any score in 0..1)."""

IncidentKind = Literal["regression", "judge_drift"]
Transition = Literal["opened", "worsened", "recovered", "reset"]

EPSILON = 1e-9
"""Absolute slack on every threshold comparison, for float noise in means."""


@dataclass(frozen=True, slots=True)
class ScorerPolicy:
    """How large a fall of one scorer's paired mean must be to alert."""

    min_effect: float

    def __post_init__(self) -> None:
        if not self.min_effect > 0:
            raise ValueError("min_effect must be positive")


JUDGE_DEFAULTS = ScorerPolicy(min_effect=0.2)
"""1-5 judges: bench/detector_power.py shows why 0.2 (README, regression section)."""

PASS_RATE_DEFAULTS = ScorerPolicy(min_effect=0.05)
"""0/1 scores: five points of pass rate."""


def infer_scale(values: Iterable[float]) -> Scale:
    """Guess a scorer's scale from the scores seen: all within 0..1 is a pass rate."""
    return "pass_rate" if all(0.0 <= v <= 1.0 for v in values) else "judge"


@dataclass(frozen=True, slots=True)
class RegressionPolicy:
    """Every knob of the detector; the defaults are the documented policy."""

    completeness_floor: float = 0.9
    """Minimum scored/total for a run (and n/(n+errors) for a key) to be decided."""
    baseline_window: int = 7
    """How many known-good runs are pooled into each case's baseline."""
    correction: Correction = "bh"
    fdr: float = 0.05
    """The level of the run's family: q for BH, the family-wise error for Holm."""
    cusum_k: float = 0.5
    """Allowance per run, in standard deviations of the run's evidence."""
    cusum_h: float = 8.0
    """Decision threshold of the CUSUM, in the same units."""
    excursion_limit: int = 20
    """The longest excursion followed back before the reference is taken."""
    drift_reference_runs: int = 20
    """Known-good runs in the CUSUM's reference. More than the drop's pool: the
    reference stays fixed for a whole excursion, so its own noise is shared by
    every step of it and must be small."""
    judge: ScorerPolicy = JUDGE_DEFAULTS
    pass_rate: ScorerPolicy = PASS_RATE_DEFAULTS
    scorers: Mapping[str, ScorerPolicy] = field(default_factory=dict)
    """Per scorer name; a listed scorer skips scale inference."""
    unpaired_features: frozenset[str] = frozenset()
    """Features whose cases never repeat (online features: a fresh sample of
    traffic every run): their keys are tested unpaired (``core.unpaired_test``),
    the current sample against the baseline runs' scores pooled."""
    min_samples: int = MIN_SAMPLES
    """Fewest scores a side for an unpaired test to decide (``MIN_SAMPLES``)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.completeness_floor <= 1.0:
            raise ValueError("completeness_floor must be in [0, 1]")
        if self.baseline_window < 1:
            raise ValueError("baseline_window must be at least 1")
        if self.correction not in ("bh", "holm"):
            raise ValueError(f"correction must be 'bh' or 'holm', not {self.correction!r}")
        if not 0 < self.fdr < 0.5:
            raise ValueError("fdr must be in (0, 0.5)")
        if self.cusum_k < 0 or self.cusum_h <= 0:
            raise ValueError("cusum_k must not be negative and cusum_h must be positive")
        if self.excursion_limit < 1:
            raise ValueError("excursion_limit must be at least 1")
        if self.min_samples < 2:
            raise ValueError("min_samples must be at least 2")

    def unpaired(self, feature: str) -> bool:
        """Whether the feature's keys are tested unpaired (its case ids never repeat)."""
        return feature in self.unpaired_features

    def for_scorer(self, scorer: str, observed: Iterable[float] = ()) -> ScorerPolicy:
        """The scorer's override, else the defaults of its inferred scale."""
        override = self.scorers.get(scorer)
        if override is not None:
            return override
        return self.judge if infer_scale(observed) == "judge" else self.pass_rate


DEFAULT_POLICY = RegressionPolicy()


@dataclass(frozen=True, slots=True)
class Incident:
    """An open incident of one key: since which run, of what kind, how low it went."""

    opened_run_id: str
    kind: IncidentKind
    worst_difference: float
    """The lowest paired mean difference alerted so far (negative)."""
    baseline_run_ids: tuple[str, ...] = ()
    """The known-good runs the incident is measured against, frozen when it opened:
    the pool of a drop, the pre-excursion reference of a drift."""


@dataclass(frozen=True, slots=True)
class KeyState:
    """What a key's stored decision carries forward to the next run."""

    known_good: bool
    cusum: float = 0.0
    incident: Incident | None = None


@dataclass(frozen=True, slots=True)
class RunScores:
    """One run as the detector sees it."""

    run_id: str
    suite: str
    run_type: RunType
    completeness: float
    aggregates: Mapping[ScoreKey, ScoreAggregate]
    case_scores: Mapping[ScoreKey, Mapping[str, float]] = field(default_factory=dict)
    """Per key: case id -> score, scored cases only."""
    anchor_scores: Mapping[ScoreKey, Mapping[str, float]] = field(default_factory=dict)
    """Per key: anchor id -> the judge's score of that frozen output."""
    states: Mapping[ScoreKey, KeyState] | None = None
    """The stored decision state per key; None for a run decided before
    decisions were stored (then a complete scheduled run counts as known-good)."""

    @classmethod
    def build(
        cls,
        run_id: str,
        suite: str,
        run_type: RunType,
        completeness: float,
        aggregates: Iterable[ScoreAggregate],
        case_scores: Mapping[ScoreKey, Mapping[str, float]] | None = None,
        *,
        anchor_scores: Mapping[ScoreKey, Mapping[str, float]] | None = None,
        states: Mapping[ScoreKey, KeyState] | None = None,
    ) -> RunScores:
        """Index aggregates by key.

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
        return cls(
            run_id,
            suite,
            run_type,
            completeness,
            indexed,
            dict(case_scores or {}),
            dict(anchor_scores or {}),
            None if states is None else dict(states),
        )


class DecisionKind(StrEnum):
    """What was concluded about one key of one run."""

    REGRESSED = "regressed"
    """A significant fall of at least the minimum effect (or a further fall in an incident)."""
    DRIFTING = "drifting"
    """The sequential detector found a sustained decline."""
    STILL_REGRESSED = "still_regressed"
    """An open incident, still down, not lower than alerted: nobody is told again."""
    RECOVERED = "recovered"
    """An open incident whose score is back at the known-good level."""
    NOT_SIGNIFICANT = "not_significant"
    """Compared with the known-good baseline; no regression."""
    INSUFFICIENT_EVIDENCE = "insufficient_evidence"
    """Too few paired cases (or too little history) for any fall to be significant."""
    NO_BASELINE = "no_baseline"
    """No known-good run measured this key yet; this run starts the baseline."""
    BASELINE_RESET = "baseline_reset"
    """The fingerprint changed (dataset, rubric, judge model, target): a fresh start."""
    JUDGE_DRIFT = "judge_drift"
    """The anchors moved: the judge changed, and the target's fall is confounded by it."""
    INCOMPLETE = "incomplete"
    """The run, or this key of it, is below the completeness floor."""
    NO_SCORES = "no_scores"
    """No case of this key was scored."""


ALERTING_KINDS = frozenset({DecisionKind.REGRESSED, DecisionKind.DRIFTING})


@dataclass(frozen=True, slots=True)
class AnchorCheck:
    """The judge canary of one key in one run."""

    n_paired: int
    mean_difference: float
    p_value: float
    """Two-sided exact p of the anchors' shift."""
    p_adjusted: float
    drifted: bool


@dataclass(frozen=True, slots=True)
class Decision:
    """One key of one run: the conclusion, and the numbers a person needs to check it."""

    feature: str
    scorer: str
    kind: DecisionKind
    message: str
    rule: Literal["drop", "drift"] | None = None
    """Which rule fired, for regressed and drifting."""
    current: float | None = None
    """Paired current mean (the run's mean when nothing was paired)."""
    baseline: float | None = None
    """Paired known-good mean."""
    mean_difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    n_paired: int = 0
    baseline_run_ids: tuple[str, ...] = ()
    fallen: tuple[CaseDrop, ...] = ()
    """Every paired case whose score is below its known-good level, worst first."""
    cusum: float = 0.0
    anchor: AnchorCheck | None = None
    corrected_difference: float | None = None
    """The target's fall minus the anchors' (difference in differences), under judge drift."""
    incident: Incident | None = None
    """The key's open incident after this run, if any."""
    transition: Transition | None = None
    known_good: bool = False
    """Whether this run joins the key's known-good baseline."""

    @property
    def key(self) -> ScoreKey:
        """(feature, scorer)."""
        return (self.feature, self.scorer)

    @property
    def alerting(self) -> bool:
        """Whether this decision is news to a person (an incident opened or worsened)."""
        return self.transition in ("opened", "worsened")

    def state(self) -> KeyState:
        """What the next run's decision reads back."""
        return KeyState(self.known_good, self.cusum, self.incident)


@dataclass(frozen=True, slots=True)
class RunDecision:
    """Every key of one run, decided as one family."""

    suite: str
    run_id: str
    candidate: bool
    """Decided as a candidate (a manual run, the CI gate): no incidents, never a baseline."""
    correction: Correction
    family_size: int
    decisions: tuple[Decision, ...]

    def for_key(self, feature: str, scorer: str) -> Decision | None:
        """The decision of one key, if the run has it."""
        return next((d for d in self.decisions if d.key == (feature, scorer)), None)

    @property
    def regressions(self) -> tuple[Decision, ...]:
        """Keys that regressed or drift in this run (opened or worsened; for a candidate, found)."""
        return tuple(d for d in self.decisions if d.kind in ALERTING_KINDS)
