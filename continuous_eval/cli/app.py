"""The Typer app every command registers on, and the options they share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from continuous_eval import __version__

app = typer.Typer(
    name="continuous-eval",
    help="Run LLM eval suites, store every result, and watch quality over time.",
    no_args_is_help=True,
    # `--install-completion` / `--show-completion` for bash, zsh, fish and PowerShell.
    add_completion=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")

EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_REGRESSED = 3
EXIT_NO_BASELINE = 4

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Suite file (default: $CONTINUOUS_EVAL_CONFIG_PATH or config/suites.yaml).",
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option(
        "--json", help="Print one JSON document on stdout (full ids, no tables) for scripts."
    ),
]


class CliState:
    """What the root options set for the command that runs after them."""

    verbose: bool = False


state = CliState()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"continuous-eval {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log at INFO (CONTINUOUS_EVAL_LOG_LEVEL).")
    ] = False,
) -> None:
    # Logging is configured by each command once its settings are read
    # (output.load_settings), so a bad setting is reported before anything else.
    state.verbose = verbose
