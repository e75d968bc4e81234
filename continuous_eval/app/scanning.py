"""Validate a suite's datasets end to end and fingerprint them, before any run is created.

A bad row at line 19,000 stops the run before any money is spent and no run
is left ``running``; the fingerprints say which earlier runs are comparable.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from continuous_eval.adapters.suite_files import (
    LoadedSuites,
    iter_cases,
    load_suite_file,
    scan_dataset,
)
from continuous_eval.core.fingerprint import FeatureFingerprint, hash_json
from continuous_eval.core.online_cases import cases_from_sample, span_limit, traces_window
from continuous_eval.core.suite import (
    ANCHOR_SUFFIX,
    LABELS_SUFFIX,
    Case,
    Feature,
    FrozenTarget,
    LlmJudgeScorer,
    PythonScorer,
    PythonTarget,
    Scorer,
    Suite,
    TracesDataset,
    scorer_name,
)
from continuous_eval.errors import ConfigError
from continuous_eval.ports.interactions import InteractionStore
from continuous_eval.ports.labels import EvalSetStore
from continuous_eval.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScannedFeature:
    """A feature whose dataset has been read through once and found valid."""

    name: str
    feature: Feature
    case_count: int
    fingerprint: FeatureFingerprint
    cases: tuple[Case, ...] | None = None
    """An online feature's sampled cases (read once, so every pass over the
    plan's cases sees the same ones); None for a dataset file, re-read each time."""


@dataclass(frozen=True)
class ScannedSuite:
    """A suite ready to be built into a plan: every selected dataset validated."""

    name: str
    suite: Suite
    features: tuple[ScannedFeature, ...]


def load_suites(path: Path) -> LoadedSuites:
    """Read and validate a suite file (not its datasets: ``scan_suites`` reads those).

    Raises:
        ConfigError: The file is missing, is not valid YAML, or breaks the schema.
    """
    return load_suite_file(path)


def select_suites(loaded: LoadedSuites, suite: str | None) -> list[str]:
    """Return the suites to run: the one named, or all of them in file order."""
    names = list(loaded.suites.suites)
    if suite is None:
        return names
    if suite not in loaded.suites.suites:
        raise ConfigError(
            loaded.file, "suites", f"no suite named {suite!r} (have: {', '.join(names)})"
        )
    return [suite]


def _scorer_hash(scorer: Scorer, judge_model: str) -> str:
    # What is measured, not how alerts are tuned: a new threshold keeps the baseline.
    payload = scorer.model_dump(mode="json", by_alias=True, exclude={"regression_drop"})
    if isinstance(scorer, LlmJudgeScorer):
        payload["model"] = scorer.model or judge_model
        if not scorer.trajectory:
            # Judges configured before the option existed keep their fingerprint.
            del payload["trajectory"]
    return hash_json(payload)


def scan_suite(
    loaded: LoadedSuites,
    suite_name: str,
    features: Sequence[str],
    settings: Settings,
    *,
    traffic: InteractionStore | None = None,
    as_of: datetime | None = None,
    labels: EvalSetStore | None = None,
) -> ScannedSuite:
    """Validate a suite's selected datasets end to end (streaming) and fingerprint them.

    Called before a run is created, so a bad row at line 19,000 stops the run
    before any money is spent and no run is left ``running``.

    Args:
        loaded: The suite file.
        suite_name: The suite.
        features: The features to run; none: all of them.
        settings: For the judge model (part of a judge scorer's fingerprint).
        traffic: Where online features sample their cases. Without it (a
            start-up or ``check-config`` scan) they are validated, not sampled.
        as_of: Where an online feature's window ends: the run's scheduled time
            (a manual run: its creation); none: now. Calibrated features read
            their eval set's labels as of the same time.
        labels: The eval sets calibrated features judge (``<feature>@labels``).
            Without it (start-up, ``check-config``) no labelled case is judged.
    """
    suite = loaded.suites.suites[suite_name]
    # A run's features name its anchors and labels too (``<feature>@anchors``,
    # ``<feature>@labels``); they come with it.
    named = (f.removesuffix(ANCHOR_SUFFIX).removesuffix(LABELS_SUFFIX) for f in features)
    selected = list(dict.fromkeys(named)) or list(suite.features)
    unknown = [f for f in selected if f not in suite.features]
    if unknown:
        raise ConfigError(
            loaded.file,
            f"suites.{suite_name}.features",
            f"no feature named {unknown[0]!r} (have: {', '.join(suite.features)})",
        )
    end = as_of or datetime.now(UTC)
    scanned = []
    problems: list[ConfigError] = []
    for name in selected:
        configured = suite.features[name]
        anchors = configured.anchor_feature()
        parts = [(name, configured, "dataset")]
        if anchors is not None:
            parts.append((name + ANCHOR_SUFFIX, anchors, "anchors"))
        for run_name, feature, field in parts:
            where = f"suites.{suite_name}.features.{name}.{field}"
            try:
                item = _scan_feature(loaded, run_name, feature, where, settings, traffic, end)
                scanned.append(item)
            except ConfigError as exc:
                problems.append(exc)  # every dataset's first problem, in one report
        if labels is not None and configured.calibration is not None:
            judged = labelled_feature(name, configured, labels, as_of, settings)
            if judged is not None:
                scanned.append(judged)
    if problems:
        raise ConfigError.combine(problems)
    return ScannedSuite(suite_name, suite, tuple(scanned))


def _scan_feature(
    loaded: LoadedSuites,
    run_name: str,
    feature: Feature,
    where: str,
    settings: Settings,
    traffic: InteractionStore | None,
    as_of: datetime,
) -> ScannedFeature:
    dataset = feature.dataset
    cases: tuple[Case, ...] | None = None
    if isinstance(dataset, TracesDataset):
        # Fingerprinted by its configuration, not its cases: every online run
        # scores other interactions, and they are comparable as long as the
        # window, the sample, the target and the scorers are the same.
        digest = hash_json(dataset.model_dump(mode="json"))
        cases = sample_cases(traffic, dataset, as_of) if traffic is not None else None
        count = len(cases) if cases is not None else dataset.sample.max
    else:
        scan = scan_dataset(dataset, loaded.base_dir, config_file=loaded.path, where=where)
        if isinstance(feature.target, FrozenTarget):
            _check_frozen_outputs(loaded, feature, where)
        digest, count = scan.sha256, scan.count
    fp = FeatureFingerprint(
        feature=run_name,
        dataset=digest,
        target=hash_json(feature.target.model_dump(mode="json")),
        scorers={scorer_name(s): _scorer_hash(s, settings.judge_model) for s in feature.scorers},
    )
    return ScannedFeature(run_name, feature, count, fp, cases)


def labelled_feature(
    name: str,
    configured: Feature,
    labels: EvalSetStore,
    as_of: datetime | None,
    settings: Settings,
) -> ScannedFeature | None:
    """The ``<name>@labels`` feature: the eval set's labelled cases as of ``as_of``, frozen.

    Fingerprinted by a hash of the set's cases and the labels in force, so a
    relabelled set starts a new series. None when the set does not exist (yet)
    or has no labelled case: calibration never stops the product's own run.
    """
    assert configured.calibration is not None
    eval_set = labels.eval_set(configured.calibration.eval_set)
    if eval_set is None:
        log.warning(
            "feature %s: no eval set named %r; its judges are not calibrated this run",
            name,
            configured.calibration.eval_set,
            extra={"event": "calibration_skipped", "feature": name},
        )
        return None
    labelled = labels.labelled_cases(eval_set.id, as_of)
    if not labelled:
        return None
    cases = [
        Case(
            id=item.case.case_id,
            input=item.case.input,
            expected=item.case.expected,
            metadata=item.case.metadata,
            output=item.case.output,
            trace_id=item.case.trace_id,
        )
        for item in labelled
    ]
    feature = configured.labels_feature(cases)
    assert feature is not None
    identity: list[dict[str, object]] = [
        {
            "id": item.case.case_id,
            "input": item.case.input,
            "output": item.case.output,
            "expected": item.case.expected,
            "labels": [{"author": x.label.author, "value": x.label.value} for x in item.labels],
        }
        for item in labelled
    ]
    digest = hash_json({"eval_set": eval_set.name, "scale": eval_set.scale, "cases": identity})
    run_name = name + LABELS_SUFFIX
    fp = FeatureFingerprint(
        feature=run_name,
        dataset=digest,
        target=hash_json(feature.target.model_dump(mode="json")),
        scorers={scorer_name(s): _scorer_hash(s, settings.judge_model) for s in feature.scorers},
    )
    return ScannedFeature(run_name, feature, len(cases), fp, tuple(cases))


def sample_cases(
    traffic: InteractionStore, dataset: TracesDataset, as_of: datetime
) -> tuple[Case, ...]:
    """An online feature's cases: the window's sampled interactions, one case per trace."""
    start, end = traces_window(dataset, as_of)
    limit = span_limit(dataset)
    rows = traffic.sample(dataset.feature, start, end, dataset.sample.rate, limit)
    return tuple(cases_from_sample(rows, dataset.sample.max, truncated=len(rows) >= limit))


def _check_frozen_outputs(loaded: LoadedSuites, feature: Feature, where: str) -> None:
    """Every case of a frozen target needs its ``output``; say which one has none."""
    for case in iter_cases(feature.dataset, loaded.base_dir, config_file=loaded.path, where=where):
        if case.output is None:
            raise ConfigError(loaded.file, f"{where} case {case.id!r}", "has no 'output' to score")


def scan_suites(
    loaded: LoadedSuites, names: Sequence[str], features: Sequence[str], settings: Settings
) -> list[ScannedSuite]:
    """Scan several suites, reporting the problems of all of them at once."""
    scanned, problems = [], []
    for name in names:
        try:
            scanned.append(scan_suite(loaded, name, features, settings))
        except ConfigError as exc:
            problems.append(exc)
    if problems:
        raise ConfigError.combine(problems)
    return scanned


def import_callables(loaded: LoadedSuites, scanned: Sequence[ScannedSuite]) -> None:
    """Import every Python target and scorer the suites name, reporting all failures at once.

    ``check-config`` uses it to prove a suite file runnable without building
    clients (and so without an API key).
    """
    problems = []
    for suite in scanned:
        for item in suite.features:
            where = f"suites.{suite.name}.features.{item.name}"
            specs = []
            if isinstance(item.feature.target, PythonTarget):
                specs.append((item.feature.target.callable, f"{where}.target.callable"))
            for i, scorer in enumerate(item.feature.scorers):
                if isinstance(scorer, PythonScorer):
                    specs.append((scorer.callable, f"{where}.scorers[{i}].callable"))
            for spec, location in specs:
                try:
                    loaded.import_callable(spec, location)
                except ConfigError as exc:
                    problems.append(exc)
    if problems:
        raise ConfigError.combine(problems)
