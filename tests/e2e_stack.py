"""Shared pieces of the end-to-end tests: a portal with one tenant over test-CA TLS, a
simulated fleet on a random loopback /28, and the ledger compared with ground truth.

Everything runs as the real ``fleetmeter`` programs (``fleetmeter.supervise``).
"""

from __future__ import annotations

import json
import random
import ssl
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from fleetmeter.signing.certs import certificate_authority, issue_server_certificate
from fleetmeter.supervise import Program, run_command

EMAIL = "ops@r1.example"
PASSWORD = "e2e-password-1234"
TENANT = ["--reseller", "R1", "--customer", "C1"]
START = "2026-03-02T07:30:00+00:00"  # a Monday morning: the office starts printing


@dataclass
class Portal:
    """A migrated portal database with reseller R1 / customer C1, its admin and a collector."""

    env: dict[str, str]
    ca_file: Path
    cert: Path
    key: Path
    token: str
    url: str = ""
    program: Program | None = None

    def start(
        self,
        running: list[Program],
        log_dir: Path,
        *,
        port: int = 0,
        tls: bool = True,
        name: str = "portal",
    ) -> str:
        """Serve the portal (``port`` 0: any free one); ``tls=False`` serves plain HTTP, for
        tests whose fault proxy must see the requests (``tests/faultproxy.py``). ``name``
        names the log file (several portal processes may serve one database)."""
        self.program = Program(
            name,
            [
                *("portal", "serve", "--host", "127.0.0.1", "--port", str(port)),
                *(("--tls-cert", str(self.cert), "--tls-key", str(self.key)) if tls else ()),
            ],
            log_path=log_dir / f"{name}.log",
            env=self.env,
        )
        running.append(self.program)
        self.url = self.program.wait_ready()["url"]
        return self.url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def client(self) -> httpx.Client:
        """Logged in as the reseller's admin (HTTP Basic, as a script would)."""
        return httpx.Client(
            base_url=self.url,
            verify=ssl.create_default_context(cafile=str(self.ca_file)),
            auth=(EMAIL, PASSWORD),
            timeout=10,
        )


def prepare_portal(tmp_path: Path, *, database_url: str | None = None) -> Portal:
    """``database_url``: an empty database to migrate (default: SQLite in ``tmp_path``)."""
    env = {
        "FLEETMETER_DATA_DIR": str(tmp_path / "portal"),
        "FLEETMETER_DATABASE_URL": database_url or f"sqlite:///{tmp_path / 'portal.db'}",
    }
    (tmp_path / "portal").mkdir()
    ca = certificate_authority("e2e CA")
    ca_file, cert, key = tmp_path / "ca.pem", tmp_path / "portal.pem", tmp_path / "portal.key"
    ca_file.write_bytes(ca.cert_pem)
    issue_server_certificate(ca, ["127.0.0.1"]).write(cert, key)
    run_command(["portal", "migrate"], env=env)
    run_command(
        ["portal", "create-tenant", *TENANT, "--admin-email", EMAIL, "--admin-password", PASSWORD],
        env=env,
    )
    token = json.loads(run_command(["portal", "add-collector", *TENANT], env=env))["token"]
    return Portal(env, ca_file, cert, key, token)


def random_subnet() -> str:
    """A random /28 in 127/8, so that concurrent runs on one machine do not collide."""
    return f"127.{random.randint(2, 254)}.{random.randint(0, 255)}.0/28"


def start_simulator(
    running: list[Program], log_dir: Path, *, devices: int, seed: int, speed: float, subnet: str
) -> dict[str, Any]:
    sim = Program(
        "simulator",
        [
            *("sim", "--devices", str(devices), "--seed", str(seed), "--speed", str(speed)),
            *("--subnet", subnet, "--port", "0", "--start", START),
        ],
        log_path=log_dir / "sim.log",
    )
    running.append(sim)
    return sim.wait_ready()


def control(base: str, method: str, path: str) -> Any:
    response = httpx.request(method, base + path, timeout=60)
    response.raise_for_status()
    return response.json()


def portal_ledger(portal: Portal) -> tuple[dict[str, list[str]], dict[str, dict[str, int]]]:
    """Job UUIDs (with repeats, if any) and latest counters per device serial, via the JSON API."""
    jobs: dict[str, list[str]] = {}
    counters: dict[str, dict[str, int]] = {}
    with portal.client() as client:
        for device in client.get("/api/v1/devices").raise_for_status().json()["items"]:
            uuids: list[str] = []
            offset = 0
            while True:
                page = (
                    client.get(
                        f"/api/v1/devices/{device['id']}/jobs",
                        params={"limit": 500, "offset": offset},
                    )
                    .raise_for_status()
                    .json()
                )
                uuids += [job["job_uuid"] for job in page["items"]]
                if len(page["items"]) < 500:
                    break
                offset += 500
            jobs[device["serial_number"]] = uuids
            counters[device["serial_number"]] = (
                client.get(f"/api/v1/devices/{device['id']}/counters")
                .raise_for_status()
                .json()["meters"]
            )
    return jobs, counters


def assert_ledger_equals_truth(portal: Portal, truth: list[dict[str, Any]]) -> int:
    """The portal holds exactly the printers' jobs (none missing, none twice, none invented)
    and their latest lifetime counters. Returns the number of jobs."""
    jobs, counters = portal_ledger(portal)
    assert sorted(jobs) == sorted(d["serial_number"] for d in truth)
    total = 0
    for device in truth:
        serial = device["serial_number"]
        stored = jobs[serial]
        twice = [u for u, n in Counter(stored).items() if n > 1]
        assert not twice, f"{serial}: jobs stored twice: {twice[:5]}"
        expected = {j["job_uuid"] for j in device["jobs"]}
        missing = expected - set(stored)
        extra = set(stored) - expected
        assert not missing, f"{serial}: {len(missing)} jobs missing from the portal"
        assert not extra, f"{serial}: {len(extra)} jobs the printer never printed"
        assert counters[serial] == device["meters"], f"{serial}: lifetime counters differ"
        total += len(expected)
    return total


def write_collector_config(
    path: Path,
    *,
    portal_url: str,
    token: str,
    data_dir: Path,
    targets: list[str],
    port: int,
    speed: float,
    ca_file: Path | None = None,
    usage_interval_minutes: float = 180,
    health_interval_minutes: float = 5,
    timeout_seconds: float | None = None,
    max_backoff_seconds: float | None = None,
) -> None:
    """A collector config with the knobs the fault tests and benchmarks turn (the demo's
    ``fleetmeter.demo.write_collector_config`` has none). A plain ``http://`` portal URL (a
    loopback fault proxy) sets ``allow_insecure_http``."""
    portal = [
        "[portal]",
        f"url = {json.dumps(portal_url)}",
        f"token = {json.dumps(token)}",
    ]
    if ca_file is not None:
        portal.append(f"ca_file = {json.dumps(str(ca_file))}")
    if portal_url.startswith("http://"):
        portal.append("allow_insecure_http = true")
    if timeout_seconds is not None:
        portal.append(f"timeout_seconds = {timeout_seconds}")
    upload = ["[upload]"]
    if max_backoff_seconds is not None:
        upload.append(f"max_backoff_seconds = {max_backoff_seconds}")
    path.write_text(
        "\n".join(
            [
                *portal,
                "",
                "[collector]",
                f"data_dir = {json.dumps(str(data_dir))}",
                f"speed = {speed}",
                "",
                "[schedule]",
                f"usage_interval_minutes = {usage_interval_minutes}",
                f"health_interval_minutes = {health_interval_minutes}",
                "",
                *upload,
                "",
                "[[ranges]]",
                f"targets = {json.dumps(targets)}",
                'drivers = ["ledm"]',
                f"port = {port}",
                "",
            ]
        )
    )
    path.chmod(0o600)
