"""A learned evaluator as a ``CaseScorer``: its stored code, run in the sandbox.

The code is a model's, so it never runs in this process: every case goes
through the ``Sandbox`` port, and whatever the code does (raise, loop,
allocate, crash, flood) comes back as an outcome. A limit hit or a crash is
the case's *error* with the reason, e.g. "hit its memory limit (256 MB)",
never a zero and never an exception that ends the run. A value is mapped to
a score exactly as a python scorer's (``python_scorer.outcome_from_value``);
a number returned without ``passed`` passes at ``pass_threshold``.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from continuous_eval.adapters.python_scorer import outcome_from_value
from continuous_eval.core.evaluators import LearnedEvaluator
from continuous_eval.core.models import ScoreOutcome
from continuous_eval.core.sandboxing import SandboxLimits, SandboxOutcome, SandboxProgram
from continuous_eval.core.suite import Case, LearnedScorer, scorer_name
from continuous_eval.errors import ScorerError
from continuous_eval.ports.sandbox import Sandbox

__all__ = ["LearnedCaseScorer", "describe_failure"]


class LearnedCaseScorer:
    """One promoted version of a learned evaluator, scoring cases in ``sandbox``."""

    def __init__(
        self,
        config: LearnedScorer,
        evaluator: LearnedEvaluator,
        sandbox: Sandbox,
        limits: SandboxLimits,
    ) -> None:
        self.config = config
        self.name: str = scorer_name(config)
        self.ref = evaluator.ref
        self.program = SandboxProgram(source=evaluator.evaluator.code)
        self._sandbox = sandbox
        self._limits = limits

    @property
    def code_sha256(self) -> str:
        """The version's code hash: part of the scorer's fingerprint."""
        return hashlib.sha256(self.program.source.encode()).hexdigest()

    async def score(self, output: str, case: Case) -> ScoreOutcome:
        """Run the code on one case; ``ScorerError`` with the reason when it did not score."""
        outcome = await self._sandbox.score(self.program, output, case.model_dump(mode="json"))
        if not outcome.ok:
            raise ScorerError(describe_failure(self.ref, outcome, self._limits))
        result = outcome_from_value(
            _named_rationale(outcome.value), f"learned evaluator {self.ref}"
        )
        if result.passed is None:
            result = replace(result, passed=result.score >= self.config.pass_threshold)
        return result

    def __repr__(self) -> str:
        return f"LearnedCaseScorer({self.name!r}, {self.ref!r})"


def _named_rationale(value: Any) -> Any:
    # Generated code often says "reason"; it is the rationale, not an unknown key.
    if isinstance(value, dict) and "reason" in value and "rationale" not in value:
        value = {("rationale" if k == "reason" else k): v for k, v in value.items()}
    return value


def describe_failure(ref: str, outcome: SandboxOutcome, limits: SandboxLimits) -> str:
    """The error a case records when the code did not return a score, and why."""
    what = f"learned evaluator {ref}"
    detail = outcome.error or "no detail"
    messages = {
        "memory": f"{what} hit its memory limit ({limits.memory_mb} MB)",
        "cpu": f"{what} hit its CPU time limit ({limits.cpu_s:g} s)",
        "timeout": f"{what} hit its wall time limit ({limits.wall_s:g} s)",
        "output": f"{what} exceeded its output limit ({limits.output_bytes} bytes)",
        "exception": f"{what} raised {detail}",
        "invalid": f"{what} returned no score: {detail}",
        "crash": f"{what} crashed: {detail}",
        "refused": f"{what} was not run: {detail}",
    }
    return messages.get(outcome.reason, f"{what} failed ({outcome.reason}): {detail}")
