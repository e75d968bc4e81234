"""Logging from settings: where a command's log lines go, at which level, with secrets scrubbed."""

from __future__ import annotations

from continuous_eval.adapters.logs import configure_logging
from continuous_eval.core.secrets import Scrubber
from continuous_eval.settings import Settings


def configure(settings: Settings, default_level: str) -> None:
    """Log to stderr in the configured format, at the configured level or ``default_level``.

    Every configured secret is scrubbed from every line, whichever logger wrote it.
    """
    configure_logging(
        level=settings.log_level or default_level,
        fmt=settings.log_format,
        scrub=Scrubber(settings.secret_values()),
    )
