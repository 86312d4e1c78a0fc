"""A real Moonraker for the moonraker driver's tests: standalone Moonraker 0.11
(``.cache/moonraker-venv``, built by ``scripts/peers/install-moonraker``) on 127.0.0.1.

Klipper cannot run here (it needs a printer's microcontroller, or its simulator build), so
Moonraker runs without it: ``/server/*`` answers, ``/printer/*`` does not. To give the real
server a job history to serve, the fixture starts Moonraker once (it creates its database and
API key), stops it, writes three history entries and the totals into that database in
Moonraker's own schema (``HISTORY`` below: constructed, not recorded), and starts it again.
On that start Moonraker itself turns the entry left "in_progress" into "interrupted", as it
does after a crash. Everything runs in a temporary directory and is stopped at teardown
(the process group). Import ``moonraker_peer_fixture`` into a test module to get the
``moonraker_peer`` fixture; it skips with a reason when the venv is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".cache" / "moonraker-venv"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "moonraker"

_CONFIG = """\
[server]
host: 127.0.0.1
port: {port}

[history]

[announcements]
# No remote announcement feeds: the tests must not reach for the network.
enable_moonlight: False
"""

# Constructed history rows (job_id, user, filename, status, start, end, print_duration,
# total_duration, filament_used mm, metadata): values a Klipper printer would produce.
JAN_1_2026 = 1767225600.0
HISTORY: list[tuple[Any, ...]] = [
    (
        1,
        "_TRUSTED_USER_",
        "parts/benchy.gcode",
        "completed",
        JAN_1_2026,
        JAN_1_2026 + 3612.7,
        3400.4,
        3612.7,
        4123.6,
        {
            "size": 2_345_678,
            "modified": JAN_1_2026 - 600,
            "slicer": "PrusaSlicer",
            "layer_count": 240,
            "object_height": 48.0,
            "estimated_time": 3500,
            "filament_type": "PLA",
            "filament_total": 4200.0,
            "filament_weight_total": 12.5,
        },
    ),
    (
        2,
        "alice",
        "bracket.gcode",
        "cancelled",
        JAN_1_2026 + 7200,
        JAN_1_2026 + 7800.2,
        500.9,
        600.2,
        800.2,
        {"filament_type": "PETG"},
    ),
    (
        3,
        "alice",
        "lid.gcode",
        "in_progress",  # Moonraker marks it "interrupted" when it starts
        JAN_1_2026 + 9000,
        None,
        120.0,
        150.0,
        33.3,
        {},
    ),
]
TOTALS = {
    "total_jobs": 3.0,
    "total_time": 4362.9,
    "total_print_time": 4021.3,
    "total_filament_used": 4957.1,
    "longest_job": 3612.7,
    "longest_print": 3400.4,
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class MoonrakerPeer:
    port: int
    data: Path
    config: Path
    log: Path
    api_key: str
    instance_id: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def get(self, path: str, *, key: bool = True) -> httpx.Response:
        headers = {"X-Api-Key": self.api_key} if key else {}
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=10)

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                # -n: no log file, the output goes to self.log
                [
                    str(VENV / "bin" / "moonraker"),
                    "-d",
                    str(self.data),
                    "-c",
                    str(self.config),
                    "-n",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: teardown stops all of it
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Moonraker exited:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if self.get("/access/info", key=False).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"Moonraker did not answer within 60 s:\n{self.log_tail()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def _database(data: Path) -> Path:
    return data / "database" / "moonraker-sql.db"


def _read_api_key(data: Path) -> str:
    # Moonraker keeps its API key as the password of the "_API_KEY_USER_" row (what its
    # scripts/fetch-apikey.sh reads).
    with contextlib.closing(sqlite3.connect(_database(data))) as db:
        row = db.execute(
            "SELECT password FROM authorized_users WHERE username = '_API_KEY_USER_'"
        ).fetchone()
    if row is None:
        raise RuntimeError("Moonraker created no API key")
    return str(row[0])


def _write_history(data: Path) -> None:
    with contextlib.closing(sqlite3.connect(_database(data))) as db, db:
        for *row, meta in HISTORY:
            db.execute(
                "INSERT INTO job_history (job_id, user, filename, status, start_time, end_time,"
                " print_duration, total_duration, filament_used, metadata, auxiliary_data,"
                " instance_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'default')",
                (*row, json.dumps(meta), "[]"),
            )
        for name, value in TOTALS.items():
            longest = name.startswith("longest")
            db.execute(
                "UPDATE job_totals SET maximum = ?, total = ? "
                "WHERE provider = 'history' AND field = ?",
                (value if longest else None, None if longest else value, name),
            )


@pytest.fixture(scope="session", name="moonraker_peer")
def moonraker_peer_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoonrakerPeer]:
    if not (VENV / "bin" / "moonraker").is_file():
        pytest.skip(f"Moonraker is not installed at {VENV} (run scripts/peers/install-moonraker)")
    tmp = tmp_path_factory.mktemp("moonraker")
    data = tmp / "data"
    # An existing usb.ids keeps Moonraker from downloading one at start.
    (data / "misc").mkdir(parents=True)
    (data / "misc" / "usb.ids").write_text("")
    port = _free_port()
    config = tmp / "moonraker.conf"
    config.write_text(_CONFIG.format(port=port))
    peer = MoonrakerPeer(
        port=port, data=data, config=config, log=tmp / "moonraker.log", api_key="", instance_id=""
    )
    try:
        peer.start()
        peer.api_key = _read_api_key(data)
        peer.instance_id = (data / ".moonraker.uuid").read_text().strip()
        peer.stop()
        _write_history(data)
        peer.start()
        yield peer
    finally:
        peer.stop()
