"""``evaluators``: learned evaluators from the command line (``list``, ``show``, ``promote``).

A learned evaluator is scoring code Claude wrote from an eval set's labels;
each generation is a version, and only a promoted one runs in suites. A
version whose held-out accuracy is under ``CONTINUOUS_EVAL_EVALUATOR_MIN_ACCURACY``
cannot be promoted: ``promote`` exits 2 with the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from continuous_eval.cli.app import EXIT_BAD_INPUT, EXIT_RUN_FAILED, JsonOption, app
from continuous_eval.cli.output import (
    emit_json,
    fail,
    jsonable,
    line,
    load_settings,
    print_unclipped,
)
from continuous_eval.errors import ConfigError, ContinuousEvalError

if TYPE_CHECKING:
    from continuous_eval.core.evaluators import LearnedEvaluator

evaluators_app = typer.Typer(
    help="Learned evaluators: scoring code written from labelled examples.",
    no_args_is_help=True,
)
app.add_typer(evaluators_app, name="evaluators")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _document(made: LearnedEvaluator, *, whole: bool) -> dict[str, object]:
    new = made.evaluator
    document: dict[str, object] = {
        "ref": made.ref,
        "name": new.name,
        "version": made.version,
        "eval_set": new.eval_set,
        "model": new.model,
        "job_id": new.job_id,
        "created_at": jsonable(made.created_at),
        "promoted_at": jsonable(made.promoted_at),
        "metrics": jsonable(new.metrics),
    }
    if whole:
        document.update(code=new.code, prompt=new.prompt, details=jsonable(new.details))
    return document


@evaluators_app.command("list")
def list_evaluators(
    name: Annotated[str | None, typer.Option("--name", help="Only this evaluator.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List every version with its held-out accuracy and whether it is promoted."""
    from continuous_eval.app.evaluators import evaluators_side

    settings = load_settings()
    try:
        with evaluators_side(settings) as store:
            versions = store.list_evaluators(name)
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except ContinuousEvalError as exc:
        fail(str(exc), EXIT_RUN_FAILED)
    if as_json:
        emit_json([_document(v, whole=False) for v in versions])
        return
    if not versions:
        line("no learned evaluators yet (continuous-eval evaluators generate --eval-set S)")
        return
    table = Table("evaluator", "eval set", "model", "accuracy", "held out", "promoted")
    for made in versions:
        metrics = made.evaluator.metrics
        table.add_row(
            made.ref,
            made.evaluator.eval_set,
            made.evaluator.model,
            _percent(metrics.accuracy),
            str(metrics.test_cases),
            "yes" if made.promoted else "no",
        )
    print_unclipped(table)


@evaluators_app.command("generate")
def generate(
    eval_set: Annotated[
        str, typer.Option("--eval-set", help="The labelled eval set to learn from.")
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="The evaluator's name (default: the set's).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the train/held-out split.")] = 0,
    model: Annotated[
        str | None, typer.Option("--model", help="The model that writes the code.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Ask Claude for a scoring function from the set's training split, check it, test it
    on the held-out split in the sandbox, and store it as the next version (not promoted)."""
    import asyncio

    from continuous_eval.app.evaluators import GenerationParams, generate_here

    settings = load_settings()

    async def on_step(step: str, progress: float, message: str) -> None:
        if not as_json:
            line(f"[{progress:4.0%}] {step}: {message}" if message else f"[{progress:4.0%}] {step}")

    params = GenerationParams(eval_set=eval_set, name=name, seed=seed, model=model)
    try:
        made = asyncio.run(generate_here(settings, params, on_step))
    except (ValueError, LookupError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except ContinuousEvalError as exc:
        fail(str(exc), EXIT_RUN_FAILED)
    if as_json:
        emit_json(_document(made, whole=False))
        return
    metrics = made.evaluator.metrics
    line(
        f"stored {made.ref}: held-out accuracy {_percent(metrics.accuracy)} on "
        f"{metrics.test_cases} cases, {len(metrics.contradictions)} contradictions; "
        f"promote it with: continuous-eval evaluators promote {made.ref}"
    )


@evaluators_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION, or NAME for its latest version.")],
    as_json: JsonOption = False,
) -> None:
    """Show one version: its code, model, agreement with the labels and contradictions."""
    from continuous_eval.app.evaluators import evaluators_side, find_version

    settings = load_settings()
    try:
        with evaluators_side(settings) as store:
            made = find_version(store, ref)
    except (ValueError, LookupError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except ContinuousEvalError as exc:
        fail(str(exc), EXIT_RUN_FAILED)
    if as_json:
        emit_json(_document(made, whole=True))
        return
    metrics = made.evaluator.metrics
    promoted = f"yes, at {made.promoted_at:%Y-%m-%d %H:%M}" if made.promoted_at else "no"
    for text in (
        f"evaluator {made.ref} (eval set {made.evaluator.eval_set})",
        f"model:          {made.evaluator.model}",
        f"created:        {made.created_at:%Y-%m-%d %H:%M} UTC",
        f"promoted:       {promoted}",
        f"accuracy:       {_percent(metrics.accuracy)} on {metrics.test_cases} held-out "
        f"cases ({metrics.train_cases} trained on, {metrics.errors} errored)",
        f"precision:      {_percent(metrics.precision)}",
        f"recall:         {_percent(metrics.recall)}",
        f"contradictions: {len(metrics.contradictions)}",
    ):
        line(text)
    for contradiction in metrics.contradictions:
        line(
            f"  {contradiction.case_id}: label {contradiction.label:g}, got {contradiction.value!r}"
        )
    line("")
    line(made.evaluator.code.rstrip("\n"))


@evaluators_app.command("promote")
def promote(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION to let suites run.")],
    as_json: JsonOption = False,
) -> None:
    """Let suites run a version (``type: learned, evaluator: NAME@V``).

    Refused (exit 2) when its held-out accuracy is under
    CONTINUOUS_EVAL_EVALUATOR_MIN_ACCURACY.
    """
    from continuous_eval.app.evaluators import evaluators_side
    from continuous_eval.core.evaluators import parse_ref

    settings = load_settings()
    try:
        name, version = parse_ref(ref)
        with evaluators_side(settings) as store:
            made = store.promote(name, version, settings.evaluator_min_accuracy)
    except (ValueError, LookupError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except ContinuousEvalError as exc:
        fail(str(exc), EXIT_RUN_FAILED)
    if as_json:
        emit_json(_document(made, whole=False))
    else:
        line(f"{made.ref} promoted (held-out accuracy {_percent(made.evaluator.metrics.accuracy)})")
