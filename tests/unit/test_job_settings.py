"""The job settings: defaults, and a lease too short for the poll refused with both names."""

from __future__ import annotations

import os

import pytest

from continuous_eval.errors import ConfigError
from continuous_eval.settings import load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("CONTINUOUS_EVAL_", "ANTHROPIC_", "RESEND_")):
            monkeypatch.delenv(name)


def test_jobs_run_one_at_a_time_polled_every_two_seconds_by_default() -> None:
    settings = load_settings()
    assert (settings.job_concurrency, settings.job_poll_s, settings.job_lease_s) == (1, 2.0, 60.0)


def test_a_lease_shorter_than_two_polls_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTINUOUS_EVAL_JOB_POLL_S", "10")
    monkeypatch.setenv("CONTINUOUS_EVAL_JOB_LEASE_S", "15")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == (
        "environment: CONTINUOUS_EVAL_JOB_LEASE_S (15) must be at least twice "
        "CONTINUOUS_EVAL_JOB_POLL_S (10)"
    )


def test_a_concurrency_of_zero_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTINUOUS_EVAL_JOB_CONCURRENCY", "0")
    with pytest.raises(ConfigError, match="CONTINUOUS_EVAL_JOB_CONCURRENCY"):
        load_settings()
