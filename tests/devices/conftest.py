"""Shared test fixtures for the devices package: the real captures, and a real local HTTPS
server (http.server + ssl in a thread) that serves LEDM documents like a printer's EWS."""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fleetmeter.signing.certs import KeyPair, self_signed

HERE = Path(__file__).resolve().parent
OWN_FIXTURES = HERE / "fixtures"


def shared_fixtures() -> Path:
    """The shared real captures (``../shared/fixtures`` beside the checkout), or skip."""
    default = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
    path = Path(os.environ.get("FLEETMETER_FIXTURES", default))
    if not path.is_dir():
        pytest.skip(f"real device captures not found at {path} (set FLEETMETER_FIXTURES)")
    return path


def ledm_captures() -> list[Path]:
    return sorted(p for p in (shared_fixtures() / "ledm").iterdir() if p.is_dir())


def read_docs(directory: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(directory.glob("*.xml"))}


class DeviceServer:
    """A printer-like HTTPS server on 127.0.0.1. ``documents`` maps URL paths to bodies;
    ``use_certificate`` swaps the certificate for connections made afterwards."""

    OVERSIZE = 9 * 1024 * 1024

    def __init__(self, tmp_path: Path, *, tls: bool = True) -> None:
        self.documents: dict[str, bytes] = {}
        # path -> (Content-Encoding, body as sent): a device that compresses regardless.
        self.encoded: dict[str, tuple[str, bytes]] = {}
        self.requests: list[tuple[str, str]] = []
        self._tmp = tmp_path
        self._context: ssl.SSLContext | None = None
        self.keypair: KeyPair | None = None
        if tls:
            self.use_certificate(self_signed("printer.test", ["127.0.0.1"]))
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(("GET", self.path))
                try:
                    if self.path == "/DevMgmt/Oversized.xml":
                        self._oversized(declare_length=True)
                    elif self.path == "/DevMgmt/OversizedChunked.xml":
                        self._oversized(declare_length=False)
                    elif self.path in server.encoded:
                        encoding, raw = server.encoded[self.path]
                        self.send_response(200)
                        self.send_header("Content-Type", "text/xml")
                        self.send_header("Content-Encoding", encoding)
                        self.send_header("Content-Length", str(len(raw)))
                        self.end_headers()
                        self.wfile.write(raw)
                    elif self.path in server.documents:
                        body = server.documents[self.path]
                        self.send_response(200)
                        self.send_header("Content-Type", "text/xml")
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                    else:
                        self.send_error(404)
                except (ConnectionError, ssl.SSLError):
                    pass  # the client hung up on purpose (size limit)

            def _oversized(self, *, declare_length: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                if declare_length:
                    self.send_header("Content-Length", str(DeviceServer.OVERSIZE))
                self.end_headers()
                chunk = b"<" + b"a" * 65534 + b">"
                for _ in range(DeviceServer.OVERSIZE // len(chunk) + 1):
                    self.wfile.write(chunk)

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[socket.socket, object]:
                sock, addr = self.socket.accept()
                if server._context is None:
                    return sock, addr
                # Wrapped per connection so that a certificate swap applies to new ones; the
                # handshake runs in the handler thread (do_handshake_on_connect=False).
                return (
                    server._context.wrap_socket(
                        sock, server_side=True, do_handshake_on_connect=False
                    ),
                    addr,
                )

            def handle_error(self, request: object, client_address: object) -> None:
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def use_certificate(self, keypair: KeyPair) -> None:
        cert = self._tmp / f"cert-{id(keypair)}.pem"
        key = self._tmp / f"key-{id(keypair)}.pem"
        keypair.write(cert, key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._context = context
        self.keypair = keypair

    def serve_directory(self, directory: Path) -> None:
        for name, body in read_docs(directory).items():
            self.documents[f"/DevMgmt/{name}"] = body

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def device_server(tmp_path: Path) -> Iterator[DeviceServer]:
    server = DeviceServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def plain_http_server(tmp_path: Path) -> Iterator[DeviceServer]:
    server = DeviceServer(tmp_path, tls=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: bind, learn it, close."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
