"""Async, read-only OctoPrint REST client: ``GET /api/...`` with the ``X-Api-Key`` header.

The client knows nothing of the wire model; it returns response bodies (bytes). Over HTTPS
the certificate is pinned on first use (``devices.tls``) and checked on every response
before its body is read; bodies are capped in size; every httpx error is translated into
the devices package's exception tree. The API key is sent only in the header, never logged
and never part of an error message.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from fleetmeter.devices import http
from fleetmeter.devices.base import PinStore, Target
from fleetmeter.devices.errors import MalformedResponse, NotSupported
from fleetmeter.devices.http import DeviceHttp
from fleetmeter.devices.tls import resolve_target as _resolve_target

__all__ = [
    "DEFAULT_HTTPS_PORT",
    "DEFAULT_HTTP_PORT",
    "MAX_BODY_BYTES",
    "Answer",
    "AuthenticationRequired",
    "EndpointNotFound",
    "OctoPrintClient",
    "UnexpectedStatus",
    "resolve_target",
]

DEFAULT_HTTP_PORT = 80
DEFAULT_HTTPS_PORT = 443
MAX_BODY_BYTES = 16 * 1024 * 1024
"""The largest response accepted. ``/api/files?recursive=true`` is the big one: about 1.5 kB
per file with its analysis, so 16 MB holds a library of ten thousand files."""

# OctoPrint is a single Tornado process on a small computer; be gentle.
_MAX_CONNECTIONS = 4
# OctoPrint adds this header to every response it serves (octoprint/server/__init__.py,
# after_request): it tells OctoPrint's 403 apart from any other web server's.
_SIGNATURE_HEADER = ("x-clacks-overhead", "GNU Terry Pratchett")


class EndpointNotFound(NotSupported):
    """HTTP 404: the server has no such endpoint (it is not OctoPrint, or too old)."""


class AuthenticationRequired(NotSupported):
    """HTTP 401/403: no API key, or one without the permission for this endpoint."""


class UnexpectedStatus(MalformedResponse):
    """Any other status than 200; ``status`` tells which (OctoPrint answers 409 on
    ``/api/printer`` when no printer is connected)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Answer(http.Answer):
    """A response as received: status, headers, body (already size-checked)."""

    @property
    def from_octoprint(self) -> bool:
        """Whether OctoPrint itself sent this (its signature header is present)."""
        name, value = _SIGNATURE_HEADER
        return self.headers.get(name, "").strip() == value


def resolve_target(target: Target) -> Target:
    """The target with this driver's default port filled in."""
    return _resolve_target(target, https_port=DEFAULT_HTTPS_PORT, http_port=DEFAULT_HTTP_PORT)


class OctoPrintClient(DeviceHttp):
    """Read one OctoPrint instance.

    Use as ``async with OctoPrintClient(target, pins, api_key=...) as client:``, then
    ``await client.get("/api/printer")``. Without an API key only ``fetch`` makes sense
    (OctoPrint answers 403 to anonymous requests). An ``httpx.AsyncClient`` may be passed in
    (it must not verify certificates); it is then left open, since the caller owns it.
    """

    def __init__(
        self,
        target: Target,
        pins: PinStore,
        *,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        max_body_bytes: int = MAX_BODY_BYTES,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            resolve_target(target),
            pins,
            timeout_s=timeout_s,
            max_body_bytes=max_body_bytes,
            max_connections=_MAX_CONNECTIONS,
            client=client,
        )
        self._anonymous_headers = {"Accept": "application/json"}
        self._headers = dict(self._anonymous_headers)
        if api_key:
            self._headers["X-Api-Key"] = api_key

    async def get(self, path: str, *, params: Mapping[str, str] | None = None) -> bytes:
        """GET ``path``; the body of a 200 answer. Raises ``EndpointNotFound`` (404),
        ``AuthenticationRequired`` (401/403), ``UnexpectedStatus`` (any other status),
        ``MalformedResponse`` (oversized), ``DeviceUnreachable``, ``CertificateMismatch``."""
        answer = await self.fetch(path, params=params)
        where = f"{self.address} {path}"
        if answer.status == 200:
            return answer.body
        if answer.status == 404:
            raise EndpointNotFound(f"{where}: no such endpoint (HTTP 404)")
        if answer.status in (401, 403):
            raise AuthenticationRequired(
                f"{where}: refused (HTTP {answer.status}); the API key is wrong or lacks "
                "the permission"
            )
        raise UnexpectedStatus(f"{where}: unexpected HTTP status {answer.status}", answer.status)

    async def fetch(
        self, path: str, *, params: Mapping[str, str] | None = None, anonymous: bool = False
    ) -> Answer:
        """GET ``path`` whatever the status; the answer, after the certificate pin is
        checked and the body size is within the limit. ``anonymous`` leaves the API key out
        (discovery asks every host of a range: the key goes only to OctoPrint)."""
        if not path.startswith("/api/"):
            raise ValueError(f"not an OctoPrint API path: {path!r}")
        url = f"{self._base_url}{path}"
        where = f"{self.address} {path}"
        raw = await self.receive(
            "GET",
            url,
            where=where,
            params=params,
            headers=self._anonymous_headers if anonymous else self._headers,
        )
        return Answer(raw.status, raw.headers, raw.body)

    async def get_optional(
        self, path: str, *, params: Mapping[str, str] | None = None
    ) -> bytes | None:
        """Like ``get``, but None when the endpoint is missing or the key may not read it:
        for documents a report can do without."""
        try:
            return await self.get(path, params=params)
        except (EndpointNotFound, AuthenticationRequired):
            return None
