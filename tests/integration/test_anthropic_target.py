"""The anthropic target and the client factory: the real SDK over HTTP against the fake API."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Mapping

import pytest
from anthropic import AsyncAnthropic
from pydantic import SecretStr

from continuous_eval.adapters.anthropic_client import make_anthropic_client, needs_anthropic
from continuous_eval.adapters.targets.anthropic_target import AnthropicTargetAdapter
from continuous_eval.core.suite import AnthropicTarget, Case, SuiteFile, parse_suite_file
from continuous_eval.errors import ConfigError, TargetError
from continuous_eval.fakes.anthropic_server import FakeAnthropicServer, ScriptedError
from tests.fixtures.anthropic import (
    FAKE_API_KEY,
    TEST_PRICES,
    ClientFactory,
    anthropic_settings_for,
)

SYSTEM = "Answer in one sentence."


def target(client: AsyncAnthropic, **config: object) -> AnthropicTargetAdapter:
    values: dict[str, object] = {"type": "anthropic", "model": "claude-haiku-4-5", **config}
    return AnthropicTargetAdapter(AnthropicTarget.model_validate(values), client, TEST_PRICES)


def case(text: str = "How long do refunds take?", **extra: object) -> Case:
    return Case.model_validate({"id": "c1", "input": text, **extra})


async def test_answer_returns_text_usage_and_cost(
    fake_anthropic: FakeAnthropicServer, anthropic_client: AsyncAnthropic
) -> None:
    adapter = target(
        anthropic_client, system=SYSTEM, prompt_template="Q: {{input}}", max_tokens=300
    )

    output = await adapter.answer(case())

    prompt = "Q: How long do refunds take?"
    assert output.text == "Answer: " + prompt
    input_tokens = math.ceil(len(SYSTEM + prompt) / 4)
    output_tokens = math.ceil(len(output.text) / 4)
    assert (output.usage.input_tokens, output.usage.output_tokens) == (input_tokens, output_tokens)
    assert output.usage.cost_usd == pytest.approx((input_tokens * 1.0 + output_tokens * 5.0) / 1e6)
    (request,) = fake_anthropic.requests
    assert request.body == {
        "model": "claude-haiku-4-5",
        "max_tokens": 300,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": prompt}],
    }
    assert request.headers["anthropic-version"]
    assert request.headers["authorization"] == f"Bearer {FAKE_API_KEY}"


async def test_text_blocks_are_joined_and_template_reads_structured_input(
    fake_anthropic: FakeAnthropicServer, anthropic_client: AsyncAnthropic
) -> None:
    adapter = target(anthropic_client, prompt_template="[[reply:{{input.order}} ok]]")

    output = await adapter.answer(case({"order": "A-17"}))  # type: ignore[arg-type]

    assert output.text == "A-17 ok"
    assert "system" not in fake_anthropic.requests[0].body


async def test_temperature_is_sent_only_when_the_suite_sets_it(
    fake_anthropic: FakeAnthropicServer, anthropic_client: AsyncAnthropic
) -> None:
    await target(anthropic_client).answer(case())
    await target(anthropic_client, temperature=0.3).answer(case())

    assert "temperature" not in fake_anthropic.requests[0].body
    assert fake_anthropic.requests[1].body["temperature"] == 0.3


async def test_dated_model_is_priced_as_its_alias_and_unknown_model_costs_nothing(
    anthropic_client: AsyncAnthropic,
) -> None:
    dated = await target(anthropic_client, model="claude-haiku-4-5-20251001").answer(case())
    unknown = await target(anthropic_client, model="claude-unknown-9").answer(case())

    assert dated.usage.cost_usd > 0
    assert unknown.usage.cost_usd == 0.0
    assert unknown.usage.input_tokens > 0


async def test_answer_cut_at_max_tokens_is_still_an_answer(
    anthropic_client: AsyncAnthropic,
) -> None:
    output = await target(anthropic_client, max_tokens=2).answer(case("x" * 50))
    assert output.text == "Answer: "


@pytest.mark.parametrize(
    "error",
    [
        ScriptedError(429, {"retry-after": "0", "retry-after-ms": "1"}),
        ScriptedError(529),
        ScriptedError(500),
    ],
    ids=["429-retry-after", "529", "500"],
)
async def test_retryable_error_then_success_is_retried_by_the_sdk(
    fake_anthropic: FakeAnthropicServer, anthropic_client: AsyncAnthropic, error: ScriptedError
) -> None:
    fake_anthropic.script(error)

    output = await target(anthropic_client).answer(case())

    assert output.text.startswith("Answer: ")
    assert [r.status for r in fake_anthropic.requests] == [error.status, 200]
    retry_counts = [r.headers["x-stainless-retry-count"] for r in fake_anthropic.requests]
    assert retry_counts == ["0", "1"]


async def test_overloaded_without_retry_header_uses_the_sdk_backoff(
    fake_anthropic: FakeAnthropicServer, anthropic_client: AsyncAnthropic
) -> None:
    # The real 529 carries no retry header: the SDK backs off 0.5 s x jitter(0.75-1).
    fake_anthropic.state.retry_after_ms = None
    fake_anthropic.script(529)
    started = time.monotonic()

    await target(anthropic_client).answer(case())

    assert time.monotonic() - started >= 0.3
    assert [r.status for r in fake_anthropic.requests] == [529, 200]


async def test_retries_exhausted_is_a_target_error(
    fake_anthropic: FakeAnthropicServer, anthropic_client: AsyncAnthropic
) -> None:
    fake_anthropic.script(500, 500, 500)

    with pytest.raises(TargetError, match=r"500 api_error"):
        await target(anthropic_client).answer(case())
    assert len(fake_anthropic.requests) == 3  # one call and anthropic_max_retries=2 retries


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        (
            "[[fail:400]]",
            r"^Anthropic API returned 400 invalid_request_error: .+ \(request id req_\w+\)$",
        ),
        ("[[fail:404]]", r"^Anthropic API returned 404 not_found_error"),
    ],
)
async def test_client_error_is_not_retried(
    fake_anthropic: FakeAnthropicServer,
    anthropic_client: AsyncAnthropic,
    marker: str,
    expected: str,
) -> None:
    with pytest.raises(TargetError, match=expected):
        await target(anthropic_client).answer(case(marker))
    assert len(fake_anthropic.requests) == 1


async def test_wrong_key_is_a_401_target_error_without_the_key(
    fake_anthropic: FakeAnthropicServer, make_client: ClientFactory
) -> None:
    client = make_client(anthropic_api_key=SecretStr("sk-ant-not-the-right-one"))

    with pytest.raises(TargetError, match=r"401 authentication_error") as caught:
        await target(client).answer(case())
    assert "sk-ant-not-the-right-one" not in str(caught.value)
    assert "How long" not in str(caught.value)
    assert len(fake_anthropic.requests) == 1


async def test_unreachable_api_is_a_target_error(make_client: ClientFactory) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    client = make_client(
        anthropic_base_url=f"http://127.0.0.1:{closed_port}", anthropic_max_retries=0
    )

    with pytest.raises(TargetError, match=r"could not reach the Anthropic API"):
        await target(client).answer(case())


async def test_timeout_is_a_target_error(make_client: ClientFactory) -> None:
    client = make_client(anthropic_timeout_s=0.2, anthropic_max_retries=0)

    with pytest.raises(TargetError, match=r"timed out"):
        await target(client).answer(case("[[sleep:0.5]]"))


async def test_template_error_is_a_target_error_and_sends_nothing(
    fake_anthropic: FakeAnthropicServer, anthropic_client: AsyncAnthropic
) -> None:
    with pytest.raises(TargetError, match=r"prompt_template"):
        await target(anthropic_client, prompt_template="{{input.missing}}").answer(case())
    assert fake_anthropic.requests == []


async def test_aclose_leaves_the_shared_client_usable(anthropic_client: AsyncAnthropic) -> None:
    adapter = target(anthropic_client)
    await adapter.aclose()
    assert (await target(anthropic_client).answer(case())).text


# --------------------------------------------------------------------- client factory


@pytest.mark.parametrize(
    "key", [None, SecretStr(""), SecretStr("  ")], ids=["unset", "empty", "blank"]
)
def test_missing_api_key_is_a_config_error(
    fake_anthropic: FakeAnthropicServer, key: SecretStr | None
) -> None:
    settings = anthropic_settings_for(fake_anthropic, anthropic_api_key=key)

    with pytest.raises(ConfigError, match=r"^environment: ANTHROPIC_API_KEY: not set") as caught:
        make_anthropic_client(settings)
    assert caught.value.location == "ANTHROPIC_API_KEY"


async def test_client_takes_everything_from_settings(fake_anthropic: FakeAnthropicServer) -> None:
    settings = anthropic_settings_for(
        fake_anthropic, anthropic_max_retries=5, anthropic_timeout_s=7.5
    )
    client = make_anthropic_client(settings)
    try:
        assert client.max_retries == 5
        assert client.timeout == 7.5
        assert str(client.base_url).rstrip("/") == fake_anthropic.base_url
        assert client.api_key == FAKE_API_KEY
    finally:
        await client.close()


def test_needs_anthropic_only_for_anthropic_targets_and_judges() -> None:
    def suites(target: Mapping[str, str], scorer: Mapping[str, str]) -> SuiteFile:
        feature = {"dataset": {"cases": [{"input": "q"}]}, "target": target, "scorers": [scorer]}
        return parse_suite_file({"suites": {"s": {"features": {"f": feature}}}})

    python = {"type": "python", "callable": "m:f"}
    anthropic = {"type": "anthropic", "model": "claude-haiku-4-5"}
    exact = {"type": "exact"}
    llm_judge = {"type": "llm_judge", "rubric": "r"}
    assert not needs_anthropic(suites(python, exact))
    assert needs_anthropic(suites(anthropic, exact))
    assert needs_anthropic(suites(python, llm_judge))
