"""Configure the process's logging: JSON lines for machines, readable text for people.

One handler on the root logger, writing to stderr:

- ``json``: one JSON object per line (python-json-logger) with
  ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, the
  record's ``extra`` fields (``event`` and the ids the call site passed) and
  the context fields bound around it (``log_context``: run id, suite,
  attempt, slot, owner, request id);
- ``text``: ``time level logger: message key=value ...``, the same fields;
- ``auto`` (the default): text when stderr is a terminal, JSON otherwise,
  so a container or systemd journal gets lines a log pipeline can parse.

Every line passes through the process's ``Scrubber``, so no configured
secret (or anything shaped like a key) is ever written, whatever a library
put in its message. Third-party loggers are set to the level their lines
are worth: Alembic's and APScheduler's per-step chatter and uvicorn's access
lines only at DEBUG, httpx never below WARNING (it logs whole URLs, and a
Slack webhook URL is a credential), and the "socket.send() raised
exception." that asyncio writes for every write to a client that already
disconnected only at DEBUG.
"""

from __future__ import annotations

import logging
import sys
import warnings
from datetime import UTC, datetime
from typing import IO, Any, Literal

from pythonjsonlogger.json import JsonFormatter

from continuous_eval import log_context
from continuous_eval.core.secrets import Scrubber

LogFormat = Literal["auto", "text", "json"]

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "color_message",  # uvicorn's copy of the message with terminal colour codes
    "message",
    "asctime",
    "taskName",
}
"""Attributes every record has; anything else on a record came from ``extra``."""

_QUIET_BELOW_DEBUG = ("alembic", "apscheduler", "uvicorn.access")
"""Loggers whose INFO lines describe routine steps; shown only at DEBUG."""

_NEVER_BELOW_WARNING = ("httpx", "httpx2", "httpcore", "httpcore2")
"""Loggers that put whole request URLs (which may be credentials) in INFO and DEBUG lines."""

_HANDLER_NAME = "continuous-eval"


class _ContextFilter(logging.Filter):
    """Copy the bound context fields onto each record, unless the call site set them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in log_context.current().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class _DisconnectedClientFilter(logging.Filter):
    """Drop asyncio's line for each write to a socket whose client went away, below DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "asyncio" and record.getMessage().startswith("socket.send() raised"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class TextFormatter(logging.Formatter):
    """``2026-12-01T21:31:05.123Z INFO logger: message key=value ...``, scrubbed."""

    def __init__(self, scrub: Scrubber) -> None:
        super().__init__()
        self._scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        """Render one record as a line of text."""
        stamp = _timestamp(record)
        line = f"{stamp} {record.levelname} {record.name}: {record.getMessage()}"
        extras = _extras(record)
        ordered = [k for k in log_context.FIELDS if k in extras]
        ordered += sorted(k for k in extras if k not in log_context.FIELDS)
        if ordered:
            line += " " + " ".join(f"{k}={extras[k]}" for k in ordered)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return self._scrub(line)


class JsonLineFormatter(JsonFormatter):
    """One JSON object per record: timestamp, level, logger, message, extras; scrubbed."""

    def __init__(self, scrub: Scrubber) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )
        self._scrub = scrub

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        """Put the timestamp first, in UTC with milliseconds."""
        log_data["timestamp"] = _timestamp(record)
        super().add_fields(log_data, record, message_dict)

    def format(self, record: logging.LogRecord) -> str:
        """Render one record as a JSON line."""
        return self._scrub(super().format(record))


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def resolve_format(fmt: LogFormat, stream: IO[str]) -> Literal["text", "json"]:
    """Decide ``auto``: text for a person at a terminal, JSON for everything else."""
    if fmt != "auto":
        return fmt
    isatty = getattr(stream, "isatty", None)
    return "text" if callable(isatty) and isatty() else "json"


def configure_logging(
    *,
    level: str | int = logging.WARNING,
    fmt: LogFormat = "auto",
    scrub: Scrubber | None = None,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Install the one handler on the root logger (replacing an earlier one) and return it.

    Args:
        level: The root level (``INFO`` for ``serve``, ``WARNING`` for commands).
        fmt: ``text``, ``json`` or ``auto``.
        scrub: Takes secrets out of every line; a scrubber of key shapes when None.
        stream: Where lines go (stderr by default).
    """
    stream = stream or sys.stderr
    scrubber = scrub or Scrubber()
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    chosen = resolve_format(fmt, stream)
    handler.setFormatter(
        JsonLineFormatter(scrubber) if chosen == "json" else TextFormatter(scrubber)
    )
    handler.addFilter(_ContextFilter())
    handler.addFilter(_DisconnectedClientFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own logging config (when something else applied it) gives its
        # loggers handlers of their own and stops propagation; ours is the one.
        adopted = logging.getLogger(name)
        adopted.handlers.clear()
        adopted.propagate, adopted.disabled = True, False
    debug = root.isEnabledFor(logging.DEBUG)
    for name in _QUIET_BELOW_DEBUG:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)
    for name in _NEVER_BELOW_WARNING:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Warnings become log lines (a deprecated model named by a suite, say),
    # shown once per place instead of hidden as Python hides DeprecationWarning.
    logging.captureWarnings(True)
    warnings.filterwarnings("default", message=r"The model '.*' is deprecated")
    return handler
