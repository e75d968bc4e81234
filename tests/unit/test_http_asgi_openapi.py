"""Schemathesis against the served ``/openapi.json``, in process: no 5xx, answers as documented.

One test per operation of the document, read from the app at collection
time (``document_app``; a test checks the served document is that one);
each generates requests with Hypothesis and sends them to the in-process
app (real daemon, in-memory store) through the ASGI transport, on the
test's event loop, while Hypothesis runs in a worker thread. Bounded on
purpose (a few dozen examples per operation, no shrinking past a deadline)
so it runs in seconds; it guards the contract, it is not a fuzzing campaign.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fixtures.api_suite import AUTH
from tests.fixtures.asgi import BASE_URL, InProcessApi, document_app

MAX_EXAMPLES = 25
"""Per operation; about 15 operations."""

BUDGET_S = 60.0
"""For every operation together."""

REQUEST_TIMEOUT_S = 10.0

VALIDATE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

DOCUMENT: dict[str, Any] = document_app().openapi()
"""The OpenAPI document, read from the app at collection time."""

OPERATIONS = [
    f"{method.upper()} {path}" for path, ops in DOCUMENT["paths"].items() for method in ops
]

_spent: list[float] = []
"""Seconds each operation's test took, for the budget of them all."""


Operation = schemathesis.APIOperation[Any, Any, Any, Any]


def _operations(document: dict[str, Any]) -> list[Operation]:
    found = []
    for result in schemathesis.openapi.from_dict(document).get_all_operations():
        assert isinstance(result, Ok), result  # a path the schema cannot describe
        found.append(result.ok())
    return found


@functools.cache
def _by_label() -> dict[str, Operation]:
    """The operations of ``DOCUMENT`` by label, loaded once: their strategies are then reused."""
    return {o.label: o for o in _operations(DOCUMENT)}


async def test_the_served_document_describes_every_operation(asgi: InProcessApi) -> None:
    served: dict[str, Any] = (await asgi.client.get("/openapi.json")).json()
    assert served == DOCUMENT
    operations = _operations(served)
    assert [o.label for o in operations] == OPERATIONS
    assert len(operations) >= 13


def _request(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Schemathesis's request arguments (``requests``' names) as ``httpx``'s, with the token.

    Header values are sent as ``requests`` sends them (Latin-1); the token is
    sent as bytes (it is not ASCII) in place of any ``Authorization`` generated.
    """
    kwargs = dict(kwargs)
    assert not kwargs.pop("cookies", None), "the API takes no cookies"
    request = {key: kwargs.pop(key) for key in ("method", "url", "params")}
    request["headers"] = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in kwargs.pop("headers").items()
        if name.lower() != "authorization"
    ] + [(name.encode(), value) for name, value in AUTH.items()]
    if "json" in kwargs:
        request["json"] = kwargs.pop("json")
    if "data" in kwargs:
        request["content"] = kwargs.pop("data")
    assert not kwargs, f"arguments this test cannot send: {sorted(kwargs)}"
    return request


@pytest.mark.parametrize("label", OPERATIONS)
async def test_every_operation_answers_as_documented(asgi: InProcessApi, label: str) -> None:
    operation = _by_label()[label]
    loop = asyncio.get_running_loop()

    def send(kwargs: dict[str, Any]) -> httpx.Response:
        future = asyncio.run_coroutine_threadsafe(asgi.client.request(**_request(kwargs)), loop)
        return future.result(REQUEST_TIMEOUT_S)

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def call(case: schemathesis.Case[Any]) -> None:
        kwargs = case.as_transport_kwargs(base_url=BASE_URL)
        response = send(kwargs)
        case.validate_response(response, checks=VALIDATE, transport_kwargs=kwargs)

    started = time.monotonic()
    await asyncio.to_thread(call)
    _spent.append(time.monotonic() - started)
    assert sum(_spent) < BUDGET_S
