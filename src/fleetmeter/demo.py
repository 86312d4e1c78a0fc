"""``fleetmeter demo``: portal (SQLite) + simulated fleet + collector, wired together on loopback.

Everything runs as the real programs an operator would start, with a demo CA so that the
collector verifies the portal's TLS certificate exactly as it does in production. State lives
under one data directory, so a second ``fleetmeter demo`` carries on where the first stopped.
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from fleetmeter.signing.certs import certificate_authority, issue_server_certificate
from fleetmeter.supervise import Program, ProgramFailed, programs, run_command

DEMO_RESELLER = "Demo Reseller"
DEMO_CUSTOMER = "Demo Customer"
DEMO_EMAIL = "admin@demo.example"
DEMO_SUBNET = "127.0.1.0/24"


class DemoError(RuntimeError):
    """The demo cannot start; the message says why and what to do."""


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _tls(data_dir: Path) -> tuple[Path, Path, Path]:
    """The demo CA and the portal's certificate, made once and kept."""
    tls = data_dir / "tls"
    ca_path, cert_path, key_path = tls / "ca.pem", tls / "portal.pem", tls / "portal.key"
    if not (ca_path.exists() and cert_path.exists() and key_path.exists()):
        tls.mkdir(parents=True, exist_ok=True)
        ca = certificate_authority("FleetMeter demo CA")
        server = issue_server_certificate(ca, ["127.0.0.1", "localhost"])
        ca_path.write_bytes(ca.cert_pem)
        # The CA key is not needed again: keeping it would only be a liability.
        server.write(cert_path, key_path)
    return ca_path, cert_path, key_path


def _office_morning(now: datetime) -> datetime:
    """07:30 UTC on the latest weekday: the simulated offices are about to start printing."""
    day = now.astimezone(UTC).replace(hour=7, minute=30, second=0, microsecond=0)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def _tenant(data_dir: Path, env: dict[str, str]) -> dict[str, str]:
    """Reseller, customer, admin login, collector token and fleet start, made once and kept.

    Keeping the simulated fleet's start time matters: the simulator is deterministic, so a
    restarted demo replays the same jobs (same UUIDs, same sequence numbers), which the
    collector's cursors and the portal's job keys recognise instead of counting them again.
    """
    path = data_dir / "demo-login.json"
    if path.exists():
        saved: dict[str, str] = json.loads(path.read_text())
        if "start" in saved:
            return saved
    password = secrets.token_urlsafe(12)
    run_command(["portal", "migrate"], env=env)
    run_command(
        [
            "portal",
            "create-tenant",
            "--reseller",
            DEMO_RESELLER,
            "--customer",
            DEMO_CUSTOMER,
            "--admin-email",
            DEMO_EMAIL,
            "--admin-password",
            password,
        ],
        env=env,
    )
    collector = json.loads(
        run_command(
            [
                "portal",
                "add-collector",
                "--reseller",
                DEMO_RESELLER,
                "--customer",
                DEMO_CUSTOMER,
                "--name",
                "demo-site",
            ],
            env=env,
        )
    )
    saved = {
        "email": DEMO_EMAIL,
        "password": password,
        "token": collector["token"],
        "start": _office_morning(datetime.now(UTC)).isoformat(),
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(saved))
    return saved


def write_collector_config(
    path: Path,
    *,
    portal_url: str,
    token: str,
    ca_file: Path,
    data_dir: Path,
    targets: list[str],
    port: int,
    speed: float,
) -> None:
    """The collector's TOML config (format: docs/collector.md)."""
    path.write_text(
        "\n".join(
            [
                "[portal]",
                f"url = {json.dumps(portal_url)}",
                f"token = {json.dumps(token)}",
                f"ca_file = {json.dumps(str(ca_file))}",
                "",
                "[collector]",
                f"data_dir = {json.dumps(str(data_dir))}",
                f"speed = {speed}",
                "",
                "[schedule]",
                "usage_interval_minutes = 180",
                "health_interval_minutes = 5",
                "",
                "[[ranges]]",
                f"targets = {json.dumps(targets)}",
                # Only the drivers the simulated fleet speaks: probing every protocol on
                # every address would only slow discovery down.
                'drivers = ["ledm", "additive"]',
                f"port = {port}",
                "",
            ]
        )
    )
    path.chmod(0o600)


def run_demo(
    *,
    data_dir: Path,
    devices: int = 10,
    additive: int = 2,
    speed: float = 120.0,
    port: int = 8443,
    seed: int = 1,
    reset: bool = False,
) -> int:
    if devices < 1 or devices > 250:
        raise DemoError("--devices must be between 1 and 250")
    if additive < 0 or devices + additive > 250:
        raise DemoError("--additive must be 0 or more, with --devices at most 250 in all")
    if speed <= 0:
        raise DemoError("--speed must be positive")
    data_dir = data_dir.resolve()
    if reset and data_dir.exists():
        shutil.rmtree(data_dir)
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    if port and not _port_free(port):
        print(f"port {port} is taken; using a free port instead", file=sys.stderr)
        port = 0

    env = {
        "FLEETMETER_DATA_DIR": str(data_dir / "portal"),
        "FLEETMETER_DATABASE_URL": f"sqlite:///{data_dir / 'portal' / 'portal.db'}",
    }
    (data_dir / "portal").mkdir(exist_ok=True)
    ca_path, cert_path, key_path = _tls(data_dir)
    try:
        login = _tenant(data_dir, env)
    except ProgramFailed as exc:
        raise DemoError(str(exc)) from exc

    # SIGTERM (e.g. from a service manager) stops the demo like Ctrl-C does.
    def _terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    logs = data_dir / "logs"
    try:
        with programs() as running:
            portal = Program(
                "portal",
                [
                    "portal",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--tls-cert",
                    str(cert_path),
                    "--tls-key",
                    str(key_path),
                ],
                log_path=logs / "portal.log",
                env=env,
            )
            running.append(portal)
            url = portal.wait_ready()["url"]

            sim = Program(
                "simulator",
                [
                    "sim",
                    "--devices",
                    str(devices),
                    "--additive",
                    str(additive),
                    "--seed",
                    str(seed),
                    "--speed",
                    str(speed),
                    "--subnet",
                    DEMO_SUBNET,
                    "--port",
                    "0",
                    "--start",
                    login["start"],
                ],
                log_path=logs / "simulator.log",
            )
            running.append(sim)
            fleet = sim.wait_ready()

            config = data_dir / "collector.toml"
            write_collector_config(
                config,
                portal_url=url,
                token=login["token"],
                ca_file=ca_path,
                data_dir=data_dir / "collector",
                targets=[d["address"] for d in fleet["devices"]],
                port=int(fleet["port"]),
                speed=speed,
            )
            collector = Program(
                "collector",
                ["collector", "run", "--config", str(config)],
                log_path=logs / "collector.log",
            )
            running.append(collector)
            collector.wait_ready()

            first, last = fleet["devices"][0]["address"], fleet["devices"][-1]["address"]
            print(
                "\nFleetMeter demo is running.\n"
                f"  Portal:  {url}\n"
                f"           (TLS from the demo CA {ca_path}:\n"
                "            your browser will ask you to accept it)\n"
                f"  Login:   {login['email']}  /  {login['password']}\n"
                f"  Fleet:   {devices} simulated printers and {additive} industrial 3D printers\n"
                f"           on {first}–{last}, clock ×{speed:g}\n"
                f"  Logs:    {logs}\n"
                "Press Ctrl-C to stop.\n",
                flush=True,
            )
            while True:
                for program in running:
                    if not program.running():
                        raise DemoError(f"{program.name} stopped: {program.log_tail(4)}")
                time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping…", file=sys.stderr)
        return 0
    except ProgramFailed as exc:
        raise DemoError(str(exc)) from exc


__all__ = ["DemoError", "run_demo", "write_collector_config"]
