"""The dashboard's routes: pages rendered on the server, forms that post back.

``/`` is the overview; everything else lives under ``/ui/``. ``RequestGuard``
has already checked the session (``gate``) before a route runs, and put it in
``request.state.session``; every form that changes something carries the
session's CSRF token and is refused (403 ``csrf_failed``) without it. Reads
are plain ``def`` routes, run in FastAPI's thread pool where blocking reads
belong; control goes to the daemon on the event loop.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Header, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from continuous_eval.adapters.http.dashboard import views
from continuous_eval.adapters.http.dashboard.gate import SIGNIN_PATH, STATIC_PREFIX, safe_next
from continuous_eval.adapters.http.dashboard.sessions import (
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    Session,
    Sessions,
    cookie_value,
    csrf_matches,
)
from continuous_eval.adapters.http.errors import ApiError
from continuous_eval.adapters.http.events import EventStream, EventStreams
from continuous_eval.core.compare import Change
from continuous_eval.core.models import ControlAction
from continuous_eval.errors import RunNotFound
from continuous_eval.ports import RunLauncher, RunReader, RunStore, SuiteSchedule
from continuous_eval.ports.agreement import AgreementStore

HERE = Path(__file__).parent
DAYS = (7, 30, 90, 365, 0)
"""The trend's time ranges; 0 is everything."""


@dataclass(frozen=True)
class DashboardContext:
    """What the pages read and drive, injected by ``create_app``."""

    daemon: RunLauncher
    store: RunStore
    reader: RunReader
    suites: Mapping[str, Sequence[str]]
    schedules: Mapping[str, SuiteSchedule]
    streams: EventStreams
    sessions: Sessions
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    agreements: AgreementStore | None = None
    """The judges' agreement with people, shown on the run page when given."""


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(("html",)),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["num"] = _num
    env.filters["duration"] = _duration
    return env


def _when(value: datetime | None) -> Markup:
    """A time in UTC, ISO-like, kept on one line."""
    if value is None:
        return Markup("—")
    text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Markup('<span class="when">{}</span>').format(text)


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _session(request: Request) -> Session:
    session: Session = request.state.session
    return session


def _check_csrf(request: Request, submitted: str | None) -> None:
    if not csrf_matches(_session(request).csrf, submitted):
        raise ApiError(
            403, "csrf_failed", "the form's CSRF token is missing or wrong; reload the page"
        )


Page = Callable[..., HTMLResponse]
"""Renders a template into a response: ``page(request, name, status_code, **values)``."""


def dashboard_router(ctx: DashboardContext) -> APIRouter:
    """Build the dashboard's routes over ``ctx`` (hidden from the OpenAPI document)."""
    router = APIRouter(include_in_schema=False)
    env = _environment()

    def page(request: Request, name: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        session = getattr(request.state, "session", None)
        html = env.get_template(name).render(
            request=request, csrf=session.csrf if session else "", **values
        )
        return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)

    _signin_routes(router, ctx, page)
    _read_pages(router, ctx, page)
    _run_pages(router, ctx, page)
    router.mount(STATIC_PREFIX.rstrip("/"), StaticFiles(directory=HERE / "static"), name="static")
    return router


PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
"""Every page: never cached (it shows live state), no inline script or frame."""


def _missing(page: Page, request: Request, exc: RunNotFound) -> HTMLResponse:
    return page(request, "notfound.html", 404, title="Not found", message=str(exc))


def _read_pages(router: APIRouter, ctx: DashboardContext, page: Page) -> None:
    """The overview, a key's trend, and the alerts."""

    @router.get("/")
    def overview_page(request: Request) -> HTMLResponse:
        data = views.overview(ctx.reader, ctx.suites, ctx.schedules)
        return page(request, "overview.html", overview=data, title="Overview")

    @router.get("/ui/trend")
    def trend_page(
        request: Request,
        suite: Annotated[str, Query(max_length=200)],
        feature: Annotated[str, Query(max_length=200)],
        scorer: Annotated[str, Query(max_length=200)],
        days: Annotated[int, Query(ge=0, le=3650)] = 90,
        manual: bool = False,
    ) -> HTMLResponse:
        data = views.trend(
            ctx.reader, suite, feature, scorer, now=ctx.now(), days=days, manual=manual
        )
        title = f"{feature} · {scorer}"
        return page(request, "trend.html", trend=data, ranges=DAYS, title=title)

    @router.get("/ui/alerts")
    def alerts_page(request: Request) -> HTMLResponse:
        data = views.alerts_view(ctx.store, ctx.reader)
        return page(request, "alerts.html", alerts=data, title="Alerts")


def _run_pages(router: APIRouter, ctx: DashboardContext, page: Page) -> None:
    """A run (live), its controls and its event stream, and the comparison of two runs."""

    @router.get("/ui/runs/{run_id}")
    def run_page(request: Request, run_id: str) -> HTMLResponse:
        try:
            data = views.run_view(ctx.store, ctx.reader, run_id)
        except RunNotFound as exc:
            return _missing(page, request, exc)
        agreement = ctx.agreements.run_agreements(run_id) if ctx.agreements else []
        return page(request, "run.html", view=data, agreement=agreement, title=f"Run {run_id}")

    @router.post("/ui/runs/{run_id}/control")
    async def control(
        request: Request,
        run_id: str,
        action: Annotated[ControlAction, Form()],
        csrf_token: Annotated[str | None, Form()] = None,
    ) -> RedirectResponse:
        _check_csrf(request, csrf_token)
        await ctx.daemon.control(run_id, action)
        return RedirectResponse(f"/ui/runs/{quote(run_id, safe='')}", status_code=303)

    @router.get("/ui/runs/{run_id}/events")
    async def run_events(
        run_id: str,
        last_event_id: Annotated[
            str | None, Header(alias="Last-Event-ID", pattern=r"^[0-9]{1,18}$")
        ] = None,
    ) -> EventStream:
        return await ctx.streams.follow(ctx.reader, run_id, last_event_id)

    @router.get("/ui/compare")
    def compare_page(
        request: Request,
        run: Annotated[str, Query(max_length=64)],
        base: Annotated[str | None, Query(max_length=64)] = None,
        show: Change | None = None,
    ) -> Response:
        try:
            if base is None:
                found = ctx.store.get_run(run)
                base = views.baseline_of(ctx.reader, found, ctx.store.get_decisions(run))
                if base is not None:
                    target = f"/ui/compare?{urlencode({'run': run, 'base': base})}"
                    return RedirectResponse(target, status_code=303)
            data = (
                None if base is None else views.comparison(ctx.store, ctx.reader, run, base, show)
            )
        except RunNotFound as exc:
            return _missing(page, request, exc)
        return page(request, "compare.html", comparison=data, run_id=run, title="Compare")


def _signin_routes(
    router: APIRouter, ctx: DashboardContext, page: Callable[..., HTMLResponse]
) -> None:
    """Sign-in (a token for a session cookie) and sign-out."""
    max_age = math.ceil(ctx.sessions.max_age_s)

    def signin_form(
        request: Request, next_page: str, error: str | None, status: int
    ) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        response = page(
            request, "signin.html", status, title="Sign in", next_page=next_page, error=error,
            signin_nonce=nonce, anonymous=ctx.sessions.anonymous,
        )  # fmt: skip
        response.set_cookie(
            SIGNIN_COOKIE, nonce, max_age=600, path=SIGNIN_PATH, httponly=True,
            samesite="strict", secure=_secure(request),
        )  # fmt: skip
        return response

    @router.get(SIGNIN_PATH)
    def signin_page(request: Request, next: str | None = None) -> HTMLResponse:
        return signin_form(request, safe_next(next), None, 200)

    @router.post(SIGNIN_PATH)
    def signin(
        request: Request,
        token: Annotated[str, Form(max_length=1024)] = "",
        signin_nonce: Annotated[str | None, Form()] = None,
        next: Annotated[str | None, Form()] = None,
    ) -> Response:
        expected = cookie_value(request.headers.get("cookie"), SIGNIN_COOKIE)
        if not csrf_matches(expected, signin_nonce):
            raise ApiError(403, "csrf_failed", "the sign-in form expired or came from elsewhere")
        cookie = ctx.sessions.sign_in(token)
        if cookie is None:
            return signin_form(request, safe_next(next), "That token is not accepted.", 401)
        response = RedirectResponse(safe_next(next), status_code=303)
        response.set_cookie(
            SESSION_COOKIE, cookie, max_age=max_age, path="/", httponly=True,
            samesite="strict", secure=_secure(request),
        )  # fmt: skip
        response.delete_cookie(SIGNIN_COOKIE, path=SIGNIN_PATH)
        return response

    @router.post("/ui/signout")
    def signout(
        request: Request, csrf_token: Annotated[str | None, Form()] = None
    ) -> RedirectResponse:
        _check_csrf(request, csrf_token)
        response = RedirectResponse(SIGNIN_PATH, status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
