"""The ``continuous-eval`` command line.

Exit codes are part of the interface, since the CLI doubles as a CI gate:

- 0: every run succeeded (cases may still have errors; they are reported),
- 1: a run failed or was inconclusive, or the database could not be used,
- 2: invalid input: a bad config, dataset or setting, an unknown suite or run, a bad flag,
- 3: with ``--fail-on-regression``, a key regressed against its baseline,
- 4: with ``--require-baseline`` too, there was no baseline to compare with.

One module per group of commands; ``app`` holds the Typer app they register
on. Commands import what they need when they run, so ``--help`` and an
offline ``run`` never load the web stack, Alembic or the provider SDKs.
"""

from __future__ import annotations

from continuous_eval.cli import (
    admin,
    agreement,
    backtest,
    decisions,
    eval_sets,
    evaluators,
    jobs,
    run,
    traces,
    views,
)
from continuous_eval.cli.app import app

__all__ = ["app", "main"]

del (
    admin,
    agreement,
    backtest,
    decisions,
    eval_sets,
    evaluators,
    jobs,
    run,
    traces,
    views,
)  # imported for the commands they register


def main() -> None:
    """Entry point of the ``continuous-eval`` console script."""
    app(prog_name="continuous-eval")
