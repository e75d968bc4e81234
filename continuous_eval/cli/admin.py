"""The commands that set things up and keep them running: init, check-config, serve, db."""

from __future__ import annotations

import asyncio
import importlib.resources
from pathlib import Path
from typing import Annotated

import typer

from continuous_eval.cli.app import EXIT_BAD_INPUT, EXIT_RUN_FAILED, ConfigOption, app, db_app
from continuous_eval.cli.output import fail, line, load_settings
from continuous_eval.errors import ConfigError, ContinuousEvalError

STARTER_FILES = {
    "config/suites.yaml": "suites.yaml",
    "config/starter_app.py": "starter_app.py",
    "config/data/support.jsonl": "data/support.jsonl",
}
"""Where ``init`` writes each starter file, and its name inside ``continuous_eval.starter``."""

SETTINGS_FILE = "continuous-eval.env"


@app.command()
def init(
    directory: Annotated[
        Path, typer.Argument(help="Where to write the starter files (default: here).")
    ] = Path(),
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist.")] = False,
) -> None:
    """Write a commented starter suite and settings file that run offline."""
    from continuous_eval.settings import settings_file

    starter = importlib.resources.files("continuous_eval.starter")
    files = {
        name: starter.joinpath(source).read_text("utf-8") for name, source in STARTER_FILES.items()
    }
    files[SETTINGS_FILE] = settings_file()
    existing = [name for name in files if (directory / name).exists()]
    if existing and not force:
        fail(
            f"{', '.join(str(directory / n) for n in existing)}: already exist(s); "
            "nothing was written (--force overwrites)",
            EXIT_BAD_INPUT,
        )
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        line(f"wrote {path}")
    where = "" if directory == Path() else f"cd {directory} && "
    line(f"next: {where}continuous-eval check-config && continuous-eval run")


@app.command("check-config")
def check_config(config: ConfigOption = None) -> None:
    """Validate a suite file and every dataset it names, without running anything."""
    from continuous_eval.app.scanning import import_callables, load_suites, scan_suites
    from continuous_eval.core.suite import ANCHOR_SUFFIX

    settings = load_settings()
    path = config or settings.config_path
    try:
        loaded = load_suites(path)
        scanned = scan_suites(loaded, list(loaded.suites.suites), [], settings)
        import_callables(loaded, scanned)
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    scanned_features = [f for item in scanned for f in item.features]
    # A feature's anchor set is scanned like a feature, but it is not one.
    own = [f for f in scanned_features if not f.name.endswith(ANCHOR_SUFFIX)]
    anchors = sum(f.case_count for f in scanned_features if f.name.endswith(ANCHOR_SUFFIX))
    # An online feature's cases are sampled from recorded traffic at each run:
    # what the file says is only how many it may take.
    cases = sum(f.case_count for f in own if not f.feature.online)
    sampled = sum(f.case_count for f in own if f.feature.online)
    suites = len(loaded.suites.suites)
    extra = f", {anchors:,} anchors" if anchors else ""
    extra += f", up to {sampled:,} sampled from traffic" if sampled else ""
    line(f"{path}: OK ({suites} suites, {len(own)} features, {cases:,} cases{extra})")


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
    from continuous_eval.app.serve import serve as run_daemon

    settings = load_settings("serve")
    if host is not None:
        settings = settings.model_copy(update={"http_host": host})
    if port is not None:
        settings = settings.model_copy(update={"http_port": port})
    path = config or settings.config_path
    try:
        code = asyncio.run(run_daemon(settings, path))
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except ContinuousEvalError as exc:
        fail(str(exc), EXIT_RUN_FAILED)
    raise typer.Exit(code)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply database migrations (to the newest by default)."""
    from continuous_eval.app import database

    settings = load_settings()
    try:
        current = database.upgrade(settings, revision)
    except ConfigError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except ContinuousEvalError as exc:
        fail(str(exc), EXIT_RUN_FAILED)
    line(f"database at revision {current}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's migration revision."""
    from continuous_eval.app import database

    settings = load_settings()
    try:
        current = database.current_revision(settings)
    except ContinuousEvalError as exc:
        fail(str(exc), EXIT_RUN_FAILED)
    line(f"database at revision {current or 'none (empty database)'}")
