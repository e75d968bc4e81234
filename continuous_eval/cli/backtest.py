"""``continuous-eval alerts backtest``: what a detector policy would have alerted over the history.

The replay itself is ``service.backtest`` (pure over the stored runs,
reached through ``app.detector``); this module chooses the policy (the
configured one, with the flags' overrides) and prints the reports it would
have sent, one table per suite and one summary line, or one JSON document.
It reads only: nothing is sent, nothing is written, the stored decisions
are left as they are.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from continuous_eval.cli.app import EXIT_BAD_INPUT, ConfigOption, JsonOption, app
from continuous_eval.cli.output import (
    emit_json,
    fail,
    jsonable,
    line,
    load_settings,
    print_unclipped,
)
from continuous_eval.errors import ConfigError

if TYPE_CHECKING:
    from continuous_eval.app.detector import BacktestResult
    from continuous_eval.core.regression import RegressionPolicy

alerts_app = typer.Typer(
    help="What the regression detector alerts, and would have.", no_args_is_help=True
)
app.add_typer(alerts_app, name="alerts")

STYLES = {"opened": "bold red", "worsened": "red", "recovered": "green"}


def _policies(
    config: Path | None,
    suite: str | None,
    overrides: dict[str, Any],
) -> dict[str, RegressionPolicy]:
    """Each selected suite's configured policy with the overrides; exits 2 on bad input."""
    from continuous_eval.app.detector import backtest_policies

    settings = load_settings()
    try:
        return backtest_policies(settings, config or settings.config_path, suite, overrides)
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except ValueError as exc:
        fail(f"invalid policy: {exc}", EXIT_BAD_INPUT)


def _describe_policy(policy: RegressionPolicy, min_effect: float | None) -> str:
    effect = (
        f"min effect {min_effect:g} for every scorer"
        if min_effect is not None
        else "min effect per scorer as configured"
    )
    window = policy.baseline_window
    return f"fdr {policy.fdr:g} ({policy.correction}), {window} baseline runs, {effect}"


@alerts_app.command("backtest")
def backtest(
    config: ConfigOption = None,
    suite: Annotated[str | None, typer.Option("--suite", "-s", help="Only this suite.")] = None,
    fdr: Annotated[
        float | None, typer.Option("--fdr", help="The family's error level q (0 < q < 0.5).")
    ] = None,
    correction: Annotated[
        Literal["bh", "holm"] | None,
        typer.Option("--correction", help="bh: false discovery rate; holm: family-wise error."),
    ] = None,
    baseline_runs: Annotated[
        int | None,
        typer.Option("--baseline-runs", min=1, help="Known-good runs pooled into each baseline."),
    ] = None,
    min_effect: Annotated[
        float | None,
        typer.Option("--min-effect", help="The smallest fall that alerts, for every scorer."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Replay the stored scheduled runs through the detector and print what it would have alerted.

    Every succeeded scheduled run, oldest first, decided with the configured
    policy (or the flags' overrides) as if it had been in force all along:
    the stored decisions are ignored, nothing is sent or written.
    """
    from continuous_eval.app.detector import backtest as replay
    from continuous_eval.cli.views import read_store

    overrides = {
        "fdr": fdr,
        "correction": correction,
        "baseline_runs": baseline_runs,
        "min_effect": min_effect,
    }
    policies = _policies(config, suite, overrides)
    with read_store() as (_, store):
        results = [replay(store, name, policy) for name, policy in policies.items()]
    if as_json:
        emit_json({"suites": [_suite_json(r) for r in results]})
        return
    for result in results:
        _print_suite(result, min_effect)


def _n(count: int, noun: str) -> str:
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{count} {noun if count == 1 else plural}"


def _when(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M") if when is not None else "–"


def _print_suite(result: BacktestResult, min_effect: float | None) -> None:
    span = (
        f" ({_when(result.first_started_at)} .. {_when(result.last_started_at)})"
        if result.runs_replayed
        else ""
    )
    line(
        f"suite {result.suite}: {_n(result.runs_replayed, 'scheduled run')} replayed{span} with "
        + _describe_policy(result.policy, min_effect)
    )
    if result.alerted:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False)
        for column in ("time", "run id", "report", "transition", "feature", "scorer", "decision"):
            table.add_column(column, no_wrap=True)
        table.add_column("diff", justify="right", no_wrap=True)
        table.add_column("adj. p", justify="right", no_wrap=True)
        table.add_column("why", no_wrap=True)
        for run in result.alerted:
            first = True
            for report in run.reports:
                for item in report.items:
                    table.add_row(
                        _when(run.started_at) if first else "",
                        run.run_id if first else "",
                        "incident" if report.kind == "regression" else "recovery",
                        Text(item.transition or "", style=STYLES.get(item.transition or "", "")),
                        item.feature,
                        item.scorer,
                        item.kind.value,
                        "–" if item.mean_difference is None else f"{item.mean_difference:+.3f}",
                        "–" if item.p_adjusted is None else f"{item.p_adjusted:.3g}",
                        item.message,
                    )
                    first = False
        print_unclipped(table)
    keys = ", ".join(f"{f}/{s}" for f, s in result.keys_alerted) or "none"
    line(
        f"suite {result.suite}: {_n(result.runs_replayed, 'run')} replayed, "
        f"{_n(result.incident_reports, 'incident report')} "
        f"({_n(result.incidents_opened, 'incident')} opened, {result.judge_drift_opened} of them "
        f"judge drift, {result.worsened} worsened), {_n(result.recoveries, 'recovery')}; "
        f"keys ever alerted: {keys}"
    )


def _suite_json(result: BacktestResult) -> dict[str, Any]:
    from continuous_eval.app.documents import decision_json

    return {
        "suite": result.suite,
        "policy": jsonable(result.policy),
        "runs_replayed": result.runs_replayed,
        "first_started_at": jsonable(result.first_started_at),
        "last_started_at": jsonable(result.last_started_at),
        "incident_reports": result.incident_reports,
        "incidents_opened": result.incidents_opened,
        "judge_drift_opened": result.judge_drift_opened,
        "worsened": result.worsened,
        "recoveries": result.recoveries,
        "keys_alerted": [{"feature": f, "scorer": s} for f, s in result.keys_alerted],
        "runs": [
            {
                "run_id": run.run_id,
                "started_at": jsonable(run.started_at),
                "reports": [
                    {
                        "kind": report.kind,
                        "key": report.key,
                        "features": list(report.features),
                        "items": [decision_json(i) for i in report.items],
                    }
                    for report in run.reports
                ],
            }
            for run in result.alerted
        ],
    }
