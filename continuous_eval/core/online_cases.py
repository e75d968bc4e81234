"""An online feature's cases: the sampled interactions of a window, one case per trace.

Pure rules. The store returns the window's spans with the lowest sample keys
(``InteractionStore.sample``); every span of a trace shares its key, so a
trace's spans arrive together. A trace is one thing a user asked and got an
answer to, so it is one case:

- its *root* interaction (the span whose parent is not among the trace's
  sampled spans; the earliest if several) gives the input and the output,
  unless it recorded none (an agent's invocation span often carries no
  text): then the first span that was asked something gives the input and
  the last that answered gives the output (a tool's own span is neither:
  its arguments and result are steps);
- the steps of every span of the trace, in start order, make the case's
  trajectory, each tool call and result once (by kind and id) wherever the
  instrumentation put it.

The case id is the trace id: results keep it (and ``trace_id``), so the API
and the dashboard link back to the interaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from continuous_eval.core.interactions import StoredInteraction
from continuous_eval.core.suite import Case, TracesDataset
from continuous_eval.core.trajectory import Step

TOOL_OPERATION = "execute_tool"
"""``gen_ai.operation.name`` of a tool's own span."""

SPAN_HEADROOM = 4
"""Spans read per wanted trace: a sample of ``max`` traces asks the store for
``max * SPAN_HEADROOM`` spans, enough for traces of a few model calls each."""


def traces_window(dataset: TracesDataset, as_of: datetime) -> tuple[datetime, datetime]:
    """The half-open window ``[as_of - window_hours, as_of)`` an online run samples.

    It ends at the run's scheduled time (a manual run: its creation), never at
    "now", so a retry or a takeover hours later samples the same interactions.
    """
    return as_of - timedelta(hours=dataset.window_hours), as_of


def span_limit(dataset: TracesDataset) -> int:
    """How many spans to ask the store for, to make up ``dataset.sample.max`` traces."""
    return dataset.sample.max * SPAN_HEADROOM


def cases_from_sample(
    rows: Sequence[StoredInteraction], max_cases: int, *, truncated: bool
) -> list[Case]:
    """Group a sample's spans into one case per trace, lowest sample keys first.

    Args:
        rows: The store's sample, in sample-key order (a trace's spans adjacent).
        max_cases: At most this many cases.
        truncated: The store stopped at its limit, so the last trace may be
            missing spans; it is left out (it would be the last case anyway,
            and a partial trace would score a partial trajectory).
    """
    traces: dict[str, list[StoredInteraction]] = {}
    for row in rows:
        traces.setdefault(row.interaction.trace_id, []).append(row)
    groups = list(traces.values())
    if truncated and groups:
        groups.pop()
    return [_case(group) for group in groups[:max_cases]]


def _case(spans: list[StoredInteraction]) -> Case:
    ordered = sorted(spans, key=lambda s: (s.interaction.started_at, s.id))
    ids = {s.interaction.span_id for s in ordered}
    root = next(
        (s for s in ordered if s.interaction.parent_span_id not in ids),
        ordered[0],
    ).interaction
    # A tool's span "asks" its arguments and "answers" its result: those are
    # steps of the trajectory, not what the user asked and was told.
    spoken = [s.interaction for s in ordered if s.interaction.operation != TOOL_OPERATION]
    asked = [i.input for i in spoken if i.input]
    answered = [i.output for i in spoken if i.output]
    output = root.output or (answered[-1] if answered else None)
    steps = _distinct(step for s in ordered for step in s.interaction.steps)
    metadata = {**root.metadata, "span_id": root.span_id}
    if root.model:
        metadata["model"] = root.model
    return Case(
        id=root.trace_id,
        input=root.input or (asked[0] if asked else "(no input recorded)"),
        output=output,
        steps=steps,
        trace_id=root.trace_id,
        metadata=metadata,
    )


def _distinct(steps: Iterable[Step]) -> tuple[Step, ...]:
    """The steps in order, each tool call and result once.

    Instrumentations may record a call twice: as an ``execute_tool`` span and
    inside the model's output message. A step with an id is kept the first
    time its (kind, id) is seen; steps without one are all kept.
    """
    seen: set[tuple[str, str]] = set()
    kept = []
    for step in steps:
        if step.id is not None:
            key = (step.kind, step.id)
            if key in seen:
                continue
            seen.add(key)
        kept.append(step)
    return tuple(kept)
