"""Log lines an SRE can use: JSON or text, context fields, no secrets, quiet libraries."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import warnings
from collections.abc import Iterator

import pytest

from continuous_eval import log_context
from continuous_eval.adapters.logs import configure_logging, resolve_format
from continuous_eval.core.secrets import Scrubber

SECRET = "tok-live-0123456789"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Route the root logger to a buffer for the test, and restore it afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {n: logging.getLogger(n).level for n in ("alembic", "httpx", "uvicorn.access")}
    buffer = io.StringIO()
    try:
        yield buffer
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)
        logging.captureWarnings(False)


def json_lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_lines_carry_timestamp_level_logger_message_and_extras(stream: io.StringIO) -> None:
    configure_logging(level="INFO", fmt="json", stream=stream)
    logging.getLogger("continuous_eval.service.daemon").info(
        "run ended", extra={"event": "run_ended", "run_id": "r-1", "status": "succeeded"}
    )
    (line,) = json_lines(stream)
    assert list(line)[:4] == ["timestamp", "level", "logger", "message"]
    assert line["level"] == "INFO"
    assert line["logger"] == "continuous_eval.service.daemon"
    assert line["message"] == "run ended"
    assert (line["event"], line["run_id"], line["status"]) == ("run_ended", "r-1", "succeeded")
    assert str(line["timestamp"]).endswith("Z")


async def test_bound_context_reaches_lines_in_tasks_and_threads(stream: io.StringIO) -> None:
    configure_logging(level="INFO", fmt="json", stream=stream)
    log = logging.getLogger("continuous_eval.test")

    async def in_task() -> None:
        log.info("in a task")
        await asyncio.to_thread(log.info, "in a thread")

    with log_context.bound(run_id="r-9", suite="support", attempt=2, owner="host:1"):
        await asyncio.create_task(in_task())
    log.info("outside")

    lines = json_lines(stream)
    for line in lines[:2]:
        assert (line["run_id"], line["suite"], line["attempt"], line["owner"]) == (
            "r-9",
            "support",
            2,
            "host:1",
        )
    assert "run_id" not in lines[2]


def test_text_lines_show_the_context_fields_first(stream: io.StringIO) -> None:
    configure_logging(level="INFO", fmt="text", stream=stream)
    with log_context.bound(run_id="r-1", suite="support"):
        logging.getLogger("x").warning("lease lost", extra={"event": "lock_lost"})
    text = stream.getvalue().strip()
    assert text.endswith("WARNING x: lease lost run_id=r-1 suite=support event=lock_lost")


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_no_secret_is_ever_written(stream: io.StringIO, fmt: str) -> None:
    configure_logging(level="INFO", fmt=fmt, stream=stream, scrub=Scrubber([SECRET]))  # type: ignore[arg-type]
    log = logging.getLogger("continuous_eval.test")
    log.error("provider said: invalid x-api-key %s", SECRET, extra={"detail": f"Bearer {SECRET}"})
    try:
        raise RuntimeError(f"echoed {SECRET}")
    except RuntimeError:
        log.exception("failed")
    output = stream.getvalue()
    assert SECRET not in output
    assert "[redacted]" in output


def test_library_chatter_is_kept_to_its_level(stream: io.StringIO) -> None:
    configure_logging(level="INFO", fmt="json", stream=stream)
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    logging.getLogger("httpx").info("HTTP Request: POST https://hooks.slack.com/services/T/B/x")
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /healthz" 200')
    for _ in range(3):
        logging.getLogger("asyncio").warning("socket.send() raised exception.")
    logging.getLogger("asyncio").warning("something else")
    assert [line["message"] for line in json_lines(stream)] == ["something else"]


def test_debug_shows_the_library_lines_again(stream: io.StringIO) -> None:
    configure_logging(level="DEBUG", fmt="json", stream=stream)
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /healthz" 200')
    logging.getLogger("asyncio").warning("socket.send() raised exception.")
    levels = [(line["logger"], line["level"]) for line in json_lines(stream)]
    assert levels == [("uvicorn.access", "INFO"), ("asyncio", "DEBUG")]


def test_a_deprecated_model_warning_becomes_one_log_line(stream: io.StringIO) -> None:
    configure_logging(level="WARNING", fmt="json", stream=stream)
    for _ in range(3):
        warnings.warn(
            "The model 'claude-old' is deprecated and will reach end-of-life soon.",
            DeprecationWarning,
            stacklevel=1,
        )
    (line,) = json_lines(stream)
    assert line["logger"] == "py.warnings"
    assert "claude-old" in str(line["message"])


def test_auto_is_text_on_a_terminal_and_json_elsewhere() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert resolve_format("auto", Tty()) == "text"
    assert resolve_format("auto", io.StringIO()) == "json"
    assert resolve_format("text", io.StringIO()) == "text"
