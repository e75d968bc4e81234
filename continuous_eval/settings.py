"""Process settings, read from environment variables (prefix ``CONTINUOUS_EVAL_``).

Built once in ``main()`` and passed down; there is no module-level instance.
Secrets are ``SecretStr`` and ``hide_input_in_errors`` keeps them out of
validation messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///continuous-eval.db"
"""The embedded default: a SQLite file in the working directory."""


class ModelPrice(BaseModel):
    """USD per million tokens for one model."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


def _default_prices() -> dict[str, ModelPrice]:
    # List prices per million tokens; override with CONTINUOUS_EVAL_PRICES as JSON.
    return {
        "claude-haiku-4-5": ModelPrice(input_per_mtok=1.0, output_per_mtok=5.0),
        "claude-sonnet-4-5": ModelPrice(input_per_mtok=3.0, output_per_mtok=15.0),
        "claude-opus-4-5": ModelPrice(input_per_mtok=5.0, output_per_mtok=25.0),
        "claude-opus-4-1": ModelPrice(input_per_mtok=15.0, output_per_mtok=75.0),
    }


class Settings(BaseSettings):
    """Everything the process reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="CONTINUOUS_EVAL_",
        env_nested_delimiter="__",
        hide_input_in_errors=True,
        extra="ignore",
    )

    database_url: str = DEFAULT_DATABASE_URL
    """SQLAlchemy URL. ``postgresql+psycopg://user@host/db`` for Postgres."""
    config_path: Path = Path("config/suites.yaml")
    """The suite file used when ``--config`` is not given."""
    max_concurrency: int = Field(default=64, ge=1, le=4096)
    """Cases in flight at once across every run in this process."""
    suite_concurrency: int = Field(default=16, ge=1, le=4096)
    """Cases in flight at once per suite, unless the suite sets ``concurrency``."""
    judge_model: str = "claude-haiku-4-5"
    """Model the ``llm_judge`` scorer uses when a scorer names none."""
    prices: dict[str, ModelPrice] = Field(default_factory=_default_prices)
    """USD per million input and output tokens per model, for recorded cost."""
    anthropic_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("CONTINUOUS_EVAL_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"),
    )
    anthropic_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CONTINUOUS_EVAL_ANTHROPIC_BASE_URL", "ANTHROPIC_BASE_URL"),
    )
    """A compatible gateway, or a local fake in tests."""
    anthropic_max_retries: int = Field(default=4, ge=0, le=20)
    """The SDK retries 408, 409, 429, 5xx and 529 this many times with backoff."""
    anthropic_timeout_s: float = Field(default=120.0, gt=0)
    result_excerpt_chars: int = Field(default=2000, ge=0)
    """Characters of each output kept with its result."""

    # ------------------------------------------------------------ the daemon
    schedule_enabled: bool = False
    """Scheduled runs spend judge money, so they are off until asked for; a
    disabled tick touches nothing, not even the database."""
    schedule_interval_hours: float = Field(default=24.0, gt=0)
    """A suite is due when its newest scheduled run started this long ago."""
    schedule_check_interval_s: float = Field(default=3600.0, gt=0)
    """How often the daemon asks whether a suite is due (and adopts orphaned runs)."""
    schedule_startup_delay_s: float = Field(default=600.0, ge=0)
    """Wait before the first check, so a crash-looping replica cannot hammer the judge."""
    schedule_startup_jitter_s: float = Field(default=120.0, ge=0)
    """Random extra start-up delay, up to this, so replicas spread out."""
    schedule_misfire_grace_s: float = Field(default=300.0, gt=0)
    """A check that could not fire on time still fires within this grace (then it is missed)."""
    run_watchdog_s: float = Field(default=4 * 3600.0, gt=0)
    """Longest a run may take; the watchdog then ends it ``failed``."""
    run_lease_s: float = Field(default=30.0, gt=0)
    """A running run's lease; another replica takes the run over once it expires."""
    run_heartbeat_s: float = Field(default=5.0, gt=0)
    """How often a worker renews its lease and checks its lock (well under the lease)."""
    run_max_attempts: int = Field(default=3, ge=1, le=100)
    """Takeovers after which a run ends ``failed``."""
    shutdown_timeout_s: float = Field(default=30.0, gt=0)
    """On SIGTERM, how long cases in flight may take before the run is released."""
    daily_judge_budget_usd: float | None = Field(default=None, gt=0)
    """Cap on the LLM judge's spend per UTC day; None for no cap."""
    instance_id: str | None = None
    """This replica's name in leases and logs; defaults to host:pid:random."""
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    api_tokens: list[SecretStr] = Field(default_factory=list)
    """Bearer tokens accepted by the admin API (a JSON list). With none, ``serve``
    listens on 127.0.0.1 only, whatever ``http_host`` says, and logs a warning."""
    metrics_public: bool = False
    """Serve ``/metrics`` without a token (for a scraper inside a trusted network)."""
    max_request_body_bytes: int = Field(default=64 * 1024, ge=1024)
    """Larger request bodies are refused with 413 before they are read."""

    # ---------------------------------------------------------------- alerts
    resend_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("CONTINUOUS_EVAL_RESEND_API_KEY", "RESEND_API_KEY"),
    )
    """Email through Resend is on when this, ``alert_email_from`` and ``alert_email_to`` are set."""
    resend_api_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CONTINUOUS_EVAL_RESEND_API_URL", "RESEND_API_URL"),
    )
    """Resend's API base URL; a local fake in tests."""
    alert_email_from: str | None = None
    """Sender, e.g. ``continuous-eval <alerts@example.com>`` (a domain verified at Resend)."""
    alert_email_to: list[str] = Field(default_factory=list)
    """Recipients: a JSON list in the environment, e.g. ``["oncall@example.com"]``."""
    alert_webhook_url: SecretStr | None = None
    """A generic JSON webhook (or a Slack incoming webhook with ``alert_webhook_slack``);
    secret, since a Slack webhook URL is a credential."""
    alert_webhook_slack: bool = False
    alert_cooldown_hours: float = Field(default=24.0, ge=0)
    """While a feature x scorer keeps regressing, notify again only after this long."""
    alert_max_attempts: int = Field(default=8, ge=1, le=100)
    """Delivery attempts (each with the SDK's own quick retries) before an alert is dead."""
    alert_timeout_s: float = Field(default=15.0, gt=0)
    """Per request to the email or webhook provider."""
    alert_call_attempts: int = Field(default=3, ge=1, le=10)
    """HTTP attempts within one delivery (429, 5xx and timeouts are retried at once)."""
    alert_max_retry_after_s: float = Field(default=30.0, ge=0)
    """Longest ``retry-after`` waited within a delivery; a longer one defers to a later tick."""
    alert_retry_base_s: float = Field(default=30.0, gt=0)
    """First wait before an alert is tried again; doubles each time, up to an hour."""
    alert_claim_s: float = Field(default=120.0, gt=0)
    """How long a replica holds an alert while sending it; a crash frees it after this."""
    alert_dashboard_url: str | None = None
    """A link put in alerts (your dashboard or this service's API)."""
    regression_drop: float | None = Field(default=None, gt=0)
    """Override the detector's minimum drop for every scorer (see the README's policy)."""
    regression_mode: Literal["guarded", "threshold"] = "guarded"
    """``guarded``: a smaller drop confirmed by a paired test; ``threshold``: the drop alone."""
