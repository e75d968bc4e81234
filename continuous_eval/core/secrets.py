"""Take secrets out of text before it is stored, logged, served or sent.

One mechanism for every way text leaves the process: log lines, stored
error messages, API answers and alert delivery reasons all pass through a
``Scrubber`` built from the configured secrets. Providers and gateways
sometimes echo a key back in an error (``invalid x-api-key (received
Bearer sk-ant-...)``), so besides the exact configured values, anything
shaped like a provider key, a bearer credential or a URL password is
replaced too, configured or not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

REDACTED: Final = "[redacted]"
"""What a secret is replaced with."""

MIN_SECRET_CHARS: Final = 6
"""Shorter configured values are not scrubbed: replacing every "abc" would wreck messages."""

_SHAPES: Final = (
    # Anthropic keys (sk-ant-api03-...), and other sk- style provider keys.
    (re.compile(r"\bsk-[A-Za-z0-9][A-Za-z0-9_-]{10,}"), "sk-" + REDACTED),
    # Resend keys.
    (re.compile(r"\bre_[A-Za-z0-9_]{6,}"), "re_" + REDACTED),
    # A credential after an auth scheme or in an API-key header, echoed back.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"(?i)\b(x-api-key[\"']?\s*[:=]\s*[\"']?)[^\s\"',;)]{8,}"), r"\1" + REDACTED),
    # user:password@ in a URL.
    (re.compile(r"(://[^:/@\s]*):[^@\s]*@"), r"\1:" + REDACTED + "@"),
)


class Scrubber:
    """Replaces configured secrets, and anything shaped like a credential, in text.

    Args:
        secrets: The values to take out wherever they appear (API keys,
            tokens, webhook URLs); empty and very short values are ignored.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is removed whole.
        self._secrets = sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True
        )

    def with_secrets(self, secrets: Iterable[str]) -> Scrubber:
        """Return a scrubber that also removes ``secrets``."""
        return Scrubber([*self._secrets, *secrets])

    def __call__(self, text: str) -> str:
        """Return ``text`` with every secret replaced by ``[redacted]``."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern, replacement in _SHAPES:
            text = pattern.sub(replacement, text)
        return text
