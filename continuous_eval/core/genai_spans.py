"""From OpenTelemetry GenAI spans to interactions: the semantic conventions, mapped. Pure.

The decoder (``adapters.otlp``) turns OTLP into plain ``Span`` values; this
module knows the GenAI semantic conventions and nothing of protobuf, so the
mapping is tested on hand-built attribute sets.

What is read, and why:

- A span is an interaction only when it says it is GenAI:
  ``gen_ai.operation.name``, ``gen_ai.provider.name`` or the older
  ``gen_ai.system``. Everything else (HTTP client spans, database spans) is
  counted as skipped, never stored.
- Messages come from the current attributes (``gen_ai.input.messages``,
  ``gen_ai.output.messages``, ``gen_ai.system_instructions``: JSON text, or
  structured values) and, when those are absent, from the older events
  (``gen_ai.system.message``, ``gen_ai.user.message``,
  ``gen_ai.assistant.message``, ``gen_ai.tool.message``, ``gen_ai.choice``),
  whose body fields a span event carries as its attributes (or as a JSON
  ``body`` attribute). Both become the same ``role`` + ``parts`` messages.
- ``input`` is the text of the last user message: what a scorer checks and a
  judge reads as "the question". A span whose input has no user text (an
  agent step fed only tool results) keeps its whole input messages as JSON
  instead, so nothing is lost. ``output`` is the final assistant text, or
  the output messages as JSON when they hold no text (only tool calls).
- ``steps`` is what this span did, not the history it was given: the tool
  results it was fed (the input after its last assistant message), then its
  output's tool calls and texts. Every model call of an agent repeats the
  conversation so far in its input; taking the history too would repeat each
  earlier call in every later span, and an online case joins the steps of
  all of a trace's spans. An ``execute_tool`` span is one tool call and its
  result (an instrumentation that records both these spans and the calls in
  the messages reports a call twice; ids tell them apart).
- ``metadata`` is the span's own attributes that are not ``gen_ai.*`` (the
  application's: user ids, tenant, release), bounded in count and size.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import JsonValue

from continuous_eval.core.interactions import Interaction
from continuous_eval.core.trajectory import Step

GENAI_MARKERS = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.system")
"""Attributes that make a span a GenAI span (``gen_ai.system`` is the older provider name)."""

GEN_AI_PREFIX = "gen_ai."

MAX_METADATA_KEYS = 64
"""Metadata keys kept per interaction; the rest are dropped (they are the application's)."""

MAX_METADATA_CHARS = 2000
"""Longest metadata string kept; longer ones are cut."""

MAX_FIELD_CHARS = {"name": 500, "operation": 64, "model": 200}
"""The stored columns' widths; longer values are cut rather than refused."""

MAX_STEP_KEY_CHARS = 200
"""A step's name and id width (``core.trajectory.Step``)."""

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
"""The older per-message events, and the role each one's message has."""

CHOICE_EVENT = "gen_ai.choice"


@dataclass(frozen=True, slots=True)
class SpanEvent:
    """One span event: its name and attributes, values already plain Python."""

    name: str
    attributes: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Span:
    """One span as decoded, with its resource's attributes; ids are lowercase hex."""

    trace_id: str
    span_id: str
    name: str
    start_unix_nano: int
    end_unix_nano: int = 0
    parent_span_id: str | None = None
    attributes: Mapping[str, object] = field(default_factory=dict)
    events: Sequence[SpanEvent] = ()
    resource: Mapping[str, object] = field(default_factory=dict)
    error: str | None = None
    """Set (to the status message, or ``error``) when the span's status is ERROR."""


class SpanRejected(ValueError):
    """A GenAI span that cannot be stored, with the reason code the metrics count."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True)
class MappedSpans:
    """A batch of spans sorted into interactions, skipped spans and rejections."""

    interactions: list[Interaction] = field(default_factory=list)
    skipped: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)


MAX_MESSAGES = 5
"""Rejection messages kept per batch: the OTLP response's ``error_message`` names a few."""


def is_genai(attributes: Mapping[str, object]) -> bool:
    """Whether a span's attributes mark it as a GenAI operation."""
    return any(attributes.get(key) not in (None, "") for key in GENAI_MARKERS)


def map_spans(spans: Iterable[Span], feature_attributes: Sequence[str]) -> MappedSpans:
    """Map every GenAI span to an interaction; count the others and the refused."""
    mapped = MappedSpans()
    for span in spans:
        if not is_genai(span.attributes):
            mapped.skipped += 1
            continue
        try:
            mapped.interactions.append(to_interaction(span, feature_attributes))
        except SpanRejected as exc:
            mapped.rejected[exc.reason] = mapped.rejected.get(exc.reason, 0) + 1
            if len(mapped.messages) < MAX_MESSAGES:
                mapped.messages.append(str(exc))
    return mapped


def to_interaction(span: Span, feature_attributes: Sequence[str]) -> Interaction:
    """Map one GenAI span (see the module docstring).

    Raises:
        SpanRejected: ``bad_trace_id``, ``bad_span_id``, ``bad_time`` or
            ``no_feature``.
    """
    trace_id, span_id = _ids(span)
    attrs = span.attributes
    feature = feature_of(span, feature_attributes)
    if span.start_unix_nano <= 0:
        raise SpanRejected("bad_time", f"span {span_id}: no start time")
    operation = _text(attrs.get("gen_ai.operation.name"))
    if operation == "execute_tool":
        input_text, output_text, steps = _tool_span(attrs)
    else:
        inputs, outputs = input_messages(span), output_messages(span)
        input_text, output_text = input_of(inputs), output_of(outputs)
        steps = steps_of([*fed_results(inputs), *outputs])
    return Interaction(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=_parent(span.parent_span_id),
        feature=feature,
        input=_clean(input_text),
        output=_clean(output_text),
        started_at=_time(span.start_unix_nano),
        ended_at=_time(span.end_unix_nano) if span.end_unix_nano > 0 else None,
        name=_cut(_clean(span.name) or None, "name"),
        operation=_cut(operation, "operation"),
        model=_cut(
            _text(attrs.get("gen_ai.response.model")) or _text(attrs.get("gen_ai.request.model")),
            "model",
        ),
        input_tokens=_count(attrs.get("gen_ai.usage.input_tokens")),
        output_tokens=_count(attrs.get("gen_ai.usage.output_tokens")),
        steps=tuple(steps),
        metadata=metadata_of(attrs),
        error=_error(span),
    )


def feature_of(span: Span, feature_attributes: Sequence[str]) -> str:
    """The first of ``feature_attributes`` present on the span, else on its resource."""
    for attributes in (span.attributes, span.resource):
        for key in feature_attributes:
            value = _text(attributes.get(key))
            if value:
                if len(value) > 200 or "\x00" in value:
                    raise SpanRejected("bad_feature", f"span {span.span_id}: {key} is not a name")
                return value
    names = ", ".join(feature_attributes)
    raise SpanRejected("no_feature", f"span {span.span_id}: none of {names} is set")


def _ids(span: Span) -> tuple[str, str]:
    trace_id, span_id = span.trace_id.lower(), span.span_id.lower()
    if not _TRACE_ID.fullmatch(trace_id) or trace_id == "0" * 32:
        raise SpanRejected("bad_trace_id", f"span {span_id or '?'}: the trace id is not valid")
    if not _SPAN_ID.fullmatch(span_id) or span_id == "0" * 16:
        raise SpanRejected("bad_span_id", f"trace {trace_id}: a span id is not valid")
    return trace_id, span_id


def _parent(parent: str | None) -> str | None:
    value = (parent or "").lower()
    return value if _SPAN_ID.fullmatch(value) and value != "0" * 16 else None


def _time(unix_nano: int) -> datetime:
    try:
        return _EPOCH + timedelta(microseconds=unix_nano // 1000)
    except OverflowError:
        raise SpanRejected("bad_time", "a span time is out of range") from None


def _error(span: Span) -> str | None:
    if span.error is None:
        return None
    return _clean(span.error or _text(span.attributes.get("error.type")) or "error")


# ----------------------------------------------------------------- messages


Message = dict[str, Any]
"""``{"role": ..., "parts": [...]}`` as the current conventions write messages."""


def input_messages(span: Span) -> list[Message]:
    """The input messages: ``gen_ai.system_instructions`` + ``gen_ai.input.messages``, else
    the older message events."""
    attrs = span.attributes
    messages = _messages(attrs.get("gen_ai.input.messages"))
    instructions = _json(attrs.get("gen_ai.system_instructions"))
    if isinstance(instructions, list) and instructions:
        messages.insert(0, {"role": "system", "parts": _parts(instructions)})
    if "gen_ai.input.messages" in attrs:
        return messages
    return messages + [m for e in span.events if (m := _event_message(e)) is not None]


def output_messages(span: Span) -> list[Message]:
    """The output messages: ``gen_ai.output.messages``, else the ``gen_ai.choice`` events."""
    if "gen_ai.output.messages" in span.attributes:
        return _messages(span.attributes.get("gen_ai.output.messages"))
    return [_choice(e) for e in span.events if e.name == CHOICE_EVENT]


def input_of(messages: Sequence[Message]) -> str:
    """The last user message's text, else the messages as JSON (see the module docstring)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            text = _text_of(message)
            if text:
                return text
    return _dump(messages) if messages else ""


def output_of(messages: Sequence[Message]) -> str:
    """The last message's text that has any, else the messages as JSON."""
    for message in reversed(messages):
        text = _text_of(message)
        if text:
            return text
    return _dump(messages) if messages else ""


def steps_of(messages: Iterable[Message]) -> list[Step]:
    """The trajectory in the messages: tool calls, tool results and assistant texts."""
    steps: list[Step] = []
    for message in messages:
        role = _text(message.get("role"))
        for part in message.get("parts", ()):
            step = _step(part, role) if isinstance(part, dict) else None
            if step is not None:
                steps.append(step)
    return steps


def fed_results(messages: Sequence[Message]) -> list[Message]:
    """The messages after the input's last assistant message: the tool results this call
    was fed (the calls that asked for them were the previous call's output)."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "assistant":
            return list(messages[index + 1 :])
    return list(messages)


def _step(part: Mapping[str, Any], role: str | None) -> Step | None:
    kind = part.get("type")
    if kind == "tool_call" and _text(part.get("name")):
        return Step(
            kind="tool_call",
            name=_key(part.get("name")),
            id=_key(part.get("id")),
            arguments=_arguments(part.get("arguments")),
        )
    if kind == "tool_call_response":
        return Step(
            kind="tool_result", id=_key(part.get("id")), content=_plain(part.get("response"))
        )
    if kind == "text" and role == "assistant" and _text(part.get("content")):
        return Step(kind="message", role="assistant", content=_text(part.get("content")))
    return None


def _tool_span(attrs: Mapping[str, object]) -> tuple[str, str, list[Step]]:
    """An ``execute_tool`` span: input the arguments, output the result, one call and result."""
    name = _key(attrs.get("gen_ai.tool.name"))
    call_id = _key(attrs.get("gen_ai.tool.call.id"))
    arguments = _arguments(attrs.get("gen_ai.tool.call.arguments"))
    steps = [Step(kind="tool_call", name=name, id=call_id, arguments=arguments)] if name else []
    result = attrs.get("gen_ai.tool.call.result")
    if result is not None:
        steps.append(Step(kind="tool_result", name=name, id=call_id, content=_plain(_json(result))))
    output = result if isinstance(result, str) else _dump(_plain(result)) if result else ""
    return (_dump(arguments) if arguments else ""), output, steps


def _messages(value: object) -> list[Message]:
    decoded = _json(value)
    if not isinstance(decoded, list):
        return []
    messages = []
    for item in decoded:
        if isinstance(item, dict):
            parts = item.get("parts")
            messages.append(
                {
                    "role": _text(item.get("role")) or "user",
                    "parts": _parts(parts) if isinstance(parts, list) else [],
                }
            )
    return messages


def _parts(items: Sequence[object]) -> list[dict[str, Any]]:
    return [item for item in items if isinstance(item, dict)]


def _event_message(event: SpanEvent) -> Message | None:
    """A message of the older per-message events (``gen_ai.user.message``...)."""
    role = _EVENT_ROLES.get(event.name)
    if role is None:
        return None
    body = _event_body(event)
    return {"role": _text(body.get("role")) or role, "parts": _body_parts(body, role)}


def _choice(event: SpanEvent) -> Message:
    """A ``gen_ai.choice`` event: its ``message`` field is the assistant's answer."""
    body = _event_body(event)
    message = _json(body.get("message"))
    fields = message if isinstance(message, dict) else body
    return {"role": _text(fields.get("role")) or "assistant", "parts": _body_parts(fields, "")}


def _event_body(event: SpanEvent) -> Mapping[str, Any]:
    """The event's body fields: a JSON ``body`` attribute, else the attributes themselves."""
    body = _json(event.attributes.get("body", event.attributes.get("event.body")))
    return body if isinstance(body, dict) else event.attributes


def _body_parts(body: Mapping[str, Any], role: str) -> list[dict[str, Any]]:
    """An older message body as parts: its text, its tool calls, or its tool result."""
    content = _content_text(_json(body.get("content")))
    if role == "tool":
        return [{"type": "tool_call_response", "id": body.get("id"), "response": content}]
    parts: list[dict[str, Any]] = [{"type": "text", "content": content}] if content else []
    calls = _json(body.get("tool_calls"))
    for call in calls if isinstance(calls, list) else ():
        if isinstance(call, dict):
            function = _json(call.get("function"))
            function = function if isinstance(function, dict) else {}
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": function.get("arguments"),
                }
            )
    return parts


def _content_text(content: object) -> str:
    """A message ``content``: a string, or a list of blocks with ``text`` or ``content``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [_text(b.get("text", b.get("content"))) for b in content if isinstance(b, dict)]
        return "\n".join(t for t in texts if t)
    return ""


def _text_of(message: Message) -> str:
    texts = [
        _text(part.get("content"))
        for part in message.get("parts", ())
        if isinstance(part, dict) and part.get("type") == "text"
    ]
    return "\n".join(t for t in texts if t)


# ------------------------------------------------------------------- values


def metadata_of(attributes: Mapping[str, object]) -> dict[str, JsonValue]:
    """The span's non-``gen_ai.*`` attributes, at most ``MAX_METADATA_KEYS``, strings cut."""
    metadata: dict[str, JsonValue] = {}
    for key, value in attributes.items():
        if key.startswith(GEN_AI_PREFIX):
            continue
        if len(metadata) >= MAX_METADATA_KEYS:
            break
        plain = _plain(value)
        metadata[key[:MAX_STEP_KEY_CHARS]] = (
            plain[:MAX_METADATA_CHARS] if isinstance(plain, str) else plain
        )
    return metadata


def _json(value: object) -> object:
    """Decode a JSON string; anything else (structured already, or not JSON) as it is."""
    if isinstance(value, str) and value[:1] in ("[", "{", '"'):
        try:
            decoded: object = json.loads(value)
        except ValueError:
            return value
        return decoded
    return value


def _arguments(value: object) -> dict[str, JsonValue]:
    decoded = _plain(_json(value))
    if decoded is None:
        return {}
    return decoded if isinstance(decoded, dict) else {"value": decoded}


def _plain(value: object) -> JsonValue:
    """A JSON value: mappings and sequences walked, bytes as hex, anything else as text."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def _dump(value: object) -> str:
    return json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"))


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return None


def _key(value: object) -> str | None:
    text = _text(value)
    return text[:MAX_STEP_KEY_CHARS] if text else None


def _clean(value: str) -> str:
    """Without NUL characters: Postgres refuses them in text, and they carry nothing."""
    return value.replace("\x00", "")


def _cut(value: str | None, column: str) -> str | None:
    return value[: MAX_FIELD_CHARS[column]] if value else None


def _count(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and 0 <= value < 2**31:
        return value
    return None
