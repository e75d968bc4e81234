"""``app.evaluators.generate``: one generation in process, Claude (the fake) to a SQL version."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from continuous_eval.adapters.db.engine import make_engine
from continuous_eval.adapters.db.evaluators import SqlEvaluatorStore
from continuous_eval.app.evaluators import find_version, generate
from continuous_eval.fakes.anthropic_server import FakeAnthropicServer
from continuous_eval.fakes.evaluator_codes import GOOD
from continuous_eval.service.evaluator_generation import STEPS, GenerationParams
from continuous_eval.settings import Settings
from continuous_eval.testing import FakeClock
from continuous_eval.testing.generation import fill_yes_no_set
from continuous_eval.testing.labels import InMemoryEvalSetStore
from continuous_eval.testing.sandbox import InProcessSandbox


@pytest.fixture
def sql_evaluators(migrated_sqlite_url: str, clock: FakeClock) -> Iterator[SqlEvaluatorStore]:
    store = SqlEvaluatorStore(make_engine(migrated_sqlite_url), clock)
    try:
        yield store
    finally:
        store.close()


async def test_generate_stores_a_version_written_by_the_configured_model(
    fake_anthropic: FakeAnthropicServer,
    anthropic_settings: Settings,
    sql_evaluators: SqlEvaluatorStore,
    clock: FakeClock,
) -> None:
    settings = anthropic_settings.model_copy(update={"evaluator_model": "claude-author-test"})
    eval_sets = InMemoryEvalSetStore(clock)
    fill_yes_no_set(eval_sets, "answers")
    fake_anthropic.script_evaluators(GOOD)
    seen: list[str] = []

    async def on_step(name: str, progress: float, message: str) -> None:
        seen.append(name)

    made = await generate(
        settings,
        GenerationParams(eval_set="answers", name="says-yes"),
        on_step,
        eval_sets=eval_sets,
        evaluators=sql_evaluators,
        sandbox=InProcessSandbox(),
        clock=clock,
        allow_unisolated=True,
    )
    assert made.ref == "says-yes@1"
    assert made.evaluator.metrics.accuracy == 1.0
    assert made.evaluator.model == "claude-author-test"
    assert fake_anthropic.requests[-1].body["model"] == "claude-author-test"
    assert list(dict.fromkeys(seen)) == list(STEPS)
    assert find_version(sql_evaluators, "says-yes") == made
    assert find_version(sql_evaluators, "says-yes@1") == made
    with pytest.raises(LookupError):
        find_version(sql_evaluators, "says-yes@2")


def test_the_author_model_defaults_to_the_judge_model() -> None:
    settings = Settings.model_validate({"judge_model": "claude-judge"})
    assert settings.evaluator_author_model == "claude-judge"
    assert settings.evaluator_min_accuracy == 0.8
