"""The real ``AnthropicEvaluatorAuthor`` (the anthropic SDK) against the fake Messages API.

The fake writes whatever code the test scripts (``evaluator_codes``): the
static check refuses the socket and subprocess kinds, good code becomes a
stored version with its accuracy, and the kinds only a sandbox can stop
pass the check (the sandbox's own tests run them).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from anthropic import AsyncAnthropic

from continuous_eval.adapters.evaluator_author import AnthropicEvaluatorAuthor
from continuous_eval.core.code_check import check_code
from continuous_eval.core.evaluator_prompt import EvaluatorPrompt
from continuous_eval.errors import EvaluatorAuthorError, EvaluatorGenerationError
from continuous_eval.fakes.anthropic_server import FakeAnthropicServer, ScriptedEvaluator
from continuous_eval.fakes.evaluator_codes import CODES, GOOD
from continuous_eval.service.evaluator_generation import EvaluatorGeneration
from continuous_eval.testing import FakeClock
from continuous_eval.testing.evaluators import InMemoryEvaluatorStore
from continuous_eval.testing.generation import RecordingProgress, fill_yes_no_set
from continuous_eval.testing.labels import InMemoryEvalSetStore
from continuous_eval.testing.sandbox import InProcessSandbox
from tests.fixtures.anthropic import FAKE_API_KEY, ClientFactory

MODEL = "claude-haiku-4-5"
PROMPT = EvaluatorPrompt(system="Write an evaluator.", user="Examples: ...")


def generation(
    author: AnthropicEvaluatorAuthor,
) -> tuple[EvaluatorGeneration, InMemoryEvaluatorStore]:
    clock = FakeClock()
    eval_sets = InMemoryEvalSetStore(clock)
    fill_yes_no_set(eval_sets, "answers")
    evaluators = InMemoryEvaluatorStore(clock)
    handler = EvaluatorGeneration(
        eval_sets, evaluators, author, InProcessSandbox(), clock, allow_unisolated=True
    )
    return handler, evaluators


async def test_the_forced_tool_call_returns_the_scripted_code(
    fake_anthropic: FakeAnthropicServer, anthropic_client: AsyncAnthropic
) -> None:
    fake_anthropic.script_evaluators(ScriptedEvaluator(GOOD, "says yes"))
    authored = await AnthropicEvaluatorAuthor(anthropic_client, MODEL).write_evaluator(PROMPT)
    assert (authored.code, authored.explanation, authored.model) == (GOOD, "says yes", MODEL)
    assert authored.input_tokens > 0
    assert authored.output_tokens > 0
    body = fake_anthropic.requests[-1].body
    assert body["tool_choice"] == {
        "type": "tool",
        "name": "write_evaluator",
        "disable_parallel_tool_use": True,
    }
    assert body["tools"][0]["input_schema"]["required"] == ["code", "explanation"]
    assert body["system"] == PROMPT.system
    assert body["model"] == MODEL


async def test_good_code_from_the_fake_becomes_a_stored_version_with_accuracy(
    fake_anthropic: FakeAnthropicServer, anthropic_client: AsyncAnthropic
) -> None:
    fake_anthropic.script_evaluators(GOOD)
    handler, evaluators = generation(AnthropicEvaluatorAuthor(anthropic_client, MODEL))
    result = await handler({"eval_set": "answers"}, RecordingProgress())
    assert isinstance(result, dict)
    assert (result["ref"], result["accuracy"], result["model"]) == ("answers@1", 1.0, MODEL)
    stored = evaluators.evaluator("answers", 1)
    assert stored is not None
    assert stored.evaluator.code == GOOD
    # What the model was shown is what is stored.
    assert fake_anthropic.requests[-1].body["messages"][0]["content"] in stored.evaluator.prompt


@pytest.mark.parametrize("kind", ["socket", "subprocess"])
async def test_socket_and_subprocess_code_is_refused_and_never_stored(
    kind: str, fake_anthropic: FakeAnthropicServer, anthropic_client: AsyncAnthropic
) -> None:
    fake_anthropic.script_evaluators(CODES[kind], CODES[kind])
    handler, evaluators = generation(AnthropicEvaluatorAuthor(anthropic_client, MODEL))
    with pytest.raises(EvaluatorGenerationError, match=f"importing '{kind}' is not allowed"):
        await handler({"eval_set": "answers"}, RecordingProgress())
    assert evaluators.list_evaluators() == []
    assert len(fake_anthropic.requests) == 2  # the retry with the problems listed
    assert "previous code was rejected" in fake_anthropic.requests[1].body["messages"][0]["content"]


@pytest.mark.parametrize("kind", ["loop", "memory", "escape"])
async def test_what_only_a_sandbox_stops_comes_through_and_passes_the_check(
    kind: str, fake_anthropic: FakeAnthropicServer, anthropic_client: AsyncAnthropic
) -> None:
    # Never run here (the in-process sandbox has no limits): the real
    # sandbox's tests run these kinds and stop them at run time.
    fake_anthropic.script_evaluators(ScriptedEvaluator.from_json({"kind": kind}))
    authored = await AnthropicEvaluatorAuthor(anthropic_client, MODEL).write_evaluator(PROMPT)
    assert authored.code == CODES[kind]
    assert check_code(authored.code) == ()


async def test_api_errors_become_author_errors_naming_the_status(
    fake_anthropic: FakeAnthropicServer, make_client: ClientFactory
) -> None:
    client = make_client(anthropic_max_retries=0)
    fake_anthropic.script(529)
    with pytest.raises(EvaluatorAuthorError, match=r"529 overloaded_error.*request id req_"):
        await AnthropicEvaluatorAuthor(client, MODEL).write_evaluator(PROMPT)


@pytest.fixture
def http(fake_anthropic: FakeAnthropicServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake_anthropic.base_url, timeout=10) as client:
        yield client


def test_the_control_route_scripts_kinds_and_code_and_refuses_nonsense(
    http: httpx.Client, fake_anthropic: FakeAnthropicServer
) -> None:
    answer = http.post("/_fake/evaluators", json={"evaluators": [{"kind": "loop"}, {"code": "x"}]})
    assert answer.status_code == 200
    assert answer.json() == {"pending": 2}
    bad = http.post("/_fake/evaluators", json={"evaluators": [{"kind": "nope"}]})
    assert bad.status_code == 400
    assert "unknown kind 'nope'" in bad.json()["error"]["message"]
    headers = {"x-api-key": FAKE_API_KEY, "anthropic-version": "2023-06-01"}
    request = {
        "model": MODEL,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "write"}],
        "tools": [{"name": "write_evaluator", "input_schema": {"type": "object"}}],
    }
    message = http.post("/v1/messages", json=request, headers=headers)
    assert message.headers["request-id"].startswith("req_")
    body = message.json()
    assert body["stop_reason"] == "tool_use"
    assert body["usage"]["output_tokens"] > 0
    assert body["content"][0]["name"] == "write_evaluator"
    assert body["content"][0]["input"]["code"] == CODES["loop"]
    fake_anthropic.reset()
    again = http.post("/v1/messages", json=request, headers=headers).json()
    assert again["content"][0]["input"]["code"] == GOOD  # reset forgets the script
