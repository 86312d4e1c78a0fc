"""Async, read-only IPP client: Get-Printer-Attributes and Get-Jobs over HTTP(S) POST.

Requests are encoded with pyipp's serializer and sent with httpx rather than pyipp's own
aiohttp transport, for three reasons: ``ipps`` certificates are pinned like every other
device's (``devices.tls``; pyipp only turns verification off), response bodies are capped
in size before anything is buffered, and nothing is parsed here: the bytes go to
``fleetmeter.devices.ipp.parse``, which checks their framing before pyipp's parser sees
them. The client knows nothing of the wire model. It only ever sends read operations;
job content (Get-Document / Fetch-Document) is never asked for.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from typing import Any

import httpx
from pyipp.enums import IppOperation, IppStatus, IppTag
from pyipp.serializer import construct_attribute

from fleetmeter.devices.base import PinStore, Target
from fleetmeter.devices.errors import MalformedResponse, NotSupported
from fleetmeter.devices.http import DeviceHttp, host_for_url
from fleetmeter.devices.ipp.parse import NoPrinterHere
from fleetmeter.devices.tls import resolve_target as _resolve_target

__all__ = [
    "DEFAULT_BASE_PATH",
    "DEFAULT_PORT",
    "MAX_BODY_BYTES",
    "MAX_JOBS",
    "IppClient",
    "NoPrinterHere",
    "encode_request",
    "resolve_target",
]

DEFAULT_PORT = 631
"""IANA's ipp port; ipps uses the same one (RFC 7472 §4.2)."""
DEFAULT_BASE_PATH = "/ipp/print"
"""The IPP Everywhere printer path (PWG 5100.14 §4.2.1)."""
MAX_BODY_BYTES = 4 * 1024 * 1024
"""The largest response accepted. A full Get-Printer-Attributes is 10–20 kB, a thousand
jobs' accounting attributes about 0.5 MB."""
MAX_JOBS = 1000
"""Get-Jobs ``limit``: devices keep a short job history, and return the newest first."""
USER_NAME = "fleetmeter"

# Embedded web servers on printers handle few connections at once.
_MAX_CONNECTIONS = 2
_IPP_2_0 = (2, 0)
_IPP_1_1 = (1, 1)
_request_ids = itertools.count(1)


def resolve_target(target: Target) -> Target:
    """The target with this driver's default port filled in."""
    return _resolve_target(target, https_port=DEFAULT_PORT, http_port=DEFAULT_PORT)


Attribute = tuple[str, Any, IppTag]


def encode_request(
    operation: IppOperation,
    attributes: Sequence[Attribute],
    *,
    request_id: int,
    version: tuple[int, int] = _IPP_2_0,
) -> bytes:
    """An IPP request (RFC 8010 §3.1.1) with one operation-attributes group. The charset and
    language come first, as RFC 8011 §4.1.4 requires; then ``attributes`` in order."""
    body = struct.pack(">bbhi", version[0], version[1], operation.value, request_id)
    body += struct.pack(">b", IppTag.OPERATION.value)
    body += construct_attribute("attributes-charset", "utf-8", IppTag.CHARSET)
    body += construct_attribute("attributes-natural-language", "en", IppTag.LANGUAGE)
    for name, value, tag in attributes:
        body += construct_attribute(name, value, tag)
    return body + struct.pack(">b", IppTag.END.value)


class IppClient(DeviceHttp):
    """Read one IPP printer.

    Use as ``async with IppClient(target, pins) as client:``, then
    ``await client.get_printer_attributes([...])``; each call returns the raw response body.
    ``target.scheme`` "http" speaks ``ipp://`` over plain HTTP, "https" ``ipps://`` with the
    certificate pinned. An ``httpx.AsyncClient`` may be passed in (it must not verify
    certificates, devices are self-signed); it is then left open, since the caller owns it.
    """

    def __init__(
        self,
        target: Target,
        pins: PinStore,
        *,
        base_path: str = DEFAULT_BASE_PATH,
        timeout_s: float = 10.0,
        max_body_bytes: int = MAX_BODY_BYTES,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not base_path.startswith("/"):
            raise ValueError(f"base_path must start with '/': {base_path!r}")
        super().__init__(
            resolve_target(target),
            pins,
            timeout_s=timeout_s,
            max_body_bytes=max_body_bytes,
            max_connections=_MAX_CONNECTIONS,
            client=client,
        )
        self.base_path = base_path
        self._url = f"{self._base_url}{base_path}"
        ipp_scheme = "ipps" if self.target.scheme == "https" else "ipp"
        host = host_for_url(self.target.host)
        self.printer_uri = f"{ipp_scheme}://{host}:{self.target.port}{base_path}"
        # IPP/2.0 first (PWG 5100.12); a device that answers version-not-supported is asked
        # again in IPP/1.1, which every IPP printer speaks, and then always in 1.1.
        self.version = _IPP_2_0

    async def get_printer_attributes(self, requested: Sequence[str]) -> bytes:
        """Get-Printer-Attributes (RFC 8011 §4.2.5) for the ``requested`` attributes."""
        return await self.request(
            IppOperation.GET_PRINTER_ATTRIBUTES,
            [("requested-attributes", list(requested), IppTag.KEYWORD)],
        )

    async def get_jobs(
        self, which: str, requested: Sequence[str], *, limit: int = MAX_JOBS
    ) -> bytes:
        """Get-Jobs (RFC 8011 §4.2.6) of every user, ``which`` = "completed" (completed,
        canceled and aborted jobs, newest first) or "not-completed"."""
        return await self.request(
            IppOperation.GET_JOBS,
            [
                ("which-jobs", which, IppTag.KEYWORD),
                ("my-jobs", False, IppTag.BOOLEAN),
                ("limit", limit, IppTag.INTEGER),
                ("requested-attributes", list(requested), IppTag.KEYWORD),
            ],
        )

    async def request(self, operation: IppOperation, attributes: Sequence[Attribute]) -> bytes:
        """Send one operation; the response body, once it is known to be an IPP response to
        this request. Raises ``NoPrinterHere`` (HTTP 404), ``NotSupported`` (authentication
        or TLS required), ``MalformedResponse``, ``DeviceUnreachable``, ``CertificateMismatch``.
        """
        body = await self._exchange(operation, attributes)
        if self.version == _IPP_2_0 and _status(body) == IppStatus.ERROR_VERSION_NOT_SUPPORTED:
            self.version = _IPP_1_1
            body = await self._exchange(operation, attributes)
        return body

    async def _exchange(self, operation: IppOperation, attributes: Sequence[Attribute]) -> bytes:
        request_id = next(_request_ids) % 0x7FFFFFFF or 1
        content = encode_request(
            operation,
            [
                ("printer-uri", self.printer_uri, IppTag.URI),
                ("requesting-user-name", USER_NAME, IppTag.NAME),
                *attributes,
            ],
            request_id=request_id,
            version=self.version,
        )
        body = await self._post(content, what=f"{self.address} {operation.name}")
        if len(body) >= 8 and struct.unpack_from(">i", body, 4)[0] != request_id:
            raise MalformedResponse(
                f"{self.address} {operation.name}: response to another request (request-id)"
            )
        return body

    async def _post(self, content: bytes, *, what: str) -> bytes:
        def check(response: httpx.Response) -> None:
            status = response.status_code
            if status == 404:
                raise NoPrinterHere(f"{what}: no IPP printer at {self.base_path} (HTTP 404)")
            if status in (401, 403):
                raise NotSupported(f"{what}: the device requires authentication (HTTP {status})")
            if status == 426:
                raise NotSupported(
                    f"{what}: the device requires TLS (HTTP 426); read it with https"
                )
            if status != 200:
                raise MalformedResponse(f"{what}: unexpected HTTP status {status}")
            kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if kind != "application/ipp":
                raise MalformedResponse(f"{what}: not an IPP response (Content-Type {kind[:60]!r})")

        headers = {"Content-Type": "application/ipp", "Accept": "application/ipp"}
        answer = await self.receive(
            "POST", self._url, where=what, headers=headers, content=content, check=check
        )
        return answer.body


def _status(body: bytes) -> int | None:
    return struct.unpack_from(">H", body, 2)[0] if len(body) >= 4 else None
