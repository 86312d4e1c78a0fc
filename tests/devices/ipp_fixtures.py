"""A real IPP Everywhere printer for the ipp driver's tests: CUPS' ``ippeveprinter`` on
127.0.0.1, with the private D-Bus and Avahi it needs for DNS-SD (no mDNS leaves the machine).

Layout of one peer (all in a temporary directory, all stopped at teardown):

- ``dbus-daemon`` on a private system-bus socket (``bus.sock``);
- ``avahi-daemon`` on that bus, bound to no interface. Avahi keeps its pid file in the fixed
  ``/run/avahi-daemon/``; when ``unshare`` works (root), each peer's Avahi runs in a private
  mount namespace with its own directory there, so peers of parallel test runs coexist;
- ``ippeveprinter -n localhost -p PORT`` with a print command (``engine.sh``) that stands in
  for the marking engine: it reads ``PAGES n`` from the document's first line and reports
  job impressions, marker levels, a printer alert and a state reason back to ippeveprinter
  (``ATTR:`` / ``STATE:`` lines on stderr, see ippeveprinter(1)). ``-K`` gives it a key
  directory, so it speaks TLS (ipps) on the same port as well.

Jobs are printed with ``ipptool`` and the ``print-job.test`` that ships with cups-ipp-utils
(with ``job-name`` and the user name added). Import ``ipp_peer_fixture`` into a test module
to get the ``ipp_peer`` fixture; it skips with a reason where the programs are missing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pyipp.enums import IppTag
from pyipp.serializer import construct_attribute

IPPTOOL_TESTS = Path("/usr/share/cups/ipptool")
MAKE = "HP"
MODEL = "DesignJet T830 (fm-test)"
PRINTER_NAME = "FleetMeter Test"
MARKER_NAMES = ("Cyan", "Magenta", "Yellow", "Black")
MARKER_COLORS = ("#00FFFF", "#FF00FF", "#FFFF00", "#000000")
MARKER_LEVELS = (71, 64, 80, 12)
MARKER_LOW_LEVELS = (15, 15, 15, 15)
ALERT = "code=markerSupplyLow;index=4;severity=warning;group=marker;"

_ENGINE = f"""#!/bin/sh
# Stand-in marking engine for ippeveprinter -c: "prints" $1 and reports what a printer would.
pages=$(head -n 1 "$1" | sed -n 's/^PAGES \\([0-9][0-9]*\\).*/\\1/p')
[ -n "$pages" ] || pages=1
cat "$1" > /dev/null
echo "ATTR: job-impressions=$pages job-impressions-completed=$pages" >&2
echo "ATTR: marker-names={",".join(MARKER_NAMES)} marker-colors={",".join(MARKER_COLORS)} \
marker-levels={",".join(map(str, MARKER_LEVELS))} \
marker-low-levels={",".join(map(str, MARKER_LOW_LEVELS))} marker-high-levels=100,100,100,100 \
marker-types=ink-cartridge,ink-cartridge,ink-cartridge,ink-cartridge" >&2
echo "ATTR: printer-alert={ALERT}" >&2
echo "STATE: +marker-supply-low-warning" >&2
exit 0
"""

_BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
"""

_AVAHI_CONF = """[server]
use-ipv4=yes
use-ipv6=no
allow-interfaces=nonexist0
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
disable-publishing=yes
[reflector]
enable-reflector=no
"""

# An ipptool test that passes only when the printer has no pending or processing job.
_NO_ACTIVE_JOBS = """{
  NAME "No active jobs"
  OPERATION Get-Jobs
  GROUP operation-attributes-tag
  ATTR charset attributes-charset utf-8
  ATTR language attributes-natural-language en
  ATTR uri printer-uri $uri
  ATTR keyword which-jobs not-completed
  STATUS successful-ok
  EXPECT !job-id
}
"""


def ipp_response(
    status: int = 0,
    *,
    printer: list[tuple[str, Any, IppTag]] | None = None,
    jobs: list[list[tuple[str, Any, IppTag]]] | None = None,
    request_id: int = 1,
) -> bytes:
    """An IPP response as a device encodes it (RFC 8010 §3.1.1)."""
    body = struct.pack(">bbhi", 2, 0, status, request_id)
    body += b"\x01" + construct_attribute("attributes-charset", "utf-8", IppTag.CHARSET)
    body += construct_attribute("attributes-natural-language", "en", IppTag.LANGUAGE)
    if printer is not None:
        body += b"\x04" + b"".join(construct_attribute(*a) for a in printer)
    for job in jobs or []:
        body += b"\x02" + b"".join(construct_attribute(*a) for a in job)
    return body + b"\x03"


def _program(name: str) -> str | None:
    # avahi-daemon lives in /usr/sbin, which a non-login PATH may lack.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def free_port() -> int:
    """A loopback TCP port nothing listens on now: bind port 0, learn it, close."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _private_run_dir_works() -> bool:
    if os.geteuid() != 0 or not Path("/run/avahi-daemon").is_dir() or not _program("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def _avahi_already_running() -> bool:
    avahi = _program("avahi-daemon")
    assert avahi is not None
    return subprocess.run([avahi, "--check"], capture_output=True, check=False).returncode == 0


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _signal_group(self, sig: signal.Signals) -> None:
        # The group id is the leader's pid (start_new_session); gone already is fine.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def stop(self) -> None:
        """SIGTERM the process group (the process and anything it started), then SIGKILL
        whatever is left of it (an engine.sh mid-job, a daemon that ignores SIGTERM)."""
        if self.popen.poll() is None:
            self._signal_group(signal.SIGTERM)
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.popen.wait(timeout=5)
        self._signal_group(signal.SIGKILL)


@dataclass
class IppPeer:
    """A running ippeveprinter. ``print_job`` prints through ipptool and waits until the
    printer has finished it; it returns the job id."""

    directory: Path
    port: int
    make: str = MAKE
    model: str = MODEL
    processes: list[_Process] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"ipp://127.0.0.1:{self.port}/ipp/print"

    @property
    def product_name(self) -> str:
        # ippeveprinter's printer-make-and-model is "<make> <model>".
        return f"{self.make} {self.model}"

    def _ipptool(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ipptool", "-T", "10", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.directory,
        )

    def print_job(self, name: str, *, pages: int, user: str = "alice") -> int:
        document = self.directory / f"doc-{time.monotonic_ns()}.txt"
        document.write_text(f"PAGES {pages}\n" + "line\n" * pages)
        done = self._ipptool(
            "-tv",
            "-f",
            str(document),
            "-d",
            f"job_name={name}",
            "-d",
            f"job_user={user}",
            self.uri,
            str(self.directory / "print-job.test"),
        )
        match = re.search(r"job-id \(integer\) = (\d+)", done.stdout)
        if done.returncode != 0 or match is None:
            raise AssertionError(f"ipptool print-job failed:\n{done.stdout}\n{done.stderr}")
        self.wait_idle()
        return int(match.group(1))

    def wait_idle(self, timeout: float = 20) -> None:
        """Until no job is pending or processing (the print command has reported)."""
        deadline = time.monotonic() + timeout
        while True:
            if self._ipptool(self.uri, str(self.directory / "no-active-jobs.test")).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError("ippeveprinter did not finish its jobs in time")
            time.sleep(0.1)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


def _start(
    peer: IppPeer, name: str, argv: list[str], *, env: dict[str, str] | None = None
) -> _Process:
    log = peer.directory / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=peer.directory,
            # Own process group: teardown kills it, and everything it started, by group id.
            start_new_session=True,
        )
    process = _Process(name, popen, log)
    peer.processes.append(process)
    return process


def _wait(what: str, ready: Callable[[], bool], process: _Process, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if not process.alive():
            raise RuntimeError(f"{what} exited ({process.popen.returncode}):\n{process.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:g} s:\n{process.tail()}")
        time.sleep(0.05)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_ipp_peer(peer: IppPeer) -> None:
    """Start dbus-daemon, avahi-daemon and ippeveprinter in ``peer.directory`` on
    ``peer.port``; the caller must ``stop()`` the peer, also when this raises (the
    processes started so far are in ``peer.processes``)."""
    directory = peer.directory
    bus = directory / "bus.sock"
    (directory / "bus.conf").write_text(_BUS_CONF.format(socket=bus))
    (directory / "avahi.conf").write_text(_AVAHI_CONF)
    engine = directory / "engine.sh"
    engine.write_text(_ENGINE)
    engine.chmod(0o755)
    shipped = (IPPTOOL_TESTS / "print-job.test").read_text()
    (directory / "print-job.test").write_text(
        shipped.replace(
            "ATTR name requesting-user-name $user",
            "ATTR name requesting-user-name $job_user\n\tATTR name job-name $job_name",
        )
    )
    (directory / "no-active-jobs.test").write_text(_NO_ACTIVE_JOBS)
    (directory / "spool").mkdir()
    (directory / "keys").mkdir()
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={bus}"}

    dbus = _start(
        peer,
        "dbus",
        ["dbus-daemon", f"--config-file={directory / 'bus.conf'}", "--nofork", "--nopidfile"],
    )
    _wait("dbus-daemon", bus.exists, dbus)

    avahi_argv = [
        str(_program("avahi-daemon")),
        "-f",
        str(directory / "avahi.conf"),
        "--no-drop-root",
        "--no-chroot",
        "--no-rlimits",
        "--no-proc-title",
    ]
    if _private_run_dir_works():
        run_dir = directory / "avahi-run"
        run_dir.mkdir()
        avahi_argv = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            'mount --bind "$0" /run/avahi-daemon && exec "$@"',
            str(run_dir),
            *avahi_argv,
        ]
    avahi = _start(peer, "avahi", avahi_argv, env=env)
    _wait(
        "avahi-daemon",
        lambda: "Server startup complete" in avahi.tail(50),
        avahi,
    )

    printer = _start(
        peer,
        "ippeveprinter",
        [
            "ippeveprinter",
            "-v",
            "-n",
            "localhost",
            "-p",
            str(peer.port),
            "-d",
            str(directory / "spool"),
            "-K",
            str(directory / "keys"),
            "-c",
            str(engine),
            "-M",
            peer.make,
            "-m",
            peer.model,
            "-f",
            "text/plain",
            PRINTER_NAME,
        ],
        env=env,
    )
    _wait("ippeveprinter", lambda: _answers(peer.port), printer)


def _skip_reason() -> str | None:
    missing = [
        name
        for name in ("ippeveprinter", "ipptool", "avahi-daemon", "dbus-daemon")
        if _program(name) is None
    ]
    if missing:
        return (
            f"IPP peer not installed ({', '.join(missing)} missing): "
            "run scripts/peers/install-ipp as root"
        )
    if not (IPPTOOL_TESTS / "print-job.test").is_file():
        return f"{IPPTOOL_TESTS}/print-job.test missing (cups-ipp-utils)"
    if os.geteuid() != 0:
        return "the IPP peer's avahi-daemon needs root (its pid file is in /run/avahi-daemon)"
    if not _private_run_dir_works() and _avahi_already_running():
        return "another avahi-daemon is running and no private mount namespace is available"
    return None


@pytest.fixture(scope="module", name="ipp_peer")
def ipp_peer_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IppPeer]:
    """A running ippeveprinter for the test module (import this name into the module)."""
    reason = _skip_reason()
    if reason is not None:
        pytest.skip(reason)
    peer = IppPeer(directory=tmp_path_factory.mktemp("ipp-peer"), port=free_port())
    try:
        start_ipp_peer(peer)
        yield peer
    finally:
        peer.stop()
