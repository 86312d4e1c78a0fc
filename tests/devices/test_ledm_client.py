"""The LEDM client against a real local HTTPS server: TOFU pinning, mismatch, limits, errors."""

from __future__ import annotations

import gzip
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import zstandard

from fleetmeter.devices.base import PinStore, Target
from fleetmeter.devices.errors import (
    CertificateMismatch,
    DeviceUnreachable,
    MalformedResponse,
    NotSupported,
)
from fleetmeter.devices.ledm.client import DocumentNotFound, LedmClient
from fleetmeter.signing.certs import certificate_authority, issue_server_certificate, self_signed
from tests.devices.conftest import DeviceServer

pytestmark = pytest.mark.anyio

BODY = b"<?xml version='1.0'?><ledm:DiscoveryTree xmlns:ledm='urn:x'/>"


def _target(server: DeviceServer, scheme: str = "https") -> Target:
    return Target(host="127.0.0.1", port=server.port, scheme=scheme)


async def test_first_contact_records_the_pin(device_server: DeviceServer) -> None:
    device_server.documents["/DevMgmt/DiscoveryTree.xml"] = BODY
    pins = PinStore()
    async with LedmClient(_target(device_server), pins) as client:
        assert await client.get("DiscoveryTree.xml") == BODY
    assert device_server.keypair is not None
    assert pins.pins == {f"127.0.0.1:{device_server.port}": device_server.keypair.fingerprint}
    # Same certificate later: accepted, pin unchanged.
    async with LedmClient(_target(device_server), pins) as client:
        assert await client.get("DiscoveryTree.xml") == BODY
    assert pins.pins == {f"127.0.0.1:{device_server.port}": device_server.keypair.fingerprint}


async def test_changed_certificate_raises_before_the_body_is_used(
    device_server: DeviceServer,
) -> None:
    device_server.documents["/DevMgmt/DiscoveryTree.xml"] = BODY
    pins = PinStore()
    async with LedmClient(_target(device_server), pins) as client:
        await client.get("DiscoveryTree.xml")
    pinned = dict(pins.pins)
    device_server.use_certificate(self_signed("impostor", ["127.0.0.1"]))
    async with LedmClient(_target(device_server), pins) as client:
        with pytest.raises(CertificateMismatch) as info:
            await client.get("DiscoveryTree.xml")
    assert info.value.expected == pinned[f"127.0.0.1:{device_server.port}"]
    assert device_server.keypair is not None
    assert info.value.actual == device_server.keypair.fingerprint
    assert "TLS certificate changed" in str(info.value)
    assert pins.pins == pinned  # a mismatch never re-pins


async def test_pin_key_uses_the_default_port_when_none_is_given() -> None:
    client = LedmClient(Target(host="printer.local"), PinStore())
    try:
        assert client.address == "printer.local:443"
    finally:
        await client.aclose()


async def test_missing_document_and_error_statuses(device_server: DeviceServer) -> None:
    async with LedmClient(_target(device_server), PinStore()) as client:
        with pytest.raises(DocumentNotFound, match="HTTP 404"):
            await client.get("ProductUsageDyn.xml")
        assert await client.get_optional("ProductUsageDyn.xml") is None
        with pytest.raises(ValueError, match="not an LEDM document"):
            await client.get("../etc/passwd")


async def test_oversized_body_is_refused(device_server: DeviceServer) -> None:
    async with LedmClient(_target(device_server), PinStore()) as client:
        with pytest.raises(MalformedResponse, match="exceeds the 8388608-byte limit"):
            await client.get("Oversized.xml")  # Content-Length declares 9 MiB
        with pytest.raises(MalformedResponse, match="exceeds the 8388608-byte limit"):
            await client.get("OversizedChunked.xml")  # no length: counted while reading


async def test_smaller_limit_is_honoured(device_server: DeviceServer) -> None:
    device_server.documents["/DevMgmt/DiscoveryTree.xml"] = BODY
    async with LedmClient(_target(device_server), PinStore(), max_body_bytes=10) as client:
        with pytest.raises(MalformedResponse, match="10-byte limit"):
            await client.get("DiscoveryTree.xml")


async def test_unreachable_device(closed_port: int) -> None:
    target = Target(host="127.0.0.1", port=closed_port)
    async with LedmClient(target, PinStore(), timeout_s=2) as client:
        with pytest.raises(DeviceUnreachable, match=f"127.0.0.1:{closed_port}") as info:
            await client.get("DiscoveryTree.xml")
    assert isinstance(info.value.__cause__, httpx.TransportError)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections but never speaks TLS."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


async def test_silent_device_times_out(silent_port: int) -> None:
    target = Target(host="127.0.0.1", port=silent_port)
    async with LedmClient(target, PinStore(), timeout_s=0.5) as client:
        with pytest.raises(DeviceUnreachable, match="timed out"):
            await client.get("DiscoveryTree.xml")


async def test_plain_http_only_when_asked(plain_http_server: DeviceServer) -> None:
    plain_http_server.documents["/DevMgmt/DiscoveryTree.xml"] = BODY
    pins = PinStore()
    async with LedmClient(_target(plain_http_server, "http"), pins) as client:
        assert await client.get("DiscoveryTree.xml") == BODY
    assert pins.pins == {}  # nothing to pin over plain HTTP
    # HTTPS to a plain-HTTP server fails the handshake: unreachable, not silently downgraded.
    async with LedmClient(_target(plain_http_server), pins, timeout_s=2) as client:
        with pytest.raises(DeviceUnreachable):
            await client.get("DiscoveryTree.xml")


async def test_authentication_required_is_not_supported() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        target = Target(host="printer.test", port=80, scheme="http")
        async with LedmClient(target, PinStore(), client=http) as client:
            with pytest.raises(NotSupported, match="requires authentication"):
                await client.get("ProductUsageDyn.xml")
        # The caller's client is left open: the caller owns it.
        assert not http.is_closed


async def test_https_without_a_peer_certificate_is_refused() -> None:
    # A transport that reports no TLS connection must not silently bypass pinning.
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=BODY)

    transport = httpx.MockTransport(handler)
    async with (
        httpx.AsyncClient(transport=transport) as http,
        LedmClient(Target(host="printer.test"), PinStore(), client=http) as client,
    ):
        with pytest.raises(DeviceUnreachable, match="no TLS peer certificate"):
            await client.get("DiscoveryTree.xml")


async def test_only_get_requests_are_sent(device_server: DeviceServer) -> None:
    device_server.documents["/DevMgmt/DiscoveryTree.xml"] = BODY
    async with LedmClient(_target(device_server), PinStore()) as client:
        await client.get("DiscoveryTree.xml")
        await client.get_optional("MediaDyn.xml")
    assert {method for method, _ in device_server.requests} == {"GET"}


async def test_a_range_ca_verifies_the_device_instead_of_a_pin(
    device_server: DeviceServer, tmp_path: Path
) -> None:
    # A site whose printers carry certificates from its own CA: [[ranges]] ca_file.
    ca = certificate_authority("site CA")
    device_server.use_certificate(issue_server_certificate(ca, ["127.0.0.1"]))
    device_server.documents["/DevMgmt/DiscoveryTree.xml"] = BODY
    ca_file = tmp_path / "site-ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    target = Target("127.0.0.1", port=device_server.port, ca_file=str(ca_file))
    pins = PinStore()
    async with LedmClient(target, pins) as client:
        assert await client.get("DiscoveryTree.xml") == BODY
    assert pins.pins == {}  # verified by the CA: nothing trusted on first use

    # The same printer with a certificate the site CA did not issue is refused.
    device_server.use_certificate(self_signed("impostor", ["127.0.0.1"]))
    with pytest.raises(DeviceUnreachable):
        async with LedmClient(target, PinStore()) as client:
            await client.get("DiscoveryTree.xml")


async def test_compressed_bodies_are_capped_after_decoding(device_server: DeviceServer) -> None:
    # 1 GiB of zeros in ~32 KB of zstd, and 64 MiB in ~64 KB of gzip: a hostile host in range
    # must not make the collector inflate them.
    device_server.encoded["/DevMgmt/ZstdBomb.xml"] = (
        "zstd",
        zstandard.ZstdCompressor().compress(b"\0" * (1 << 30)),
    )
    device_server.encoded["/DevMgmt/GzipBomb.xml"] = ("gzip", gzip.compress(b"\0" * (64 << 20)))
    device_server.encoded["/DevMgmt/Small.xml"] = ("gzip", gzip.compress(BODY))
    async with LedmClient(_target(device_server), PinStore()) as client:
        with pytest.raises(MalformedResponse, match="unsupported Content-Encoding 'zstd'"):
            await client.get("ZstdBomb.xml")
        with pytest.raises(MalformedResponse, match="decoded body exceeds"):
            await client.get("GzipBomb.xml")
        assert await client.get("Small.xml") == BODY  # honest gzip still works
    assert all(path.startswith("/DevMgmt/") for _, path in device_server.requests)
