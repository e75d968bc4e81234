"""``jobs``: the jobs ``serve`` runs (evaluator generation): list them, show one, cancel one.

Read and written straight in the configured database, as ``runs`` and
``show`` are: the job may run in any replica, and the cancel request is
seen by whichever runs it, at its next step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table

from continuous_eval.cli.app import EXIT_BAD_INPUT, EXIT_RUN_FAILED, JsonOption, app
from continuous_eval.cli.output import (
    emit_json,
    fail,
    jsonable,
    line,
    load_settings,
    print_unclipped,
)
from continuous_eval.core.jobs import JobRecord, JobStatus
from continuous_eval.errors import ContinuousEvalError, JobFinished, JobNotFound

if TYPE_CHECKING:
    from continuous_eval.ports import Clock
    from continuous_eval.ports.jobs import JobStore

jobs_app = typer.Typer(help="Jobs that serve runs (evaluator generation).", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


@contextlib.contextmanager
def _jobs() -> Iterator[tuple[JobStore, Clock]]:
    from continuous_eval.app.jobs import jobs_side

    settings = load_settings()
    try:
        with jobs_side(settings) as opened:
            yield opened
    except JobNotFound as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except JobFinished as exc:
        fail(f"{exc}: nothing to cancel", EXIT_BAD_INPUT)
    except ContinuousEvalError as exc:
        fail(str(exc), EXIT_RUN_FAILED)


def _summary(job: JobRecord) -> str:
    step = f", {job.step} ({job.progress:.0%})" if job.step else ""
    error = f": {job.error}" if job.error else ""
    return f"job {job.id} ({job.kind}) {job.status.value}{step}{error}"


@jobs_app.command("list")
def list_jobs(
    status: Annotated[JobStatus | None, typer.Option("--status", help="Only this status.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Only this kind.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
    as_json: JsonOption = False,
) -> None:
    """List jobs, newest first."""
    with _jobs() as (store, _):
        found = store.list_jobs(status=status, kind=kind, limit=limit)
    if as_json:
        emit_json({"jobs": [jsonable(j) for j in found]})
        return
    table = Table(title="jobs", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("id", "kind", "status", "step", "progress", "attempt", "created"):
        table.add_column(column, no_wrap=True)
    for j in found:
        table.add_row(
            str(j.id),
            j.kind,
            j.status.value,
            j.step or "–",
            f"{j.progress:.0%}",
            f"{j.attempt}/{j.max_attempts}",
            j.created_at.strftime("%m-%d %H:%M"),
        )
    print_unclipped(table)


@jobs_app.command("show")
def show_job(
    job_id: Annotated[int, typer.Argument(help="The job's id.", min=1)],
    as_json: JsonOption = False,
) -> None:
    """Show a job: its status, its steps, and its result or the reason it failed."""
    with _jobs() as (store, _):
        job = store.get(job_id)
        events = store.events(job_id)
    if as_json:
        emit_json({"job": jsonable(job), "events": [jsonable(e) for e in events]})
        return
    line(_summary(job))
    line(f"attempt {job.attempt} of {job.max_attempts}, created {job.created_at.isoformat()}")
    for e in events:
        message = f": {e.message}" if e.message else ""
        line(f"  {e.seq:>3}  {e.at.strftime('%H:%M:%S')}  {e.progress:>4.0%}  {e.step}{message}")
    if job.result is not None:
        import json

        line(f"result: {json.dumps(job.result, ensure_ascii=False)}")


@jobs_app.command("cancel")
def cancel_job(
    job_id: Annotated[int, typer.Argument(help="The job's id.", min=1)],
    as_json: JsonOption = False,
) -> None:
    """Cancel a job: a queued one now, a running one at its next step. A finished one exits 2."""
    with _jobs() as (store, clock):
        job = store.request_cancel(job_id, clock.now())
    if as_json:
        emit_json({"job": jsonable(job)})
        return
    if job.status is JobStatus.CANCELLED:
        line(_summary(job))
    else:
        line(f"job {job.id} ({job.kind}): cancel asked for; it stops at its next step")
