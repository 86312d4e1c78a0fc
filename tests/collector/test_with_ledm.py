"""poll_once with the real LEDM driver against real HP captures served over HTTPS on loopback.

Each capture directory is served by a small HTTPS server with its own self-signed certificate
(as printers ship), so discovery, trust-on-first-use pinning and the usage read go through the
real driver; the simulator-based end-to-end test covers job accounting.
"""

from __future__ import annotations

import random
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fleetmeter.collector.agent import poll_once
from fleetmeter.collector.config import load_config
from fleetmeter.collector.state import State
from fleetmeter.signing import certs
from tests.fixtures_path import shared_fixtures

from .conftest import TOKEN, PortalStub

pytest.importorskip("fleetmeter.devices.ledm", reason="the LEDM driver is not installed")


def serve_capture(directory: Path, host: str, tmp: Path) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            name = self.path.removeprefix("/DevMgmt/")
            doc = directory / name
            if name != self.path and "/" not in name and doc.is_file():
                body = doc.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
            else:
                body = b"not found"
                self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    pair = certs.self_signed(host, [host])
    pair.write(tmp / f"{host}.pem", tmp / f"{host}.key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / f"{host}.pem", tmp / f"{host}.key")
    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def printers(tmp_path: Path) -> Iterator[list[tuple[str, int]]]:
    captures = sorted(p for p in (shared_fixtures() / "ledm").iterdir() if p.is_dir())
    net = f"127.{random.randint(2, 254)}.{random.randint(0, 255)}"
    servers = [serve_capture(d, f"{net}.{i}", tmp_path) for i, d in enumerate(captures, start=1)]
    yield [(str(s.server_address[0]), s.server_address[1]) for s in servers]
    for server in servers:
        server.shutdown()
        server.server_close()


def test_poll_once_reads_real_captures_through_the_ledm_driver(
    tmp_path: Path, portal: PortalStub, ca_file: Path, printers: list[tuple[str, int]]
) -> None:
    ranges = "\n".join(
        f'[[ranges]]\ntargets = ["{host}"]\ndrivers = ["ledm"]\nport = {port}\n'
        for host, port in printers
    )
    path = tmp_path / "collector.toml"
    path.write_text(
        f'[portal]\nurl = "{portal.url}"\ntoken = "{TOKEN}"\nca_file = "{ca_file}"\n'
        f'[collector]\ndata_dir = "data"\n{ranges}'
    )
    config = load_config(path)
    result = poll_once(config)
    assert result.ok, result.as_dict()
    assert result.devices_found == len(printers) and result.reports_uploaded == len(printers)
    reports = [r for x in portal.received for r in x.batch.reports]
    assert sorted(r.device.address or "" for r in reports) == sorted(h for h, _ in printers)
    for report in reports:
        assert report.device.driver == "ledm" and report.usage is not None
        assert report.usage.impressions
    with State(config.data_dir) as state:
        assert len(state.load_pins().pins) == len(printers)  # pinned on first contact
    # The second round checks the pins recorded in the first one, and they still match.
    assert poll_once(config).ok
