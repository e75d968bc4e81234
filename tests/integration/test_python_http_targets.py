"""The Python and HTTP targets; the HTTP one against a real local server (uvicorn)."""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from continuous_eval.adapters.targets.http_target import HttpTargetAdapter
from continuous_eval.adapters.targets.python_target import PythonCallableTarget
from continuous_eval.core.models import TargetOutput, Usage
from continuous_eval.core.suite import Case, HttpTarget
from continuous_eval.errors import TargetError

CASE = Case(id="c1", input="Where is my refund?", expected="refund")
DICT_CASE = Case(id="c2", input={"question": "q?", "lang": "fr"})


# ------------------------------------------------------------------ python


async def test_python_sync_function_runs_in_a_thread() -> None:
    loop_thread = threading.get_ident()
    seen: list[tuple[Any, int]] = []

    def answer(text: Any) -> str:
        seen.append((text, threading.get_ident()))
        return f"echo: {text}"

    output = await PythonCallableTarget(answer).answer(CASE)

    assert output == TargetOutput(text="echo: Where is my refund?")
    assert seen[0][0] == "Where is my refund?"
    assert seen[0][1] != loop_thread


async def test_python_async_function_is_awaited() -> None:
    async def answer(data: Any) -> str:
        await asyncio.sleep(0)
        return str(data["question"]).upper()

    assert (await PythonCallableTarget(answer).answer(DICT_CASE)).text == "Q?"


async def test_python_async_callable_object() -> None:
    class Bot:
        async def __call__(self, text: Any) -> str:
            return "ok"

    assert (await PythonCallableTarget(Bot()).answer(CASE)).text == "ok"


@pytest.mark.parametrize(
    ("returned", "text"),
    [
        ({"answer": "sí", "n": 2}, '{"answer":"sí","n":2}'),
        ([1, 2], "[1,2]"),
        (42, "42"),
        (True, "true"),
        ("", ""),
    ],
)
async def test_python_non_text_answers_become_json(returned: Any, text: str) -> None:
    assert (await PythonCallableTarget(lambda _: returned).answer(CASE)).text == text


async def test_python_target_output_passes_through_with_usage() -> None:
    result = TargetOutput(text="hi", usage=Usage(input_tokens=3, output_tokens=1))
    assert await PythonCallableTarget(lambda _: result).answer(CASE) is result


async def test_python_none_is_an_error() -> None:
    with pytest.raises(TargetError, match="returned None"):
        await PythonCallableTarget(lambda _: None).answer(CASE)


async def test_python_unserialisable_answer_is_an_error() -> None:
    with pytest.raises(TargetError, match="returned set, which is neither text nor JSON"):
        await PythonCallableTarget(lambda _: {1, 2}).answer(CASE)


@pytest.mark.parametrize("is_async", [False, True])
async def test_python_exceptions_become_target_errors(is_async: bool) -> None:
    def sync_answer(text: Any) -> str:
        raise ValueError("model overloaded")

    async def async_answer(text: Any) -> str:
        raise ValueError("model overloaded")

    target = PythonCallableTarget(async_answer if is_async else sync_answer)
    with pytest.raises(TargetError) as info:
        await target.answer(CASE)
    assert str(info.value) == "ValueError: model overloaded"
    assert isinstance(info.value.__cause__, ValueError)


async def test_python_target_errors_pass_through_and_aclose_is_a_no_op() -> None:
    def answer(text: Any) -> str:
        raise TargetError("upstream said no")

    target = PythonCallableTarget(answer)
    with pytest.raises(TargetError, match=r"^upstream said no$"):
        await target.answer(CASE)
    await target.aclose()
    await target.aclose()


async def test_python_sync_partial() -> None:
    def answer(text: Any, *, suffix: str) -> str:
        return f"{text}{suffix}"

    target = PythonCallableTarget(functools.partial(answer, suffix="!"))
    assert (await target.answer(CASE)).text == "Where is my refund?!"


# ------------------------------------------------------------------ the server


async def _echo(request: Request) -> Response:
    body = await request.json()
    return JSONResponse({"output": f"you said {body['input']}", "received": body})


async def _chat(request: Request) -> Response:
    body = await request.json()
    content = f"[{body['messages'][0]['content']}]"
    return JSONResponse({"choices": [{"message": {"content": content}}], "usage": {}})


async def _headers(request: Request) -> Response:
    return JSONResponse({"output": dict(request.headers)})


async def _status(request: Request) -> Response:
    code = int(request.path_params["code"])
    return PlainTextResponse("upstream   overloaded,\n try later " + "x" * 500, status_code=code)


async def _not_json(request: Request) -> Response:
    return PlainTextResponse("<html>oops</html>")


async def _json_value(request: Request) -> Response:
    return JSONResponse(await request.json())


async def _slow(request: Request) -> Response:
    await asyncio.sleep(0.5)
    return JSONResponse({"output": "late"})


APP = Starlette(
    routes=[
        Route("/echo", _echo, methods=["POST"]),
        Route("/chat", _chat, methods=["POST"]),
        Route("/headers", _headers, methods=["POST"]),
        Route("/status/{code}", _status, methods=["POST"]),
        Route("/not-json", _not_json, methods=["POST"]),
        Route("/json-value", _json_value, methods=["POST"]),
        Route("/slow", _slow, methods=["POST"]),
    ]
)


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1, on a free port, in a background thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        APP,
        log_level="warning",
        lifespan="off",
        ws="none",
        http="h11",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.01)
    else:  # pragma: no cover - only when the server cannot start
        raise RuntimeError("the test server did not start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def http_target(url: str, **kw: Any) -> HttpTarget:
    return HttpTarget(type="http", url=url, **kw)


# ------------------------------------------------------------------ http


async def test_http_default_body_and_field(server_url: str) -> None:
    target = HttpTargetAdapter(http_target(f"{server_url}/echo"))
    try:
        output = await target.answer(CASE)
    finally:
        await target.aclose()
    assert output == TargetOutput(text="you said Where is my refund?")


async def test_http_body_template_and_dotted_response_field(server_url: str) -> None:
    config = http_target(
        f"{server_url}/chat",
        body={
            "model": "m",
            "messages": [{"role": "user", "content": "{{input.question}} ({{case_id}})"}],
        },
        response_field="choices.0.message.content",
    )
    target = HttpTargetAdapter(config)
    try:
        assert (await target.answer(DICT_CASE)).text == "[q? (c2)]"
    finally:
        await target.aclose()


async def test_http_lone_placeholder_keeps_json_type(server_url: str) -> None:
    config = http_target(
        f"{server_url}/json-value", body={"data": "{{input}}"}, response_field="data"
    )
    async with httpx.AsyncClient() as client:
        target = HttpTargetAdapter(config, client)
        assert (await target.answer(DICT_CASE)).text == '{"question":"q?","lang":"fr"}'
        await target.aclose()
        # A client passed in belongs to the caller: still open after aclose.
        assert not client.is_closed


async def test_http_empty_response_field_takes_the_whole_body(server_url: str) -> None:
    config = http_target(f"{server_url}/json-value", body="{{input}}", response_field="")
    target = HttpTargetAdapter(config)
    try:
        assert (await target.answer(CASE)).text == "Where is my refund?"
    finally:
        await target.aclose()


async def test_http_headers_substitute_environment(server_url: str) -> None:
    config = http_target(
        f"{server_url}/headers",
        headers={"Authorization": "Bearer ${API_TOKEN}", "X-Suite": "support"},
        response_field="output.authorization",
    )
    target = HttpTargetAdapter(config, env={"API_TOKEN": "s3cret"})
    try:
        assert (await target.answer(CASE)).text == "Bearer s3cret"
    finally:
        await target.aclose()


async def test_http_missing_env_var_names_it_never_a_value(server_url: str) -> None:
    config = http_target(
        f"{server_url}/headers",
        headers={"Authorization": "Bearer ${API_TOKEN}", "X-Key": "${OTHER}"},
    )
    target = HttpTargetAdapter(config, env={"OTHER": "visible-only-if-leaked"})
    try:
        with pytest.raises(TargetError) as info:
            await target.answer(CASE)
    finally:
        await target.aclose()
    assert "API_TOKEN" in str(info.value)
    assert "visible-only-if-leaked" not in str(info.value)


async def test_http_error_status(server_url: str) -> None:
    target = HttpTargetAdapter(http_target(f"{server_url}/status/503"))
    try:
        with pytest.raises(TargetError) as info:
            await target.answer(CASE)
    finally:
        await target.aclose()
    message = str(info.value)
    assert message.startswith(f"HTTP 503 from {server_url}/status/503: upstream overloaded, try")
    assert len(message) < 300


async def test_http_invalid_json_response(server_url: str) -> None:
    target = HttpTargetAdapter(http_target(f"{server_url}/not-json"))
    try:
        with pytest.raises(TargetError, match=r"is not valid JSON \(wanted field 'output'\)"):
            await target.answer(CASE)
    finally:
        await target.aclose()


@pytest.mark.parametrize(
    ("field", "problem"),
    [
        ("answer", "has no field 'answer' (no 'answer' at the top level, which is an object"),
        ("choices.1.message.content", "no '1' at choices, which is a list of 1"),
        ("choices.0.message.text", "no 'text' at choices.0.message"),
        ("choices.x", "no 'x' at choices"),
    ],
)
async def test_http_missing_response_field_names_the_path(
    server_url: str, field: str, problem: str
) -> None:
    config = http_target(
        f"{server_url}/chat",
        body={"messages": [{"content": "{{input}}"}]},
        response_field=field,
    )
    target = HttpTargetAdapter(config)
    try:
        with pytest.raises(TargetError) as info:
            await target.answer(CASE)
    finally:
        await target.aclose()
    assert problem in str(info.value)
    assert repr(field) in str(info.value)


async def test_http_null_answer_is_an_error(server_url: str) -> None:
    config = http_target(f"{server_url}/json-value", body={"output": None}, response_field="output")
    target = HttpTargetAdapter(config)
    try:
        with pytest.raises(TargetError, match="has a null field 'output'"):
            await target.answer(CASE)
    finally:
        await target.aclose()


async def test_http_timeout(server_url: str) -> None:
    target = HttpTargetAdapter(http_target(f"{server_url}/slow", timeout_s=0.05))
    try:
        with pytest.raises(TargetError, match=r"timed out after 0\.05s calling"):
            await target.answer(CASE)
    finally:
        await target.aclose()


async def test_http_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now.
    target = HttpTargetAdapter(http_target(f"http://127.0.0.1:{port}/x"))
    try:
        with pytest.raises(TargetError, match=r"ConnectError calling http://127\.0\.0\.1"):
            await target.answer(CASE)
    finally:
        await target.aclose()


async def test_http_template_naming_a_missing_key() -> None:
    target = HttpTargetAdapter(
        http_target("http://127.0.0.1:9/x", body={"q": "{{input.nope}}"}),
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json={})),
    )
    try:
        with pytest.raises(TargetError, match="cannot render the request body"):
            await target.answer(DICT_CASE)
    finally:
        await target.aclose()


async def test_http_injected_transport_sees_the_request() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"output": ["a", 1]})

    target = HttpTargetAdapter(
        http_target("https://bot.internal/answer", headers={"X-Run": "r1"}),
        transport=httpx.MockTransport(handle),
    )
    try:
        output = await target.answer(CASE)
    finally:
        await target.aclose()
    assert output.text == '["a",1]'
    assert seen[0].method == "POST"
    assert seen[0].headers["x-run"] == "r1"
    assert seen[0].headers["content-type"] == "application/json"
    assert seen[0].read() == b'{"input":"Where is my refund?"}'


async def test_http_many_concurrent_cases(server_url: str) -> None:
    target = HttpTargetAdapter(http_target(f"{server_url}/echo"))
    cases = [Case(id=str(i), input=f"q{i}") for i in range(50)]
    try:
        outputs = await asyncio.gather(*(target.answer(c) for c in cases))
    finally:
        await target.aclose()
    assert [o.text for o in outputs] == [f"you said q{i}" for i in range(50)]


async def test_http_client_and_transport_are_exclusive() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ValueError, match="either a client or a transport"):
            HttpTargetAdapter(
                http_target("https://x"),
                client,
                transport=httpx.MockTransport(lambda r: httpx.Response(200)),
            )
