"""The whole path with real processes: simulated printers → collector → portal, on loopback.

Portal, simulator and collector run as the ``fleetmeter`` programs an operator starts, over
real HTTPS (the portal's certificate from a test CA the collector trusts; the printers'
self-signed and pinned on first use). The simulator's ground truth is the reference: the
portal must hold exactly the jobs it printed — none missing, none twice — and the lifetime
counters it reports.
"""

from __future__ import annotations

import json
import random
import ssl
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleetmeter.demo import write_collector_config
from fleetmeter.signing.certs import certificate_authority, issue_server_certificate
from fleetmeter.supervise import Program, programs, run_command

pytestmark = pytest.mark.slow

SEED = 7
DEVICES = 4
SPEED = 3600.0  # one simulated hour per real second
START = "2026-03-02T07:30:00+00:00"  # a Monday morning: the office starts printing


@dataclass
class Stack:
    portal_url: str
    ca_file: Path
    control_url: str
    config: Path
    email: str
    password: str
    tmp: Path

    def sim(self, method: str, path: str) -> Any:
        response = httpx.request(method, self.control_url + path, timeout=10)
        response.raise_for_status()
        return response.json()

    def portal(self) -> httpx.Client:
        """A client logged in as the reseller's admin (HTTP Basic, as a script would)."""
        return httpx.Client(
            base_url=self.portal_url,
            verify=ssl.create_default_context(cafile=str(self.ca_file)),
            auth=(self.email, self.password),
            timeout=10,
        )

    def poll_once(self) -> str:
        return run_command(["collector", "poll-once", "--config", str(self.config)], timeout_s=120)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    env = {
        "FLEETMETER_DATA_DIR": str(tmp_path / "portal"),
        "FLEETMETER_DATABASE_URL": f"sqlite:///{tmp_path / 'portal.db'}",
    }
    (tmp_path / "portal").mkdir()
    ca = certificate_authority("e2e CA")
    server = issue_server_certificate(ca, ["127.0.0.1"])
    ca_file, cert, key = tmp_path / "ca.pem", tmp_path / "portal.pem", tmp_path / "portal.key"
    ca_file.write_bytes(ca.cert_pem)
    server.write(cert, key)
    password = "e2e-password-1234"
    run_command(["portal", "migrate"], env=env)
    run_command(
        [
            "portal",
            "create-tenant",
            "--reseller",
            "R1",
            "--customer",
            "C1",
            "--admin-email",
            "ops@r1.example",
            "--admin-password",
            password,
        ],
        env=env,
    )
    token = json.loads(
        run_command(["portal", "add-collector", "--reseller", "R1", "--customer", "C1"], env=env)
    )["token"]
    # A random /28 in 127/8 so that concurrent runs on one machine do not collide.
    subnet = f"127.{random.randint(2, 254)}.{random.randint(0, 255)}.0/28"
    with programs() as running:
        portal = Program(
            "portal",
            [
                "portal",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--tls-cert",
                str(cert),
                "--tls-key",
                str(key),
            ],
            log_path=tmp_path / "portal.log",
            env=env,
        )
        running.append(portal)
        url = portal.wait_ready()["url"]
        sim = Program(
            "simulator",
            [
                "sim",
                "--devices",
                str(DEVICES),
                "--seed",
                str(SEED),
                "--speed",
                str(SPEED),
                "--subnet",
                subnet,
                "--port",
                "0",
                "--start",
                START,
            ],
            log_path=tmp_path / "sim.log",
        )
        running.append(sim)
        fleet = sim.wait_ready()
        config = tmp_path / "collector.toml"
        write_collector_config(
            config,
            portal_url=url,
            token=token,
            ca_file=ca_file,
            data_dir=tmp_path / "collector",
            targets=[subnet],
            port=int(fleet["port"]),
            speed=1.0,
        )
        yield Stack(
            url, ca_file, fleet["control_url"], config, "ops@r1.example", password, tmp_path
        )


def _portal_state(stack: Stack) -> tuple[dict[str, list[str]], dict[str, dict[str, int]]]:
    """Job UUIDs (with repeats, if any) and latest counters per device serial, via the JSON API."""
    jobs: dict[str, list[str]] = {}
    counters: dict[str, dict[str, int]] = {}
    with stack.portal() as client:
        devices = client.get("/api/v1/devices").raise_for_status().json()
        for device in devices["items"]:
            serial = device["serial_number"]
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
            jobs[serial] = uuids
            counters[serial] = (
                client.get(f"/api/v1/devices/{device['id']}/counters")
                .raise_for_status()
                .json()["meters"]
            )
    return jobs, counters


def _assert_portal_equals_truth(stack: Stack) -> int:
    truth = {"devices": stack.sim("GET", "/truth")}
    jobs, counters = _portal_state(stack)
    assert sorted(jobs) == sorted(d["serial_number"] for d in truth["devices"])
    total = 0
    for device in truth["devices"]:
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


def test_portal_holds_exactly_what_the_fleet_printed(stack: Stack) -> None:
    time.sleep(3)  # about three simulated hours of office printing
    stack.sim("POST", "/pause")
    out = stack.poll_once()
    assert f"{DEVICES} device" in out, out
    first = _assert_portal_equals_truth(stack)
    assert first > 0, "the fleet printed nothing: the test would prove nothing"

    # More printing, then a second collection: only the new jobs arrive, none twice.
    stack.sim("POST", "/resume")
    time.sleep(2)
    stack.sim("POST", "/pause")
    stack.poll_once()
    second = _assert_portal_equals_truth(stack)
    assert second > first

    # Nothing new printed: polling again changes nothing in the ledger.
    stack.poll_once()
    assert _assert_portal_equals_truth(stack) == second


def test_long_running_collector_keeps_the_ledger_exact(stack: Stack, tmp_path: Path) -> None:
    # Collector clock ×1200: usage every 9 s, health every 0.25 s of real time.
    config = stack.config.read_text().replace("speed = 1.0", "speed = 1200.0")
    stack.config.write_text(config)
    with programs() as running:
        collector = Program(
            "collector",
            ["collector", "run", "--config", str(stack.config)],
            log_path=tmp_path / "collector.log",
        )
        running.append(collector)
        collector.wait_ready()
        time.sleep(4)
        stack.sim("POST", "/pause")
        # The next usage poll (every 180 simulated minutes = 9 s here) and upload settle the
        # ledger; wait for it rather than guess.
        deadline = time.monotonic() + 30
        while True:
            try:
                total = _assert_portal_equals_truth(stack)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        assert total > 0
        assert collector.running(), collector.log_tail()
