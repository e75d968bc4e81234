"""Wire learned evaluators: their store for the CLI, and the generation job's handler.

``evaluators_side`` opens the configured store (``evaluators list``, ``show``,
``promote``). ``generation_handler`` builds the ``JobHandler`` of
``GENERATE_JOB_KIND`` from the stores and sandbox the caller already has
(``serve``'s job runner; the ``generate`` command), and ``generate`` runs one
generation in this process with a step callback, as ``evaluators generate``
does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from pydantic import JsonValue

from continuous_eval.adapters.clock import SystemClock
from continuous_eval.adapters.db.evaluators import SqlEvaluatorStore
from continuous_eval.adapters.db.labels import SqlEvalSetStore
from continuous_eval.app.container import open_store
from continuous_eval.core.evaluators import LearnedEvaluator, parse_ref
from continuous_eval.ports import Clock
from continuous_eval.ports.evaluators import EvaluatorStore
from continuous_eval.ports.jobs import JobHandler, JobProgress
from continuous_eval.ports.labels import EvalSetStore
from continuous_eval.ports.sandbox import Sandbox
from continuous_eval.service.evaluator_generation import EvaluatorGeneration, GenerationParams
from continuous_eval.settings import Settings

__all__ = [
    "GenerationParams",
    "evaluators_side",
    "find_version",
    "generate",
    "generate_here",
    "generation_handler",
    "generation_job",
]

if TYPE_CHECKING:
    # The SDK's types take seconds to import: only a generation needs them, so
    # ``serve`` (which wires the job's handler at start) does not pay for them.
    from anthropic import AsyncAnthropic
    from sqlalchemy import Engine

StepCallback = Callable[[str, float, str], Awaitable[None]]
"""``on_step(name, progress, message)``: what the CLI shows as the job goes."""


@contextlib.contextmanager
def evaluators_side(settings: Settings) -> Iterator[EvaluatorStore]:
    """Open the configured store of learned evaluators; close it after.

    Raises:
        ContinuousEvalError: The database could not be opened (``open_store``).
    """
    engine, store = open_store(settings)
    try:
        yield SqlEvaluatorStore(engine)
    finally:
        store.close()
        engine.dispose()


def generation_handler(
    settings: Settings,
    *,
    eval_sets: EvalSetStore,
    evaluators: EvaluatorStore,
    sandbox: Sandbox,
    client: AsyncAnthropic,
    clock: Clock,
    allow_unisolated: bool = False,
) -> EvaluatorGeneration:
    """The handler of generation jobs, with Claude (``evaluator_author_model``) as the author."""
    from continuous_eval.adapters.evaluator_author import AnthropicEvaluatorAuthor

    author = AnthropicEvaluatorAuthor(client, settings.evaluator_author_model)
    return EvaluatorGeneration(
        eval_sets, evaluators, author, sandbox, clock, allow_unisolated=allow_unisolated
    )


class _Steps:
    """A ``JobProgress`` that forwards every step to a callback (nothing cancels it)."""

    def __init__(self, on_step: StepCallback) -> None:
        self._on_step = on_step

    @property
    def job_id(self) -> None:
        """Not a stored job: the terminal runs it."""
        return None

    async def step(self, name: str, progress: float, message: str = "") -> None:
        await self._on_step(name, progress, message)


async def generate(
    settings: Settings,
    params: GenerationParams,
    on_step: StepCallback,
    *,
    eval_sets: EvalSetStore,
    evaluators: EvaluatorStore,
    sandbox: Sandbox,
    clock: Clock,
    allow_unisolated: bool = False,
) -> LearnedEvaluator:
    """Run one generation here (not as a stored job) and return the stored version.

    Raises:
        ConfigError: No Anthropic API key.
        ContinuousEvalError: The generation failed (see ``EvaluatorGeneration.generate``).
        LookupError: No such eval set.
    """
    from continuous_eval.adapters.anthropic_client import make_anthropic_client

    client = make_anthropic_client(settings)
    try:
        handler = generation_handler(
            settings,
            eval_sets=eval_sets,
            evaluators=evaluators,
            sandbox=sandbox,
            client=client,
            clock=clock,
            allow_unisolated=allow_unisolated,
        )
        return await handler.generate(params, _Steps(on_step))
    finally:
        await client.close()


def generation_job(settings: Settings, engine: Engine) -> JobHandler:
    """The handler ``serve`` runs for ``GENERATE_JOB_KIND`` jobs, on the run store's database.

    Each job gets a sandbox and an Anthropic client of its own, closed when it
    ends: a job is rare and minutes long, and a sandbox that does not work here
    (``SandboxUnavailable``, with how to fix it) or a missing API key
    (``ConfigError``) fails that job with the reason instead of stopping ``serve``.
    """

    async def run(params: Mapping[str, JsonValue], progress: JobProgress) -> JsonValue:
        from continuous_eval.adapters.anthropic_client import make_anthropic_client
        from continuous_eval.adapters.sandbox import make_sandbox

        sandbox = make_sandbox(settings)
        try:
            client = make_anthropic_client(settings)
            try:
                handler = generation_handler(
                    settings,
                    eval_sets=SqlEvalSetStore(engine),
                    evaluators=SqlEvaluatorStore(engine),
                    sandbox=sandbox,
                    client=client,
                    clock=SystemClock(),
                    allow_unisolated=settings.allow_unsandboxed,
                )
                return await handler(params, progress)
            finally:
                await client.close()
        finally:
            await sandbox.aclose()

    return run


async def generate_here(
    settings: Settings, params: GenerationParams, on_step: StepCallback
) -> LearnedEvaluator:
    """``evaluators generate``: one generation in this process on the configured database,
    its held-out cases run in the configured sandbox.

    Raises:
        SandboxUnavailable: No working sandbox, and ``allow_unsandboxed`` is off.
        ConfigError: No Anthropic API key.
        ContinuousEvalError: The generation failed.
        LookupError: No such eval set.
    """
    from continuous_eval.adapters.sandbox import make_sandbox

    engine, store = open_store(settings)
    try:
        sandbox = make_sandbox(settings)
        try:
            return await generate(
                settings,
                params,
                on_step,
                eval_sets=SqlEvalSetStore(engine),
                evaluators=SqlEvaluatorStore(engine),
                sandbox=sandbox,
                clock=SystemClock(),
                allow_unisolated=settings.allow_unsandboxed,
            )
        finally:
            await sandbox.aclose()
    finally:
        store.close()
        engine.dispose()


def find_version(store: EvaluatorStore, ref: str) -> LearnedEvaluator:
    """``NAME@V``, or ``NAME`` for its latest version.

    Raises:
        ValueError: ``ref`` is not ``NAME`` or ``NAME@V``.
        LookupError: No such evaluator or version.
    """
    if "@" in ref:
        name, version = parse_ref(ref)
        found = store.evaluator(name, version)
        if found is None:
            raise LookupError(f"no evaluator {ref}")
        return found
    versions = store.list_evaluators(ref)
    if not versions:
        raise LookupError(f"no evaluator named {ref!r}")
    return versions[-1]
