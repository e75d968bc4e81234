"""What the fake Resend API answers a ``POST /emails``, step by step.

Belongs here: the order of ``resend_server``'s list (authentication, the
idempotency key's form, scripted faults and hangs, rate limiting,
validation, idempotency, delivery and the kill hook), each step a small
function. The state they consult is ``resend_state``'s; routing and
headers common to every answer are ``resend_app``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from continuous_eval.fakes.resend_errors import Answer, error_answer, name_for
from continuous_eval.fakes.resend_records import ScriptedFault
from continuous_eval.fakes.resend_state import FakeResendState
from continuous_eval.fakes.resend_validation import validate_email

MAX_IDEMPOTENCY_KEY_CHARS: Final = 256


async def answer_email(
    state: FakeResendState,
    headers: Mapping[str, str],
    raw: bytes,
    epoch: int,
    *,
    over_rate_limit: bool = False,
) -> Answer:
    """Answer one ``POST /emails``, in the order ``resend_server``'s docstring lists.

    ``over_rate_limit`` says whether this request went past this second's
    budget (counted on arrival); it only matters when limiting is enforced.
    """
    refused = _refuse_headers(state, headers)
    if refused is not None:
        return refused
    fault = state.next_fault()
    scripted = await _before_processing(state, fault, epoch)
    if scripted is not None:
        return scripted
    if state.enforce_rate_limit and over_rate_limit:
        return error_answer(
            429,
            "rate_limit_exceeded",
            headers={"retry-after": state.rate_limit_retry_after},
        )
    try:
        body = json.loads(raw)
    except ValueError:
        return error_answer(400, "validation_error", "The request body is not valid JSON.")
    problem = validate_email(body)
    if problem is not None:
        return problem
    return await _send(state, headers.get("idempotency-key"), body, raw, epoch, fault)


def _refuse_headers(state: FakeResendState, headers: Mapping[str, str]) -> Answer | None:
    """Steps 1 and 2: the API key, and the idempotency key's form."""
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return error_answer(401, "missing_api_key")
    if (state.api_key is not None and token != state.api_key) or (
        state.api_key is None and not token.startswith("re_")
    ):
        return error_answer(403, "invalid_api_key")
    key = headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        return error_answer(400, "invalid_idempotency_key")
    return None


async def _before_processing(
    state: FakeResendState, fault: ScriptedFault | None, epoch: int
) -> Answer | None:
    """Step 3: a scripted hang before the API sees the request, then its error if it has one."""
    if fault is None or fault.hang != "before":
        return None
    if fault.hang_s and not await _hang(state, fault.hang_s, epoch):
        return error_answer(500, "application_error", "the fake was reset during a hang")
    if fault.status is not None:
        return _scripted_error(state, fault, fault.status)
    return None


def _scripted_error(state: FakeResendState, fault: ScriptedFault, status: int) -> Answer:
    headers = {k.lower(): v for k, v in fault.headers.items()}
    name = fault.name or name_for(status)
    if status == 429 and name == "rate_limit_exceeded":
        # Resend always tells a rate-limited client when to come back.
        headers.setdefault("retry-after", state.rate_limit_retry_after)
        headers.setdefault("ratelimit-remaining", "0")
    return error_answer(status, name, fault.message, headers)


async def _send(
    state: FakeResendState,
    key: str | None,
    body: Mapping[str, Any],
    raw: bytes,
    epoch: int,
    fault: ScriptedFault | None,
) -> Answer:
    """Steps 6 and 7: replay or refuse by idempotency key, else deliver, then answer."""
    fingerprint = _fingerprint(body)
    if key is not None:
        settled = state.claim_key(key, fingerprint)
        if settled is not None:
            return settled
    try:
        if state.latency_s > 0:
            await asyncio.sleep(state.latency_s)
        email_id = state.deliver(key, fingerprint, body, raw, epoch)
    finally:
        if key is not None:
            state.release_key(key)
    await _after_delivery(state, fault, epoch)
    return Answer(200, {"id": email_id}, email_id=email_id)


async def _after_delivery(state: FakeResendState, fault: ScriptedFault | None, epoch: int) -> None:
    """What stands between a delivery and its answer: the kill hook, then a scripted hang."""
    pid = state.take_kill_pid()
    if pid is not None:
        await _kill(pid)
    if fault is not None and fault.hang == "after":
        await _hang(state, fault.hang_s, epoch)


def _fingerprint(body: object) -> str:
    # Resend compares payloads, not bytes: the same fields in another key
    # order are the same request.
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


async def _hang(state: FakeResendState, seconds: float, epoch: int) -> bool:
    """Sleep ``seconds``, or less if the fake is reset; return whether the full hang elapsed."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if state.epoch != epoch:
            return False
        await asyncio.sleep(min(0.05, left))
    return state.epoch == epoch


def _process_alive(pid: int) -> bool:
    # A killed child stays a zombie until its parent reaps it; it is dead all the same.
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


async def _kill(pid: int) -> None:
    """SIGKILL ``pid`` and wait (up to 2 s) until it is gone, so it can never read the answer."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    # Polling: a process's death in another process tree raises no event to await.
    while _process_alive(pid) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
