"""``traces``: recorded traffic from the command line (``traces import FILE.jsonl``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from continuous_eval.cli.app import EXIT_BAD_INPUT, EXIT_RUN_FAILED, JsonOption, app
from continuous_eval.cli.output import emit_json, fail, line, load_settings
from continuous_eval.errors import ConfigError, ContinuousEvalError

traces_app = typer.Typer(
    help="Recorded production traffic (online evaluation).", no_args_is_help=True
)
app.add_typer(traces_app, name="traces")


@traces_app.command("import")
def import_traces(
    file: Annotated[
        Path,
        typer.Argument(help="JSONL: one interaction per line, as a POST /api/traces item."),
    ],
    as_json: JsonOption = False,
) -> None:
    """Store a file of interactions in the configured database, once each.

    Every line is checked first: a bad line stores nothing and exits 2,
    naming the file and the line. Importing the same file again stores
    nothing new.
    """
    from continuous_eval.app.container import interactions_side
    from continuous_eval.app.traces import import_file

    settings = load_settings()
    try:
        with interactions_side(settings) as store:
            outcome = import_file(file, store)
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except ContinuousEvalError as exc:
        fail(str(exc), EXIT_RUN_FAILED)
    if as_json:
        emit_json({"stored": outcome.stored, "duplicates": outcome.duplicates})
    else:
        line(f"{file}: {outcome.stored} stored, {outcome.duplicates} already stored")
