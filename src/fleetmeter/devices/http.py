"""The HTTP machinery the device clients share (LEDM, IPP, OctoPrint, Moonraker).

``DeviceHttp`` is the base of those clients: it builds the ``httpx.AsyncClient`` (timeouts,
a small connection limit, ``devices.tls.device_context``), closes only a client it opened,
checks every response's certificate pin before anything of it is used, reads bodies under a
size cap and within a total deadline, and translates httpx errors into the devices exception
tree. What differs between
drivers (paths, methods, headers, which statuses mean what) stays in each driver's client.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx

from fleetmeter.devices.base import PinStore, Target
from fleetmeter.devices.errors import DeviceUnreachable, MalformedResponse
from fleetmeter.devices.tls import check_pin, device_context

__all__ = ["Answer", "DeviceHttp", "host_for_url"]

# Before the request is sent, httpx bounds the wait for a connection slot and the connect
# (TLS handshake included) by ``timeout_s`` each: the deadline starts at twice that.
_SETUP_DEADLINES = 2


@dataclass(frozen=True)
class Answer:
    """A response as received: status, headers, body (already size-checked)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def host_for_url(host: str) -> str:
    """``host`` as it goes in a URL: an IPv6 literal in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class DeviceHttp:
    """Base of the HTTP device clients: one device, read through ``receive``.

    ``target`` must already have its port (each driver's ``resolve_target``). An
    ``httpx.AsyncClient`` may be passed in (it must not verify certificates, devices are
    self-signed); it is then left open, since the caller owns it, and ``headers`` are not
    applied to it.
    """

    def __init__(
        self,
        target: Target,
        pins: PinStore,
        *,
        timeout_s: float,
        max_body_bytes: int,
        max_connections: int,
        headers: Mapping[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.target = target
        self.pins = pins
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s
        self._pin_key = pins.key(target)
        self._base_url = f"{target.scheme}://{host_for_url(target.host)}:{target.port}"
        self._timeout = httpx.Timeout(timeout_s)
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            verify=device_context(target),
            timeout=self._timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max_connections),
            # Bodies arrive unencoded: a decoded stream is only capped after each decoded
            # chunk, so 32 KB of zstd could become gigabytes before the cap trips.
            headers={"Accept-Encoding": "identity", **(headers or {})},
            trust_env=False,  # devices are on the LAN: never via HTTPS_PROXY (docs/collector.md)
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

    async def receive(
        self,
        method: str,
        url: str,
        *,
        where: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        check: Callable[[httpx.Response], None] | None = None,
    ) -> Answer:
        """Send one request; the answer, after the certificate pin is checked and the body
        size is within ``max_body_bytes``. ``check`` sees the response after the pin and
        before the body is read, so a driver refuses a status or content type without
        downloading the body. ``where`` starts every error message.

        The exchange has a total deadline: ``timeout_s`` from the moment the request is
        sent until the whole body is in (httpx's own timeouts are per read, so a device
        that drips one byte a second would otherwise hold us for ever), after at most
        ``timeout_s`` each of waiting for a connection slot and connecting.

        Raises ``MalformedResponse`` (oversized body, HTTP protocol errors),
        ``DeviceUnreachable`` (also: no complete answer within the deadline),
        ``CertificateMismatch``, and whatever ``check`` raises.
        """
        loop = asyncio.get_running_loop()
        try:
            # Until the request goes out: the pool and connect timeouts (each timeout_s).
            async with asyncio.timeout(_SETUP_DEADLINES * self.timeout_s) as deadline:

                async def trace(event: str, info: Mapping[str, Any]) -> None:
                    # httpcore's trace extension: the clock for the answer starts when the
                    # request headers go out, so a request queued behind others for one of
                    # the device's few connections is not cut short for waiting.
                    if event.endswith("send_request_headers.started"):
                        deadline.reschedule(loop.time() + self.timeout_s)

                return await self._send(
                    method,
                    url,
                    where=where,
                    params=params,
                    headers=headers,
                    content=content,
                    check=check,
                    trace=trace,
                )
        except TimeoutError as exc:
            raise DeviceUnreachable(
                f"{where}: no complete answer within {self.timeout_s:g} s"
            ) from exc

    async def _send(
        self,
        method: str,
        url: str,
        *,
        where: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        content: bytes | None,
        check: Callable[[httpx.Response], None] | None,
        trace: Callable[[str, Mapping[str, Any]], Any],
    ) -> Answer:
        try:
            async with self._client.stream(
                method,
                url,
                params=params,
                # Bodies arrive unencoded: a decoded stream is only capped after each decoded
                # chunk, so 32 KB of zstd could become gigabytes before the cap trips.
                headers={"Accept-Encoding": "identity", **(headers or {})},
                content=content,
                timeout=self._timeout,
                extensions={"trace": trace},
            ) as response:
                if self.target.scheme == "https":
                    # Before anything of the response is used: a different device (or a
                    # man in the middle) must not get to feed us data.
                    check_pin(self.pins, self._pin_key, response)
                if check is not None:
                    check(response)
                body = await self._read_body(response, where)
                return Answer(response.status_code, dict(response.headers), body)
        except httpx.TimeoutException as exc:
            raise DeviceUnreachable(f"{where}: timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            # Connection refused, reset, TLS handshake failure, protocol errors.
            reason = str(exc) or type(exc).__name__
            raise DeviceUnreachable(f"{where}: {reason}") from exc
        except httpx.HTTPError as exc:
            raise MalformedResponse(f"{where}: {exc}") from exc

    async def _read_body(self, response: httpx.Response, where: str) -> bytes:
        # The declared length is refused up front; the running count guards against a
        # missing or lying Content-Length (chunked bodies have none).
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise MalformedResponse(
                f"{where}: body of {declared} bytes exceeds the {self.max_body_bytes}-byte limit"
            )
        body = bytearray()
        try:
            # Raw bytes: httpx would otherwise decode any Content-Encoding before we count.
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > self.max_body_bytes:
                    raise MalformedResponse(
                        f"{where}: body exceeds the {self.max_body_bytes}-byte limit"
                    )
        except httpx.StreamConsumed:
            # A transport that handed the body over whole (httpx.MockTransport): it is
            # already in memory, so only the cap is left to apply.
            body = bytearray(response.content)
            if len(body) > self.max_body_bytes:
                raise MalformedResponse(
                    f"{where}: body exceeds the {self.max_body_bytes}-byte limit"
                ) from None
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            return bytes(body)
        if encoding in ("gzip", "x-gzip", "deflate"):
            # Some embedded servers compress whatever was asked: decode, with the same cap.
            wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
            try:
                inflater = zlib.decompressobj(wbits)
                out = inflater.decompress(bytes(body), self.max_body_bytes + 1)
            except zlib.error as exc:
                raise MalformedResponse(f"{where}: invalid {encoding} body: {exc}") from exc
            if len(out) > self.max_body_bytes:
                raise MalformedResponse(
                    f"{where}: decoded body exceeds the {self.max_body_bytes}-byte limit"
                )
            return out
        raise MalformedResponse(f"{where}: unsupported Content-Encoding {encoding!r}")
