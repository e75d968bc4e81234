"""``continuous-eval run``: run suites now, with a progress bar, a table per suite and a CI gate."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from continuous_eval.cli.app import (
    EXIT_BAD_INPUT,
    EXIT_NO_BASELINE,
    EXIT_REGRESSED,
    EXIT_RUN_FAILED,
    ConfigOption,
    JsonOption,
    app,
)
from continuous_eval.cli.output import (
    emit_json,
    err,
    fail,
    jsonable,
    line,
    load_settings,
    out,
    run_line,
    score_table,
)
from continuous_eval.core.models import RunRecord, RunStatus, ScoreAggregate
from continuous_eval.errors import ConfigError, ContinuousEvalError

if TYPE_CHECKING:
    from continuous_eval.core.regression import Decision, RunDecision
    from continuous_eval.settings import Settings


class _RateColumn(ProgressColumn):
    """Cases per second, from rich's own speed estimate."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f} cases/s" if speed else "– cases/s", style="cyan")


class _ProgressObserver:
    """Feeds the runner's progress into a rich progress bar.

    ``errors`` counts case x scorer results that errored, the same count as
    the table's errors column and the run line.
    """

    def __init__(self, progress: Progress, task_id: TaskID) -> None:
        self._progress = progress
        self._task = task_id
        self.errors = 0

    def case_finished(self, feature: str, case_id: str, errors: int) -> None:
        self.errors += errors
        self._progress.update(self._task, advance=1, errors=self.errors)


@dataclass
class _Finished:
    """One suite's run as it ended, with what the CI gate found."""

    run: RunRecord
    aggregates: list[ScoreAggregate]
    decision: RunDecision | None = None
    """The gate's decisions, when it ran."""

    @property
    def regressions(self) -> list[Decision]:
        """Keys that regressed against the baseline."""
        return [] if self.decision is None else list(self.decision.regressions)

    @property
    def compared(self) -> bool:
        """Whether any key had a baseline to be compared with."""
        return self.decision is not None and any(
            d.baseline_run_ids for d in self.decision.decisions
        )


async def _run_suites(
    settings: Settings,
    config: Path,
    suite: str | None,
    features: list[str],
    *,
    gate: bool,
    show: bool,
    baseline: str | None = None,
) -> list[_Finished]:
    from continuous_eval.app.config import regression_policies
    from continuous_eval.app.container import local_daemon
    from continuous_eval.app.detector import gate_decision
    from continuous_eval.app.scanning import load_suites, scan_suites, select_suites
    from continuous_eval.cli.views import resolve_run_id

    loaded = load_suites(config)
    names = select_suites(loaded, suite)
    if features and len(names) != 1:
        raise ConfigError(str(config), "--feature", "give --suite when selecting features")
    # Validate every selected dataset before the first run starts.
    scanned = scan_suites(loaded, names, features, settings)
    finished: list[_Finished] = []
    policies = regression_policies(settings, loaded)
    # The same path as the daemon's manual runs: gate, lock, lease, fenced writes.
    async with local_daemon(settings, loaded) as (daemon, store, builder):
        # Import callables and check the API key before any run starts.
        builder.build_all(scanned)
        base = None if baseline in (None, "scheduled") else resolve_run_id(store, baseline)
        for item in scanned:
            with _progress() as progress:
                total = sum(f.case_count for f in item.features)
                task = progress.add_task(item.name, total=total, errors=0)
                observer = _ProgressObserver(progress, task)
                done = await daemon.run_now(item.name, [f.name for f in item.features], observer)
            result = _Finished(done, store.get_aggregates(done.id))
            if show:
                out.print(score_table(result.aggregates, f"suite {done.suite}"))
                line(run_line(done))
            if gate and done.status is RunStatus.SUCCEEDED:
                result.decision = gate_decision(
                    store, done, result.aggregates, policies[done.suite], baseline_run_id=base
                )
                if show:
                    _print_gate(result, base)
            finished.append(result)
    return finished


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("cases"),
        TextColumn("[red]{task.fields[errors]} errors"),
        _RateColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def _print_gate(result: _Finished, baseline: str | None) -> None:
    against = f"run {baseline}" if baseline else "the known-good scheduled baseline"
    if not result.compared:
        line(
            f"no comparable baseline for suite {result.run.suite}: nothing was compared "
            "(no known-good scheduled run with the same fingerprint); "
            "--require-baseline makes this exit 4"
        )
        return
    if not result.regressions:
        line(f"no regression against {against}")
        return
    table = Table(title=f"regressions against {against}", title_justify="left")
    for column in (
        "feature",
        "scorer",
        "decision",
        "baseline",
        "current",
        "diff",
        "adj. p",
        "fell",
    ):
        table.add_column(column)
    for d in result.regressions:
        table.add_row(
            d.feature,
            d.scorer,
            d.kind.value,
            "–" if d.baseline is None else f"{d.baseline:.3f}",
            "–" if d.current is None else f"{d.current:.3f}",
            Text("–" if d.mean_difference is None else f"{d.mean_difference:+.3f}", style="red"),
            "–" if d.p_adjusted is None else f"{d.p_adjusted:.3g}",
            f"{len(d.fallen)} of {d.n_paired}",
        )
    out.print(table)


def _document(finished: Sequence[_Finished], gate: bool) -> dict[str, Any]:
    from continuous_eval.app.documents import run_detail_json

    runs = []
    for item in finished:
        entry = run_detail_json(item.run, item.aggregates)
        if gate:
            entry["compared"] = item.compared
            entry["regressions"] = jsonable(item.regressions)
            entry["decisions"] = jsonable(list(item.decision.decisions) if item.decision else [])
        runs.append(entry)
    return {"runs": runs}


@app.command()
def run(
    config: ConfigOption = None,
    suite: Annotated[str | None, typer.Option("--suite", "-s", help="Run only this suite.")] = None,
    feature: Annotated[
        list[str] | None,
        typer.Option("--feature", "-f", help="Run only this feature (repeatable)."),
    ] = None,
    fail_on_regression: Annotated[
        bool,
        typer.Option(
            "--fail-on-regression",
            help="Exit 3 when a score fell against the baseline (a CI gate).",
        ),
    ] = False,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            help="Compare with this run (id or unique prefix) instead of the known-good "
            "scheduled runs ('scheduled', the default).",
        ),
    ] = None,
    require_baseline: Annotated[
        bool,
        typer.Option(
            "--require-baseline",
            help="With --fail-on-regression: exit 4 when there is nothing to compare with.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Run eval suites now, with a progress bar, then print a summary per feature x scorer."""
    settings = load_settings()
    path = config or settings.config_path
    try:
        finished = asyncio.run(
            _run_suites(
                settings,
                path,
                suite,
                feature or [],
                gate=fail_on_regression,
                show=not as_json,
                baseline=baseline,
            )
        )
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        fail("interrupted; the run was recorded as cancelled", 130)
    except ContinuousEvalError as exc:
        fail(str(exc), EXIT_RUN_FAILED)
    if as_json:
        emit_json(_document(finished, fail_on_regression))
    if any(f.run.status is not RunStatus.SUCCEEDED for f in finished):
        raise typer.Exit(EXIT_RUN_FAILED)
    if any(f.regressions for f in finished):
        raise typer.Exit(EXIT_REGRESSED)
    if fail_on_regression and require_baseline and not all(f.compared for f in finished):
        raise typer.Exit(EXIT_NO_BASELINE)
