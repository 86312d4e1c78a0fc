"""A mixed fleet with real processes: printers behind a collector and printers connected directly.

The portal runs as ``fleetmeter portal serve`` over HTTPS (certificate from a test CA); one
simulated fleet is read by ``fleetmeter collector poll-once``, another uploads by itself
(``sim-direct``, each request signed with a secret provisioned by ``fleetmeter portal
add-device``). The portal's ledger must equal both simulators' ground truth: every job
exactly once, the latest counters equal to the printers'.
"""

from __future__ import annotations

import json
import os
import random
import ssl
import subprocess
import sys
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

COLLECTOR_SEED, DIRECT_SEED = 7, 8
DEVICES = 3
SPEED = 3600.0
START = "2026-03-02T07:30:00+00:00"
PASSWORD = "e2e-password-1234"


def _sim_direct_registered() -> bool:
    """Whether ``fleetmeter sim-direct`` exists yet (the lead registers it in fleetmeter.cli)."""
    from fleetmeter.cli import build_parser

    try:
        build_parser().parse_args(["sim-direct", "--list-serials", "--devices", "1"])
    except SystemExit:
        return False
    return True


class _ModuleProgram(Program):
    """``python -m fleetmeter.simulator.direct_cli`` under the same supervision as Program."""

    def __init__(self, name: str, args: list[str], *, log_path: Path) -> None:
        self.name = name
        self.args = [sys.executable, "-m", "fleetmeter.simulator.direct_cli", *args]
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ),
            start_new_session=True,
        )
        self.ready = {}


def _sim_direct(args: list[str], *, log_path: Path) -> Program:
    if _sim_direct_registered():
        return Program("sim-direct", ["sim-direct", *args], log_path=log_path)
    return _ModuleProgram("sim-direct", args, log_path=log_path)


@dataclass
class Mixed:
    portal_url: str
    ca_file: Path
    collector_control: str
    direct_control: str
    config: Path

    def control(self, base: str, method: str, path: str) -> Any:
        response = httpx.request(method, base + path, timeout=60)
        response.raise_for_status()
        return response.json()

    def portal(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.portal_url,
            verify=ssl.create_default_context(cafile=str(self.ca_file)),
            auth=("ops@r1.example", PASSWORD),
            timeout=10,
        )


@pytest.fixture
def mixed(tmp_path: Path) -> Iterator[Mixed]:
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
    run_command(["portal", "migrate"], env=env)
    tenant = ["--reseller", "R1", "--customer", "C1"]
    run_command(
        [
            "portal",
            "create-tenant",
            *tenant,
            "--admin-email",
            "ops@r1.example",
            "--admin-password",
            PASSWORD,
        ],
        env=env,
    )
    token = json.loads(run_command(["portal", "add-collector", *tenant], env=env))["token"]

    # Provision the direct-connected printers before they run: serials from the seed.
    from fleetmeter.simulator.direct import fleet_serials

    credentials = []
    for serial in fleet_serials(seed=DIRECT_SEED, devices=DEVICES):
        add = ["portal", "add-device", *tenant, "--serial", serial]
        out = json.loads(run_command(add, env=env))
        credentials.append(
            {"serial_number": serial, "key_id": out["key_id"], "secret": out["secret"]}
        )
    credentials_file = tmp_path / "device-credentials.json"
    credentials_file.touch(mode=0o600)
    credentials_file.write_text(json.dumps(credentials))

    subnet = f"127.{random.randint(2, 254)}.{random.randint(0, 255)}.0/28"
    with programs() as running:
        portal = Program(
            "portal",
            [
                *("portal", "serve", "--host", "127.0.0.1", "--port", "0"),
                *("--tls-cert", str(cert), "--tls-key", str(key)),
            ],
            log_path=tmp_path / "portal.log",
            env=env,
        )
        running.append(portal)
        url = portal.wait_ready()["url"]
        sim = Program(
            "simulator",
            [
                *("sim", "--devices", str(DEVICES), "--seed", str(COLLECTOR_SEED)),
                *("--speed", str(SPEED), "--subnet", subnet, "--port", "0", "--start", START),
            ],
            log_path=tmp_path / "sim.log",
        )
        running.append(sim)
        fleet = sim.wait_ready()
        direct = _sim_direct(
            [
                *("--portal", url, "--ca-file", str(ca_file)),
                *("--credentials", str(credentials_file), "--seed", str(DIRECT_SEED)),
                *("--speed", str(SPEED), "--start", START, "--retry-max", "2"),
            ],
            log_path=tmp_path / "sim-direct.log",
        )
        running.append(direct)
        direct_ready = direct.wait_ready()
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
        yield Mixed(url, ca_file, fleet["control_url"], direct_ready["control_url"], config)
        assert direct.running(), direct.log_tail()


def _portal_state(mixed: Mixed) -> tuple[dict[str, list[str]], dict[str, dict[str, int]]]:
    jobs: dict[str, list[str]] = {}
    counters: dict[str, dict[str, int]] = {}
    with mixed.portal() as client:
        for device in client.get("/api/v1/devices").raise_for_status().json()["items"]:
            serial, uuids, offset = device["serial_number"], [], 0
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


def _assert_ledger_equals_truth(mixed: Mixed) -> int:
    truth = mixed.control(mixed.collector_control, "GET", "/truth") + mixed.control(
        mixed.direct_control, "GET", "/truth"
    )
    jobs, counters = _portal_state(mixed)
    assert sorted(jobs) == sorted(d["serial_number"] for d in truth)
    total = 0
    for device in truth:
        serial = device["serial_number"]
        twice = [u for u, n in Counter(jobs[serial]).items() if n > 1]
        assert not twice, f"{serial}: jobs stored twice: {twice[:5]}"
        expected = {j["job_uuid"] for j in device["jobs"]}
        assert set(jobs[serial]) == expected, f"{serial}: jobs differ from the printer's"
        assert counters[serial] == device["meters"], f"{serial}: lifetime counters differ"
        total += len(expected)
    return total


def _settle(mixed: Mixed) -> None:
    """Freeze both fleets, then collect: the collector polls, direct devices upload now."""
    mixed.control(mixed.collector_control, "POST", "/pause")
    mixed.control(mixed.direct_control, "POST", "/pause")
    out = run_command(["collector", "poll-once", "--config", str(mixed.config)], timeout_s=120)
    assert f"{DEVICES} device" in out, out
    mixed.control(mixed.direct_control, "POST", "/flush")


def test_mixed_fleet_ledger_equals_ground_truth(mixed: Mixed) -> None:
    time.sleep(3)  # about three simulated hours of office printing on both fleets
    _settle(mixed)
    first = _assert_ledger_equals_truth(mixed)
    assert first > 0, "the fleets printed nothing: the test would prove nothing"
    uploads = mixed.control(mixed.direct_control, "GET", "/uploads")
    assert {u["status"] for u in uploads} == {"sent"}, uploads
    assert "boot" in {u["trigger"] for u in uploads}

    # More printing: the direct devices upload by their own triggers meanwhile.
    mixed.control(mixed.collector_control, "POST", "/resume")
    mixed.control(mixed.direct_control, "POST", "/resume")
    time.sleep(3)
    _settle(mixed)
    second = _assert_ledger_equals_truth(mixed)
    assert second > first
    triggers = {u["trigger"] for u in mixed.control(mixed.direct_control, "GET", "/uploads")}
    assert triggers & {"interval", "jobs", "pages", "alert"}, triggers
