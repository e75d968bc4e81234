"""What every command prints with: the consoles, errors, settings and logging, JSON, tables.

Two audiences share stdout: a person at a terminal, who gets tables sized to
the window, and a script or CI log, which gets lines that are never wrapped
or truncated (a CI job that greps the final ``run ... succeeded`` line must
find it whole) or, with ``--json``, one JSON document with full ids.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from continuous_eval.cli.app import EXIT_BAD_INPUT, state
from continuous_eval.errors import ConfigError

if TYPE_CHECKING:
    from continuous_eval.core.models import RunRecord, ScoreAggregate
    from continuous_eval.settings import Settings

UNWRAPPED_WIDTH = 4096
"""Console width when the output is not a terminal: wide enough that nothing wraps."""


def _console(*, stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    # rich assumes 80 columns when it cannot ask a terminal, and wraps there;
    # a pipe or a CI log has no width, so give it one nothing reaches.
    width = None if tty or "COLUMNS" in os.environ else UNWRAPPED_WIDTH
    return Console(stderr=stderr, width=width, soft_wrap=not tty)


out = _console(stderr=False)
err = _console(stderr=True)


def fail(message: str, code: int) -> NoReturn:
    """Print ``error:`` lines (one per line of ``message``) on stderr and exit with ``code``."""
    for line in message.splitlines() or [""]:
        err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    """Print one ``warning:`` line on stderr."""
    err.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def line(text: str) -> None:
    """Print plain text on stdout: no markup, no highlighting, never wrapped."""
    out.print(text, markup=False, highlight=False, soft_wrap=True)


def load_settings(command: Literal["serve", "command"] = "command") -> Settings:
    """Read and validate the settings, then configure logging from them.

    A bad setting exits 2 before anything is touched. Logs go to stderr at
    ``CONTINUOUS_EVAL_LOG_LEVEL``, else INFO for ``serve`` (an operator
    wants to see what the daemon does) and WARNING for the other commands
    (their output is the table), INFO with ``-v``.
    """
    from continuous_eval.app import logs
    from continuous_eval.settings import load_settings as read
    from continuous_eval.settings import mistyped_variables

    try:
        settings = read()
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    logs.configure(settings, "INFO" if command == "serve" or state.verbose else "WARNING")
    for name, meant in mistyped_variables():
        warn(f"environment: {name} is not a setting (did you mean {meant}?)")
    return settings


# ----------------------------------------------------------------------- JSON


def jsonable(value: Any) -> Any:
    """Turn records (frozen dataclasses), enums and datetimes into JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(jsonable(v) for v in value)  # a set has no order of its own
    return value


def emit_json(document: Any) -> None:
    """Write one JSON document to stdout, whole and unwrapped."""
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


# ----------------------------------------------------------------------- tables


def print_unclipped(table: Table) -> None:
    """Print a table at its natural width, even past a narrow terminal's edge.

    For listings whose cells must stay whole (ids that are copied into other
    commands): the terminal wraps an over-long line, nothing is cut.
    """
    natural = out.measure(table, options=out.options.update_width(UNWRAPPED_WIDTH)).maximum
    width = out.width
    out.width = max(width, natural)  # print(width=) is capped at the console's width
    try:
        out.print(table)
    finally:
        out.width = width


def score_table(aggregates: Iterable[ScoreAggregate], title: str) -> Table:
    """The per feature x scorer table: mean, standard error, n and errors."""
    table = Table(title=title, title_justify="left")
    table.add_column("feature")
    table.add_column("scorer")
    table.add_column("mean", justify="right")
    table.add_column("± stderr", justify="right")
    table.add_column("n", justify="right")
    table.add_column("errors", justify="right")
    for agg in aggregates:
        table.add_row(
            agg.feature,
            agg.scorer,
            "–" if agg.mean is None else f"{agg.mean:.3f}",
            "–" if agg.stderr is None else f"{agg.stderr:.3f}",
            str(agg.n),
            Text(str(agg.errors), style="red" if agg.errors else ""),
        )
    return table


def run_line(run: RunRecord) -> str:
    """The one-line summary of a run that ``run`` ends with and ``show`` starts with.

    ``errors`` counts case x scorer results, as the table and the progress bar do.
    """
    seconds = (
        (run.finished_at - run.started_at).total_seconds()
        if run.finished_at and run.started_at
        else None
    )
    took = f" in {seconds:.2f}s" if seconds is not None else ""
    cost = run.judge_usage.cost_usd + run.target_usage.cost_usd
    money = f", ${cost:.4f} spent" if cost else ""
    reason = f" ({run.status_reason})" if run.status_reason else ""
    return (
        f"run {run.id} [{run.suite}] {run.status}{reason}{took}: "
        f"{run.cases_done}/{run.cases_total} cases, {run.scored} scored, "
        f"{run.errored} errors{money}"
    )
