"""Dashboard sessions: what a cookie proves, for how long, and what ends it."""

from __future__ import annotations

from freezegun import freeze_time
from pydantic import SecretStr

from continuous_eval.adapters.http.dashboard.gate import safe_next, signin_location
from continuous_eval.adapters.http.dashboard.sessions import (
    SESSION_COOKIE,
    Sessions,
    cookie_value,
    csrf_matches,
)

TOKENS = [SecretStr("token-a"), SecretStr("token-b")]


def _header(value: str) -> str:
    return f"other=1; {SESSION_COOKIE}={value}"


def test_a_session_is_opened_only_with_an_accepted_token() -> None:
    sessions = Sessions(TOKENS, anonymous=False, max_age_s=3600)
    assert sessions.sign_in("token-c") is None
    assert sessions.sign_in("") is None
    cookie = sessions.sign_in("token-b")
    assert cookie is not None
    assert "token-b" not in cookie  # the cookie names the token by a hash only
    session = sessions.read(_header(cookie))
    assert session is not None
    assert len(session.csrf) == 64


def test_each_session_has_its_own_csrf_token() -> None:
    sessions = Sessions(TOKENS, anonymous=False, max_age_s=3600)
    one, two = sessions.sign_in("token-a"), sessions.sign_in("token-a")
    assert one is not None
    assert two is not None
    first, second = sessions.read(_header(one)), sessions.read(_header(two))
    assert first is not None
    assert second is not None
    assert first.csrf != second.csrf
    assert csrf_matches(first.csrf, first.csrf)
    assert not csrf_matches(first.csrf, second.csrf)
    assert not csrf_matches(first.csrf, None)
    assert not csrf_matches(None, first.csrf)


def test_a_session_expires() -> None:
    with freeze_time("2026-12-01 10:00:00") as frozen:
        sessions = Sessions(TOKENS, anonymous=False, max_age_s=3600)
        cookie = sessions.sign_in("token-a")
        assert cookie is not None
        frozen.tick(3599)
        assert sessions.read(_header(cookie)) is not None
        frozen.tick(2)
        assert sessions.read(_header(cookie)) is None


def test_removing_its_token_ends_a_session_and_another_replica_accepts_it() -> None:
    cookie = Sessions(TOKENS, anonymous=False, max_age_s=3600).sign_in("token-a")
    assert cookie is not None
    # Another replica with the same tokens: stateless, so it recognises the session.
    assert Sessions(TOKENS, anonymous=False, max_age_s=3600).read(_header(cookie)) is not None
    rotated = Sessions([SecretStr("token-b")], anonymous=False, max_age_s=3600)
    assert rotated.read(_header(cookie)) is None


def test_a_tampered_or_malformed_cookie_is_no_session() -> None:
    sessions = Sessions(TOKENS, anonymous=False, max_age_s=3600)
    cookie = sessions.sign_in("token-a")
    assert cookie is not None
    token_id, signed = cookie.split(".", 1)
    assert sessions.read(_header(f"{token_id}.{signed[:-2]}xx")) is None
    other = sessions.sign_in("token-b")
    assert other is not None
    assert sessions.read(_header(f"{token_id}.{other.split('.', 1)[1]}")) is None
    for header in (None, "", "garbage", f"{SESSION_COOKIE}=nodot", '"; =;;'):
        assert sessions.read(header) is None


def test_anonymous_sessions_need_no_token_and_die_with_the_process() -> None:
    sessions = Sessions([], anonymous=True, max_age_s=60)
    cookie = sessions.sign_in("")
    assert cookie is not None
    assert sessions.read(_header(cookie)) is not None
    assert Sessions([], anonymous=True, max_age_s=60).read(_header(cookie)) is None


def test_cookie_values_are_read_from_a_header() -> None:
    assert cookie_value("a=1; b=2", "b") == "2"
    assert cookie_value("a=1", "b") is None
    assert cookie_value(None, "b") is None


def test_after_sign_in_only_dashboard_paths_are_followed() -> None:
    assert safe_next("/ui/alerts?x=1") == "/ui/alerts?x=1"
    assert safe_next("/") == "/"
    for hostile in ("//evil.example", "https://evil.example", "/\\evil", "/api/runs", "", None):
        assert safe_next(hostile) == "/"
    assert signin_location("/ui/runs/a b", b"x=1") == "/ui/signin?next=%2Fui%2Fruns%2Fa%20b%3Fx%3D1"
