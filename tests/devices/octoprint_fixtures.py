"""A real OctoPrint for the octoprint driver's tests: OctoPrint 1.11 (``.cache/octoprint-venv``,
built by ``scripts/peers/install-octoprint``) on 127.0.0.1 with its bundled virtual printer.

The session fixture makes a basedir in a temporary directory (config per shared/PEERS.md, an
admin user made with ``octoprint user add`` and given an API key in ``users.yaml``), serves
it on a free port, waits until the virtual printer is "Operational", then uploads a small
real G-code file through the REST API with ``print=true`` and waits until OctoPrint has
recorded the finished print. ``slow_print()`` runs a second print (a long dwell) that a test
can read mid-print and then cancel. Everything is stopped at teardown (the process group).
Import ``octoprint_peer_fixture`` into a test module to get the ``octoprint_peer`` fixture;
it skips with a reason when the venv is missing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".cache" / "octoprint-venv"
API_KEY = "FLEETMETERTESTKEY0123456789ABCDEF"
FOLDER = "parts"
PART = "cube.gcode"
SLOW = "slow.gcode"

# A 20 x 20 mm two-layer square. The filament_diameter comment is what OctoPrint's analysis
# needs to compute a volume (the slicers write it): 30 mm of 1.75 mm filament = 72.2 mm³.
PART_GCODE = b"""; FleetMeter test part
; filament_diameter = 1.75
G21
G90
M82
M104 S35
M140 S30
G28
G92 E0
G1 Z0.2 F1200
G1 X10 Y10 F3000
G1 X30 Y10 E5.0 F1200
G1 X30 Y30 E10.0
G1 X10 Y30 E15.0
G1 X10 Y10 E20.0
G1 Z0.4
G1 X30 Y10 E25.0
G1 X30 Y30 E30.0
M104 S0
M140 S0
M84
"""
PART_FILAMENT_MM = 30
PART_FILAMENT_UL = 72  # 30 mm x pi x (1.75 mm / 2)^2 = 72.16 mm³ = 72 µL

# Heats the tool, then dwells 0.2 s at a time for up to a minute: long enough to read it
# mid-print, and short steps so that a cancel takes effect at once (OctoPrint stops sending
# lines; the virtual printer finishes the dwell it is in).
SLOW_GCODE = (
    b"""; FleetMeter slow test print
G21
G90
M104 S45
G28
G1 X5 Y5 F3000
"""
    + b"G4 P200\n" * 300
    + b"M104 S0\n"
)

_CONFIG = """\
serial:
  port: VIRTUAL
  baudrate: 0
  autoconnect: true
plugins:
  virtual_printer:
    enabled: true
  _disabled: [discovery, tracking, softwareupdate, announcements, errortracking,
              pluginmanager, achievements]
server:
  firstRun: false
  onlineCheck:
    enabled: false
  pythonEolCheck:
    enabled: false
"""


_ADMIN_FLAGS = ("--password", "fleetmeter-test", "--admin")


def _serve_flags(port: int) -> tuple[str, ...]:
    # --iknowwhatimdoing: OctoPrint refuses to run as root without it.
    return ("--host", "127.0.0.1", "--port", str(port), "--iknowwhatimdoing")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _wait(what: str, check: Callable[[], bool], timeout_s: float, peer: OctoPrintPeer) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if peer.process.poll() is not None:
            raise RuntimeError(f"OctoPrint exited ({peer.process.returncode}):\n{peer.log_tail()}")
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
            if check():
                return
        time.sleep(0.3)
    raise RuntimeError(f"OctoPrint: {what} not within {timeout_s:.0f} s:\n{peer.log_tail()}")


@dataclass
class OctoPrintPeer:
    port: int
    basedir: Path
    process: subprocess.Popen[bytes]
    log: Path
    api_key: str = API_KEY

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"X-Api-Key": self.api_key}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=10, **kwargs)

    def file(self, path: str) -> dict[str, Any]:
        """The file's entry (``GET /api/files/local/<path>``)."""
        response = self.api("GET", f"/api/files/local/{path}")
        response.raise_for_status()
        entry: dict[str, Any] = response.json()
        return entry

    def upload(self, name: str, content: bytes, *, print_it: bool) -> None:
        response = self.api(
            "POST",
            "/api/files/local",
            files={"file": (name, content, "application/octet-stream")},
            data={"path": FOLDER, "print": "true" if print_it else "false"},
        )
        response.raise_for_status()

    def wait_for_last_print(self, path: str, *, after: float = 0.0, timeout_s: float = 60) -> None:
        def recorded() -> bool:
            last = self.file(path).get("prints", {}).get("last", {})
            return bool(last) and float(last["date"]) > after

        _wait(f"a recorded print of {path}", recorded, timeout_s, self)

    def state(self) -> str:
        return str(self.api("GET", "/api/job").json()["state"])

    @contextlib.contextmanager
    def slow_print(self) -> Iterator[None]:
        """Print ``SLOW`` and yield while it prints; cancel it on the way out and wait until
        OctoPrint has recorded the (failed) print."""
        self.upload(SLOW, SLOW_GCODE, print_it=True)
        started = time.time()
        _wait("the slow print to start", lambda: self.state() == "Printing", 30, self)
        try:
            yield
        finally:
            self.api("POST", "/api/job", json={"command": "cancel"}).raise_for_status()
            self.wait_for_last_print(f"{FOLDER}/{SLOW}", after=started - 1)
            _wait("the printer to be free", lambda: self.state() == "Operational", 60, self)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def _start(tmp: Path) -> OctoPrintPeer:
    octoprint = VENV / "bin" / "octoprint"
    basedir = tmp / "octoprint"
    basedir.mkdir()
    (basedir / "config.yaml").write_text(_CONFIG)
    subprocess.run(
        [str(octoprint), "--basedir", str(basedir), "user", "add", "admin", *_ADMIN_FLAGS],
        check=True,
        capture_output=True,
        timeout=120,
    )
    users = basedir / "users.yaml"
    text = users.read_text()
    if "apikey: null" not in text:
        raise RuntimeError(f"unexpected users.yaml from 'octoprint user add':\n{text}")
    users.write_text(text.replace("apikey: null", f"apikey: {API_KEY}", 1))
    port = _free_port()
    log = tmp / "octoprint.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(octoprint), "--basedir", str(basedir), "serve", *_serve_flags(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: teardown stops all of it
        )
    return OctoPrintPeer(port=port, basedir=basedir, process=process, log=log)


@pytest.fixture(scope="session", name="octoprint_peer")
def octoprint_peer_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OctoPrintPeer]:
    if not (VENV / "bin" / "octoprint").is_file():
        pytest.skip(f"OctoPrint is not installed at {VENV} (run scripts/peers/install-octoprint)")
    peer = _start(tmp_path_factory.mktemp("octoprint"))
    try:

        def operational() -> bool:
            flags = peer.api("GET", "/api/printer").json()["state"]["flags"]
            return bool(flags["operational"]) and bool(flags["ready"])

        _wait("the virtual printer to be Operational", operational, 90, peer)
        peer.upload(PART, PART_GCODE, print_it=True)
        peer.wait_for_last_print(f"{FOLDER}/{PART}")
        _wait("the printer to be free", lambda: peer.state() == "Operational", 60, peer)

        def heaters_reported() -> bool:
            # Right after a print OctoPrint briefly reports the bed alone, with no reading.
            temps = peer.api("GET", "/api/printer").json()["temperature"]
            return all(temps[name]["actual"] is not None for name in ("tool0", "bed"))

        _wait("both heaters to report", heaters_reported, 30, peer)
        yield peer
    finally:
        peer.stop()


class HeaderRecorder:
    """A plain HTTP server on 127.0.0.1 that answers 403 to everything and records each
    request's path and headers: shows which credentials a driver sends to a stranger."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.requests.append((self.path, dict(self.headers.items())))
                body = b'{"error": "forbidden"}'
                self.send_response(403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(name="header_recorder")
def header_recorder_fixture() -> Iterator[HeaderRecorder]:
    server = HeaderRecorder()
    yield server
    server.close()
