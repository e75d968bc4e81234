"""The dashboard in process: sign-in, sessions, CSRF, and every page over the in-memory fakes.

httpx's ASGI transport drives the app built on ``continuous_eval.testing``'s
store and reader; the pages are parsed as HTML text (the browser tests in
``tests/browser`` check them in a real Chromium).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from continuous_eval.adapters.http.app import create_app
from continuous_eval.core.decisions import Decision, DecisionKind, Incident
from continuous_eval.core.models import (
    CaseResult,
    ControlAction,
    ProgressDelta,
    ResultStatus,
    RunRecord,
    RunStatus,
    ScoreAggregate,
)
from continuous_eval.settings import Settings
from continuous_eval.testing import FakeClock, InMemoryRunReader, InMemoryRunStore
from continuous_eval.testing.builders import new_run

TOKEN = "dashboard-token"


class Launcher:
    """The ``RunLauncher`` the pages drive: controls reach the store."""

    def __init__(self, store: InMemoryRunStore) -> None:
        self.store = store
        self.controls: list[tuple[str, str]] = []

    async def start_manual(
        self, suite: str, features: Sequence[str] = (), **_: object
    ) -> RunRecord:
        raise AssertionError("the dashboard starts no run")

    async def control(self, run_id: str, action: ControlAction) -> RunRecord:
        self.controls.append((run_id, action))
        return self.store.control_run(run_id, action)


@dataclass
class Board:
    client: httpx.AsyncClient
    store: InMemoryRunStore
    clock: FakeClock
    launcher: Launcher

    async def sign_in(self, token: str = TOKEN, next_page: str = "/") -> httpx.Response:
        form = await self.client.get("/ui/signin")
        nonce = _field(form.text, "signin_nonce")
        return await self.client.post(
            "/ui/signin", data={"token": token, "signin_nonce": nonce, "next": next_page}
        )

    async def csrf(self, path: str = "/") -> str:
        return _field((await self.client.get(path)).text, "csrf_token")

    def scheduled(
        self, run_id: str, means: dict[str, float], decisions: Sequence[Decision] = ()
    ) -> None:
        self.store.create_run(new_run(run_id, run_type="scheduled", scheduled_for=self.clock.now()))
        self.clock.advance(timedelta(minutes=10))
        aggs = [ScoreAggregate(f, "judge", m, 0.1, 20, 0, "fp") for f, m in means.items()]
        self.store.finish_run(run_id, RunStatus.SUCCEEDED, None, aggs, decisions=list(decisions))
        self.clock.advance(timedelta(days=1))


def _field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} field in the page"
    return found.group(1)


@pytest.fixture
async def board() -> AsyncIterator[Board]:
    clock = FakeClock()
    store = InMemoryRunStore(clock)
    launcher = Launcher(store)
    app = create_app(
        settings=Settings(api_tokens=[SecretStr(TOKEN)], http_host="127.0.0.1"),
        readiness=lambda: None,
        registry=CollectorRegistry(),
        daemon=launcher,
        store=store,
        reader=InMemoryRunReader(store),
        suites={"support": ["refunds", "tone"], "billing": ["invoices"]},
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://board.test") as client:
        yield Board(client, store, clock, launcher)


# ------------------------------------------------------------------ sign-in


async def test_pages_without_a_session_go_to_sign_in_and_come_back(board: Board) -> None:
    first = await board.client.get("/ui/alerts?x=1")
    assert first.status_code == 303
    assert first.headers["location"] == "/ui/signin?next=%2Fui%2Falerts%3Fx%3D1"

    signed = await board.sign_in(next_page="/ui/alerts?x=1")
    assert signed.status_code == 303
    assert signed.headers["location"] == "/ui/alerts?x=1"
    cookie = signed.headers["set-cookie"]
    assert "ce_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Max-Age=43200" in cookie
    assert "Secure" not in cookie  # plain http here; https sets it
    assert (await board.client.get("/ui/alerts")).status_code == 200


async def test_a_wrong_token_is_refused_and_the_api_keeps_bearer_tokens(board: Board) -> None:
    refused = await board.sign_in("not-the-token")
    assert refused.status_code == 401
    assert "not accepted" in refused.text
    assert "ce_session" not in refused.headers.get("set-cookie", "")
    await board.sign_in()
    # A session is not a bearer token: the JSON API still needs one.
    assert (await board.client.get("/api/runs")).status_code == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert (await board.client.get("/api/runs", headers=bearer)).status_code == 200


async def test_sign_in_needs_its_own_form_and_never_redirects_off_site(board: Board) -> None:
    forged = await board.client.post("/ui/signin", data={"token": TOKEN})
    assert forged.status_code == 403
    assert forged.json()["error"]["code"] == "csrf_failed"
    away = await board.sign_in(next_page="//evil.example/x")
    assert away.headers["location"] == "/"


async def test_sign_out_ends_the_session_and_needs_the_csrf_token(board: Board) -> None:
    await board.sign_in()
    refused = await board.client.post("/ui/signout", data={})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "csrf_failed"
    out = await board.client.post("/ui/signout", data={"csrf_token": await board.csrf()})
    assert out.status_code == 303
    assert (await board.client.get("/")).status_code == 303


async def test_a_forged_or_foreign_session_cookie_is_no_session(board: Board) -> None:
    board.client.cookies.set("ce_session", "0123456789abcdef.forged")
    assert (await board.client.get("/")).status_code == 303
    board.client.cookies.clear()
    posted = await board.client.post("/ui/runs/x/control", data={"action": "cancel"})
    assert posted.status_code == 401


async def test_static_files_are_public_and_shipped(board: Board) -> None:
    chart = await board.client.get("/ui/static/uPlot.iife.min.js")
    assert chart.status_code == 200
    assert "uPlot" in chart.text
    assert (await board.client.get("/ui/static/dashboard.css")).status_code == 200


# ------------------------------------------------------------------ pages


def _regressed() -> Decision:
    return Decision(
        "refunds",
        "judge",
        DecisionKind.REGRESSED,
        "refunds fell by 0.8",
        rule="drop",
        transition="opened",
        incident=Incident("s-3", "regression", -0.8),
        baseline_run_ids=("s-2", "s-1"),
    )


async def test_the_overview_lists_suites_states_sparklines_and_incidents(board: Board) -> None:
    for i in range(3):
        board.scheduled(f"s-{i}", {"refunds": 4.0 + i / 10, "tone": 3.0})
    board.scheduled("s-3", {"refunds": 3.2, "tone": 3.0}, [_regressed()])
    await board.sign_in()

    page = await board.client.get("/")

    assert page.status_code == 200
    html = page.text
    assert "Open incidents" in html
    assert 'href="/ui/runs/s-3"' in html
    assert html.count('<tr class="key"') == 3  # refunds, tone, and billing's never-run feature
    assert 'data-state="regressed"' in html
    assert 'data-state="never_run"' in html
    assert html.count("<polyline") == 2
    assert "billing" in html
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


async def test_the_trend_page_carries_points_marks_and_resets(board: Board) -> None:
    for i in range(4):
        board.scheduled(f"s-{i}", {"refunds": 4.0})
    board.scheduled("s-4", {"refunds": 3.0}, [_regressed()])
    board.store.create_run(new_run("m-1", run_type="manual"))
    board.store.finish_run(
        "m-1", RunStatus.SUCCEEDED, None, [ScoreAggregate("refunds", "judge", 2.0, 0.1, 5, 0)]
    )
    await board.sign_in()
    path = "/ui/trend?suite=support&feature=refunds&scorer=judge&days=0"

    page = (await board.client.get(path)).text
    assert page.count('class="point point-scheduled"') == 5
    assert "point-manual" not in page
    data = re.search(r'id="trend-data">(.*?)</script>', page, re.S)
    assert data is not None
    assert '"marks": [[' in data.group(1)
    assert '"alert", "s-4"' in data.group(1)
    with_manual = (await board.client.get(path + "&manual=true")).text
    assert with_manual.count('class="point point-manual"') == 1


async def test_the_run_page_shows_progress_scores_decisions_and_controls(board: Board) -> None:
    board.scheduled("s-0", {"refunds": 4.0})
    board.scheduled("s-1", {"refunds": 3.0}, [_regressed()])
    board.store.create_run(new_run("live", cases_total=3))
    await board.sign_in()

    page = (await board.client.get("/ui/runs/s-1")).text
    assert "refunds fell by 0.8" in page
    assert 'href="/ui/compare?run=s-1&amp;base=s-2"' in page
    live = (await board.client.get("/ui/runs/live")).text
    assert 'data-status="running"' in live
    assert 'value="cancel"' in live

    cancelled = await board.client.post(
        "/ui/runs/live/control", data={"action": "cancel", "csrf_token": await board.csrf()}
    )
    assert cancelled.status_code == 303
    assert board.launcher.controls == [("live", "cancel")]
    assert board.store.get_run("live").status is RunStatus.CANCELLED
    missing = await board.client.get("/ui/runs/nope")
    assert missing.status_code == 404
    assert "Not found" in missing.text


async def test_a_control_post_without_the_csrf_token_is_refused(board: Board) -> None:
    board.store.create_run(new_run("live"))
    await board.sign_in()
    refused = await board.client.post("/ui/runs/live/control", data={"action": "cancel"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "csrf_failed"
    assert board.launcher.controls == []
    assert board.store.get_run("live").status is RunStatus.RUNNING


def _result(case: str, score: float | None, output: str) -> CaseResult:
    status = ResultStatus.OK if score is not None else ResultStatus.ERROR
    return CaseResult(
        "refunds",
        case,
        "judge",
        status,
        score=score,
        output_excerpt=output,
        rationale=f"because {output}",
        error=None if score is not None else "target failed",
        input_excerpt=f"question {case}",
        expected_excerpt=f"answer {case}",
    )


async def test_compare_shows_the_fallen_cases_with_inputs_outputs_and_rationales(
    board: Board,
) -> None:
    for run_id, scores in (
        ("base", {"c1": 5.0, "c2": 4.0, "c3": 3.0, "c4": 4.0}),
        ("new", {"c1": 2.0, "c2": 4.0, "c3": 4.0, "c4": None}),
    ):
        board.store.create_run(new_run(run_id, cases_total=4, total=4))
        results = [_result(c, s, f"{run_id} says {c}") for c, s in scores.items()]
        board.store.save_results(run_id, results, ProgressDelta(cases_done=4))
        board.clock.advance(timedelta(minutes=1))
    await board.sign_in()

    page = (await board.client.get("/ui/compare?run=new&base=base")).text
    assert re.findall(r'class="case case-(\w+)" data-case="(\w+)"', page) == [
        ("fell", "c1"),
        ("errored", "c4"),
        ("improved", "c3"),
        ("unchanged", "c2"),
    ]
    assert "question c1" in page
    assert "answer c1" in page
    assert "base says c1" in page
    assert "because new says c1" in page
    fell = (await board.client.get("/ui/compare?run=new&base=base&show=fell")).text
    assert re.findall(r'data-case="(\w+)"', fell) == ["c1"]
    assert "recorded interaction" not in page  # cases from a file have no trace


async def test_compare_links_an_online_case_to_its_recorded_interaction(board: Board) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    for run_id in ("base", "new"):
        board.store.create_run(new_run(run_id, cases_total=1, total=1))
        result = replace(_result(trace, 4.0, "ok"), trace_id=trace)
        board.store.save_results(run_id, [result], ProgressDelta(cases_done=1))
        board.clock.advance(timedelta(minutes=1))
    await board.sign_in()
    page = (await board.client.get("/ui/compare?run=new&base=base")).text
    assert f'href="/api/traces/{trace}"' in page


async def test_the_alerts_page_lists_incidents_and_deliveries(board: Board) -> None:
    board.scheduled("s-0", {"refunds": 4.0})
    board.scheduled("s-1", {"refunds": 3.0}, [_regressed()])
    await board.sign_in()
    page = (await board.client.get("/ui/alerts")).text
    assert "regression since" in page
    assert "No alert has been sent yet." in page


async def test_over_https_the_cookies_are_secure(board: Board) -> None:
    secure = httpx.AsyncClient(transport=board.client._transport, base_url="https://board.test")
    async with secure:
        form = await secure.get("/ui/signin")
        assert "Secure" in form.headers["set-cookie"]
        signed = await secure.post(
            "/ui/signin",
            data={"token": TOKEN, "signin_nonce": _field(form.text, "signin_nonce")},
        )
        assert signed.status_code == 303
        session = [c for c in signed.headers.get_list("set-cookie") if "ce_session=" in c]
        assert session
        assert "Secure" in session[0]
