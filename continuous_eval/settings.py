"""Process settings, read from environment variables (prefix ``CONTINUOUS_EVAL_``).

Built once in ``main()`` (``load_settings``) and passed down; there is no
module-level instance. Secrets are ``SecretStr``; no message about a setting
ever repeats its value, since the value may be a key.

``load_settings`` validates everything before anything is touched and
reports every bad variable at once, one line each, naming the variable and
the problem: malformed JSON in a list or mapping setting included, which
pydantic-settings would otherwise raise as a bare ``SettingsError``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from continuous_eval.errors import ConfigError, ConfigProblem

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


class RetentionOverride(BaseModel):
    """One feature's retention, overriding ``retention_days`` / ``retention_max_rows``."""

    model_config = ConfigDict(extra="forbid")

    days: float | None = Field(default=None, gt=0)
    max_rows: int | None = Field(default=None, ge=1)


class Settings(BaseSettings):
    """Everything the process reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="CONTINUOUS_EVAL_",
        env_nested_delimiter="__",
        hide_input_in_errors=True,
        extra="ignore",
        # The docstrings under the fields become their descriptions, which
        # `continuous-eval init` writes into the starter settings file.
        use_attribute_docstrings=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read the environment through ``_EnvSource``, so bad JSON is a validation error."""
        del env_settings, dotenv_settings, file_secret_settings  # no .env or secret files
        return init_settings, _EnvSource(settings_cls)

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
    """Needed only by suites with an ``anthropic`` target or an ``llm_judge`` scorer."""
    anthropic_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CONTINUOUS_EVAL_ANTHROPIC_BASE_URL", "ANTHROPIC_BASE_URL"),
    )
    """A compatible gateway, or a local fake in tests."""
    anthropic_max_retries: int = Field(default=4, ge=0, le=20)
    """The SDK retries 408, 409, 429, 5xx and 529 this many times with backoff."""
    anthropic_timeout_s: float = Field(default=120.0, gt=0)
    """Seconds per request to the Messages API."""
    anthropic_transport: Literal["httpx", "aiohttp"] = "aiohttp"
    """The SDK's HTTP stack. aiohttp by default: ``bench/runner_throughput.py --transport
    both`` measured it at 0.75x the CPU per case of the SDK's httpx default."""
    result_excerpt_chars: int = Field(default=2000, ge=0)
    """Characters of each output kept with its result."""
    log_format: Literal["auto", "text", "json"] = "auto"
    """``json``: one JSON object per line; ``text``: readable lines; ``auto``: text on
    a terminal, JSON otherwise."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = None
    """Unset: INFO for ``serve``, WARNING for the other commands (``-v`` for INFO)."""

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
    breaker_refusals: int = Field(default=5, ge=0, le=10_000)
    """Cases in a row refused by a provider (401, 403, 404, 400) that stop a run, ended
    ``failed`` with the refusal; until a case goes through, no more cases start. 0: off."""
    completeness_floor: float = Field(default=0.9, ge=0.0, le=1.0)
    """A run scoring less than this share of its results ends ``inconclusive`` (never a
    success, never a baseline, never an alert)."""
    run_max_attempts: int = Field(default=3, ge=1, le=100)
    """Takeovers after which a run ends ``failed``."""
    shutdown_timeout_s: float = Field(default=30.0, gt=0)
    """On SIGTERM, how long cases in flight may take before the run is released."""
    daily_judge_budget_usd: float | None = Field(default=None, gt=0)
    """Cap on the LLM judge's spend per UTC day; None for no cap."""
    instance_id: str | None = None
    """This replica's name in leases and logs; defaults to host:pid:random."""
    http_host: str = "127.0.0.1"
    """Where ``serve`` listens (only 127.0.0.1 while no API token is configured)."""
    http_port: int = Field(default=8080, ge=0, le=65535)
    """The port ``serve`` listens on."""
    http_header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """A connection must send a request's headers whole within this (from opening, or
    from the previous response): slow clients are cut off before any auth runs."""
    http_keepalive_s: int = Field(default=5, ge=1, le=300)
    """An idle keep-alive connection is closed after this."""
    http_max_connections: int = Field(default=512, ge=8, le=100_000)
    """Connections at once; past it, new requests get 503 (``/healthz`` included)."""
    api_tokens: list[SecretStr] = Field(default_factory=list)
    """Bearer tokens accepted by the admin API (a JSON list). With none, ``serve``
    listens on 127.0.0.1 only, whatever ``http_host`` says, and logs a warning."""
    metrics_public: bool = False
    """Serve ``/metrics`` without a token (for a scraper inside a trusted network)."""
    docs_public: bool = False
    """Serve ``/docs`` (Swagger UI) and ``/openapi.json`` without a token, to browse
    the API; its routes still need one."""
    max_request_body_bytes: int = Field(default=64 * 1024, ge=1024)
    """Larger request bodies are refused with 413 before they are read."""
    dashboard_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    """How long a dashboard sign-in lasts; the cookie and its signature both expire.
    Removing a token from ``api_tokens`` ends the sessions signed in with it at once."""

    # Recorded traffic (online evaluation).
    ingest_tokens: list[SecretStr] = Field(default_factory=list)
    """Tokens that may only send traces (``/v1/traces``, ``POST /api/traces``): give
    these to the OpenTelemetry Collector or SDK, not an admin token."""
    ingest_max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """Larger trace uploads are refused with 413, compressed or not (the decompressed
    size counts too)."""
    trace_feature_attributes: list[str] = Field(
        default_factory=lambda: ["continuous_eval.feature", "feature", "service.name"]
    )
    """Span (then resource) attributes naming an interaction's feature; the first
    present wins. A span with none is rejected (``no_feature``)."""
    retention_days: float | None = Field(default=90.0, ge=0)
    """Interactions older than this, and the raw results of runs that finished longer
    ago, are deleted (aggregates, decisions and alerts stay). 0: kept forever."""
    retention_max_rows: int | None = Field(default=1_000_000, ge=0)
    """At most this many interactions per feature; the oldest go first. 0: no cap."""
    retention_features: dict[str, RetentionOverride] = Field(default_factory=dict)
    """Per-feature overrides: ``{"support-bot": {"days": 7, "max_rows": 200000}}``."""
    retention_interval_s: float = Field(default=3600.0, gt=0)
    """How often ``serve`` enforces retention."""

    # ------------------------------------------- labels: eval sets from feedback
    feedback_fill_interval_s: float = Field(default=300.0, ge=0)
    """How often ``serve`` fills eval sets that name a feature from the feedback on its
    traces (``service.feedback_fill``). 0: never (``eval-sets fill NAME`` still does)."""

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
    """Send the webhook as a Slack incoming webhook message."""
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
    run_webhook_url: SecretStr | None = None
    """Every run's completion is POSTed here as JSON, signed (Standard Webhooks); a secret,
    since such URLs often carry a token."""
    run_webhook_secret: SecretStr | None = None
    """The signing secret of run-completion webhooks, ``whsec_`` and base64 of 24+ bytes;
    needed by ``run_webhook_url`` and by ``callback_url`` on ``POST /api/runs``."""
    alert_dashboard_url: str | None = None
    """A link put in alerts (your dashboard or this service's API)."""
    regression_drop: float | None = Field(default=None, gt=0)
    """Override the minimum effect (the smallest paired fall that alerts) for every scorer;
    by default 0.2 on 1-5 judges and 0.05 on pass rates (the README's regression section)."""
    regression_correction: Literal["bh", "holm"] = "bh"
    """How the keys of one run are decided together: ``bh`` (Benjamini-Hochberg false
    discovery rate) or ``holm`` (family-wise error)."""
    regression_fdr: float = Field(default=0.05, gt=0, lt=0.5)
    """The level of that control: at most this chance of any false alert in a run
    where nothing changed."""
    regression_baseline_runs: int = Field(default=7, ge=1, le=50)
    """How many known-good scheduled runs are pooled into each case's baseline."""

    # ---- sandbox: where learned (untrusted) evaluator code runs (issue 14) ----
    sandbox: Literal["bwrap", "none"] = "bwrap"
    """``bwrap``: bubblewrap worker processes, no network, a read-only minimal filesystem;
    ``none``: bare worker processes (needs ``allow_unsandboxed``)."""
    allow_unsandboxed: bool = False
    """Run learned code without isolation when the sandbox is off or does not work here.
    Off by default: the product refuses, and says how to fix the sandbox."""
    sandbox_workers: int = Field(default=2, ge=1, le=64)
    """Worker processes, reused across cases."""
    sandbox_cpu_s: float = Field(default=2.0, gt=0, le=600)
    """CPU seconds per call."""
    sandbox_memory_mb: int = Field(default=256, ge=64, le=65536)
    """Address space of a worker, interpreter included."""
    sandbox_wall_s: float = Field(default=5.0, gt=0, le=3600)
    """Wall seconds per call (a sleeping or blocked call ends here)."""
    sandbox_output_bytes: int = Field(default=65_536, ge=1024, le=16_777_216)
    """Longest reply a call may send back."""
    # ---- end sandbox ----
    # --- learned evaluators (issue 14) ------------------------------------
    evaluator_model: str | None = None
    """The model that writes learned evaluators; the judge model when unset."""
    evaluator_min_accuracy: float = Field(default=0.8, ge=0.0, le=1.0)
    """The floor of held-out accuracy under which a learned evaluator cannot be promoted."""

    @property
    def evaluator_author_model(self) -> str:
        """``evaluator_model``, or the judge model when it is not set."""
        return self.evaluator_model or self.judge_model

    # ------------------------------------------------- jobs (issue 14: stored jobs)
    job_concurrency: int = Field(default=1, ge=1, le=64)
    """Jobs (evaluator generation) one ``serve`` runs at once."""
    job_poll_s: float = Field(default=2.0, gt=0)
    """How often ``serve`` looks for queued jobs, renews its jobs' leases and takes over
    jobs whose runner died; the latency of a new job."""
    job_lease_s: float = Field(default=60.0, gt=0)
    """A running job's lease; once it expires (the runner stopped polling), another
    ``serve`` re-queues the job, or fails it when its attempts are used up.
    Keep it well above ``CONTINUOUS_EVAL_JOB_POLL_S``."""

    @field_validator("retention_days", "retention_max_rows")
    @classmethod
    def _zero_is_no_limit(cls, value: float | None) -> float | None:
        # An environment variable cannot be unset to None; 0 says "no limit".
        return None if value == 0 else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def secret_values(self) -> list[str]:
        """Return every configured secret, for the ``Scrubber`` of logs, errors and answers."""
        from sqlalchemy.engine import make_url

        values = [t.get_secret_value() for t in (*self.api_tokens, *self.ingest_tokens)]
        secrets = (
            self.anthropic_api_key,
            self.resend_api_key,
            self.alert_webhook_url,
            self.run_webhook_url,
            self.run_webhook_secret,
        )
        values += [s.get_secret_value() for s in secrets if s is not None]
        for url in (self.alert_webhook_url, self.run_webhook_url):
            if url is not None:
                # A Slack webhook's path is the credential, whatever host it is quoted with.
                path = urlsplit(url.get_secret_value()).path
                if len(path) > 1:
                    values.append(path)
        try:
            password = make_url(self.database_url).password
        except Exception:  # an unparsable URL fails later, with its own message
            password = None
        if password:
            values.append(str(password))
        return values

    @field_validator("anthropic_base_url", "resend_api_url", "alert_dashboard_url")
    @classmethod
    def _plain_url(cls, value: str | None) -> str | None:
        if value is not None:
            _check_url(value)
        return value

    @field_validator("alert_webhook_url", "run_webhook_url")
    @classmethod
    def _secret_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_url(value.get_secret_value())
        return value

    @field_validator("run_webhook_secret")
    @classmethod
    def _signing_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from continuous_eval.core.signing_secret import check_signing_secret

            check_signing_secret(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _run_webhook_signed(self) -> Settings:
        if self.run_webhook_url is not None and self.run_webhook_secret is None:
            raise ValueError(
                "CONTINUOUS_EVAL_RUN_WEBHOOK_URL needs CONTINUOUS_EVAL_RUN_WEBHOOK_SECRET "
                "(run webhooks are always signed)"
            )
        return self

    @model_validator(mode="after")
    def _job_lease_outlives_polls(self) -> Settings:
        # The poll renews the leases: a lease shorter than two polls would let a
        # healthy serve's jobs be taken over between two of its own polls.
        if self.job_lease_s < 2 * self.job_poll_s:
            raise ValueError(
                f"CONTINUOUS_EVAL_JOB_LEASE_S ({self.job_lease_s:g}) must be at least twice "
                f"CONTINUOUS_EVAL_JOB_POLL_S ({self.job_poll_s:g})"
            )
        return self

    @model_validator(mode="after")
    def _email_complete(self) -> Settings:
        # A partial email configuration is a mistake worth stopping for, not a
        # silent no-op: alerts would be recorded and never sent.
        present = {
            "RESEND_API_KEY": self.resend_api_key is not None,
            "CONTINUOUS_EVAL_ALERT_EMAIL_FROM": bool(self.alert_email_from),
            "CONTINUOUS_EVAL_ALERT_EMAIL_TO": bool(self.alert_email_to),
        }
        if any(present.values()) and not all(present.values()):
            missing = ", ".join(name for name, ok in present.items() if not ok)
            raise ValueError(f"email alerts need {missing} too (the others are set)")
        return self


def _check_url(value: str) -> None:
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        # Never the value: a webhook URL is a credential.
        raise ValueError("expected an http:// or https:// URL with a host")


class _NotJson:
    """Stands in for an environment value that is not valid JSON, so validation names it."""

    def __init__(self, detail: str) -> None:
        self.detail = detail


class _EnvSource(EnvSettingsSource):
    """The environment, with malformed JSON in a list or mapping setting left to validation.

    pydantic-settings raises a ``SettingsError`` at the first such variable,
    naming the field but not the variable and hiding every other problem.
    """

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        """Decode JSON; a malformed value becomes a ``_NotJson`` marker."""
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError as exc:
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "not JSON"
            return _NotJson(detail)


def env_name(field: str, environ: Mapping[str, str] | None = None) -> str:
    """Return the environment variable a setting is read from (the one set, for aliases)."""
    info = Settings.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        names = [c for c in alias.choices if isinstance(c, str)]
        env = os.environ if environ is None else environ
        return next((n for n in names if n in env), names[0])
    return f"CONTINUOUS_EVAL_{field.upper()}"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment, or raise one error naming every bad variable.

    Raises:
        ConfigError: With one problem per bad variable (``environment: NAME:
            problem``); values are never repeated.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError.of(_settings_problems(exc)) from None


def _field_of(loc: str) -> str:
    """Map an error location (a field name, or the first of its aliases) to the field."""
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices) and loc in alias.choices:
            return field
    return loc


def _settings_problems(exc: ValidationError) -> list[ConfigProblem]:
    problems = []
    for err in exc.errors(include_url=False, include_input=True):
        loc = [str(part) for part in err["loc"]]
        given = err.get("input")
        message = err["msg"].removeprefix("Value error, ")
        if isinstance(given, _NotJson):
            kind = "a JSON list" if err["type"] == "list_type" else "JSON"
            message = f"expected {kind}, and the value is not valid JSON ({given.detail})"
        if not loc:
            problems.append(ConfigProblem("environment", None, message))
            continue
        field, *inner = loc
        field = _field_of(field)
        name = env_name(field) if field in Settings.model_fields else field
        where = f"{name}: {'.'.join(inner)}" if inner else name
        problems.append(ConfigProblem("environment", where, message))
    return problems


def mistyped_variables(environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """Return (variable, the setting it probably meant) for set variables that are no setting.

    Unknown ``CONTINUOUS_EVAL_*`` variables are ignored by the settings (other
    tools may share the prefix), so a typo such as ``..._SCHEDULE_ENABLE``
    would silently do nothing; only names close to a real one are returned,
    for the CLI to warn about.
    """
    import difflib

    env = os.environ if environ is None else environ
    known = {env_name(field, env) for field in Settings.model_fields}
    prefixed = {n for n in known if n.startswith("CONTINUOUS_EVAL_")}
    found = []
    for name in sorted(env):
        if not name.startswith("CONTINUOUS_EVAL_") or name in prefixed:
            continue
        close = difflib.get_close_matches(name, sorted(prefixed), n=1, cutoff=0.85)
        if close:
            found.append((name, close[0]))
    return found


def settings_file() -> str:
    """Render every setting as a commented ``NAME=default`` line, with what it does.

    The format of ``set -a; . FILE``, systemd's ``EnvironmentFile=`` and
    ``docker run --env-file``. Generated from the fields, so it lists every
    setting there is; every line is commented out, so the file changes
    nothing until a line is uncommented.
    """
    lines = [
        "# continuous-eval settings: environment variables, one per line.",
        "# Load them with `set -a; . ./continuous-eval.env; set +a`, systemd's",
        "# EnvironmentFile=, or `docker run --env-file`. Every line is commented",
        "# out and shows the default; uncomment and edit what you need.",
        "# Keep real secrets out of version control.",
    ]
    defaults = Settings.model_construct()
    for field, info in Settings.model_fields.items():
        lines.append("")
        for text in (info.description or "").split("\n"):
            if text.strip():
                lines.append(f"# {' '.join(text.split())}")
        alias = info.validation_alias
        # For a setting with an alias, the name other tools use too (ANTHROPIC_API_KEY).
        name = alias.choices[-1] if isinstance(alias, AliasChoices) else env_name(field, {})
        lines.append(f"# {name}={_env_value(getattr(defaults, field))}")
    return "\n".join(lines) + "\n"


def _env_value(value: object) -> str:
    if value is None or isinstance(value, SecretStr):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, BaseModel | list | dict):
        return json.dumps(_plain(value), separators=(",", ":"))
    return str(value)


def _plain(value: object) -> object:
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
