"""Async, read-only Moonraker client: ``GET`` on Moonraker's HTTP API, with ``X-Api-Key``
when one is configured (Moonraker also admits "trusted clients" by address without a key).

The client knows nothing of the wire model; it returns response bodies (bytes). Over HTTPS
the certificate is pinned on first use (``devices.tls``) and checked on every response
before its body is read; bodies are capped in size; every httpx error is translated into
the devices package's exception tree. The API key is sent only in the header, never logged
and never part of an error message. Connection, pinning, size cap and error translation are
``devices.http.DeviceHttp``'s, shared with the other HTTP drivers.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from fleetmeter.devices.base import PinStore, Target
from fleetmeter.devices.errors import MalformedResponse, NotSupported
from fleetmeter.devices.http import Answer, DeviceHttp
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


def resolve_target(target: Target) -> Target:
    """The target with this driver's default port filled in."""
    return _resolve_target(target, https_port=DEFAULT_HTTPS_PORT, http_port=DEFAULT_HTTP_PORT)


class MoonrakerClient(DeviceHttp):
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
        return await self.receive(
            "GET",
            url,
            where=where,
            params=params,
            headers=self._anonymous_headers if anonymous else self._headers,
        )

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
