"""The evaluator generation job: labelled examples in, a tested, stored evaluator version out.

The steps, each reported through ``JobProgress`` (so ``GET /api/jobs/{id}/events``
shows them and a cancel stops the job at the next one):

1. ``fetching examples``: the eval set's labelled cases as of now, split
   into training and held-out (``core.evaluator_prompt.split_cases``);
2. ``calling the model``: the author writes ``score(output, case)``;
3. ``validating``: the static check (``core.code_check``). Code that fails it
   is never stored: the model is asked once more with the problems listed,
   and if that code fails too the job fails with every problem in its
   message, so whoever reads the job sees what the model got wrong;
4. ``testing``: the code runs on every held-out case in the sandbox (an
   errored case counts as a disagreement);
5. ``saving``: a new version with the code, the model, the prompt, the metrics
   and the job id.

Learned code never runs outside an isolated sandbox unless the operator
allowed it (``allow_unisolated``); the job refuses with ``SandboxUnavailable``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import JsonValue

from continuous_eval.core.code_check import check_code
from continuous_eval.core.evaluator_prompt import (
    GENERATE_JOB_KIND,
    AuthoredCode,
    EvaluatorPrompt,
    ReferenceCase,
    Split,
    build_prompt,
    case_mapping,
    held_out_metrics,
    split_cases,
)
from continuous_eval.core.evaluators import (
    EVALUATOR_REF,
    EvaluatorMetrics,
    LearnedEvaluator,
    NewEvaluator,
)
from continuous_eval.core.labels import EvalSet
from continuous_eval.core.sandboxing import SandboxOutcome, SandboxProgram
from continuous_eval.errors import EvaluatorGenerationError, SandboxUnavailable
from continuous_eval.ports import Clock
from continuous_eval.ports.evaluators import EvaluatorAuthor, EvaluatorStore
from continuous_eval.ports.jobs import JobProgress
from continuous_eval.ports.labels import EvalSetStore
from continuous_eval.ports.sandbox import Sandbox

STEPS = ("fetching examples", "calling the model", "validating", "testing", "saving")
"""The steps a generation reports, in order."""

__all__ = ["GENERATE_JOB_KIND", "STEPS", "EvaluatorGeneration", "GenerationParams", "result_json"]

_MIN_CASES = 2


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """What a generation job is asked: ``{eval_set, name?, seed?, model?, job_id?}``."""

    eval_set: str | int
    """The set's name, or its id (the API's ``/api/eval-sets/{id}/generate``)."""
    name: str | None = None
    """The evaluator's name; the eval set's name when none."""
    seed: int = 0
    model: str | None = None
    job_id: int | None = None
    """The job's id, stored with the version; the runner or the route adds it."""

    @classmethod
    def from_json(cls, params: Mapping[str, JsonValue]) -> GenerationParams:
        """Read the job's parameters; raises ``ValueError`` naming the bad one."""
        eval_set = params.get("eval_set")
        if isinstance(eval_set, bool) or not isinstance(eval_set, str | int) or eval_set == "":
            raise ValueError("'eval_set' must be an eval set's name or id")
        name = params.get("name")
        if name is not None and (not isinstance(name, str) or not _valid_name(name)):
            raise ValueError(
                f"'name' {name!r} must be letters, digits, '_', '.', '-' (at most 100)"
            )
        seed = params.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError("'seed' must be an integer")
        model = params.get("model")
        if model is not None and (not isinstance(model, str) or not model):
            raise ValueError("'model' must be a model id")
        job_id = params.get("job_id")
        if job_id is not None and (isinstance(job_id, bool) or not isinstance(job_id, int)):
            raise ValueError("'job_id' must be an integer")
        return cls(eval_set=eval_set, name=name, seed=seed, model=model, job_id=job_id)


def _valid_name(name: str) -> bool:
    return EVALUATOR_REF.match(f"{name}@1") is not None


@dataclass(frozen=True, slots=True)
class _Written:
    authored: AuthoredCode
    prompt: EvaluatorPrompt
    attempts: int


class EvaluatorGeneration:
    """The ``JobHandler`` of evaluator generation: call it with the job's params and progress.

    Args:
        eval_sets: Where the labelled cases are.
        evaluators: Where the version is stored.
        author: The model that writes the code.
        sandbox: Where the code runs on the held-out cases.
        clock: "Now" for the labels read (as of the job's start).
        allow_unisolated: Run on a sandbox that is not isolated (the operator's
            explicit choice, or a test's in-process fake).
        retry_invalid: Ask the model once more when its code fails the check.
    """

    def __init__(
        self,
        eval_sets: EvalSetStore,
        evaluators: EvaluatorStore,
        author: EvaluatorAuthor,
        sandbox: Sandbox,
        clock: Clock,
        *,
        allow_unisolated: bool = False,
        retry_invalid: bool = True,
    ) -> None:
        self._eval_sets = eval_sets
        self._evaluators = evaluators
        self._author = author
        self._sandbox = sandbox
        self._clock = clock
        self._allow_unisolated = allow_unisolated
        self._retry_invalid = retry_invalid

    async def __call__(self, params: Mapping[str, JsonValue], progress: JobProgress) -> JsonValue:
        """Run one generation; the result is the stored version's summary (``result_json``)."""
        made = await self.generate(GenerationParams.from_json(params), progress)
        return result_json(made)

    async def generate(self, params: GenerationParams, progress: JobProgress) -> LearnedEvaluator:
        """Run the five steps and return the stored version.

        Raises:
            EvaluatorGenerationError: too few labelled cases, or code that fails the check.
            EvaluatorAuthorError: the model call failed.
            SandboxUnavailable: the sandbox is not isolated and that was not allowed.
            LookupError: no such eval set.
            JobCancelled: the job was cancelled (from ``progress.step``).
        """
        if not self._sandbox.isolated and not self._allow_unisolated:
            raise SandboxUnavailable(
                "learned evaluator code would run without isolation; refusing to test it "
                "(install bubblewrap, or allow unisolated learned code explicitly)"
            )
        await progress.step(STEPS[0], 0.0, f"reading eval set {params.eval_set!r}")
        eval_set = self._find_eval_set(params.eval_set)
        split = self._split(eval_set, params.seed)
        name = params.name or eval_set.name
        if not _valid_name(name):
            raise EvaluatorGenerationError(
                f"eval set name {name!r} is not a valid evaluator name; pass a name"
            )
        written = await self._write(eval_set, split, params.model, progress)
        metrics = await self._test(written.authored.code, split, progress)
        await progress.step(STEPS[4], 0.95, f"storing a new version of {name}")
        return self._evaluators.add_evaluator(
            NewEvaluator(
                name=name,
                eval_set=eval_set.name,
                code=written.authored.code,
                model=written.authored.model,
                prompt=written.prompt.as_text(),
                metrics=metrics,
                job_id=params.job_id if params.job_id is not None else progress.job_id,
                details={
                    "seed": params.seed,
                    "explanation": written.authored.explanation,
                    "attempts": written.attempts,
                    "held_out": [c.case.case_id for c in split.held_out],
                    "dropped_ties": split.dropped,
                    "input_tokens": written.authored.input_tokens,
                    "output_tokens": written.authored.output_tokens,
                },
            )
        )

    def _find_eval_set(self, ref: str | int) -> EvalSet:
        found = (
            self._eval_sets.eval_set_by_id(ref)
            if isinstance(ref, int)
            else self._eval_sets.eval_set(ref)
        )
        if found is None:
            raise LookupError(f"no eval set {ref!r}")
        return found

    def _split(self, eval_set: EvalSet, seed: int) -> Split:
        cases = self._eval_sets.labelled_cases(eval_set.id, as_of=self._clock.now())
        split = split_cases(cases, eval_set.scale, seed=seed)
        if not split.train or not split.held_out:
            usable = len(split.train) + len(split.held_out)
            raise EvaluatorGenerationError(
                f"eval set {eval_set.name!r} has {usable} labelled case(s) with a consensus; "
                f"a generation needs at least {_MIN_CASES} (one to train on, one to test)"
            )
        return split

    async def _write(
        self, eval_set: EvalSet, split: Split, model: str | None, progress: JobProgress
    ) -> _Written:
        prompt = build_prompt(eval_set.name, eval_set.scale, split.train)
        chosen = model or self._author.default_model
        attempts = 2 if self._retry_invalid else 1
        problems: tuple[str, ...] = ()
        for attempt in range(1, attempts + 1):
            await progress.step(
                STEPS[1],
                0.1 + 0.2 * (attempt - 1),
                f"asking {chosen} (attempt {attempt} of {attempts}, "
                f"{len(split.train)} training cases)",
            )
            authored = await self._author.write_evaluator(prompt, model)
            await progress.step(STEPS[2], 0.45, "checking the code statically")
            problems = tuple(str(p) for p in check_code(authored.code))
            if not problems:
                return _Written(authored, prompt, attempt)
            prompt = _retry_prompt(prompt, problems)
        raise EvaluatorGenerationError(
            f"the model's code failed validation after {attempts} attempt(s): "
            + "; ".join(problems),
            problems,
        )

    async def _test(self, code: str, split: Split, progress: JobProgress) -> EvaluatorMetrics:
        program = SandboxProgram(code)
        total = len(split.held_out)
        pairs: list[tuple[ReferenceCase, SandboxOutcome]] = []
        for index, reference in enumerate(split.held_out):
            await progress.step(
                STEPS[3], 0.5 + 0.4 * index / total, f"held-out case {index + 1} of {total}"
            )
            outcome = await self._sandbox.score(
                program, reference.case.output, case_mapping(reference.case)
            )
            pairs.append((reference, outcome))
        return held_out_metrics(pairs, train_cases=len(split.train))


def _retry_prompt(prompt: EvaluatorPrompt, problems: tuple[str, ...]) -> EvaluatorPrompt:
    listed = "\n".join(f"- {p}" for p in problems)
    return EvaluatorPrompt(
        prompt.system,
        prompt.user
        + "\n\nYour previous code was rejected by the checks, for these reasons:\n"
        + listed
        + "\nWrite it again without them.",
    )


def result_json(made: LearnedEvaluator) -> dict[str, JsonValue]:
    """What a generation job returns: the version and its held-out figures."""
    metrics = made.evaluator.metrics
    return {
        "name": made.evaluator.name,
        "version": made.version,
        "ref": made.ref,
        "eval_set": made.evaluator.eval_set,
        "model": made.evaluator.model,
        "accuracy": metrics.accuracy,
        "precision": metrics.precision,
        "recall": metrics.recall,
        "train_cases": metrics.train_cases,
        "test_cases": metrics.test_cases,
        "errors": metrics.errors,
        "contradictions": len(metrics.contradictions),
    }
