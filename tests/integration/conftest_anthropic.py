"""Fixtures for tests that drive the real ``anthropic`` SDK against the fake Messages API.

Registered from ``tests/conftest.py`` with
``pytest_plugins = ["tests.integration.conftest_anthropic"]``.

One fake server serves the whole session (starting uvicorn per test would
cost more than most tests); ``fake_anthropic`` resets it before each test so
no script, latency or recorded request leaks from one test into another.
Retryable errors carry ``retry-after-ms: 1``, so SDK retries cost about a
millisecond instead of the SDK's default half-second backoff.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from anthropic import AsyncAnthropic
from pydantic import SecretStr

from continuous_eval.adapters.anthropic_client import make_anthropic_client
from continuous_eval.core.pricing import Price
from continuous_eval.fakes.anthropic_server import FakeAnthropicServer
from continuous_eval.settings import Settings

FAKE_API_KEY = "sk-ant-fake-test-key"
"""The only key the session's fake accepts."""

FAST_RETRY_AFTER_MS = 1
"""``retry-after-ms`` on the fake's retryable errors: the SDK waits this instead of backing off."""

LARGE_TEST_MODEL = "claude-test-large"
"""A model id no provider will ever list, so no SDK release can deprecate it under a test."""

TEST_PRICES: dict[str, Price] = {
    "claude-haiku-4-5": Price(input_per_mtok=1.0, output_per_mtok=5.0),
    LARGE_TEST_MODEL: Price(input_per_mtok=5.0, output_per_mtok=25.0),
}
"""Prices the adapters are built with in tests."""

ClientFactory = Callable[..., AsyncAnthropic]


@pytest.fixture(scope="session")
def fake_anthropic_session() -> Iterator[FakeAnthropicServer]:
    """Start the fake Messages API once for the session."""
    with FakeAnthropicServer(api_key=FAKE_API_KEY, retry_after_ms=FAST_RETRY_AFTER_MS) as server:
        yield server


@pytest.fixture
def fake_anthropic(fake_anthropic_session: FakeAnthropicServer) -> FakeAnthropicServer:
    """Return the session's fake, reset: no script, no latency, nothing recorded."""
    server = fake_anthropic_session
    server.reset()
    server.set_latency(0.0)
    server.state.retry_after_ms = FAST_RETRY_AFTER_MS
    return server


def anthropic_settings_for(server: FakeAnthropicServer, **overrides: object) -> Settings:
    """Build settings pointing at the fake, with few retries and a short timeout."""
    values: dict[str, object] = {
        "anthropic_api_key": SecretStr(FAKE_API_KEY),
        "anthropic_base_url": server.base_url,
        "anthropic_max_retries": 2,
        "anthropic_timeout_s": 10.0,
        **overrides,
    }
    return Settings.model_validate(values)


@pytest.fixture
def anthropic_settings(fake_anthropic: FakeAnthropicServer) -> Settings:
    """Settings whose Anthropic client talks to the fake."""
    return anthropic_settings_for(fake_anthropic)


@pytest.fixture
async def anthropic_client(anthropic_settings: Settings) -> AsyncIterator[AsyncAnthropic]:
    """A real ``AsyncAnthropic`` from ``make_anthropic_client`` on the fake, closed after."""
    client = make_anthropic_client(anthropic_settings)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def make_client(fake_anthropic: FakeAnthropicServer) -> AsyncIterator[ClientFactory]:
    """Build extra clients with other settings (``make_client(anthropic_max_retries=0)``).

    Every client built is closed after the test.
    """
    clients: list[AsyncAnthropic] = []

    def build(**overrides: object) -> AsyncAnthropic:
        client = make_anthropic_client(anthropic_settings_for(fake_anthropic, **overrides))
        clients.append(client)
        return client

    try:
        yield build
    finally:
        for client in clients:
            await client.close()
