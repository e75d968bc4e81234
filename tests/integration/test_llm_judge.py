"""The LLM judge through the real SDK, over HTTP, against the fake Messages API."""

from __future__ import annotations

import json
import math

import pytest
from anthropic import AsyncAnthropic
from pydantic import SecretStr

from continuous_eval.adapters.judge import JudgeCallError, LlmJudge
from continuous_eval.core.judge import RECORD_SCORE_TOOL, build_judge_messages
from continuous_eval.core.models import NO_USAGE
from continuous_eval.core.suite import Case, LlmJudgeScorer
from continuous_eval.errors import JudgeError
from continuous_eval.fakes.anthropic_server import FakeAnthropicServer, ScriptedError
from tests.fixtures.anthropic import LARGE_TEST_MODEL, TEST_PRICES, ClientFactory

RUBRIC = "The answer states the refund period correctly and politely."
CASE = Case(id="c1", input="How long do refunds take?", expected="5 business days")


def judge(client: AsyncAnthropic, **config: object) -> LlmJudge:
    values: dict[str, object] = {"type": "llm_judge", "rubric": RUBRIC, **config}
    return LlmJudge(LlmJudgeScorer.model_validate(values), client, "claude-haiku-4-5", TEST_PRICES)


async def test_score_records_score_rationale_usage_and_cost(
    fake_anthropic: FakeAnthropicServer, anthropic_client: AsyncAnthropic
) -> None:
    scorer = judge(anthropic_client)

    outcome = await scorer.score("Refunds take 5 business days. [[score:4]]", CASE)

    assert scorer.name == "llm_judge"
    assert outcome.score == 4.0
    assert outcome.passed is True
    assert outcome.rationale
    assert outcome.usage.input_tokens > 0
    assert outcome.usage.output_tokens > 0
    expected_cost = (outcome.usage.input_tokens * 1.0 + outcome.usage.output_tokens * 5.0) / 1e6
    assert outcome.usage.cost_usd == pytest.approx(expected_cost)


async def test_request_forces_the_record_score_tool(
    fake_anthropic: FakeAnthropicServer, anthropic_client: AsyncAnthropic
) -> None:
    await judge(anthropic_client, max_tokens=200).score("five days [[score:5]]", CASE)

    (request,) = fake_anthropic.requests
    system, user = build_judge_messages(RUBRIC, CASE, "five days [[score:5]]")
    assert request.body == {
        "model": "claude-haiku-4-5",
        "max_tokens": 200,
        "system": system,
        "messages": [{"role": "user", "content": user}],
        "tools": [RECORD_SCORE_TOOL],
        "tool_choice": {"type": "tool", "name": "record_score", "disable_parallel_tool_use": True},
    }
    assert request.status == 200


async def test_usage_matches_the_fake_token_estimate(anthropic_client: AsyncAnthropic) -> None:
    outcome = await judge(anthropic_client).score("[[score:3]]", CASE)

    # The tool definition is billed as prompt, as the real API does.
    system, user = build_judge_messages(RUBRIC, CASE, "[[score:3]]")
    tools_chars = len(json.dumps([RECORD_SCORE_TOOL], separators=(",", ":")))
    assert outcome.usage.input_tokens == math.ceil((len(system) + len(user) + tools_chars) / 4)


@pytest.mark.parametrize(
    ("score", "threshold", "passed"), [(2, 4, False), (3, 3, True), (5, 5, True)]
)
async def test_pass_threshold(
    anthropic_client: AsyncAnthropic, score: int, threshold: int, passed: bool
) -> None:
    outcome = await judge(anthropic_client, pass_threshold=threshold).score(
        f"[[score:{score}]]", CASE
    )
    assert (outcome.score, outcome.passed) == (float(score), passed)


async def test_score_without_marker_is_deterministic(anthropic_client: AsyncAnthropic) -> None:
    scorer = judge(anthropic_client)
    first = await scorer.score("Refunds take five days.", CASE)
    second = await scorer.score("Refunds take five days.", CASE)
    assert first.score == second.score
    assert first.score in {1.0, 2.0, 3.0, 4.0, 5.0}


async def test_scorer_model_and_name_override_the_defaults(
    fake_anthropic: FakeAnthropicServer, anthropic_client: AsyncAnthropic
) -> None:
    # A made-up id: a real one would tie the test to the SDK's list of deprecated models.
    scorer = judge(anthropic_client, model=LARGE_TEST_MODEL, name="politeness")
    outcome = await scorer.score("[[score:4]]", CASE)

    assert (scorer.name, scorer.model) == ("politeness", LARGE_TEST_MODEL)
    assert fake_anthropic.requests[0].body["model"] == LARGE_TEST_MODEL
    expected_cost = (outcome.usage.input_tokens * 5.0 + outcome.usage.output_tokens * 25.0) / 1e6
    assert outcome.usage.cost_usd == pytest.approx(expected_cost)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("[[judge:garbage]]", r"stopped with 'end_turn'"),
        ("[[judge:string_score]]", r"score must be an integer from 1 to 5, got 'high'"),
        ("[[score:7]]", r"score must be from 1 to 5, got 7"),
        ("[[score:0]]", r"score must be from 1 to 5, got 0"),
        ("[[judge:max_tokens]]", r"cut off at max_tokens"),
        ("[[judge:two_tools]]", r"exactly one record_score call, got 2"),
        ("[[judge:refusal]]", r"refused"),
    ],
)
async def test_unusable_answer_is_a_judge_error_with_usage_never_a_zero(
    anthropic_client: AsyncAnthropic, output: str, message: str
) -> None:
    with pytest.raises(JudgeError, match=message) as caught:
        await judge(anthropic_client).score(output, CASE)

    assert isinstance(caught.value, JudgeCallError)
    assert "unusable judge answer" in str(caught.value)
    # The call was answered, so its tokens were paid for and must be recorded.
    assert caught.value.usage.input_tokens > 0
    assert caught.value.usage.cost_usd > 0


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

    outcome = await judge(anthropic_client).score("[[score:5]]", CASE)

    assert outcome.score == 5.0
    assert [r.status for r in fake_anthropic.requests] == [error.status, 200]


async def test_retries_exhausted_is_a_judge_error_without_usage(
    fake_anthropic: FakeAnthropicServer, anthropic_client: AsyncAnthropic
) -> None:
    fake_anthropic.script(529, 529, 529)

    with pytest.raises(JudgeCallError, match=r"529 overloaded_error") as caught:
        await judge(anthropic_client).score("[[score:5]]", CASE)
    assert caught.value.usage == NO_USAGE
    assert len(fake_anthropic.requests) == 3


async def test_bad_request_is_not_retried(
    fake_anthropic: FakeAnthropicServer, anthropic_client: AsyncAnthropic
) -> None:
    with pytest.raises(JudgeCallError, match=r"judge call failed: .*400 invalid_request_error"):
        await judge(anthropic_client).score("[[fail:400]]", CASE)
    assert len(fake_anthropic.requests) == 1


async def test_wrong_key_is_not_retried(
    fake_anthropic: FakeAnthropicServer, make_client: ClientFactory
) -> None:
    client = make_client(anthropic_api_key=SecretStr("sk-ant-wrong"))

    with pytest.raises(JudgeCallError, match=r"401 authentication_error") as caught:
        await judge(client).score("[[score:5]]", CASE)
    assert "sk-ant-wrong" not in str(caught.value)
    assert len(fake_anthropic.requests) == 1
