"""devices/tls.py with a range's ``ca_file``: verify the device against the site's CA instead
of pinning it (the collector's range option; the helper lives in devices/tls.py).

A real HTTPS server on loopback presents a certificate; only the client side is under test.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from fleetmeter.devices.base import PinStore, Target
from fleetmeter.devices.errors import CertificateMismatch
from fleetmeter.devices.tls import check_pin, device_context
from fleetmeter.signing import certs


def serve(pair: certs.KeyPair, tmp: Path) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    pair.write(tmp / "dev.pem", tmp / "dev.key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / "dev.pem", tmp / "dev.key")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def device(tmp_path: Path, test_ca: certs.KeyPair) -> Iterator[int]:
    server = serve(certs.issue_server_certificate(test_ca, ["127.0.0.1"]), tmp_path)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def fetch(target: Target, pins: PinStore) -> str:
    async def go() -> str:
        async with httpx.AsyncClient(verify=device_context(target)) as client:
            url = f"https://{target.host}:{target.port}/"
            async with client.stream("GET", url) as response:
                return check_pin(pins, pins.key(target), response)

    return asyncio.run(go())


def test_with_ca_file_the_device_is_verified_and_not_pinned(device: int, ca_file: Path) -> None:
    key = f"127.0.0.1:{device}"
    pins = PinStore({key: "0" * 64})  # an old pin is not consulted: the CA vouches instead
    fetch(Target("127.0.0.1", device, ca_file=str(ca_file)), pins)
    assert pins.pins == {key: "0" * 64}


def test_with_ca_file_a_certificate_from_another_ca_is_refused(device: int, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    other.write_bytes(certs.certificate_authority("someone else").cert_pem)
    with pytest.raises(httpx.ConnectError) as info:
        fetch(Target("127.0.0.1", device, ca_file=str(other)), PinStore())
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)


def test_without_ca_file_it_is_pinned_on_first_use(device: int) -> None:
    pins = PinStore()
    target = Target("127.0.0.1", device)
    fingerprint = fetch(target, pins)
    assert pins.pins == {f"127.0.0.1:{device}": fingerprint}
    pins.pins[f"127.0.0.1:{device}"] = "f" * 64
    with pytest.raises(CertificateMismatch):
        fetch(target, pins)


def test_with_ca_file_a_certificate_for_another_device_is_refused(
    tmp_path: Path, test_ca: certs.KeyPair, ca_file: Path
) -> None:
    # Issued by the right CA, but to another printer: it must not vouch for this address.
    server = serve(certs.issue_server_certificate(test_ca, ["10.9.9.9"]), tmp_path)
    try:
        with pytest.raises(httpx.ConnectError) as info:
            fetch(Target("127.0.0.1", server.server_address[1], ca_file=str(ca_file)), PinStore())
        assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
    finally:
        server.shutdown()
        server.server_close()
