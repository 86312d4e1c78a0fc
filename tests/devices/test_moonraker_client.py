"""The Moonraker client over a real local HTTPS server (certificate pinning, unreachable
ports) and over httpx's MockTransport (statuses, the optional key, size limits): only the
transport is faked, the client is the real one."""

from __future__ import annotations

import httpx
import pytest

from fleetmeter.devices.base import PinStore, Target
from fleetmeter.devices.errors import CertificateMismatch, DeviceUnreachable, MalformedResponse
from fleetmeter.devices.moonraker.client import (
    AuthenticationRequired,
    EndpointNotFound,
    MoonrakerClient,
    UnexpectedStatus,
    resolve_target,
)
from fleetmeter.devices.tls import unverified_context
from fleetmeter.signing.certs import self_signed
from tests.devices.conftest import DeviceServer

pytestmark = pytest.mark.anyio

INFO = b'{"result": {"moonraker_version": "0.11.0", "klippy_state": "ready"}}'


def test_default_ports_are_moonrakers() -> None:
    assert resolve_target(Target(host="h", scheme="http")).port == 7125
    assert resolve_target(Target(host="h", scheme="https")).port == 7130
    assert resolve_target(Target(host="h", port=80, scheme="http")).port == 80


async def test_https_pins_the_certificate_on_first_use(device_server: DeviceServer) -> None:
    device_server.documents["/server/info"] = INFO
    target = Target(host="127.0.0.1", port=device_server.port)
    pins = PinStore()
    async with MoonrakerClient(target, pins) as client:
        assert await client.get("/server/info") == INFO
    device_server.use_certificate(self_signed("other.test", ["127.0.0.1"]))
    async with MoonrakerClient(target, pins) as client:
        with pytest.raises(CertificateMismatch):
            await client.get("/server/info")


async def test_nothing_listening_is_unreachable(closed_port: int) -> None:
    target = Target(host="127.0.0.1", port=closed_port, scheme="http")
    async with MoonrakerClient(target, PinStore(), timeout_s=1) as client:
        with pytest.raises(DeviceUnreachable):
            await client.get("/server/info")


def _client(answer: httpx.MockTransport, **kwargs: object) -> MoonrakerClient:
    http = httpx.AsyncClient(transport=answer, verify=unverified_context())
    target = Target(host="voron.local", port=7125, scheme="http")
    return MoonrakerClient(target, PinStore(), client=http, **kwargs)  # type: ignore[arg-type]


async def test_statuses_and_the_optional_key() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = {"/server/info": 200, "/access/info": 200, "/printer/info": 503}.get(
            request.url.path, 404
        )
        if request.url.path == "/server/history/list":
            status = 401
        return httpx.Response(status, content=INFO)

    async with _client(httpx.MockTransport(answer), api_key="k3y") as client:
        assert await client.get("/server/info") == INFO
        await client.get("/access/info", anonymous=True)
        # Klipper starting or shut down: Moonraker answers 503; optional reads skip it.
        assert await client.get_optional("/printer/info") is None
        with pytest.raises(UnexpectedStatus) as unavailable:
            await client.get("/printer/info")
        assert unavailable.value.status == 503
        with pytest.raises(EndpointNotFound):
            await client.get("/printer/objects/query?print_stats")
        with pytest.raises(AuthenticationRequired, match="HTTP 401") as refused:
            await client.get("/server/history/list")
        assert "k3y" not in str(refused.value)
        with pytest.raises(ValueError, match="not a Moonraker API path"):
            await client.get("/api/version")
    assert seen[0].headers["X-Api-Key"] == "k3y"
    assert "X-Api-Key" not in seen[1].headers  # anonymous
    assert seen[4].url.query == b"print_stats"
    async with _client(httpx.MockTransport(answer)) as client:
        await client.get("/server/info")
    assert "X-Api-Key" not in seen[-1].headers  # no key configured: a trusted client


async def test_oversized_bodies_are_refused() -> None:
    def big(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 4096)

    async with _client(httpx.MockTransport(big), max_body_bytes=1000) as client:
        with pytest.raises(MalformedResponse, match="1000-byte limit"):
            await client.get("/server/history/list")
