"""OTLP/HTTP bodies: protobuf and JSON (hex ids), gzip, bombs, and the answers."""

from __future__ import annotations

import gzip
import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValueList

from continuous_eval.adapters import otlp
from continuous_eval.core.interactions import IngestOutcome
from tests.fixtures.otlp_requests import START_NS, as_json, genai_request, kv

TRACE = f"{1:032x}"


def test_protobuf_decodes_to_spans_with_hex_ids_and_the_resource() -> None:
    request = genai_request(2)
    spans = list(otlp.spans_of(otlp.decode_request(request.SerializeToString(), "protobuf")))
    assert [(s.trace_id, s.span_id) for s in spans] == [
        (TRACE, "0000000000000001"),
        (TRACE, "0000000000000002"),
    ]
    assert spans[0].resource == {"service.name": "support-bot"}
    assert spans[0].attributes["gen_ai.usage.input_tokens"] == 10
    assert spans[0].start_unix_nano == START_NS
    assert spans[0].parent_span_id is None
    assert spans[0].error is None


def test_json_ids_are_hex_not_base64() -> None:
    request = genai_request(1)
    body = as_json(request)
    assert TRACE.encode() in body  # what a JSON exporter sends
    spans = list(otlp.spans_of(otlp.decode_request(body, "json")))
    assert (spans[0].trace_id, spans[0].span_id) == (TRACE, "0000000000000001")
    assert spans[0].attributes["gen_ai.usage.output_tokens"] == 5  # int64 sent as a string


def test_json_accepts_integer_enums_and_ignores_unknown_fields() -> None:
    document = json.loads(as_json(genai_request(1)))
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["kind"] = 3
    span["status"] = {"code": 2, "message": "boom"}
    span["someFutureField"] = {"x": 1}
    spans = list(otlp.spans_of(otlp.decode_request(json.dumps(document).encode(), "json")))
    assert spans[0].error == "boom"


def test_structured_attribute_values_become_plain_python() -> None:
    request = genai_request(1)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    nested = AnyValue(kvlist_value=KeyValueList(values=[kv("a", 1), kv("b", "x")]))
    listed = AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="p"), nested]))
    span.attributes.add(key="app.list", value=listed)
    decoded = next(otlp.spans_of(otlp.decode_request(request.SerializeToString(), "protobuf")))
    assert decoded.attributes["app.list"] == ["p", {"a": 1, "b": "x"}]


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (b"\xff\xff\xff", "protobuf"),
        (b"{not json", "json"),
        (b"[]", "json"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "json"),
        (b'{"resourceSpans": "nope"}', "json"),
    ],
)
def test_undecodable_bodies_are_invalid_otlp(body: bytes, encoding: otlp.Encoding) -> None:
    with pytest.raises(otlp.OtlpError) as caught:
        otlp.decode_request(body, encoding)
    assert (caught.value.status, caught.value.code) == (400, "invalid_otlp")


def test_gzip_is_inflated() -> None:
    raw = genai_request(3).SerializeToString()
    assert otlp.inflate(gzip.compress(raw), "gzip", 1 << 20) == raw
    assert otlp.inflate(raw, None, 1 << 20) == raw


def test_a_gzip_bomb_is_refused_before_it_is_inflated_whole() -> None:
    bomb = gzip.compress(b"\0" * (50 << 20))  # 50 MiB of zeros in ~50 KiB
    assert len(bomb) < 100_000
    with pytest.raises(otlp.OtlpError) as caught:
        otlp.inflate(bomb, "gzip", 1 << 20)
    assert (caught.value.status, caught.value.code) == (413, "payload_too_large")


@pytest.mark.parametrize("body", [b"not gzip at all", gzip.compress(b"x" * 1000)[:-12]])
def test_broken_gzip_is_a_bad_body(body: bytes) -> None:
    with pytest.raises(otlp.OtlpError) as caught:
        otlp.inflate(body, "gzip", 1 << 20)
    assert (caught.value.status, caught.value.code) == (400, "invalid_body")


def test_other_encodings_and_media_types_are_unsupported() -> None:
    with pytest.raises(otlp.OtlpError) as caught:
        otlp.inflate(b"x", "br", 1 << 20)
    assert (caught.value.status, caught.value.code) == (415, "unsupported_encoding")
    assert otlp.encoding_of("application/json; charset=utf-8") == "json"
    assert otlp.encoding_of("application/x-protobuf") == "protobuf"
    with pytest.raises(otlp.OtlpError) as caught:
        otlp.encoding_of("text/plain")
    assert (caught.value.status, caught.value.code) == (415, "unsupported_media_type")


def test_the_answer_has_partial_success_only_when_spans_were_refused() -> None:
    assert otlp.encode_response(IngestOutcome(stored=3), "protobuf") == b""
    assert json.loads(otlp.encode_response(IngestOutcome(stored=3), "json")) == {}
    refused = IngestOutcome(stored=1, rejected={"no_feature": 2}, messages=("a", "b"))
    answer = ExportTraceServiceResponse.FromString(otlp.encode_response(refused, "protobuf"))
    assert answer.partial_success.rejected_spans == 2
    assert answer.partial_success.error_message == "a; b"
    assert json.loads(otlp.encode_response(refused, "json")) == {
        "partialSuccess": {"rejectedSpans": "2", "errorMessage": "a; b"}
    }
