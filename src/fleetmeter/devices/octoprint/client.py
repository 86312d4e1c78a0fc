"""Async, read-only OctoPrint REST client: ``GET /api/...`` with the ``X-Api-Key`` header.

The client knows nothing of the wire model; it returns response bodies (bytes). Over HTTPS
the certificate is pinned on first use (``devices.tls``) and checked on every response
before its body is read; bodies are capped in size; every httpx error is translated into
the devices package's exception tree. The API key is sent only in the header, never logged
and never part of an error message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import httpx

from fleetmeter.devices.base import PinStore, Target
from fleetmeter.devices.errors import DeviceUnreachable, MalformedResponse, NotSupported
from fleetmeter.devices.tls import check_pin, device_context
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


@dataclass(frozen=True)
class Answer:
    """A response as received: status, headers, body (already size-checked)."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def from_octoprint(self) -> bool:
        """Whether OctoPrint itself sent this (its signature header is present)."""
        name, value = _SIGNATURE_HEADER
        return self.headers.get(name, "").strip() == value


def resolve_target(target: Target) -> Target:
    """The target with this driver's default port filled in."""
    return _resolve_target(target, https_port=DEFAULT_HTTPS_PORT, http_port=DEFAULT_HTTP_PORT)


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class OctoPrintClient:
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
        self.target = resolve_target(target)
        self.pins = pins
        self.max_body_bytes = max_body_bytes
        self._pin_key = pins.key(self.target)
        self._base_url = (
            f"{self.target.scheme}://{_host_for_url(self.target.host)}:{self.target.port}"
        )
        self._anonymous_headers = {"Accept": "application/json"}
        self._headers = dict(self._anonymous_headers)
        if api_key:
            self._headers["X-Api-Key"] = api_key
        self._timeout = httpx.Timeout(timeout_s)
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            verify=device_context(self.target),
            timeout=self._timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=_MAX_CONNECTIONS),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    @property
    def address(self) -> str:
        return self._pin_key

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
        try:
            async with self._client.stream(
                "GET",
                url,
                params=params,
                headers=self._anonymous_headers if anonymous else self._headers,
                timeout=self._timeout,
            ) as response:
                if self.target.scheme == "https":
                    # Before anything of the response is used: a different device (or a
                    # man in the middle) must not get to feed us data.
                    check_pin(self.pins, self._pin_key, response)
                declared = response.headers.get("Content-Length")
                if (
                    declared is not None
                    and declared.isdigit()
                    and int(declared) > self.max_body_bytes
                ):
                    raise MalformedResponse(
                        f"{where}: body of {declared} bytes exceeds the "
                        f"{self.max_body_bytes}-byte limit"
                    )
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_body_bytes:
                        raise MalformedResponse(
                            f"{where}: body exceeds the {self.max_body_bytes}-byte limit"
                        )
                return Answer(response.status_code, dict(response.headers), bytes(body))
        except httpx.TimeoutException as exc:
            raise DeviceUnreachable(f"{where}: timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            # Connection refused, reset, TLS handshake failure, protocol errors.
            reason = str(exc) or type(exc).__name__
            raise DeviceUnreachable(f"{where}: {reason}") from exc
        except httpx.HTTPError as exc:
            raise MalformedResponse(f"{where}: {exc}") from exc

    async def get_optional(
        self, path: str, *, params: Mapping[str, str] | None = None
    ) -> bytes | None:
        """Like ``get``, but None when the endpoint is missing or the key may not read it:
        for documents a report can do without."""
        try:
            return await self.get(path, params=params)
        except (EndpointNotFound, AuthenticationRequired):
            return None
