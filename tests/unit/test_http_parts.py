"""The admin API's pure parts: the token check, cursors, spec hashes and live-event grouping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from continuous_eval.adapters.http.auth import MAX_TOKEN_BYTES, TokenAuth, is_loopback
from continuous_eval.adapters.http.errors import ApiError
from continuous_eval.adapters.http.events import _case_groups
from continuous_eval.adapters.http.pagination import (
    decode_result_cursor,
    decode_run_cursor,
    encode_result_cursor,
    encode_run_cursor,
)
from continuous_eval.adapters.http.runs import spec_hash
from continuous_eval.core.models import NO_USAGE, ResultRecord, ResultStatus
from continuous_eval.core.reads import RunKey


def _headers(value: bytes | None) -> list[tuple[bytes, bytes]]:
    return [] if value is None else [(b"authorization", value)]


def test_tokens_are_compared_as_utf8_bytes() -> None:
    auth = TokenAuth([SecretStr("s\u00e9cret"), SecretStr("other")])
    assert auth.allows(_headers("Bearer s\u00e9cret".encode()))
    assert auth.allows(_headers(b"Bearer other"))
    # The same text in Latin-1 is other bytes: refused.
    assert not auth.allows(_headers("Bearer s\u00e9cret".encode("latin-1")))


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"Bearer",
        b"Bearer ",
        b"bearer other",
        b"BEARER other",
        b"Bearer  other",
        b"Bearer other ",
        b"Token other",
        b"Bearer \xff\xfe",
        b"Bearer " + b"o" * (MAX_TOKEN_BYTES + 1),
    ],
)
def test_anything_but_the_exact_form_is_refused(value: bytes | None) -> None:
    assert not TokenAuth([SecretStr("other")]).allows(_headers(value))


def test_two_authorization_headers_are_refused() -> None:
    auth = TokenAuth([SecretStr("t")])
    assert not auth.allows([(b"authorization", b"Bearer t"), (b"authorization", b"Bearer t")])


def test_no_token_means_locked_unless_anonymous_is_allowed() -> None:
    assert not TokenAuth([]).allows([])
    assert TokenAuth([], allow_anonymous=True).allows([])
    # A configured token always wins over anonymous access.
    with_token = TokenAuth([SecretStr("t")], allow_anonymous=True)
    assert not with_token.anonymous
    assert not with_token.allows([])
    # An empty token is no token.
    assert not TokenAuth([SecretStr("")]).allows(_headers(b"Bearer "))


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("::", False)],  # noqa: S104
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_cursors_round_trip_and_refuse_anything_else() -> None:
    key = RunKey(datetime(2025, 3, 1, 12, 30, 1, 123456, tzinfo=UTC), "run-1")
    assert decode_run_cursor(encode_run_cursor(key)) == key
    assert decode_result_cursor(encode_result_cursor(42)) == 42
    bad = [
        "",
        "!!",
        "bm90IGpzb24",  # "not json"
        encode_result_cursor(1),  # another listing's cursor
        "x" * 600,
        "eyJrIjoicnVucyIsInQiOiIwMDAxLTAxLTAxVDAwOjAwOjAwKzA1OjAwIiwiaSI6ImEifQ",  # year 1, +05:00
    ]
    for cursor in bad:
        with pytest.raises(ApiError) as caught:
            decode_run_cursor(cursor)
        assert caught.value.status == 422
    with pytest.raises(ApiError):
        decode_result_cursor(encode_run_cursor(key))


def test_the_spec_hash_ignores_feature_order_and_repeats() -> None:
    assert spec_hash("s", ["a", "b"]) == spec_hash("s", ["b", "a", "a"])
    assert spec_hash("s", ["a"]) != spec_hash("s", ["a", "b"])
    assert spec_hash("s", []) != spec_hash("s", ["a", "b"])  # "all" is not today's list
    assert spec_hash("s", []) != spec_hash("t", [])
    assert len(spec_hash("s", [])) == 64  # fits eval_runs.spec_hash


def _row(row_id: int, case_id: str, scorer: str = "x", feature: str = "f") -> ResultRecord:
    return ResultRecord(
        id=row_id,
        run_id="r",
        feature=feature,
        case_id=case_id,
        scorer=scorer,
        status=ResultStatus.OK,
        score=1.0,
        passed=True,
        output_excerpt=None,
        error=None,
        rationale=None,
        latency_ms=None,
        usage=NO_USAGE,
        attempt=1,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
    )


def test_case_groups_are_consecutive_rows_and_a_full_batch_holds_its_last() -> None:
    rows = [_row(1, "a"), _row(2, "a", "y"), _row(3, "b"), _row(4, "a", feature="g")]
    groups = _case_groups(rows, hold_last=False)
    assert [[r.id for r in g] for g in groups] == [[1, 2], [3], [4]]
    held = _case_groups(rows, hold_last=True)
    assert [[r.id for r in g] for g in held] == [[1, 2], [3]]
    # A single group filling the batch is sent anyway, or the stream would stall.
    assert len(_case_groups([_row(1, "a"), _row(2, "a", "y")], hold_last=True)) == 1
