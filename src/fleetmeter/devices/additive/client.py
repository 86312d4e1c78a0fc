"""Async, read-only client of the ``fleetmeter-additive`` JSON device API: ``GET
/api/am/v1/<document>`` over HTTPS with certificate pinning.

The client knows nothing of the wire model; it returns response bodies (bytes). Connection,
pinning, the size cap and error translation are ``devices.http.DeviceHttp``'s, shared with the
other HTTP drivers; this module adds the paths and what each status means.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from fleetmeter.devices.base import PinStore, Target
from fleetmeter.devices.errors import MalformedResponse, NotSupported
from fleetmeter.devices.http import Answer, DeviceHttp
from fleetmeter.devices.tls import resolve_target as _resolve_target

__all__ = [
    "DEFAULT_HTTP_PORT",
    "DEFAULT_PORT",
    "MAX_BODY_BYTES",
    "PREFIX",
    "AdditiveClient",
    "DocumentNotFound",
    "UnexpectedStatus",
    "resolve_target",
]

DEFAULT_PORT = 443
DEFAULT_HTTP_PORT = 80
PREFIX = "/api/am/v1/"
MAX_BODY_BYTES = 4 * 1024 * 1024
"""The largest answer accepted: a history page of 200 builds is about 200 kB."""

# An embedded controller serves few connections at once.
_MAX_CONNECTIONS = 4


class DocumentNotFound(NotSupported):
    """HTTP 404: the device does not offer this document (or is not such a device)."""


class UnexpectedStatus(MalformedResponse):
    """Any status other than 200 and 404; ``status`` tells which."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def resolve_target(target: Target) -> Target:
    """The target with this driver's default port filled in."""
    return _resolve_target(target, https_port=DEFAULT_PORT, http_port=DEFAULT_HTTP_PORT)


class AdditiveClient(DeviceHttp):
    """Read one additive printer's documents.

    Use as ``async with AdditiveClient(target, pins) as client:``, then
    ``await client.get("status")``. An ``httpx.AsyncClient`` may be passed in (it must not
    verify certificates: devices are self-signed and pinned); it is then left open.
    """

    def __init__(
        self,
        target: Target,
        pins: PinStore,
        *,
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
            headers={"Accept": "application/json"},
            client=client,
        )

    async def fetch(self, document: str, *, params: Mapping[str, str] | None = None) -> Answer:
        """GET ``/api/am/v1/<document>`` whatever the status; the answer after the pin and
        size checks."""
        if not document or "/" in document or "?" in document:
            raise ValueError(f"not a document name: {document!r}")
        return await self.receive(
            "GET",
            f"{self._base_url}{PREFIX}{document}",
            where=f"{self.address} {PREFIX}{document}",
            params=params,
        )

    async def get(self, document: str, *, params: Mapping[str, str] | None = None) -> bytes:
        """The body of a 200 answer. Raises ``DocumentNotFound`` (404), ``NotSupported``
        (401/403), ``UnexpectedStatus`` (any other status), ``MalformedResponse``
        (oversized), ``DeviceUnreachable``, ``CertificateMismatch``."""
        where = f"{self.address} {PREFIX}{document}"

        def check(response: httpx.Response) -> None:
            # Refused before the body is read: an error page is not worth downloading.
            status = response.status_code
            if status == 404:
                raise DocumentNotFound(f"{where}: not offered by the device (HTTP 404)")
            if status in (401, 403):
                raise NotSupported(f"{where}: refused (HTTP {status})")
            if status != 200:
                raise UnexpectedStatus(f"{where}: unexpected HTTP status {status}", status)

        if not document or "/" in document or "?" in document:
            raise ValueError(f"not a document name: {document!r}")
        answer = await self.receive(
            "GET", f"{self._base_url}{PREFIX}{document}", where=where, params=params, check=check
        )
        return answer.body

    async def get_optional(self, document: str) -> bytes | None:
        """Like ``get``, but None when the device does not offer the document (404)."""
        try:
            return await self.get(document)
        except DocumentNotFound:
            return None
