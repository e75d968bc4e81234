"""The ``continuous-eval`` command line.

Exit codes are part of the interface, since the CLI doubles as a CI gate:

- 0: every run succeeded (cases may still have errors; they are reported),
- 1: a run failed, or the database could not be used,
- 2: invalid input: a bad config or dataset, an unknown suite, a bad flag,
- 3: with ``--fail-on-regression``, a score fell against the latest scheduled baseline.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from continuous_eval import __version__
from continuous_eval.core.models import Regression, RunRecord, RunStatus, ScoreAggregate
from continuous_eval.errors import ConfigError, ContinuousEvalError, RunNotFound
from continuous_eval.settings import Settings, load_settings, mistyped_variables

app = typer.Typer(
    name="continuous-eval",
    help="Run LLM eval suites, store every result, and watch quality over time.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)

EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_REGRESSED = 3

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Suite file (default: $CONTINUOUS_EVAL_CONFIG_PATH or config/suites.yaml).",
    ),
]


def _fail(message: str, code: int) -> NoReturn:
    # One "error:" line per problem: a ConfigError lists all it found, one a line.
    for line in message.splitlines() or [""]:
        err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _settings() -> Settings:
    try:
        settings = load_settings()
    except ConfigError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    for name, meant in mistyped_variables():
        err.print(
            f"warning: environment: {name} is not a setting (did you mean {meant}?)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return settings


def _version(value: bool) -> None:
    if value:
        out.print(f"continuous-eval {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs whole request URLs at INFO; a Slack webhook URL is a secret.
    for noisy in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# ----------------------------------------------------------------------------- run


class _RateColumn(ProgressColumn):
    """Cases per second, from rich's own speed estimate."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f} cases/s" if speed else "– cases/s", style="cyan")


class _ProgressObserver:
    """Feeds the runner's progress into a rich progress bar."""

    def __init__(self, progress: Progress, task_id: object) -> None:
        self._progress = progress
        self._task = task_id
        self.errors = 0

    def case_finished(self, feature: str, case_id: str, errored: bool) -> None:
        if errored:
            self.errors += 1
        self._progress.update(self._task, advance=1, errors=self.errors)  # type: ignore[arg-type]


def _score_table(aggregates: list[ScoreAggregate], title: str) -> Table:
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


def _run_line(run: RunRecord) -> str:
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


async def _run_suites(
    settings: Settings,
    config: Path,
    suite: str | None,
    features: list[str],
    gate: bool = False,
) -> tuple[list[RunRecord], list[Regression]]:
    from continuous_eval.adapters.suite_files import load_suite_file
    from continuous_eval.bootstrap import (
        local_daemon,
        regression_policies,
        scan_suites,
        select_suites,
    )
    from continuous_eval.service.detection import detect_run

    loaded = load_suite_file(config)
    names = select_suites(loaded, suite)
    if features and len(names) != 1:
        raise ConfigError(str(config), "--feature", "give --suite when selecting features")
    # Validate every selected dataset before the first run starts.
    scanned = scan_suites(loaded, names, features, settings)
    finished: list[RunRecord] = []
    fell: list[Regression] = []
    policies = regression_policies(settings, loaded)
    # The same path as the daemon's manual runs: gate, lock, lease, fenced writes.
    async with local_daemon(settings, loaded) as (daemon, store, builder):
        # Import callables and check the API key before any run starts.
        builder.build_all(scanned)
        for item in scanned:
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("cases"),
                TextColumn("[red]{task.fields[errors]} errors"),
                _RateColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=False,
            ) as progress:
                total = sum(f.case_count for f in item.features)
                task = progress.add_task(item.name, total=total, errors=0)
                observer = _ProgressObserver(progress, task)
                done = await daemon.run_now(item.name, [f.name for f in item.features], observer)
            finished.append(done)
            aggregates = store.get_aggregates(done.id)
            out.print(_score_table(aggregates, f"suite {done.suite}"))
            out.print(_run_line(done), highlight=False, markup=False)
            if gate and done.status is RunStatus.SUCCEEDED:
                result = detect_run(
                    store, done, aggregates, policies[done.suite], as_candidate=True
                )
                fell.extend(result.regressions)
                _print_gate(result.regressions, [n.message for n in result.notes])
    return finished, fell


def _print_gate(regressions: Sequence[Regression], notes: Sequence[str]) -> None:
    if not regressions:
        baseline = [n for n in notes if "baseline" in n]
        why = f" ({baseline[0]})" if baseline else ""
        out.print(f"no regression against the latest scheduled baseline{why}", markup=False)
        return
    table = Table(title="regressions against the latest scheduled baseline", title_justify="left")
    for column in ("feature", "scorer", "rule", "baseline", "current", "delta", "p"):
        table.add_column(column)
    for r in regressions:
        table.add_row(
            r.feature,
            r.scorer,
            r.rule,
            f"{r.baseline:.3f}",
            f"{r.current:.3f}",
            Text(f"{r.delta:+.3f}", style="red"),
            "–" if r.p_value is None else f"{r.p_value:.3g}",
        )
    out.print(table)


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
            help="Exit 3 when a score fell against the latest scheduled baseline (a CI gate).",
        ),
    ] = False,
) -> None:
    """Run eval suites now, with a progress bar, then print a summary per feature x scorer."""
    settings = _settings()
    path = config or settings.config_path
    try:
        runs, fell = asyncio.run(
            _run_suites(settings, path, suite, feature or [], fail_on_regression)
        )
    except ConfigError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        _fail("interrupted; the run was recorded as cancelled", 130)
    except ContinuousEvalError as exc:
        _fail(str(exc), EXIT_RUN_FAILED)
    if any(r.status is not RunStatus.SUCCEEDED for r in runs):
        raise typer.Exit(EXIT_RUN_FAILED)
    if fell:
        raise typer.Exit(EXIT_REGRESSED)


# ------------------------------------------------------------------------------ serve


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[
        str | None, typer.Option(help="Listen address (default: $CONTINUOUS_EVAL_HTTP_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Listen port (default: $CONTINUOUS_EVAL_HTTP_PORT).")
    ] = None,
) -> None:
    """Run the daemon: scheduled runs, takeovers, and the HTTP app, until SIGTERM."""
    from continuous_eval.bootstrap import serve as run_daemon

    settings = _settings()
    if host is not None:
        settings = settings.model_copy(update={"http_host": host})
    if port is not None:
        settings = settings.model_copy(update={"http_port": port})
    path = config or settings.config_path
    try:
        code = asyncio.run(run_daemon(settings, path))
    except ConfigError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except ContinuousEvalError as exc:
        _fail(str(exc), EXIT_RUN_FAILED)
    raise typer.Exit(code)


# ----------------------------------------------------------------------- check-config


@app.command("check-config")
def check_config(config: ConfigOption = None) -> None:
    """Validate a suite file and every dataset it names, without running anything."""
    from continuous_eval.adapters.suite_files import load_suite_file
    from continuous_eval.bootstrap import import_callables, scan_suites

    settings = _settings()
    path = config or settings.config_path
    try:
        loaded = load_suite_file(path)
        scanned = scan_suites(loaded, list(loaded.suites.suites), [], settings)
        import_callables(loaded, scanned)
    except ConfigError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    features = sum(len(item.features) for item in scanned)
    cases = sum(f.case_count for item in scanned for f in item.features)
    suites = len(loaded.suites.suites)
    out.print(f"{path}: OK ({suites} suites, {features} features, {cases:,} cases)", markup=False)


# ------------------------------------------------------------------------ runs / show


def _open_read_store(settings: Settings):  # type: ignore[no-untyped-def]
    from continuous_eval.bootstrap import open_store

    return open_store(settings)


@app.command("runs")
def list_runs(
    suite: Annotated[str | None, typer.Option("--suite", "-s")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
) -> None:
    """List recent runs, newest first."""
    settings = _settings()
    try:
        engine, store = _open_read_store(settings)
    except ContinuousEvalError as exc:
        _fail(str(exc), EXIT_RUN_FAILED)
    try:
        runs = store.list_runs(suite=suite, limit=limit)
    finally:
        store.close()
        engine.dispose()
    table = Table(title="runs", title_justify="left")
    for column in ("run id", "suite", "type", "status", "started", "cases", "scored", "errors"):
        table.add_column(column)
    for r in runs:
        table.add_row(
            r.id,
            r.suite,
            r.run_type,
            str(r.status),
            r.started_at.strftime("%Y-%m-%d %H:%M:%S") if r.started_at else "–",
            f"{r.cases_done}/{r.cases_total}",
            str(r.scored),
            str(r.errored),
        )
    out.print(table)


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="The run id printed by `run` or `runs`.")],
    worst: Annotated[int, typer.Option("--worst", min=0, max=1000, help="Worst cases shown.")] = 10,
) -> None:
    """Show one run: its status, its scores and its worst cases."""
    settings = _settings()
    try:
        engine, store = _open_read_store(settings)
    except ContinuousEvalError as exc:
        _fail(str(exc), EXIT_RUN_FAILED)
    try:
        try:
            found = store.get_run(run_id)
        except RunNotFound:
            _fail(f"no run with id {run_id!r}", EXIT_BAD_INPUT)
        aggregates = store.get_aggregates(run_id)
        worst_rows = store.worst_results(run_id, worst) if worst else []
    finally:
        store.close()
        engine.dispose()
    out.print(_run_line(found), highlight=False, markup=False)
    out.print(f"fingerprint {found.fingerprint}", highlight=False, markup=False)
    out.print(_score_table(aggregates, "scores"))
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


@app.command("trend")
def trend(
    suite: Annotated[str | None, typer.Option("--suite", "-s", help="Only this suite.")] = None,
    feature: Annotated[
        str | None, typer.Option("--feature", "-f", help="Only this feature.")
    ] = None,
    scorer: Annotated[str | None, typer.Option("--scorer", help="Only this scorer.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="Rows shown.")] = 100,
) -> None:
    """Show the score trend of scheduled runs, newest first (what the drift endpoint serves)."""
    from continuous_eval.adapters.db.queries import eval_trend

    settings = _settings()
    try:
        engine, store = _open_read_store(settings)
    except ContinuousEvalError as exc:
        _fail(str(exc), EXIT_RUN_FAILED)
    try:
        points = eval_trend(engine, suite=suite, feature=feature, scorer=scorer, limit=limit)
    except ContinuousEvalError as exc:
        _fail(str(exc), EXIT_RUN_FAILED)
    finally:
        store.close()
        engine.dispose()
    table = Table(title="score trend of scheduled runs", title_justify="left")
    for column in ("slot", "suite", "feature", "scorer", "score", "± stderr", "n", "errors"):
        table.add_column(column, justify="right" if column in ("n", "errors") else "left")
    table.add_column("status")
    table.add_column("run id")
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
    out.print(table)
    if not points:
        out.print("no scheduled run has scores yet", markup=False)


# --------------------------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply database migrations (to the newest by default)."""
    from continuous_eval.adapters.db import migrate
    from continuous_eval.adapters.db.engine import make_engine

    settings = _settings()
    try:
        engine = make_engine(settings.database_url)
        try:
            migrate.upgrade(engine, revision)
            current = migrate.current_revision(engine)
        finally:
            engine.dispose()
    except ConfigError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    except ContinuousEvalError as exc:
        _fail(str(exc), EXIT_RUN_FAILED)
    out.print(f"database at revision {current}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's migration revision."""
    from continuous_eval.adapters.db import migrate
    from continuous_eval.adapters.db.engine import make_engine

    settings = _settings()
    try:
        engine = make_engine(settings.database_url)
        try:
            current = migrate.current_revision(engine)
        finally:
            engine.dispose()
    except ContinuousEvalError as exc:
        _fail(str(exc), EXIT_RUN_FAILED)
    out.print(f"database at revision {current or 'none (empty database)'}")


def main() -> None:
    """Entry point of the ``continuous-eval`` console script."""
    app()
