"""A target reached by a JSON POST to an HTTP endpoint.

The request body is the config's JSON template rendered for the case
(``continuous_eval.core.templating.render_json``); the answer is read from the
JSON response at ``response_field``, a dotted path whose numeric parts index
lists (``choices.0.message.content``); an empty path takes the whole document.

Every failure becomes a ``TargetError`` with a message that is safe to store
and show: header *values* (which carry credentials) never appear in one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import httpx

from continuous_eval.core.models import TargetOutput
from continuous_eval.core.suite import Case, HttpTarget
from continuous_eval.core.templating import TemplateError, as_text, render_json
from continuous_eval.errors import REFUSED_STATUSES, TargetError

__all__ = ["HttpTargetAdapter", "body_excerpt", "resolve_headers"]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_EXCERPT_CHARS = 200
"""Characters of an error response body quoted in the error message."""


class HttpTargetAdapter:
    """POST each case to an endpoint and read the answer from its JSON response.

    The adapter owns the ``httpx.AsyncClient`` it creates (and closes it in
    ``aclose``); a client passed in belongs to the caller. ``transport`` lets
    tests or an in-process app answer without a network.
    """

    def __init__(
        self,
        config: HttpTarget,
        client: httpx.AsyncClient | None = None,
        env: Mapping[str, str] | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Prepare the headers and the client.

        Args:
            config: The target's config.
            client: A client to use instead of creating one; not closed here.
            env: Where ``${NAME}`` in header values is looked up; defaults to
                ``os.environ``. Read once, here, like the rest of the config.
            transport: The transport of the client this adapter creates.
        """
        if client is not None and transport is not None:
            raise ValueError("give either a client or a transport, not both")
        self.config = config
        self._headers, self._header_error = resolve_headers(
            config.headers, os.environ if env is None else env
        )
        self._owns_client = client is None
        self._client = httpx.AsyncClient(transport=transport) if client is None else client
        self._timeout = httpx.Timeout(config.timeout_s)

    async def answer(self, case: Case) -> TargetOutput:
        """POST the rendered body and return the response field as text."""
        if self._header_error is not None:
            # Raised per case rather than at construction so the runner records
            # it like any other target failure; the message names the variable.
            raise TargetError(self._header_error)
        url = self.config.url
        try:
            body = render_json(self.config.body, case)
        except TemplateError as exc:
            raise TargetError(f"cannot render the request body: {exc}") from exc
        try:
            response = await self._client.post(
                url, json=body, headers=self._headers, timeout=self._timeout
            )
        except httpx.TimeoutException as exc:
            raise TargetError(
                f"timed out after {self.config.timeout_s:g}s calling {url} ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise TargetError(f"{type(exc).__name__} calling {url}: {exc}") from exc
        if not response.is_success:
            excerpt = body_excerpt(response.text)
            status = response.status_code
            raise TargetError(
                f"HTTP {status} from {url}" + (f": {excerpt}" if excerpt else ""),
                refusal=f"HTTP {status}" if status in REFUSED_STATUSES else None,
            )
        try:
            document = response.json()
        except ValueError as exc:
            raise TargetError(
                f"response from {url} is not valid JSON (wanted field "
                f"{self.config.response_field!r}): {body_excerpt(response.text)!r}"
            ) from exc
        value = _field(document, self.config.response_field, url)
        return TargetOutput(text=as_text(value))

    async def aclose(self) -> None:
        """Close the client if this adapter created it."""
        if self._owns_client:
            await self._client.aclose()

    def __repr__(self) -> str:
        return f"HttpTargetAdapter({self.config.url!r})"


def resolve_headers(
    headers: Mapping[str, str], env: Mapping[str, str]
) -> tuple[dict[str, str], str | None]:
    """Fill ``${NAME}`` in header values from ``env``: (headers, None), or ({}, the error).

    The error names the missing variables, never a header's value.
    """
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            missing.append(name)
            return ""
        return env[name]

    resolved = {key: _ENV_REF.sub(substitute, value) for key, value in headers.items()}
    if missing:
        names = ", ".join(sorted(set(missing)))
        return {}, f"environment variable not set for an HTTP header: {names}"
    return resolved, None


def _field(document: Any, path: str, url: str) -> Any:
    value = document
    if path:
        walked: list[str] = []
        for part in path.split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                at = ".".join(walked) or "the top level"
                raise TargetError(
                    f"response from {url} has no field {path!r} "
                    f"(no {part!r} at {at}, which is {_kind(value)})"
                )
            walked.append(part)
    if value is None:
        where = f"field {path!r}" if path else "body"
        raise TargetError(f"response from {url} has a null {where}; no answer to score")
    return value


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(list(map(str, value))[:10])
        return f"an object with keys [{keys}]"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return f"a {type(value).__name__}"


def body_excerpt(text: str) -> str:
    """An error response's body on one line, capped: safe to quote in an error."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _EXCERPT_CHARS else flat[: _EXCERPT_CHARS - 1] + "…"
