"""``app.jobs.job_handlers``: no test kind unless the test-only variable names one, checked."""

from __future__ import annotations

import pytest

from continuous_eval.app.jobs import TEST_JOB_KINDS_ENV, job_handlers
from continuous_eval.errors import ConfigError
from continuous_eval.settings import Settings
from continuous_eval.testing.job_handlers import block, echo


def test_production_wiring_has_no_test_kind() -> None:
    assert job_handlers(Settings(), environ={}) == {}


def test_the_test_variable_maps_kinds_to_test_behaviours() -> None:
    handlers = job_handlers(Settings(), environ={TEST_JOB_KINDS_ENV: '{"a": "block", "b": "echo"}'})
    assert handlers == {"a": block, "b": echo}


@pytest.mark.parametrize("value", ["[1]", '{"a": "explode"}', "{nope"])
def test_a_bad_test_variable_names_itself(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        job_handlers(Settings(), environ={TEST_JOB_KINDS_ENV: value})
    assert str(info.value).startswith(f"environment: {TEST_JOB_KINDS_ENV}: expected a JSON object")
