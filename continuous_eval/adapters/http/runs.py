"""The run resource: start (idempotently), list, read, results, control, live events.

What belongs here: the ``/api/runs`` and ``/api/suites`` routes, the
``ApiContext`` they are built over, and ``start_run``, which the admin
"run now" route shares. Routes that only read are plain ``def`` functions:
FastAPI runs them in its thread pool, where blocking database calls belong.
Routes that talk to the daemon are ``async``: the daemon lives on the
server's event loop.

Starting a run never waits for the suite: if it is running (here or in
another replica) the answer is 409 ``gate_busy`` and nothing is queued, the
same rule the scheduler follows. A queue would need its own durability and
fairness rules and would let a runaway client stack up judge spend.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response, Security
from starlette.concurrency import run_in_threadpool

from continuous_eval.adapters.http.auth import bearer_scheme
from continuous_eval.adapters.http.decision_schemas import RunDecisions, run_decisions
from continuous_eval.adapters.http.errors import ApiError, error_responses
from continuous_eval.adapters.http.events import EventStream, EventStreams
from continuous_eval.adapters.http.pagination import (
    decode_result_cursor,
    decode_run_cursor,
    encode_result_cursor,
    encode_run_cursor,
)
from continuous_eval.adapters.http.schemas import (
    NAME_MAX,
    NO_NUL,
    ResultPage,
    RunAccepted,
    RunDetail,
    RunOut,
    RunPage,
    RunRequest,
    SuiteList,
    SuiteOut,
    result_out,
    run_detail,
    run_out,
)
from continuous_eval.core.models import ControlAction, ResultStatus, RunRecord, RunStatus, RunType
from continuous_eval.core.reads import RunKey
from continuous_eval.errors import ConfigError, DuplicateRun, GateBusy, RunNotFound
from continuous_eval.ports import RunLauncher, RunReader, RunStore

log = logging.getLogger(__name__)

RunId = Annotated[str, Path(pattern=NO_NUL)]
"""A run id in a path; any stored id matches, a NUL is refused (422) before the database sees it."""

SPEC_VERSION = 1
"""Bumped if what counts as "the same spec" ever changes, so old hashes never match by accident."""


@dataclass(frozen=True)
class ApiContext:
    """Everything the API routes use, injected by ``create_app``."""

    daemon: RunLauncher
    store: RunStore
    reader: RunReader
    """The read side: pages of runs and results, live polls, the trend."""
    suites: Mapping[str, Sequence[str]]
    """The loaded config's suites and their features, to refuse unknown names up front."""
    streams: EventStreams
    callbacks: bool = False
    """Whether run-completion callbacks can be signed (a secret is configured)."""
    starting: KeyedLocks = field(default_factory=lambda: KeyedLocks())
    """Serialises requests that start the same run id."""


def spec_hash(suite: str, features: Sequence[str], callback_url: str | None = None) -> str:
    """Hash what a run request asks for, to tell an idempotent retry from a conflicting reuse.

    Features are a set: the same features in another order is the same run.
    An empty list (every feature) differs from listing them all, since the
    two diverge once a feature is added to the suite. A callback URL is part
    of the request (only when given, so requests without one hash as before).
    """
    spec: dict[str, object] = {"v": SPEC_VERSION, "suite": suite, "features": sorted(set(features))}
    if callback_url is not None:
        spec["callback_url"] = callback_url
    canonical = json.dumps(spec, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _same_or_conflict(existing: RunRecord, spec: str) -> RunRecord:
    if existing.spec_hash == spec:
        return existing
    raise ApiError(
        409,
        "conflict",
        f"run id {existing.id!r} is already used by a run with another spec",
        {"run": run_out(existing).model_dump(mode="json")},
    )


async def _find(store: RunStore, run_id: str) -> RunRecord | None:
    try:
        return await run_in_threadpool(store.get_run, run_id)
    except RunNotFound:
        return None


class KeyedLocks:
    """One ``asyncio.Lock`` per key while anyone holds or waits for it (run ids being started)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold the key's lock for the block; the entry goes once nobody needs it."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


PEER_START_WAIT_S = 3.0
"""How long a request waits for another replica's run of the same id to appear."""


async def _started_elsewhere(store: RunStore, run_id: str) -> RunRecord | None:
    """Look for a run another replica is creating right now under ``run_id``.

    Its replica holds the suite's lock from before it inserts the run, so a
    retry reaching another replica meanwhile sees "busy" and no run yet; the
    row appears within the time a run takes to be planned. Polled briefly
    (across processes there is no event to wait on), then given up on.
    """
    deadline = asyncio.get_running_loop().time() + PEER_START_WAIT_S
    while True:
        existing = await _find(store, run_id)
        if existing is not None or asyncio.get_running_loop().time() >= deadline:
            return existing
        await asyncio.sleep(0.05)


async def start_run(ctx: ApiContext, request: RunRequest) -> RunRecord:
    """Start a manual run, or return the run an idempotent retry names.

    Requests naming the same ``run_id`` are serialised in this process, so
    of 50 concurrent retries one starts the run and 49 find it; a retry at
    another replica finds it once that replica has created it.

    Raises:
        ApiError: 422 ``unknown_suite``, ``unknown_feature`` or
            ``invalid_suite`` (a dataset the daemon cannot read); 409
            ``conflict`` (id reused with another spec) or ``gate_busy``.
    """
    known = ctx.suites.get(request.suite)
    if known is None:
        raise ApiError(
            422,
            "unknown_suite",
            f"no suite named {request.suite!r}",
            {"suite": request.suite, "suites": sorted(ctx.suites)},
        )
    features = list(dict.fromkeys(request.features))
    unknown = [f for f in features if f not in known]
    if unknown:
        raise ApiError(
            422,
            "unknown_feature",
            f"suite {request.suite!r} has no feature {unknown[0]!r}",
            {"suite": request.suite, "unknown": unknown, "features": list(known)},
        )
    if request.callback_url is not None and not ctx.callbacks:
        raise ApiError(
            422,
            "callback_unavailable",
            "callback_url needs a signing secret: set CONTINUOUS_EVAL_RUN_WEBHOOK_SECRET",
            {"field": "callback_url"},
        )
    spec = spec_hash(request.suite, features, request.callback_url)
    if request.run_id is None:
        return await _launch(ctx, request, features, spec)
    async with ctx.starting.hold(request.run_id):
        # Before the gate: a retry of a run still in progress must find it, not "busy".
        existing = await _find(ctx.store, request.run_id)
        if existing is not None:
            return _same_or_conflict(existing, spec)
        return await _launch(ctx, request, features, spec)


async def _launch(
    ctx: ApiContext, request: RunRequest, features: list[str], spec: str
) -> RunRecord:
    try:
        run = await ctx.daemon.start_manual(
            request.suite,
            features,
            run_id=request.run_id,
            spec_hash=spec,
            callback_url=request.callback_url,
        )
    except GateBusy as exc:
        if request.run_id is not None and exc.elsewhere:
            # Another replica may be starting this very run: wait for its row.
            existing = await _started_elsewhere(ctx.store, request.run_id)
            if existing is not None:
                return _same_or_conflict(existing, spec)
        raise ApiError(
            409,
            "gate_busy",
            f"{exc}; the request was not queued, retry once the running run is over",
            {"suite": request.suite},
        ) from exc
    except DuplicateRun as exc:
        existing = await _find(ctx.store, exc.existing_id)
        if existing is None:  # pragma: no cover - deleted in between
            raise
        return _same_or_conflict(existing, spec)
    except ConfigError as exc:
        raise ApiError(
            422,
            "invalid_suite",
            str(exc),
            {"file": exc.file, "location": exc.location, "problem": exc.problem},
        ) from exc
    log.info(
        "run started through the API",
        extra={"event": "api_run_started", "run_id": run.id, "suite": run.suite},
    )
    return run


def runs_router(ctx: ApiContext) -> APIRouter:
    """Build the ``/api/runs`` and ``/api/suites`` routes over ``ctx``."""
    router = APIRouter(prefix="/api", dependencies=[Security(bearer_scheme)])
    read_errors = error_responses(401, 422, 503)
    run_errors = error_responses(401, 404, 422, 503)

    @router.post(
        "/runs",
        status_code=202,
        response_model=RunAccepted,
        tags=["runs"],
        responses=error_responses(401, 409, 413, 422, 503),
    )
    async def create_run(body: RunRequest, response: Response) -> RunAccepted:
        """Start a manual run of a suite (202), or answer the run an idempotent retry names.

        Same ``run_id`` and same suite and features: 202 with the existing
        run. Same ``run_id`` with another spec: 409 ``conflict``. The suite
        already running: 409 ``gate_busy`` (refused, not queued).
        """
        run = await start_run(ctx, body)
        response.headers["Location"] = f"/api/runs/{run.id}"
        return RunAccepted(run_id=run.id, status=run.status)

    @router.get("/runs", response_model=RunPage, tags=["runs"], responses=read_errors)
    def list_runs(
        suite: Annotated[str | None, Query(max_length=NAME_MAX, pattern=NO_NUL)] = None,
        run_type: RunType | None = None,
        status: RunStatus | None = None,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> RunPage:
        """List runs newest first, a page at a time (pass ``next_cursor`` back as ``cursor``).

        Keyset pagination on (created_at, id): runs started while a client
        pages appear on the first page, never shift the later ones.
        """
        before = decode_run_cursor(cursor) if cursor is not None else None
        rows = ctx.reader.list_runs_page(
            suite=suite,
            run_type=run_type,
            status=status,
            before=before,
            limit=limit + 1,
        )
        page = rows[:limit]
        next_cursor = (
            encode_run_cursor(RunKey(page[-1].created_at, page[-1].id))
            if len(rows) > limit
            else None
        )
        return RunPage(items=[run_out(r) for r in page], next_cursor=next_cursor)

    @router.get("/runs/{run_id}", response_model=RunDetail, tags=["runs"], responses=run_errors)
    def get_run(run_id: RunId) -> RunDetail:
        """Read a run: status, progress, counts, timings, attempt, and its scores once finished."""
        run = ctx.store.get_run(run_id)
        return run_detail(run, ctx.store.get_aggregates(run_id))

    @router.get(
        "/runs/{run_id}/results", response_model=ResultPage, tags=["runs"], responses=run_errors
    )
    def list_results(
        run_id: RunId,
        feature: Annotated[str | None, Query(max_length=NAME_MAX, pattern=NO_NUL)] = None,
        scorer: Annotated[str | None, Query(max_length=NAME_MAX, pattern=NO_NUL)] = None,
        status: ResultStatus | None = None,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> ResultPage:
        """List a run's results in the order they were stored, a page at a time."""
        after = decode_result_cursor(cursor) if cursor is not None else 0
        rows = ctx.reader.list_results_page(
            run_id,
            feature=feature,
            scorer=scorer,
            status=status,
            after_id=after,
            limit=limit + 1,
        )
        page = rows[:limit]
        next_cursor = encode_result_cursor(page[-1].id) if len(rows) > limit else None
        return ResultPage(items=[result_out(r) for r in page], next_cursor=next_cursor)

    @router.get(
        "/runs/{run_id}/decisions",
        response_model=RunDecisions,
        tags=["runs"],
        responses=run_errors,
        response_description="The run's decisions; `decided: false` and no items when none "
        "were stored.",
    )
    def list_decisions(run_id: RunId) -> RunDecisions:
        """Read what the regression detector concluded about each feature x scorer of a run.

        The stored decisions, as they were made when the run finished (a
        scheduled run's with their incident transitions, a manual run's as a
        candidate): the known-good baseline runs, the paired means, the
        difference with its 95% CI, p and adjusted p, the anchor check, the
        incident, and every case that fell. A run that did not succeed, or
        finished before decisions were stored, has none.
        """
        run = ctx.store.get_run(run_id)
        return run_decisions(run, ctx.store.get_decisions(run.id))

    def control_route(action: ControlAction, summary: str) -> None:
        async def control(run_id: RunId) -> RunOut:
            return run_out(await ctx.daemon.control(run_id, action))

        control.__doc__ = summary
        router.add_api_route(
            f"/runs/{{run_id}}/{action}",
            control,
            methods=["POST"],
            response_model=RunOut,
            tags=["runs"],
            responses=run_errors,
            name=f"{action}_run",
        )

    control_route(
        "cancel",
        "Cancel a run; answers the resulting run (a finished run answers its final status).",
    )
    control_route(
        "pause",
        "Pause a run after the cases in flight; a finished run answers its final status.",
    )
    control_route(
        "resume",
        "Resume a paused run (it is queued, then adopted); other runs answer unchanged.",
    )

    @router.get(
        "/runs/{run_id}/events",
        response_class=EventStream,
        tags=["runs"],
        responses={
            200: {
                "description": (
                    "Server-Sent Events: `snapshot`, then `case` (each followed by `progress`) "
                    "and `status` as they happen, and `end` once the run is final (the stream "
                    "then closes). An agent target's steps arrive as `step` events (no id) "
                    "before their case's `case` event. "
                    "Event ids are result ids: reconnect with `Last-Event-ID` to resume "
                    "exactly; `Last-Event-ID: 0` replays every case."
                ),
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **error_responses(401, 404, 422, 503, media_type=EventStream.media_type),
        },
    )
    async def run_events(
        run_id: RunId,
        last_event_id: Annotated[
            str | None, Header(alias="Last-Event-ID", pattern=r"^[0-9]{1,18}$")
        ] = None,
    ) -> EventStream:
        """Follow a run live (see the 200 response for the events)."""
        return await ctx.streams.follow(ctx.reader, run_id, last_event_id, ctx.store)

    @router.get("/suites", response_model=SuiteList, tags=["runs"], responses=error_responses(401))
    def list_suites() -> SuiteList:
        """List the suites this replica can run, with their features."""
        return SuiteList(
            items=[SuiteOut(name=name, features=list(f)) for name, f in ctx.suites.items()]
        )

    return router
