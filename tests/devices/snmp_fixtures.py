"""SNMP test helpers: a reader for snmpsim ``.snmprec`` recordings (for the pure parser tests)
and a real ``snmpsim-command-responder`` replaying them on 127.0.0.1 (for the driver tests).

The simulator comes from ``scripts/peers/install-snmpsim`` (``.cache/snmpsim-venv``); the
recordings from ``../shared/fixtures/snmp``. Tests skip with the reason when either is missing.
Test modules import the fixtures they use from here (``snmpsim_fixture``, named
``snmpsim``) (``tests/devices/conftest.py`` is shared).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetmeter.devices.errors import DeviceError
from fleetmeter.devices.snmp import SnmpClient, SnmpCommunity
from tests.devices.conftest import shared_fixtures

REPO = Path(__file__).resolve().parents[2]
SNMPSIM = REPO / ".cache" / "snmpsim-venv" / "bin" / "snmpsim-command-responder"

JETDIRECT = "jetdirect_m130nw"
RICOH = "ricoh_mpc3002"

# The SNMPv3 user the simulator is started with (test-only secrets).
V3_USER = "fleetmeter"
V3_AUTH_KEY = "fleetmeter-auth-key"
V3_PRIV_KEY = "fleetmeter-priv-key"

# snmprec type tags (snmpsim's "grammar"): the ASN.1 tag numbers of the SNMP types.


def snmp_recordings() -> Path:
    """``../shared/fixtures/snmp`` with its ``.snmprec`` files, or skip."""
    path = shared_fixtures() / "snmp"
    if not any(path.glob("*.snmprec")):
        pytest.skip(f"no .snmprec recordings in {path}")
    return path


def recording(name: str) -> Path:
    path = snmp_recordings() / f"{name}.snmprec"
    if not path.is_file():
        pytest.skip(f"recording {path} not found")
    return path


def snmprec_lines(path: Path, prefix: str) -> dict[str, str]:
    """Raw ``OID → value text`` of the lines under ``prefix``, straight from the file."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(prefix + "."):
            oid, _tag, value = line.split("|", 2)
            out[oid] = value
    return out


# --------------------------------------------------------------------------- the simulator


@dataclass
class SnmpSimulator:
    """A running snmpsim: communities (and v3 context names) are the recordings' stems."""

    host: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def _answers(port: int) -> bool:
    client = SnmpClient("127.0.0.1", SnmpCommunity(JETDIRECT), port=port, timeout_s=0.3, retries=0)
    try:
        async with client:
            return bool(await client.get(["1.3.6.1.2.1.1.1.0"]))
    except DeviceError:
        return False


def _log_tail(log: Path) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="module", name="snmpsim")
def snmpsim_fixture() -> Iterator[SnmpSimulator]:
    """snmpsim replaying the shared recordings on 127.0.0.1:<free port>, stopped at teardown."""
    if not os.access(SNMPSIM, os.X_OK):
        pytest.skip(f"snmpsim not installed at {SNMPSIM} (run scripts/peers/install-snmpsim)")
    source = snmp_recordings()
    # Not pytest's tmp_path: its parent (/tmp/pytest-of-<user>) is private, and snmpsim
    # drops root to user nobody, who must read the recordings and write the index cache.
    base = Path(tempfile.mkdtemp(prefix="fleetmeter-snmpsim-"))
    data, cache = base / "data", base / "cache"
    data.mkdir()
    cache.mkdir()
    for path in source.glob("*.snmprec"):
        shutil.copyfile(path, data / path.name)
        (data / path.name).chmod(0o644)
    base.chmod(0o755)
    data.chmod(0o755)
    cache.chmod(0o777)
    log = base / "snmpsim.log"
    port = _free_udp_port()
    command = [
        str(SNMPSIM),
        f"--data-dir={data}",
        f"--cache-dir={cache}",
        f"--agent-udpv4-endpoint=127.0.0.1:{port}",
        f"--v3-user={V3_USER}",
        f"--v3-auth-key={V3_AUTH_KEY}",
        "--v3-auth-proto=SHA",
        f"--v3-priv-key={V3_PRIV_KEY}",
        "--v3-priv-proto=AES",
    ]
    if os.geteuid() == 0:
        command += ["--process-user=nobody", "--process-group=nogroup"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=base)
    try:
        deadline = time.monotonic() + 30
        while not asyncio.run(_answers(port)):
            if process.poll() is not None:
                pytest.fail(f"snmpsim exited with {process.returncode}:\n{_log_tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"snmpsim did not answer within 30 s:\n{_log_tail(log)}")
            time.sleep(0.2)
        yield SnmpSimulator(host="127.0.0.1", port=port, process=process, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        with contextlib.suppress(OSError):
            shutil.rmtree(base)
