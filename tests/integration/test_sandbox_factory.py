"""``make_sandbox``: bubblewrap when it works, a refusal that says how to fix it otherwise,
and bare workers only for an operator who allowed them."""

from __future__ import annotations

import logging

import pytest

from continuous_eval.adapters.sandbox import make_sandbox
from continuous_eval.core.sandboxing import SandboxProgram
from continuous_eval.errors import SandboxUnavailable
from continuous_eval.settings import Settings
from tests.fixtures.sandbox import bwrap_path
from tests.integration import sandbox_programs as programs

pytestmark = pytest.mark.slow

ENV_PROBE = SandboxProgram(
    "def score(output, case):\n"
    "    env = __import__('os').environ\n"
    "    return {'score': len(env), 'rationale': env.get('CONTINUOUS_EVAL_ANTHROPIC_API_KEY')}\n"
)


def test_sandbox_none_is_refused_unless_allowed() -> None:
    with pytest.raises(SandboxUnavailable) as refused:
        make_sandbox(Settings(sandbox="none"))
    assert "CONTINUOUS_EVAL_ALLOW_UNSANDBOXED=true" in str(refused.value)
    assert "CONTINUOUS_EVAL_SANDBOX=none" in str(refused.value)


def test_a_missing_bwrap_is_refused_with_the_fix() -> None:
    with pytest.raises(SandboxUnavailable) as refused:
        make_sandbox(Settings(), bwrap="no-such-bwrap")
    message = str(refused.value)
    assert "apt-get install bubblewrap" in message
    assert "CONTINUOUS_EVAL_ALLOW_UNSANDBOXED=true" in message


async def test_the_default_settings_give_an_isolated_pool() -> None:
    bwrap_path()
    sandbox = make_sandbox(Settings(sandbox_workers=3, sandbox_cpu_s=1.5))
    try:
        assert sandbox.isolated
        assert sandbox.size == 3
        assert sandbox.limits.cpu_s == 1.5
        outcome = await sandbox.score(programs.GOOD, "refund", {"id": "1"})
        assert outcome.ok, outcome
    finally:
        await sandbox.aclose()


async def test_allowed_unsandboxed_workers_warn_keep_the_limits_and_get_no_secrets(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTINUOUS_EVAL_ANTHROPIC_API_KEY", "sk-ant-secret")
    settings = Settings(sandbox="none", allow_unsandboxed=True, sandbox_cpu_s=1, sandbox_wall_s=4)
    with caplog.at_level(logging.WARNING):
        sandbox = make_sandbox(settings)
    try:
        assert not sandbox.isolated
        assert any("WITHOUT a sandbox" in r.getMessage() for r in caplog.records)
        env = await sandbox.score(ENV_PROBE, "x", {"id": "1"})
        assert env.ok, env
        assert env.value == {"score": 1, "rationale": None}  # LC_ALL only
        assert (await sandbox.score(programs.LOOP, "x", {"id": "1"})).reason in ("cpu", "timeout")
        assert (await sandbox.score(programs.BIG_BYTES, "x", {"id": "1"})).reason == "memory"
        assert (await sandbox.score(programs.EXIT, "x", {"id": "1"})).reason == "crash"
        assert (await sandbox.score(programs.GOOD, "refund", {"id": "1"})).ok
    finally:
        await sandbox.aclose()
