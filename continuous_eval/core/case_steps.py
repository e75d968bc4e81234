"""A case's stored steps: the record the run store keeps of what an agent target streamed.

Pure records only. The runner stores each step as it arrives (so the run's
event stream can show it live); the API reads a case's steps back whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from continuous_eval.core.trajectory import Step


@dataclass(frozen=True, slots=True)
class StoredStep:
    """One stored step of one case of a run."""

    id: int
    """Grows with every step stored in the database: a live reader's cursor."""
    feature: str
    case_id: str
    seq: int
    """The step's position in its case, from 0."""
    step: Step
