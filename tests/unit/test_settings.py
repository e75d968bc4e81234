"""Settings from the environment: every bad variable named at once, never its value."""

from __future__ import annotations

import pytest

from continuous_eval.errors import ConfigError
from continuous_eval.settings import env_name, load_settings, mistyped_variables

SECRET = "sk-live-do-not-print-me"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start each test from an environment with no setting in it."""
    import os

    for name in list(os.environ):
        if name.startswith(("CONTINUOUS_EVAL_", "ANTHROPIC_", "RESEND_")):
            monkeypatch.delenv(name)


def problems(monkeypatch: pytest.MonkeyPatch, **variables: str) -> list[str]:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    return str(info.value).splitlines()


def test_malformed_json_in_every_json_setting_is_reported_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = problems(
        monkeypatch,
        CONTINUOUS_EVAL_API_TOKENS=f'["{SECRET}"',
        CONTINUOUS_EVAL_PRICES="{model: 1}",
        CONTINUOUS_EVAL_ALERT_EMAIL_TO="oncall@example.com",
    )
    assert lines == [
        "environment: CONTINUOUS_EVAL_PRICES: expected JSON, and the value is not valid JSON "
        "(Expecting property name enclosed in double quotes)",
        "environment: CONTINUOUS_EVAL_API_TOKENS: expected a JSON list, and the value is not "
        "valid JSON (Expecting ',' delimiter)",
        "environment: CONTINUOUS_EVAL_ALERT_EMAIL_TO: expected a JSON list, and the value is "
        "not valid JSON (Expecting value)",
    ]
    assert SECRET not in "\n".join(lines)


def test_a_webhook_url_that_is_no_url_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = problems(monkeypatch, CONTINUOUS_EVAL_ALERT_WEBHOOK_URL=f"not a url {SECRET}")
    assert lines == [
        "environment: CONTINUOUS_EVAL_ALERT_WEBHOOK_URL: "
        "expected an http:// or https:// URL with a host"
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ANTHROPIC_BASE_URL", "localhost:8080"),
        ("RESEND_API_URL", "ftp://mail.example.com"),
        ("CONTINUOUS_EVAL_ALERT_DASHBOARD_URL", "https://"),
    ],
)
def test_every_url_setting_is_checked(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    assert problems(monkeypatch, **{name: value}) == [
        f"environment: {name}: expected an http:// or https:// URL with a host"
    ]


def test_nested_problems_name_the_key_inside_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = problems(
        monkeypatch,
        CONTINUOUS_EVAL_PRICES='{"m": {"input_per_mtok": -1}}',
        CONTINUOUS_EVAL_MAX_CONCURRENCY="0",
    )
    assert lines == [
        "environment: CONTINUOUS_EVAL_MAX_CONCURRENCY: Input should be greater than or equal to 1",
        "environment: CONTINUOUS_EVAL_PRICES: m.input_per_mtok: "
        "Input should be greater than or equal to 0",
        "environment: CONTINUOUS_EVAL_PRICES: m.output_per_mtok: Field required",
    ]


def test_a_partial_email_configuration_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert problems(monkeypatch, RESEND_API_KEY=SECRET) == [
        "environment: email alerts need CONTINUOUS_EVAL_ALERT_EMAIL_FROM, "
        "CONTINUOUS_EVAL_ALERT_EMAIL_TO too (the others are set)"
    ]


def test_aliases_are_named_as_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert env_name("anthropic_api_key") == "CONTINUOUS_EVAL_ANTHROPIC_API_KEY"
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    assert env_name("anthropic_api_key") == "ANTHROPIC_API_KEY"


def test_valid_settings_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTINUOUS_EVAL_API_TOKENS", f'["{SECRET}"]')
    monkeypatch.setenv("CONTINUOUS_EVAL_ALERT_WEBHOOK_URL", "https://hooks.example.com/x")
    settings = load_settings()
    assert [t.get_secret_value() for t in settings.api_tokens] == [SECRET]


def test_a_mistyped_variable_is_found_with_what_it_meant() -> None:
    environ = {
        "CONTINUOUS_EVAL_SCHEDULE_ENABLE": "true",
        "CONTINUOUS_EVAL_SCHEDULE_ENABLED": "true",
        "CONTINUOUS_EVAL_TEST_POSTGRES_URL": "postgresql://x",  # another tool's, left alone
        "PATH": "/usr/bin",
    }
    assert mistyped_variables(environ) == [
        ("CONTINUOUS_EVAL_SCHEDULE_ENABLE", "CONTINUOUS_EVAL_SCHEDULE_ENABLED")
    ]


def test_retention_zero_means_no_limit_and_a_bad_override_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONTINUOUS_EVAL_RETENTION_DAYS", "0")
    monkeypatch.setenv("CONTINUOUS_EVAL_RETENTION_MAX_ROWS", "0")
    monkeypatch.setenv("CONTINUOUS_EVAL_RETENTION_FEATURES", '{"bot": {"days": 7}}')
    settings = load_settings()
    assert (settings.retention_days, settings.retention_max_rows) == (None, None)
    assert settings.retention_features["bot"].days == 7
    lines = problems(monkeypatch, CONTINUOUS_EVAL_RETENTION_FEATURES='{"bot": {"dayz": 7}}')
    assert len(lines) == 1
    assert lines[0].startswith("environment: CONTINUOUS_EVAL_RETENTION_FEATURES")
