"""Auth of the admin API, in process: every route by the route table, docs, metrics, bad tokens.

The route table is walked at collection time (``document_app``), one test per
route, so a route added later is covered without editing this module; a
test checks the served app has that same table. The routes are asked
anonymously of that one app: a refusal reads nothing, so no test changes
what another sees, and the app's routes are set up once. Auth as a real socket
delivers the header bytes (``h11`` under uvicorn) is
``tests/integration/test_http_api.py``.
"""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.api_suite import BAD_AUTHORIZATIONS, expect_error
from tests.fixtures.asgi import (
    BASE_URL,
    ApiFactory,
    InProcessApi,
    concrete,
    document_app,
    route_table,
)

PUBLIC = {"/healthz", "/readyz"}

APP = document_app()
"""The app as the ``asgi`` fixture builds it, over a launcher that is never called."""

ROUTES = route_table(APP)
"""Every (method, path) the app serves, read from the app at collection time."""


def _needs_a_session(method: str, path: str, response: httpx.Response) -> None:
    """The dashboard's routes: sign-in is open (its post needs its form); pages send a
    browser to sign in; every other request is refused."""
    if path == "/ui/signin":
        assert response.status_code == (200 if method == "GET" else 403), (method, path)
    elif method == "GET":
        assert response.status_code == 303, (method, path)
        assert response.headers["location"].startswith("/ui/signin?next="), path
    else:
        expect_error(response, 401, "unauthorized")


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_every_route_but_the_probes_needs_a_token(method: str, path: str) -> None:
    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as anonymous:
        response = await anonymous.request(method, concrete(path))
    if path in PUBLIC:
        assert response.status_code == 200, (method, path)
        return
    if path == "/" or path.startswith("/ui/"):
        _needs_a_session(method, path, response)
        return
    error = expect_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer", path
    assert "token" in error["message"]


async def test_the_walked_route_table_is_the_served_one_and_documented_so(
    asgi: InProcessApi,
) -> None:
    checked = route_table(asgi.app)
    assert checked == ROUTES
    paths = {path for _, path in checked}
    assert {"/metrics", "/openapi.json", "/api/runs/{run_id}/events"} <= paths
    assert len(checked) >= 15

    # The OpenAPI document says the same: bearer auth everywhere but the probes.
    document = (await asgi.client.get("/openapi.json")).json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            secured = operation.get("security") == [{"HTTPBearer": []}]
            assert secured == (path not in PUBLIC), (method, path)
            if secured:
                assert "401" in operation["responses"], (method, path)


async def test_docs_are_served_behind_the_token_or_public_when_configured(
    asgi: InProcessApi, asgi_factory: ApiFactory
) -> None:
    async with asgi.client_with(headers={}) as anonymous:
        page = await asgi.client.get("/docs")
        assert page.status_code == 200
        assert "swagger-ui" in page.text
        assert "/openapi.json" in page.text
        expect_error(await anonymous.get("/docs"), 401, "unauthorized")
        document = (await asgi.client.get("/openapi.json")).json()
    # Every route a user calls is in the document, the suites list included.
    assert {"/api/suites", "/api/runs", "/api/runs/{run_id}"} <= set(document["paths"])
    async with asgi_factory(docs_public=True) as api, api.client_with(headers={}) as c:
        assert (await c.get("/docs")).status_code == 200
        assert (await c.get("/openapi.json")).json()["info"]["title"] == "continuous-eval"
        # The routes still need a token.
        expect_error(await c.get("/api/suites"), 401, "unauthorized")


async def test_metrics_can_be_made_public(asgi_factory: ApiFactory) -> None:
    async with asgi_factory(metrics_public=True) as api, api.client_with(headers={}) as c:
        assert (await c.get("/metrics")).status_code == 200
        expect_error(await c.get("/api/runs"), 401, "unauthorized")


async def test_no_token_configured_is_open_only_on_a_loopback_address(
    asgi_factory: ApiFactory,
) -> None:
    async with asgi_factory(api_tokens=[]) as api, api.client_with(headers={}) as c:
        assert (await c.get("/api/runs")).status_code == 200
    exposed = {"api_tokens": [], "http_host": "0.0.0.0"}  # noqa: S104 (never bound)
    async with asgi_factory(**exposed) as api, api.client_with(headers={}) as c:
        expect_error(await c.get("/api/runs"), 401, "unauthorized")
        assert (await c.get("/healthz")).status_code == 200


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATIONS)
async def test_a_bad_token_is_401_never_500(
    asgi: InProcessApi, authorization: bytes | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with asgi.client_with(headers=headers) as c:
        for method, path in (("GET", "/api/runs"), ("POST", "/api/runs"), ("GET", "/metrics")):
            response = await c.request(method, path, json={"suite": "fast"})
            expect_error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"
    assert (await asgi.client.get("/api/runs")).status_code == 200
