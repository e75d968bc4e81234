"""The read-only commands: ``runs``, ``show`` and ``trend``, as tables or as JSON."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from continuous_eval.cli.app import EXIT_BAD_INPUT, EXIT_RUN_FAILED, JsonOption, app
from continuous_eval.cli.decisions import decisions_document, print_decisions
from continuous_eval.cli.output import (
    emit_json,
    fail,
    jsonable,
    line,
    load_settings,
    out,
    print_unclipped,
    run_line,
    score_table,
)
from continuous_eval.errors import ContinuousEvalError, RunNotFound

if TYPE_CHECKING:
    from continuous_eval.ports import RunReader, RunStore

MIN_PREFIX = 4
"""Shortest id prefix accepted in place of a whole run id (as git takes commits)."""


@contextlib.contextmanager
def read_store() -> Iterator[tuple[RunReader, RunStore]]:
    """Open the configured store and its reader; a database error exits 1 with one line.

    Shared by every command that only reads (``show``, ``compare``, ``alerts backtest``).
    """
    from continuous_eval.app.container import read_side

    settings = load_settings()
    try:
        with read_side(settings) as opened:
            yield opened
    except ContinuousEvalError as exc:
        fail(str(exc), EXIT_RUN_FAILED)


def resolve_run_id(store: RunStore, given: str) -> str:
    """Return the run id ``given`` names: the id itself, or a unique prefix of one.

    Exits 2 with the candidates when the prefix is ambiguous, too short, or
    matches nothing.
    """
    try:
        return store.get_run(given).id
    except RunNotFound:
        pass
    if len(given) < MIN_PREFIX:
        fail(f"no run with id {given!r} (a prefix needs {MIN_PREFIX} characters)", EXIT_BAD_INPUT)
    matches = store.run_ids_starting(given, limit=6)
    if not matches:
        fail(f"no run with id {given!r}", EXIT_BAD_INPUT)
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        fail(f"run id prefix {given!r} is ambiguous: {shown}", EXIT_BAD_INPUT)
    return matches[0]


@app.command("runs")
def list_runs(
    suite: Annotated[str | None, typer.Option("--suite", "-s", help="Only this suite.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
    as_json: JsonOption = False,
) -> None:
    """List recent runs, newest first (full ids; `show` takes any unique prefix)."""
    with read_store() as (_, store):
        runs = store.list_runs(suite=suite, limit=limit)
    if as_json:
        from continuous_eval.app.documents import run_json

        emit_json({"runs": [run_json(r) for r in runs]})
        return
    # Like `kubectl get`: columns never cut or wrapped (the id is what `show` and
    # the API take); a terminal too narrow wraps whole lines instead.
    table = Table(title="runs", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("run id", "suite", "type", "status", "started", "cases", "errors"):
        table.add_column(column, no_wrap=True)
    for r in runs:
        table.add_row(
            r.id,
            r.suite,
            r.run_type,
            str(r.status),
            r.started_at.strftime("%m-%d %H:%M") if r.started_at else "–",
            f"{r.cases_done}/{r.cases_total}",
            Text(str(r.errored), style="red" if r.errored else ""),
        )
    print_unclipped(table)


@app.command("show")
def show(
    run_id: Annotated[
        str, typer.Argument(help="A run id printed by `run` or `runs`, or a unique prefix of it.")
    ],
    worst: Annotated[int, typer.Option("--worst", min=0, max=1000, help="Worst cases shown.")] = 10,
    decisions: Annotated[
        bool,
        typer.Option(
            "--decisions",
            help="Also show the stored regression decision of every feature x scorer, "
            "and every case that fell.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Show one run: its status, its scores and its worst cases (and, asked, its decisions)."""
    with read_store() as (_, store):
        found = store.get_run(resolve_run_id(store, run_id))
        aggregates = store.get_aggregates(found.id)
        worst_rows = store.worst_results(found.id, worst) if worst else []
        stored = store.get_decisions(found.id) if decisions else []
    if as_json:
        from continuous_eval.app.documents import run_detail_json

        document = run_detail_json(found, aggregates)
        document["worst"] = jsonable(worst_rows)
        if decisions:
            document.update(decisions_document(found, stored))
        emit_json(document)
        return
    line(run_line(found))
    line(f"fingerprint {found.fingerprint}")
    out.print(score_table(aggregates, "scores"))
    if worst_rows:
        table = Table(title=f"worst {len(worst_rows)} results", title_justify="left")
        for column in ("feature", "case", "scorer", "score", "why"):
            table.add_column(column, overflow="fold")
        for row in worst_rows:
            why = row.error or row.rationale or ""
            table.add_row(
                row.feature,
                Text(row.case_id),
                row.scorer,
                Text("error", style="red") if row.score is None else f"{row.score:g}",
                Text(why[:200]),
            )
        out.print(table)
    if decisions:
        print_decisions(found, stored)


@app.command("trend")
def trend(
    suite: Annotated[str | None, typer.Option("--suite", "-s", help="Only this suite.")] = None,
    feature: Annotated[
        str | None, typer.Option("--feature", "-f", help="Only this feature.")
    ] = None,
    scorer: Annotated[str | None, typer.Option("--scorer", help="Only this scorer.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="Rows shown.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Show the score trend of scheduled runs, newest first (what the drift endpoint serves)."""

    with read_store() as (reader, _):
        points = reader.eval_trend(suite=suite, feature=feature, scorer=scorer, limit=limit)
    if as_json:
        from continuous_eval.app.documents import trend_point_json

        emit_json({"items": [trend_point_json(p) for p in points]})
        return
    table = Table(title="score trend of scheduled runs", title_justify="left")
    for column in ("slot", "suite", "feature", "scorer", "score", "± stderr", "n", "errors"):
        table.add_column(column, justify="right" if column in ("n", "errors") else "left")
    table.add_column("status")
    table.add_column("run id", no_wrap=True)
    table.add_column("fingerprint")
    for p in points:
        table.add_row(
            p.scheduled_for.strftime("%Y-%m-%d %H:%M") if p.scheduled_for else "–",
            p.suite,
            p.feature,
            p.scorer,
            "–" if p.score is None else f"{p.score:.3f}",
            "–" if p.stderr is None else f"{p.stderr:.3f}",
            str(p.n),
            Text(str(p.errors), style="red" if p.errors else ""),
            str(p.status),
            p.run_id,
            (p.fingerprint or "–")[:12],
        )
    print_unclipped(table)
    if not points:
        line("no scheduled run has scores yet")
