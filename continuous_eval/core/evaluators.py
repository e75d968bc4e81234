"""Learned evaluators: scoring functions a model wrote from labelled examples.

Pure records and rules. Each generation of an evaluator from an eval set is a
new *version* of a named evaluator, stored with everything needed to trust or
reproduce it: the code, the model and prompt that wrote it, and how well it
agreed with people's labels on cases it was not shown (the held-out split).
A suite uses one by name and version (``type: learned, evaluator: NAME@3``);
only a promoted version runs, and a version whose held-out accuracy is under
the floor cannot be promoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import JsonValue

EVALUATOR_REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]{0,99})@(?P<version>[1-9][0-9]*)$")
"""``NAME@VERSION`` as a suite file writes it."""


@dataclass(frozen=True, slots=True)
class Contradiction:
    """A held-out case where the evaluator and the people disagree."""

    case_id: str
    label: float
    """The people's consensus (1/0, or 1-5)."""
    value: JsonValue
    """What the evaluator returned (or the error it hit, as a string)."""


@dataclass(frozen=True, slots=True)
class EvaluatorMetrics:
    """Agreement of an evaluator with the labels of the held-out split."""

    accuracy: float
    precision: float | None
    """Of the cases it passed, the share people passed; none when it passed none."""
    recall: float | None
    """Of the cases people passed, the share it passed; none when people passed none."""
    train_cases: int
    test_cases: int
    errors: int = 0
    """Held-out cases where the code failed (counted as disagreements)."""
    contradictions: tuple[Contradiction, ...] = ()


@dataclass(frozen=True, slots=True)
class NewEvaluator:
    """A generated evaluator, before it has a version."""

    name: str
    eval_set: str
    code: str
    model: str
    prompt: str
    metrics: EvaluatorMetrics
    job_id: int | None = None
    details: dict[str, JsonValue] = field(default_factory=dict)
    """Anything else worth keeping: the split's seed, the model's own notes."""


@dataclass(frozen=True, slots=True)
class LearnedEvaluator:
    """A stored version of an evaluator."""

    version: int
    """1, 2, 3, ... per name, in order of generation."""
    evaluator: NewEvaluator
    created_at: datetime
    promoted_at: datetime | None = None

    @property
    def ref(self) -> str:
        """``NAME@VERSION``."""
        return f"{self.evaluator.name}@{self.version}"

    @property
    def promoted(self) -> bool:
        """Whether suites may run it."""
        return self.promoted_at is not None


def parse_ref(ref: str) -> tuple[str, int]:
    """Split ``NAME@VERSION``; raises ``ValueError`` naming the expected form."""
    match = EVALUATOR_REF.match(ref)
    if match is None:
        raise ValueError(f"evaluator {ref!r} is not NAME@VERSION (e.g. tone@3)")
    return match["name"], int(match["version"])


def promotion_problem(metrics: EvaluatorMetrics, floor: float) -> str | None:
    """Why a version cannot be promoted (held-out accuracy under ``floor``), or none."""
    if metrics.test_cases == 0:
        return "it was tested on no held-out cases"
    if metrics.accuracy < floor:
        return f"held-out accuracy {metrics.accuracy:.3f} is under the floor {floor:.3f}"
    return None
