"""Which paths are the dashboard's, and what a request to one needs.

``middleware.RequestGuard`` asks this before routing, as it checks bearer
tokens for the API, so a dashboard page added later is behind sign-in
without anyone remembering to: ``/`` and everything under ``/ui/`` need a
session cookie, except the sign-in page and the static files. A page load
without one is sent to sign in (303); anything else is refused (401).
"""

from __future__ import annotations

from urllib.parse import quote

from continuous_eval.adapters.http.dashboard.sessions import Session, Sessions

PREFIX = "/ui/"
SIGNIN_PATH = "/ui/signin"
STATIC_PREFIX = "/ui/static/"


class DashboardGate:
    """The dashboard's paths and their sessions.

    Args:
        sessions: Recognises the session cookie.
    """

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    def covers(self, path: str) -> bool:
        """Whether ``path`` belongs to the dashboard (and so to sessions, not bearer tokens)."""
        return path == "/" or path.startswith(PREFIX)

    def is_public(self, path: str) -> bool:
        """The sign-in page and the static files need no session."""
        return path == SIGNIN_PATH or path.startswith(STATIC_PREFIX)

    def session(self, headers: list[tuple[bytes, bytes]]) -> Session | None:
        """The request's session, from its ``Cookie`` header."""
        cookies = [v.decode("latin-1") for k, v in headers if k.lower() == b"cookie"]
        return self.sessions.read("; ".join(cookies) if cookies else None)


def signin_location(path: str, query: bytes) -> str:
    """Where a page load without a session is sent: sign-in, then back here."""
    target = path + ("?" + query.decode("latin-1") if query else "")
    return f"{SIGNIN_PATH}?next={quote(target, safe='')}"


def safe_next(target: str | None) -> str:
    """The page to return to after sign-in: a local dashboard path, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if not (target == "/" or target.startswith(PREFIX) or target.startswith("/?")):
        return "/"
    return target
