"""A judge asked to see the trajectory gets it in its prompt, over the real SDK."""

from __future__ import annotations

from anthropic import AsyncAnthropic

from continuous_eval.adapters.judge import LlmJudge
from continuous_eval.core.suite import Case, LlmJudgeScorer
from continuous_eval.core.trajectory import Step
from continuous_eval.fakes.anthropic_server import FakeAnthropicServer
from tests.fixtures.anthropic import TEST_PRICES

STEPS = (
    Step(kind="message", role="user", content="Refund order 7"),
    Step(kind="tool_call", name="lookup_order", arguments={"order": 7}, id="c1"),
    Step(kind="tool_result", name="lookup_order", id="c1", content={"status": "delivered"}),
    Step(kind="tool_call", name="refund", arguments={"order": 7, "amount": 12.5}, id="c2"),
    Step(kind="tool_result", id="c2", content="refund issued"),
)
CASE = Case(id="c1", input="Refund order 7", steps=STEPS)


def judge(client: AsyncAnthropic, **config: object) -> LlmJudge:
    values: dict[str, object] = {"type": "llm_judge", "rubric": "Used the tools well.", **config}
    return LlmJudge(LlmJudgeScorer.model_validate(values), client, "claude-haiku-4-5", TEST_PRICES)


def _prompt(server: FakeAnthropicServer) -> tuple[str, str]:
    (request,) = server.requests
    body = request.body
    assert isinstance(body, dict)
    (message,) = body["messages"]
    return str(body["system"]), str(message["content"])


async def test_the_prompt_holds_every_call_and_result_in_order(
    fake_anthropic: FakeAnthropicServer, anthropic_client: AsyncAnthropic
) -> None:
    outcome = await judge(anthropic_client, trajectory=True).score("Refunded. [[score:5]]", CASE)

    assert outcome.score == 5.0
    system, user = _prompt(fake_anthropic)
    assert "<trajectory>" in system
    section = user.split("<trajectory>\n", 1)[1].split("\n</trajectory>", 1)[0]
    assert section.splitlines() == [
        "1. message (user): Refund order 7",
        '2. tool call lookup_order [id c1]: {"order": 7}',
        '3. tool result of lookup_order [id c1]: {"status": "delivered"}',
        '4. tool call refund [id c2]: {"amount": 12.5, "order": 7}',
        "5. tool result [id c2]: refund issued",
    ]
    # The trajectory comes before the output it led to.
    assert user.index("<trajectory>") < user.index("<output>")


async def test_without_the_option_the_prompt_has_no_trajectory(
    fake_anthropic: FakeAnthropicServer, anthropic_client: AsyncAnthropic
) -> None:
    await judge(anthropic_client).score("Refunded. [[score:4]]", CASE)

    system, user = _prompt(fake_anthropic)
    assert "trajectory" not in system
    assert "<trajectory>" not in user
    assert "lookup_order" not in user
