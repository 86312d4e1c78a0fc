"""Async, read-only LEDM client: ``GET /DevMgmt/<document>`` over HTTPS with certificate pinning.

The client knows nothing of the wire model; it returns bytes. Every response's certificate is
checked against the ``PinStore`` before its body is read, bodies are capped in size, and
every httpx error is translated into the devices package's exception tree.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

import httpx

from fleetmeter.devices.base import PinStore, Target
from fleetmeter.devices.errors import DeviceUnreachable, MalformedResponse, NotSupported
from fleetmeter.devices.tls import check_pin, device_context
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


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class LedmClient:
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
        self.target = resolve_target(target)
        self.pins = pins
        self.max_body_bytes = max_body_bytes
        self._pin_key = pins.key(self.target)
        self._base_url = (
            f"{self.target.scheme}://{_host_for_url(self.target.host)}:{self.target.port}"
        )
        self._timeout = httpx.Timeout(timeout_s)
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            verify=device_context(self.target),
            timeout=self._timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=_MAX_CONNECTIONS),
            headers={"Accept": "text/xml, application/xml"},
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

    async def get(self, document: str) -> bytes:
        """GET ``/DevMgmt/<document>``; the body, after the certificate pin is checked.

        Raises ``DocumentNotFound`` (404), ``NotSupported`` (401/403), ``MalformedResponse``
        (other statuses, oversized body), ``DeviceUnreachable``, ``CertificateMismatch``.
        """
        if "/" in document or not document:
            raise ValueError(f"not an LEDM document name: {document!r}")
        url = f"{self._base_url}/DevMgmt/{document}"
        where = f"{self.address} {document}"
        try:
            async with self._client.stream("GET", url, timeout=self._timeout) as response:
                if self.target.scheme == "https":
                    # Before anything of the response is used: a different device (or a
                    # man in the middle) must not get to feed us data.
                    check_pin(self.pins, self._pin_key, response)
                status = response.status_code
                if status == 404:
                    raise DocumentNotFound(f"{where}: not offered by the device (HTTP 404)")
                if status in (401, 403):
                    raise NotSupported(
                        f"{where}: the device requires authentication (HTTP {status})"
                    )
                if status != 200:
                    raise MalformedResponse(f"{where}: unexpected HTTP status {status}")
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
                return bytes(body)
        except httpx.TimeoutException as exc:
            raise DeviceUnreachable(f"{where}: timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            # Connection refused, reset, TLS handshake failure, protocol errors.
            reason = str(exc) or type(exc).__name__
            raise DeviceUnreachable(f"{where}: {reason}") from exc
        except httpx.HTTPError as exc:
            raise MalformedResponse(f"{where}: {exc}") from exc

    async def get_optional(self, document: str) -> bytes | None:
        """Like ``get``, but None when the device does not offer the document (404)."""
        try:
            return await self.get(document)
        except DocumentNotFound:
            return None
