"""Dashboard sign-in: an API token exchanged for a signed, expiring session cookie.

A browser cannot send a bearer token with a page load or an ``EventSource``,
so the dashboard signs people in once with a token and then recognises a
cookie. The cookie is stateless, so any replica accepts it:

    <token id>.<itsdangerous-signed, timestamped nonce>

- The signing key of a session is derived from the token it was opened with
  (HMAC-SHA256 of the token), and the token id is a hash of the token. A
  session lasts ``dashboard_session_hours`` at most, and ends as soon as its
  token is removed from ``CONTINUOUS_EVAL_API_TOKENS`` (no key to check it).
- The CSRF token of every form is derived from the session's nonce and key,
  so a page of this session can post and a page elsewhere cannot, with no
  server-side storage. Sign-in itself (no session yet) uses a double-submit
  cookie. The cookies are ``HttpOnly``, ``SameSite=Strict``, and ``Secure``
  when served over HTTPS.
- With no token configured on a loopback address (the API is open there),
  sign-in takes an empty token and sessions are signed with a key that lives
  as long as the process.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from http.cookies import SimpleCookie

from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import SecretStr

SESSION_COOKIE = "ce_session"
SIGNIN_COOKIE = "ce_signin"
"""The double-submit value of the sign-in form (before any session exists)."""

_SALT = "continuous-eval dashboard session"
ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: which token opened it, and the CSRF token of its forms."""

    token_id: str
    csrf: str


def _token_id(token: bytes) -> str:
    return hashlib.sha256(b"continuous-eval token id:" + token).hexdigest()[:16]


class Sessions:
    """Open and recognise dashboard sessions.

    Args:
        tokens: The accepted API tokens.
        anonymous: No token is needed (none configured, loopback only).
        max_age_s: Lifetime of a session.
    """

    def __init__(self, tokens: Sequence[SecretStr], *, anonymous: bool, max_age_s: float) -> None:
        self._keys: dict[str, bytes] = {}
        for token in tokens:
            raw = token.get_secret_value().encode("utf-8")
            if raw:
                self._keys[_token_id(raw)] = hmac.new(raw, _SALT.encode(), "sha256").digest()
        if anonymous:
            self._keys = {ANONYMOUS: secrets.token_bytes(32)}
        self.anonymous = anonymous
        """Sign-in takes no token (none configured, served on loopback only)."""
        self.max_age_s = max_age_s

    def sign_in(self, token: str) -> str | None:
        """The cookie value of a new session for ``token``, or None if it is not accepted."""
        raw = token.encode("utf-8")
        if ANONYMOUS in self._keys:
            token_id = ANONYMOUS
        else:
            token_id = _token_id(raw)
            if token_id not in self._keys or not raw:
                return None
        key = self._keys[token_id]
        signed = _serializer(key).dumps(secrets.token_urlsafe(16))
        return f"{token_id}.{signed}"

    def read(self, cookie_header: str | None) -> Session | None:
        """The session of a request's ``Cookie`` header, if it carries a valid one."""
        value = cookie_value(cookie_header, SESSION_COOKIE)
        if value is None or "." not in value:
            return None
        token_id, signed = value.split(".", 1)
        key = self._keys.get(token_id)
        if key is None:
            return None
        try:
            nonce = _serializer(key).loads(signed, max_age=math.ceil(self.max_age_s))
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(nonce, str):
            return None
        csrf = hmac.new(key, b"csrf:" + nonce.encode(), "sha256").hexdigest()
        return Session(token_id, csrf)


def _serializer(key: bytes) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(key, salt=_SALT)


def cookie_value(header: str | None, name: str) -> str | None:
    """One cookie's value from a ``Cookie`` header (None when absent or malformed)."""
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed header is simply no session
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def csrf_matches(expected: str | None, submitted: str | None) -> bool:
    """Whether a form's CSRF field is the one expected, compared in constant time."""
    if not expected or not submitted:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())
