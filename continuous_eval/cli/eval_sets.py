"""``eval-sets``: labelled examples from the command line (import, list, show, fill)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from continuous_eval.cli.app import EXIT_BAD_INPUT, EXIT_RUN_FAILED, JsonOption, app
from continuous_eval.cli.output import emit_json, fail, line, load_settings
from continuous_eval.core.labels import LabelScale
from continuous_eval.errors import ConfigError, ContinuousEvalError

eval_sets_app = typer.Typer(
    help="Eval sets: cases people labelled, to check judges against.", no_args_is_help=True
)
app.add_typer(eval_sets_app, name="eval-sets")


class Scale(enum.StrEnum):
    """The ``--scale`` choices (``core.labels.LabelScale``)."""

    pass_fail = "pass_fail"  # noqa: S105 - a scale's name, not a password
    one_to_five = "1-5"


@eval_sets_app.command("import")
def import_eval_set(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV or JSONL: case_id (or id), input, output, expected, label, author, "
            "comment, metadata.KEY; one row per case and label."
        ),
    ],
    eval_set: Annotated[str, typer.Option("--eval-set", help="The set to import into.")],
    scale: Annotated[
        Scale | None,
        typer.Option(help="pass_fail (pass/fail/true/false/1/0) or 1-5; default pass_fail."),
    ] = None,
    create: Annotated[bool, typer.Option("--create", help="Create the set if missing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Import cases and labels into an eval set, all or nothing.

    Every row is checked first: a bad row imports nothing and exits 2, naming
    the file, the line and the problem. Labels are added, never replaced: a
    re-import adds each label again as the author's latest.
    """
    from continuous_eval.app.eval_sets import eval_sets_side, import_file

    settings = load_settings()
    try:
        with eval_sets_side(settings) as (store, _):
            outcome = import_file(
                file,
                store,
                eval_set,
                scale=_label_scale(scale),
                create=create,
            )
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except ContinuousEvalError as exc:
        fail(str(exc), EXIT_RUN_FAILED)
    if as_json:
        emit_json(
            {
                "eval_set": outcome.eval_set.name,
                "id": outcome.eval_set.id,
                "created": outcome.created,
                "rows": outcome.rows,
                "cases_new": outcome.cases_new,
                "cases_updated": outcome.cases_updated,
                "labels": outcome.labels,
            }
        )
        return
    made = " (created)" if outcome.created else ""
    line(
        f"{file}: {outcome.rows} rows into {outcome.eval_set.name}{made}: "
        f"{outcome.cases_new} new cases, {outcome.cases_updated} updated, "
        f"{outcome.labels} labels"
    )


def _label_scale(scale: Scale | None) -> LabelScale | None:
    if scale is None:
        return None
    return "1-5" if scale is Scale.one_to_five else "pass_fail"


@eval_sets_app.command("list")
def list_eval_sets(as_json: JsonOption = False) -> None:
    """List the eval sets, with their scale and the feature that fills them."""
    from continuous_eval.app.eval_sets import eval_sets_side

    settings = load_settings()
    try:
        with eval_sets_side(settings) as (store, _):
            sets = store.list_eval_sets()
    except ContinuousEvalError as exc:
        fail(str(exc), EXIT_RUN_FAILED)
    if as_json:
        emit_json(
            [{"id": s.id, "name": s.name, "scale": s.scale, "feature": s.feature} for s in sets]
        )
        return
    if not sets:
        line("no eval sets (create one with `eval-sets import FILE --eval-set NAME --create`)")
    for s in sets:
        filled = f", filled from feedback on {s.feature}" if s.feature else ""
        line(f"{s.name} (id {s.id}): {s.scale}{filled}")


@eval_sets_app.command("show")
def show_eval_set(
    name: Annotated[str, typer.Argument(help="The eval set.")],
    limit: Annotated[int, typer.Option(min=0, help="Cases listed (0: only the totals).")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Show a set's labelled cases: labels per case, authors, and the consensus distribution."""
    from continuous_eval.app.eval_sets import eval_sets_side
    from continuous_eval.core.label_summary import consensus_name, summary

    settings = load_settings()
    try:
        with eval_sets_side(settings) as (store, _):
            found = store.eval_set(name)
            if found is None:
                fail(f"no eval set {name!r}", EXIT_BAD_INPUT)
            shown = summary(found, store.labelled_cases(found.id))
    except ContinuousEvalError as exc:
        fail(str(exc), EXIT_RUN_FAILED)
    scale = shown.eval_set.scale
    if as_json:
        emit_json(
            {
                "id": shown.eval_set.id,
                "name": shown.eval_set.name,
                "scale": scale,
                "feature": shown.eval_set.feature,
                "labelled_cases": len(shown.cases),
                "authors": shown.authors,
                "consensus": shown.distribution,
                "cases": [
                    {
                        "case_id": c.case_id,
                        "labels": c.labels,
                        "authors": list(c.authors),
                        "consensus": c.consensus,
                    }
                    for c in shown.cases
                ],
            }
        )
        return
    head = f"{shown.eval_set.name} (id {shown.eval_set.id})"
    line(f"{head}: {scale}, {len(shown.cases)} labelled cases")
    authors = ", ".join(f"{a} ({n})" for a, n in shown.authors.items()) or "none"
    line(f"authors: {authors}")
    spread = ", ".join(f"{v}: {n}" for v, n in shown.distribution.items()) or "none"
    line(f"consensus: {spread}")
    for c in shown.cases[:limit]:
        agreed = consensus_name(scale, c.consensus)
        line(f"  {c.case_id}: {c.labels} labels ({', '.join(c.authors)}), consensus {agreed}")
    if len(shown.cases) > limit > 0:
        line(f"  ... {len(shown.cases) - limit} more (--limit)")


@eval_sets_app.command("fill")
def fill_eval_set(
    name: Annotated[str, typer.Argument(help="An eval set created with a feature.")],
    as_json: JsonOption = False,
) -> None:
    """Fill a set from the feedback on its feature's traces, from where it left off."""
    from continuous_eval.app.eval_sets import eval_sets_side, fill_one

    settings = load_settings()
    try:
        with eval_sets_side(settings) as (store, traffic):
            done = fill_one(store, traffic, name)
    except (LookupError, ValueError) as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except ContinuousEvalError as exc:
        fail(str(exc), EXIT_RUN_FAILED)
    if as_json:
        emit_json(
            {
                "eval_set": done.eval_set,
                "labels": done.labels,
                "cases": done.cases,
                "skipped": done.skipped,
                "missing": done.missing,
            }
        )
        return
    line(
        f"{done.eval_set}: {done.labels} labels on {done.cases} cases from feedback; "
        f"{done.skipped} skipped (off the scale), {done.missing} on traces no longer stored"
    )
