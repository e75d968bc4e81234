"""The run page's agreement section: a calibrated judge's figures beside the run's decisions."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from continuous_eval.adapters.http.app import create_app
from continuous_eval.core.agreement import JudgedCase, RunAgreement, measure
from continuous_eval.core.models import ControlAction, RunRecord
from continuous_eval.settings import Settings
from continuous_eval.testing import FakeClock, InMemoryRunReader, InMemoryRunStore
from continuous_eval.testing.agreement import InMemoryAgreementStore
from continuous_eval.testing.builders import new_run

TOKEN = "dashboard-token"


class Idle:
    """A launcher the run page never calls."""

    async def start_manual(
        self, suite: str, features: Sequence[str] = (), **_: object
    ) -> RunRecord:
        raise AssertionError("the dashboard starts no run")

    async def control(self, run_id: str, action: ControlAction) -> RunRecord:
        raise AssertionError("no control here")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    clock = FakeClock()
    store = InMemoryRunStore(clock)
    agreements = InMemoryAgreementStore(clock)
    store.create_run(new_run("calibrated"))
    store.create_run(new_run("plain"))
    cases = [JudgedCase(f"c{i}", 5.0, True, 1.0) for i in range(8)]
    cases += [JudgedCase("lenient", 5.0, True, 0.0), JudgedCase("f", 1.0, False, 0.0)]
    row = RunAgreement(
        "calibrated", "support", "refunds", "judge", "gold", measure(cases, "pass_fail")
    )
    agreements.put_agreements([row])
    app = create_app(
        settings=Settings(api_tokens=[SecretStr(TOKEN)], http_host="127.0.0.1"),
        readiness=lambda: None,
        registry=CollectorRegistry(),
        daemon=Idle(),
        store=store,
        reader=InMemoryRunReader(store),
        suites={"support": ["refunds"]},
        agreements=agreements,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://board.test") as c:
        form = await c.get("/ui/signin")
        nonce = re.search(r'name="signin_nonce" value="([^"]*)"', form.text)
        assert nonce is not None
        signed = await c.post(
            "/ui/signin", data={"token": TOKEN, "signin_nonce": nonce.group(1), "next": "/"}
        )
        assert signed.status_code == 303
        yield c


async def test_the_run_page_shows_the_judges_agreement(client: httpx.AsyncClient) -> None:
    page = (await client.get("/ui/runs/calibrated")).text
    assert "Judge agreement with people" in page
    assert "refunds · judge" in page
    assert "gold (pass_fail)" in page
    assert "case lenient: judge 1, people 0" in page
    plain = (await client.get("/ui/runs/plain")).text
    assert "Judge agreement with people" not in plain
