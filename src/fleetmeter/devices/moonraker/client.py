"""Async, read-only Moonraker client: ``GET`` on Moonraker's HTTP API, with ``X-Api-Key``
when one is configured (Moonraker also admits "trusted clients" by address without a key).

The client knows nothing of the wire model; it returns response bodies (bytes). Over HTTPS
the certificate is pinned on first use (``devices.tls``) and checked on every response
before its body is read; bodies are capped in size; every httpx error is translated into
the devices package's exception tree. The API key is sent only in the header, never logged
and never part of an error message. (The same shape as the OctoPrint client; a shared JSON
HTTP client in ``fleetmeter.devices`` would serve both.)
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
    "MoonrakerClient",
    "UnexpectedStatus",
    "resolve_target",
]

DEFAULT_HTTP_PORT = 7125
"""Moonraker's ``[server] port`` default."""
DEFAULT_HTTPS_PORT = 7130
"""Moonraker's ``[server] ssl_port`` default (served only when a certificate is configured)."""
MAX_BODY_BYTES = 8 * 1024 * 1024
"""The largest response accepted. A history page of 200 jobs with their file metadata is
about 300 kB; printer objects a few kB."""

# Moonraker is a single Tornado process on a small computer (often a Raspberry Pi); be gentle.
_MAX_CONNECTIONS = 4
_PATH_PREFIXES = ("/server/", "/printer/", "/machine/", "/access/")
_UNAVAILABLE = 503


class EndpointNotFound(NotSupported):
    """HTTP 404: no such endpoint. Moonraker also answers 404 on ``/printer/*`` while Klipper
    is not connected."""


class AuthenticationRequired(NotSupported):
    """HTTP 401/403: no API key, or one without the permission for this endpoint."""


class UnexpectedStatus(MalformedResponse):
    """Any other status than 200; ``status`` tells which (Moonraker answers 503 on
    ``/printer/*`` while Klipper is starting or shut down)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Answer:
    """A response as received: status, headers, body (already size-checked)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def resolve_target(target: Target) -> Target:
    """The target with this driver's default port filled in."""
    return _resolve_target(target, https_port=DEFAULT_HTTPS_PORT, http_port=DEFAULT_HTTP_PORT)


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class MoonrakerClient:
    """Read one Moonraker instance.

    Use as ``async with MoonrakerClient(target, pins, api_key=...) as client:``, then
    ``await client.get("/server/info")``. ``api_key`` is optional: Moonraker answers
    "trusted clients" (by address, its ``[authorization]`` section) without one. An
    ``httpx.AsyncClient`` may be passed in (it must not verify certificates); it is then
    left open, since the caller owns it.
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

    async def get(
        self, path: str, *, params: Mapping[str, str] | None = None, anonymous: bool = False
    ) -> bytes:
        """GET ``path``; the body of a 200 answer. Raises ``EndpointNotFound`` (404),
        ``AuthenticationRequired`` (401/403), ``UnexpectedStatus`` (any other status),
        ``MalformedResponse`` (oversized), ``DeviceUnreachable``, ``CertificateMismatch``."""
        answer = await self.fetch(path, params=params, anonymous=anonymous)
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
        (Moonraker refuses even its public endpoints when a wrong key is presented)."""
        if not path.startswith(_PATH_PREFIXES):
            raise ValueError(f"not a Moonraker API path: {path!r}")
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
        """Like ``get``, but None when the endpoint is missing or refused, or answers 503
        (Klipper not ready): for documents a report can do without."""
        try:
            return await self.get(path, params=params)
        except (EndpointNotFound, AuthenticationRequired):
            return None
        except UnexpectedStatus as exc:
            if exc.status == _UNAVAILABLE:
                return None
            raise
