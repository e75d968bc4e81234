"""Schemathesis against the served ``/openapi.json``: no 5xx, and every response as documented.

Bounded on purpose (a few dozen examples per operation, no shrinking past a
deadline) so it runs in seconds; it guards the contract, it is not a fuzzing
campaign.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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

from tests.integration.api_server import AUTH, ApiServer, make_settings, running, suite_file

MAX_EXAMPLES = 25
"""Per operation; about 15 operations."""

BUDGET_S = 60.0


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[ApiServer]:
    with running(ApiServer(make_settings(db_url), suite_file(tmp_path))) as srv:
        yield srv


def test_every_operation_answers_as_documented(server: ApiServer) -> None:
    with server.client() as client:
        document: dict[str, Any] = client.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    validate = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    started = time.monotonic()
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # a path the schema cannot describe
        operations.append(result.ok())
    assert len(operations) >= 13

    for operation in operations:

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
            case.call_and_validate(
                base_url=server.base_url, headers=dict(AUTH), checks=validate, timeout=10
            )

        call()
    assert time.monotonic() - started < BUDGET_S
