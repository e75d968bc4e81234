"""Fingerprints: what a score was measured against.

Two runs are only comparable when they graded the same cases, with the same
scorer (rubric and judge model), against the same target configuration. The
regression detector compares runs with equal fingerprints only; a changed
fingerprint is a baseline reset, not a regression.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass


def hash_json(value: object) -> str:
    """Return the sha256 hex digest of a value's canonical JSON form."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class FeatureFingerprint:
    """Component hashes of one feature."""

    feature: str
    dataset: str
    """sha256 over the cases, in order."""
    target: str
    """Hash of the target configuration."""
    scorers: Mapping[str, str]
    """Scorer name -> hash of its configuration (the rubric, and the effective judge model)."""


@dataclass(frozen=True, slots=True)
class RunFingerprint:
    """The run's overall fingerprint, one per feature x scorer, and the parts behind them."""

    value: str
    pairs: Mapping[tuple[str, str], str]
    parts: Mapping[str, str]


def fingerprint_run(features: list[FeatureFingerprint]) -> RunFingerprint:
    """Combine feature fingerprints into per feature x scorer values and a run value."""
    pairs: dict[tuple[str, str], str] = {}
    parts: dict[str, str] = {}
    for feat in features:
        parts[f"{feat.feature}.dataset"] = feat.dataset
        parts[f"{feat.feature}.target"] = feat.target
        for scorer, scorer_hash in feat.scorers.items():
            parts[f"{feat.feature}.scorers.{scorer}"] = scorer_hash
            pairs[(feat.feature, scorer)] = hash_json(
                {"dataset": feat.dataset, "target": feat.target, "scorer": scorer_hash}
            )
    value = hash_json(sorted([f"{f}/{s}={h}" for (f, s), h in pairs.items()]))
    return RunFingerprint(value=value, pairs=pairs, parts=parts)
