"""Live progress of a run as Server-Sent Events, by polling the database.

Why polling and not in-process notifications: a run may be executing in
another replica (or be adopted by one halfway through), and the database is
the one place every replica writes to. Each subscriber polls its run every
``poll_s`` (0.5 s by default): one primary-key read of the run row, and one
range read of the results with an id above the last one it sent. Result ids
only grow, and a run's results are stored by one writer with each case's
scorers in one transaction, so ``id > last`` is exactly what the subscriber
has not seen; result ids are therefore the SSE event ids, and a client that
reconnects with ``Last-Event-ID`` resumes with nothing lost and nothing repeated.

The stream, in order:

- ``snapshot`` (id = the result id it accounts up to): the run as it is now,
  and the counts up to that id;
- ``case`` (id = the case's last result id): one per finished case, with its
  scorers' results, in the order they were stored, each followed by
- ``progress``: {done, total, errors, ...} after that case, counted from the
  results the stream sent, so subscribers at the same event id agree exactly;
- ``step`` (no id): one step of an agent target's case as the runner stored
  it, before that case's ``case`` event; only steps stored after the stream
  opened (a resumed stream does not repeat or recover them: a case's whole
  trajectory is read from ``GET /api/runs/{id}/cases/{case}/steps``);
- ``status``: when a poll finds the status (or the attempt, after a
  takeover) changed; a status that lasted less than a poll may be skipped;
- ``end``: once the run is final, after its last ``case``; then the stream closes.

``step``, ``progress``, ``status`` and ``end`` carry no id (the client's last id stays
the last case's): a resumed stream's ``snapshot`` restates them. A comment
line every ``keepalive_s`` keeps proxies from closing an idle stream.

A subscriber is one async generator and nothing else: no task, queue or
subscription outlives its response. When the client disconnects,
sse-starlette cancels the generator at its next await and its ``finally``
runs. The run never knows it was watched. The cost is two indexed reads per
subscriber per poll; a per-run shared poller would be the next step if
hundreds of subscribers per replica became normal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import anyio
from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent

from continuous_eval.adapters.http.schemas import (
    CaseEvent,
    CaseScoreOut,
    EndEvent,
    ProgressEvent,
    StatusEvent,
    StepEvent,
    run_out,
    snapshot_event,
)
from continuous_eval.core.models import ResultRecord, ResultStatus, RunRecord
from continuous_eval.core.reads import RunSnapshot
from continuous_eval.ports import CaseStepStore, RunReader

_T = TypeVar("_T")

RETRY_MS = 2000
"""Reconnection delay suggested to ``EventSource`` clients in the first event."""


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """How live streams poll and keep alive; tests shorten both."""

    poll_s: float = 0.5
    """Between two looks at the database; the latency of an event."""
    keepalive_s: float = 15.0
    """Between two comment lines on an otherwise idle stream."""
    batch: int = 500
    """Most results read per look; a run that produced more is read again at once."""
    send_timeout_s: float = 30.0
    """A client that accepts nothing for this long is dropped (its buffers are full)."""


class EventStream(EventSourceResponse):
    """An SSE response whose media type is on the class, where FastAPI's OpenAPI looks for it."""

    media_type = "text/event-stream"


class EventStreams:
    """The live streams of one app: their settings, how many are open, and closing them.

    ``close`` ends every open stream at its next poll (a stream opened later
    ends right after its snapshot); ``serve`` calls it on shutdown, since
    uvicorn waits for open responses to finish and a stream of a run that is
    not over never would. Clients reconnect with ``Last-Event-ID``, to
    another replica if need be, and lose nothing.
    """

    def __init__(self, settings: StreamSettings | None = None) -> None:
        self.settings = settings or StreamSettings()
        self._open = 0
        self._closing = False
        self._stopping: Callable[[], bool] | None = None

    @property
    def open(self) -> int:
        """Streams currently open."""
        return self._open

    @property
    def closing(self) -> bool:
        """Whether ``close`` was called or the ``stop_when`` condition holds."""
        return self._closing or (self._stopping is not None and self._stopping())

    def close(self) -> None:
        """End every stream at its next poll; new streams end right after their snapshot."""
        self._closing = True

    def stop_when(self, stopping: Callable[[], bool]) -> None:
        """Close the streams once ``stopping()`` returns True (checked at every poll).

        For a server that cannot call ``close`` itself, e.g. ``lambda:
        server.should_exit``: streams then end once uvicorn starts to shut
        down, so its wait for open responses ends too.
        """
        self._stopping = stopping

    async def follow(
        self,
        reader: RunReader,
        run_id: str,
        last_event_id: str | None,
        steps: CaseStepStore | None = None,
    ) -> EventStream:
        """The stream of a run from ``Last-Event-ID`` (or its newest result) on.

        With ``steps``, the agent steps stored from now on are streamed too.

        Raises:
            RunNotFound: No such run.
        """
        after = int(last_event_id) if last_event_id is not None else None
        snapshot = await _in_thread(lambda: reader.run_snapshot(run_id, after))
        cursor = None
        if steps is not None:
            cursor = _StepCursor(steps, run_id)
            await cursor.start()
        return self.response(reader, snapshot, cursor)

    def response(
        self, reader: RunReader, snapshot: RunSnapshot, steps: _StepCursor | None = None
    ) -> EventStream:
        """Stream the run's events from the snapshot's position on (see the module docstring)."""
        s = self.settings
        return EventStream(
            self._events(reader, snapshot, steps),
            ping=s.keepalive_s,
            send_timeout=s.send_timeout_s,
        )

    async def _events(
        self, reader: RunReader, snapshot: RunSnapshot, steps: _StepCursor | None
    ) -> AsyncIterator[ServerSentEvent]:
        self._open += 1
        try:
            async for event in self._watch(reader, snapshot, steps):
                yield event
        finally:
            self._open -= 1

    async def _watch(
        self, reader: RunReader, snapshot: RunSnapshot, steps: _StepCursor | None
    ) -> AsyncIterator[ServerSentEvent]:
        s = self.settings
        run, last = snapshot.run, snapshot.cursor
        counts = _Counts(snapshot.cases_done, snapshot.scored, snapshot.errored)
        first = snapshot_event(run, last, counts.event(run))
        yield _event("snapshot", first, id=last, retry=RETRY_MS)
        status = _status(run)
        while True:
            # Closing still takes one last look, so a subscriber leaves with the
            # state the shutdown left (e.g. ``interrupted``) before reconnecting.
            last_look = self.closing
            if steps is not None:
                # Before the results: a case's steps come before its ``case`` event.
                for event in await steps.poll(s.batch):
                    yield event
            poll = await _in_thread(partial(reader.poll_run, run.id, after_id=last, limit=s.batch))
            run = poll.run
            more = len(poll.results) >= s.batch
            for group in _case_groups(poll.results, hold_last=more):
                last = group[-1].id
                counts.add(group)
                yield _event("case", _case_event(group), id=last)
                yield _event("progress", counts.event(run))
            if _status(run) != status:
                status = _status(run)
                yield _event("status", status)
            if more:
                continue  # a burst of results: read the rest before sleeping
            if run.status.terminal:
                end = EndEvent(status=run.status, reason=run.status_reason, run=run_out(run))
                yield _event("end", end)
                return
            if last_look:
                return
            await anyio.sleep(s.poll_s)


class _StepCursor:
    """Where a stream is in its run's agent steps: the id of the last one it sent."""

    def __init__(self, store: CaseStepStore, run_id: str) -> None:
        self._store = store
        self._run_id = run_id
        self.last = 0

    async def start(self) -> None:
        """Begin after the newest step stored so far: a stream shows steps live."""
        self.last = await _in_thread(partial(self._store.newest_step_id, self._run_id))

    async def poll(self, limit: int) -> list[ServerSentEvent]:
        """The ``step`` events of the steps stored since the last poll (at most ``limit``)."""
        rows = await _in_thread(
            partial(self._store.steps_after, self._run_id, after_id=self.last, limit=limit)
        )
        if rows:
            self.last = rows[-1].id
        return [
            _event(
                "step", StepEvent(feature=r.feature, case_id=r.case_id, index=r.seq, step=r.step)
            )
            for r in rows
        ]


class _Counts:
    """A stream's running counts, advanced by each ``case`` it sends."""

    def __init__(self, done: int, scored: int, errored: int) -> None:
        self.done, self.scored, self.errored = done, scored, errored

    def add(self, group: list[ResultRecord]) -> None:
        self.done += 1
        self.scored += sum(r.status is ResultStatus.OK for r in group)
        self.errored += sum(r.status is ResultStatus.ERROR for r in group)

    def event(self, run: RunRecord) -> ProgressEvent:
        return ProgressEvent(
            done=self.done,
            total=run.cases_total,
            errors=self.errored,
            scored=self.scored,
            results_total=run.total,
        )


async def _in_thread(fn: Callable[[], _T]) -> _T:
    # Not abandoned on cancellation: a disconnect waits for the query to end,
    # so its connection goes back to the pool before the generator finishes.
    return await anyio.to_thread.run_sync(fn)


def _event(
    name: str, data: BaseModel, *, id: int | None = None, retry: int | None = None
) -> ServerSentEvent:
    return ServerSentEvent(
        data=data.model_dump_json(),
        event=name,
        id=None if id is None else str(id),
        retry=retry,
    )


def _status(run: RunRecord) -> StatusEvent:
    return StatusEvent(status=run.status, reason=run.status_reason, attempt=run.attempt)


def _case_groups(results: list[ResultRecord], *, hold_last: bool) -> list[list[ResultRecord]]:
    """Group consecutive rows of one (feature, case): the rows of one ``case`` event.

    Consecutive, not all rows of a case: a case's rows are stored together,
    so grouping neighbours keeps each event's id range disjoint from the
    next one's, which is what makes resuming from an event id exact. With
    ``hold_last`` (a full batch), the last group may continue beyond the
    batch and is left for the next read, unless it is the only one.
    """
    groups: list[list[ResultRecord]] = []
    for row in results:
        if groups and (groups[-1][0].feature, groups[-1][0].case_id) == (row.feature, row.case_id):
            groups[-1].append(row)
        else:
            groups.append([row])
    if hold_last and len(groups) > 1:
        groups.pop()
    return groups


def _case_event(group: list[ResultRecord]) -> CaseEvent:
    first = group[0]
    latencies = [r.latency_ms for r in group if r.latency_ms is not None]
    return CaseEvent(
        feature=first.feature,
        case_id=first.case_id,
        latency_ms=latencies[0] if latencies else None,
        results=[
            CaseScoreOut(
                result_id=r.id,
                scorer=r.scorer,
                status=r.status,
                score=r.score,
                passed=r.passed,
                error=r.error,
            )
            for r in group
        ],
    )
