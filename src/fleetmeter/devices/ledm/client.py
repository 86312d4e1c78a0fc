"""Async, read-only LEDM client: ``GET /DevMgmt/<document>`` over HTTPS with certificate pinning.

The client knows nothing of the wire model; it returns bytes. Every response's certificate is
checked against the ``PinStore`` before its body is read, bodies are capped in size, and
every httpx error is translated into the devices package's exception tree.
"""

from __future__ import annotations

import httpx

from fleetmeter.devices.base import PinStore, Target
from fleetmeter.devices.errors import MalformedResponse, NotSupported
from fleetmeter.devices.http import DeviceHttp
from fleetmeter.devices.tls import resolve_target as _resolve_target

__all__ = ["DEFAULT_PORT", "MAX_BODY_BYTES", "DocumentNotFound", "LedmClient", "resolve_target"]

DEFAULT_PORT = 443
DEFAULT_HTTP_PORT = 80
MAX_BODY_BYTES = 8 * 1024 * 1024
"""The largest LEDM document accepted. Real ones are tens of kB; a job log of a few thousand
jobs is a few MB. Anything larger is refused rather than buffered."""

# Embedded web servers on printers handle few connections at once.
_MAX_CONNECTIONS = 4


class DocumentNotFound(NotSupported):
    """The device answered 404: it does not offer this document."""


def resolve_target(target: Target) -> Target:
    """The target with this driver's default port filled in."""
    return _resolve_target(target, https_port=DEFAULT_PORT, http_port=DEFAULT_HTTP_PORT)


class LedmClient(DeviceHttp):
    """Read LEDM documents from one device.

    Use as ``async with LedmClient(target, pins) as client:``, then
    ``await client.get("ProductConfigDyn.xml")``.
    An ``httpx.AsyncClient`` may be passed in (it must not verify certificates, devices are
    self-signed); it is then left open, since the caller owns it.
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
            headers={"Accept": "text/xml, application/xml"},
            client=client,
        )

    async def get(self, document: str) -> bytes:
        """GET ``/DevMgmt/<document>``; the body, after the certificate pin is checked.

        Raises ``DocumentNotFound`` (404), ``NotSupported`` (401/403), ``MalformedResponse``
        (other statuses, oversized body), ``DeviceUnreachable``, ``CertificateMismatch``.
        """
        if "/" in document or not document:
            raise ValueError(f"not an LEDM document name: {document!r}")
        where = f"{self.address} {document}"

        def check(response: httpx.Response) -> None:
            status = response.status_code
            if status == 404:
                raise DocumentNotFound(f"{where}: not offered by the device (HTTP 404)")
            if status in (401, 403):
                raise NotSupported(f"{where}: the device requires authentication (HTTP {status})")
            if status != 200:
                raise MalformedResponse(f"{where}: unexpected HTTP status {status}")

        url = f"{self._base_url}/DevMgmt/{document}"
        return (await self.receive("GET", url, where=where, check=check)).body

    async def get_optional(self, document: str) -> bytes | None:
        """Like ``get``, but None when the device does not offer the document (404)."""
        try:
            return await self.get(document)
        except DocumentNotFound:
            return None
