"""Bearer-token authentication of the admin API.

Only the token check and the decision of who may go without one belong
here; ``middleware.RequestGuard`` applies it to every request before routing,
so a route added later is protected without anyone remembering to.

The scheme is matched case-sensitively: exactly ``Bearer`` followed by one
space. RFC 9110 makes auth schemes case-insensitive, but every client and
library sends ``Bearer``; accepting exactly one spelling keeps the parser a
byte-prefix check with no normalisation to get wrong, and a client that sends
``bearer`` learns at once (401) rather than meeting a proxy that disagrees.

Tokens are compared as bytes with ``hmac.compare_digest`` against every
configured token (no early exit), so the time taken says nothing about how
much of a token matched. The raw header bytes are used as sent: a non-ASCII
or oversized header is simply not a match (401), never a decoding error (500).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence

from fastapi.security import HTTPBearer
from pydantic import SecretStr

SCHEME_PREFIX = b"Bearer "
"""The only accepted form of the ``Authorization`` header's start (see the module docstring)."""

MAX_TOKEN_BYTES = 1024
"""Longer tokens are refused without comparing: nobody issues them, and it bounds the work."""

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A token from CONTINUOUS_EVAL_API_TOKENS, sent as `Authorization: Bearer <token>`.",
)
"""Declares the scheme in the OpenAPI document; the check itself is ``TokenAuth``."""


class TokenAuth:
    """Decide whether a request's ``Authorization`` header carries an accepted token.

    Args:
        tokens: The accepted tokens. With none, every request is refused
            unless ``allow_anonymous``.
        allow_anonymous: Let requests through without a token when no token
            is configured (``serve`` on a loopback address only).
    """

    def __init__(self, tokens: Sequence[SecretStr], *, allow_anonymous: bool = False) -> None:
        self._tokens = [t.get_secret_value().encode("utf-8") for t in tokens]
        self._tokens = [t for t in self._tokens if t]
        self.anonymous = allow_anonymous and not self._tokens
        """Whether requests need no token at all."""

    def allows(self, headers: Sequence[tuple[bytes, bytes]]) -> bool:
        """Return whether the raw ASGI headers carry exactly one accepted bearer token."""
        if self.anonymous:
            return True
        values = [value for name, value in headers if name.lower() == b"authorization"]
        if len(values) != 1:
            return False
        value = values[0]
        if not value.startswith(SCHEME_PREFIX):
            return False
        token = value[len(SCHEME_PREFIX) :]
        if not token or len(token) > MAX_TOKEN_BYTES:
            return False
        matched = False
        for accepted in self._tokens:
            matched |= hmac.compare_digest(token, accepted)
        return matched


def is_loopback(host: str) -> bool:
    """Return whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
