"""Fixtures of the integration tests: the fake Anthropic and Resend servers, a webhook receiver.

Defined in ``tests.fixtures``; importing them here makes them fixtures of this
directory only (the unit tests start no server).
"""

from tests.fixtures.alerts import (
    fake_resend,
    fake_resend_session,
    fake_webhook,
    fake_webhook_session,
    make_resend_channel,
    make_webhook_channel,
    sleeps,
)
from tests.fixtures.anthropic import (
    anthropic_client,
    anthropic_settings,
    fake_anthropic,
    fake_anthropic_session,
    make_client,
)
from tests.fixtures.readers import backend

__all__ = [
    "anthropic_client",
    "anthropic_settings",
    "backend",
    "fake_anthropic",
    "fake_anthropic_session",
    "fake_resend",
    "fake_resend_session",
    "fake_webhook",
    "fake_webhook_session",
    "make_client",
    "make_resend_channel",
    "make_webhook_channel",
    "sleeps",
]
