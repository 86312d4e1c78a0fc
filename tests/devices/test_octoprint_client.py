"""The OctoPrint client over a real local HTTPS server (certificate pinning, unreachable
ports) and over httpx's MockTransport (statuses, headers, size limits): only the transport
is faked, the client is the real one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from fleetmeter.devices.base import PinStore, Target
from fleetmeter.devices.errors import CertificateMismatch, DeviceUnreachable, MalformedResponse
from fleetmeter.devices.octoprint.client import (
    AuthenticationRequired,
    EndpointNotFound,
    OctoPrintClient,
    UnexpectedStatus,
    resolve_target,
)
from fleetmeter.devices.tls import unverified_context
from fleetmeter.signing.certs import self_signed
from tests.devices.conftest import DeviceServer

pytestmark = pytest.mark.anyio

VERSION = b'{"api": "0.1", "server": "1.11.8", "text": "OctoPrint 1.11.8"}'


def test_default_ports_follow_the_scheme() -> None:
    secret = {"api_key": "k"}
    https = resolve_target(Target(host="h", credentials=secret))
    assert (https.port, https.scheme, https.credentials) == (443, "https", secret)
    assert resolve_target(Target(host="h", scheme="http")).port == 80
    assert resolve_target(Target(host="h", port=5000, scheme="http")).port == 5000
    with pytest.raises(ValueError, match="scheme"):
        resolve_target(Target(host="h", scheme="ftp"))


async def test_https_pins_the_certificate_on_first_use(device_server: DeviceServer) -> None:
    device_server.documents["/api/version"] = VERSION
    target = Target(host="127.0.0.1", port=device_server.port)
    pins = PinStore()
    async with OctoPrintClient(target, pins, api_key="k") as client:
        assert await client.get("/api/version") == VERSION
    assert list(pins.pins) == [f"127.0.0.1:{device_server.port}"]
    device_server.use_certificate(self_signed("other.test", ["127.0.0.1"]))
    async with OctoPrintClient(target, pins, api_key="k") as client:
        with pytest.raises(CertificateMismatch):
            await client.get("/api/version")


async def test_nothing_listening_is_unreachable(closed_port: int) -> None:
    target = Target(host="127.0.0.1", port=closed_port, scheme="http")
    async with OctoPrintClient(target, PinStore(), timeout_s=1) as client:
        with pytest.raises(DeviceUnreachable, match=f"127.0.0.1:{closed_port} /api/version"):
            await client.get("/api/version")


def _client(handler: httpx.MockTransport, **kwargs: object) -> OctoPrintClient:
    http = httpx.AsyncClient(transport=handler, verify=unverified_context())
    target = Target(host="octopi.local", port=80, scheme="http")
    return OctoPrintClient(target, PinStore(), client=http, **kwargs)  # type: ignore[arg-type]


async def test_sends_the_api_key_and_translates_statuses() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = {"/api/version": 200, "/api/files": 200, "/api/job": 403, "/api/printer": 409}.get(
            request.url.path, 404
        )
        return httpx.Response(
            status, content=VERSION, headers={"X-Clacks-Overhead": "GNU Terry Pratchett"}
        )

    async with _client(httpx.MockTransport(answer), api_key="s3cret") as client:
        assert await client.get("/api/files", params={"recursive": "true"}) == VERSION
        assert await client.get("/api/version") == VERSION
        with pytest.raises(AuthenticationRequired, match="HTTP 403") as refused:
            await client.get("/api/job")
        assert "s3cret" not in str(refused.value)
        with pytest.raises(UnexpectedStatus) as conflict:
            await client.get("/api/printer")
        assert conflict.value.status == 409
        with pytest.raises(EndpointNotFound):
            await client.get("/api/nothing")
        assert await client.get_optional("/api/nothing") is None
        assert await client.get_optional("/api/job") is None
        answer_ = await client.fetch("/api/job")
        assert answer_.status == 403 and answer_.from_octoprint
    assert all(r.headers["X-Api-Key"] == "s3cret" for r in seen)
    assert seen[0].url.params["recursive"] == "true"
    with pytest.raises(ValueError, match="not an OctoPrint API path"):
        async with _client(httpx.MockTransport(answer)) as client:
            await client.get("/etc/passwd")


async def test_no_api_key_sends_no_header() -> None:
    headers: list[httpx.Headers] = []

    def answer(request: httpx.Request) -> httpx.Response:
        headers.append(request.headers)
        return httpx.Response(403, content=b"{}")

    async with _client(httpx.MockTransport(answer)) as client:
        result = await client.fetch("/api/version")
    assert result.status == 403 and not result.from_octoprint
    assert "X-Api-Key" not in headers[0]


async def test_oversized_bodies_are_refused() -> None:
    def declared(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 2048)

    async with _client(httpx.MockTransport(declared), max_body_bytes=1024) as client:
        with pytest.raises(MalformedResponse, match="exceeds the 1024-byte limit"):
            await client.get("/api/files")

    def streamed(request: httpx.Request) -> httpx.Response:
        # No Content-Length: the limit must hold while reading.
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(2):
                yield b"x" * 700

        return httpx.Response(200, content=chunks())

    async with _client(httpx.MockTransport(streamed), max_body_bytes=1024) as client:
        with pytest.raises(MalformedResponse, match="body exceeds the 1024-byte limit"):
            await client.get("/api/files")
