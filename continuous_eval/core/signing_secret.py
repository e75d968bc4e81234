"""What a webhook signing secret must look like (Standard Webhooks), checked without I/O.

Settings validation and the webhook signer both need the rule; keeping it in
core lets settings refuse a bad secret at start-up without importing the
HTTP adapters.
"""

from __future__ import annotations

import base64
import binascii

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
"""Standard Webhooks secrets are ``whsec_`` followed by base64."""

MIN_SECRET_BYTES = 24
"""Shortest signing key accepted (Standard Webhooks asks for 24 to 64 bytes)."""


def check_signing_secret(secret: str) -> None:
    """Refuse a secret that is not ``whsec_``/base64 of at least 24 bytes (message without it).

    Raises:
        ValueError: the secret is not base64, or its key is too short.
    """
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "expected whsec_ followed by base64 (a Standard Webhooks secret)"
        ) from None
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"the signing key must be at least {MIN_SECRET_BYTES} bytes")
