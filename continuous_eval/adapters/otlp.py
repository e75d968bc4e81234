"""OTLP/HTTP trace export requests: decode (protobuf or JSON, gzip or not) and answer.

Decoded with the maintained ``opentelemetry-proto`` messages, then turned
into plain ``core.genai_spans.Span`` values, so the mapping never sees
protobuf.

OTLP/JSON is protobuf's JSON mapping with exceptions the spec makes:
trace and span ids are hex strings, not base64 (``json_format`` would read
them as base64 and get the bytes wrong), so they are rewritten to base64
before parsing; enums may be integers and 64-bit integers strings (both
``json_format`` accepts); unknown fields are ignored, as receivers must.

A gzip body is inflated in bounded steps and refused as soon as it passes
the cap: a few kilobytes of zeros must not become gigabytes in memory.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterator
from typing import Any, Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from continuous_eval.core.genai_spans import Span, SpanEvent
from continuous_eval.core.interactions import IngestOutcome

Encoding = Literal["protobuf", "json"]

MEDIA_TYPES: dict[str, Encoding] = {
    "application/x-protobuf": "protobuf",
    "application/protobuf": "protobuf",
    "application/json": "json",
}
"""The content types OTLP/HTTP uses, and the encoding each names."""

RESPONSE_MEDIA_TYPES: dict[Encoding, str] = {
    "protobuf": "application/x-protobuf",
    "json": "application/json",
}

INFLATE_CHUNK = 64 * 1024
"""Bytes inflated per step, so the cap is checked long before memory is at risk."""


class OtlpError(Exception):
    """A request that cannot be decoded, with its HTTP status and stable code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def encoding_of(content_type: str | None) -> Encoding:
    """The encoding a ``Content-Type`` names (parameters such as ``charset`` ignored).

    Raises:
        OtlpError: 415 ``unsupported_media_type`` for anything else.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    encoding = MEDIA_TYPES.get(media)
    if encoding is None:
        raise OtlpError(
            415,
            "unsupported_media_type",
            "send application/x-protobuf or application/json (OTLP/HTTP)",
        )
    return encoding


def inflate(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """The body as sent, decompressed when ``Content-Encoding: gzip``, at most ``max_bytes``.

    Raises:
        OtlpError: 415 ``unsupported_encoding`` (not gzip or identity), 400
            ``invalid_body`` (not gzip), 413 ``payload_too_large`` (inflates
            past ``max_bytes``).
    """
    coding = (content_encoding or "identity").strip().lower()
    if coding == "identity":
        return body
    if coding != "gzip":
        raise OtlpError(415, "unsupported_encoding", "Content-Encoding must be gzip or identity")
    inflater = zlib.decompressobj(wbits=31)
    out = bytearray()
    data = body
    try:
        while data and not inflater.eof:
            out += inflater.decompress(data, INFLATE_CHUNK)
            if len(out) > max_bytes:
                raise OtlpError(
                    413,
                    "payload_too_large",
                    f"the decompressed body is larger than {max_bytes} bytes",
                )
            data = inflater.unconsumed_tail
    except zlib.error:
        raise OtlpError(400, "invalid_body", "the body is not valid gzip") from None
    if not inflater.eof:
        raise OtlpError(400, "invalid_body", "the gzip body is truncated")
    return bytes(out)


def decode_request(payload: bytes, encoding: Encoding) -> ExportTraceServiceRequest:
    """Parse an ``ExportTraceServiceRequest`` (already decompressed).

    Raises:
        OtlpError: 400 ``invalid_otlp`` when the payload is not one.
    """
    request = ExportTraceServiceRequest()
    try:
        if encoding == "protobuf":
            request.ParseFromString(payload)
        else:
            document = json.loads(payload)
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
            _base64_ids(document)
            json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (DecodeError, json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise OtlpError(400, "invalid_otlp", f"not an OTLP trace export request: {exc}") from None
    return request


def encode_response(outcome: IngestOutcome, encoding: Encoding) -> bytes:
    """The ``ExportTraceServiceResponse``: ``partial_success`` only when spans were refused."""
    response = ExportTraceServiceResponse()
    if outcome.rejected_total:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(
                rejected_spans=outcome.rejected_total,
                error_message="; ".join(outcome.messages),
            )
        )
    if encoding == "protobuf":
        raw: bytes = response.SerializeToString()
        return raw
    text: str = json_format.MessageToJson(response, indent=None)
    return text.encode("utf-8")


def spans_of(request: ExportTraceServiceRequest) -> Iterator[Span]:
    """Every span of the request as a plain ``Span``, with its resource's attributes."""
    for resource_spans in request.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield _span(span, resource)


def _span(span: PbSpan, resource: dict[str, object]) -> Span:
    error = None
    if span.status.code == Status.STATUS_CODE_ERROR:
        error = span.status.message
    return Span(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex() or None,
        name=span.name,
        start_unix_nano=span.start_time_unix_nano,
        end_unix_nano=span.end_time_unix_nano,
        attributes=attributes_of(span.attributes),
        events=[SpanEvent(e.name, attributes_of(e.attributes)) for e in span.events],
        resource=resource,
        error=error,
    )


def attributes_of(pairs: Any) -> dict[str, object]:
    """Key-value pairs as a dict of plain values (the last value of a repeated key wins).

    Every attribute of every span passes here: a string (nearly all of them)
    is read in place rather than through ``value_of``'s generic lookup.
    """
    result: dict[str, object] = {}
    pair: KeyValue
    for pair in pairs:
        value = pair.value
        if value.WhichOneof("value") == "string_value":
            result[pair.key] = value.string_value
        else:
            result[pair.key] = value_of(value)
    return result


def value_of(value: AnyValue) -> object:
    """An ``AnyValue`` as plain Python: str, bool, int, float, bytes, list or dict."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    if kind is None:
        return None
    plain: object = getattr(value, kind)
    return plain


# ------------------------------------------------------------- OTLP/JSON ids

_ID_FIELDS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")


def _base64_ids(document: dict[str, Any]) -> None:
    """Rewrite the hex ids of spans, their links and events in place as base64."""
    for resource_spans in _list(document, "resourceSpans", "resource_spans"):
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans"):
            for span in _list(scope_spans, "spans"):
                _rewrite(span)
                for link in _list(span, "links"):
                    _rewrite(link)


def _list(parent: object, *keys: str) -> list[dict[str, Any]]:
    if not isinstance(parent, dict):
        return []
    for key in keys:
        value = parent.get(key)
        if isinstance(value, list):
            return [item for item in value if isinstance(item, dict)]
    return []


def _rewrite(item: dict[str, Any]) -> None:
    for key in _ID_FIELDS:
        value = item.get(key)
        if isinstance(value, str) and value:
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                raise ValueError(f"{key} is not hex: OTLP/JSON sends ids as hex") from None
            item[key] = base64.b64encode(raw).decode("ascii")
