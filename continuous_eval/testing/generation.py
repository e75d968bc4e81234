"""Doubles for evaluator generation: a scripted author and a progress reporter that records.

``ScriptedAuthor`` answers each ``write_evaluator`` with the next code of
its script and keeps the prompts it was sent; ``RecordingProgress`` keeps
every step and can cancel the job at a given step, as a cancel through the
jobs API does; ``fill_yes_no_set`` makes an eval set ``evaluator_codes.GOOD``
agrees with.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from continuous_eval.core.evaluator_prompt import AuthoredCode, EvaluatorPrompt
from continuous_eval.core.labels import EvalCase, EvalSet, NewLabel
from continuous_eval.errors import EvaluatorAuthorError
from continuous_eval.ports.jobs import JobCancelled
from continuous_eval.ports.labels import EvalSetStore


class ScriptedAuthor:
    """An ``EvaluatorAuthor`` whose answers are the codes it was given, in order."""

    def __init__(self, codes: Iterable[str], default_model: str = "claude-test-author") -> None:
        self._codes = deque(codes)
        self._default_model = default_model
        self.prompts: list[EvaluatorPrompt] = []
        self.models: list[str | None] = []

    @property
    def default_model(self) -> str:
        """The model named when a generation names none."""
        return self._default_model

    async def write_evaluator(
        self, prompt: EvaluatorPrompt, model: str | None = None
    ) -> AuthoredCode:
        """The next scripted code; ``EvaluatorAuthorError`` when the script is used up."""
        self.prompts.append(prompt)
        self.models.append(model)
        if not self._codes:
            raise EvaluatorAuthorError("the scripted author has no code left")
        return AuthoredCode(
            code=self._codes.popleft(),
            explanation="scripted",
            model=model or self._default_model,
        )


class RecordingProgress:
    """A ``JobProgress`` that records ``(step, progress, message)`` and may cancel.

    Args:
        cancel_at: The name of a step at which ``step`` raises ``JobCancelled``.
    """

    def __init__(self, cancel_at: str | None = None, job_id: int | None = None) -> None:
        self.steps: list[tuple[str, float, str]] = []
        self._cancel_at = cancel_at
        self.job_id = job_id
        """The job it stands for (``JobProgress.job_id``)."""

    async def step(self, name: str, progress: float, message: str = "") -> None:
        """Record a step; raise ``JobCancelled`` at the configured one."""
        self.steps.append((name, progress, message))
        if name == self._cancel_at:
            raise JobCancelled(f"cancelled at {name}")

    @property
    def names(self) -> list[str]:
        """The step names in order, repeats collapsed."""
        names: list[str] = []
        for name, _, _ in self.steps:
            if not names or names[-1] != name:
                names.append(name)
        return names


def fill_yes_no_set(
    store: EvalSetStore,
    name: str = "answers",
    *,
    passes: int = 10,
    fails: int = 10,
    wrong: Iterable[str] = (),
) -> EvalSet:
    """Create a pass/fail set where people passed outputs saying "yes" and failed the rest.

    ``evaluator_codes.GOOD`` agrees with every label, except on the case ids in
    ``wrong``, whose label is flipped (a person who disagrees with the rule).
    """
    flipped = set(wrong)
    eval_set = store.create_eval_set(name, "pass_fail")
    cases = [EvalCase(f"pass-{i}", input=f"q{i}", output=f"Yes, case {i}.") for i in range(passes)]
    cases += [EvalCase(f"fail-{i}", input=f"q{i}", output=f"No idea {i}.") for i in range(fails)]
    store.put_cases(eval_set.id, cases)
    labels = [
        NewLabel(c.case_id, "ann", float(c.case_id.startswith("pass") != (c.case_id in flipped)))
        for c in cases
    ]
    store.add_labels(eval_set.id, labels)
    return eval_set
