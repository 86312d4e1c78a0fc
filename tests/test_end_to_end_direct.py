"""A mixed fleet with real processes: printers behind a collector and printers connected directly.

The portal runs as ``fleetmeter portal serve`` over HTTPS (certificate from a test CA); one
simulated fleet is read by ``fleetmeter collector poll-once``, another uploads by itself
(``sim-direct``, each request signed with a secret provisioned by ``fleetmeter portal
add-device``). The portal's ledger must equal both simulators' ground truth: every job
exactly once, the latest counters equal to the printers'.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleetmeter.demo import write_collector_config
from fleetmeter.simulator.direct import fleet_serials
from fleetmeter.supervise import Program, programs, run_command
from tests.e2e_stack import (
    START,
    TENANT,
    Portal,
    assert_ledger_equals_truth,
    control,
    prepare_portal,
    random_subnet,
    start_simulator,
)

pytestmark = pytest.mark.slow

COLLECTOR_SEED, DIRECT_SEED = 7, 8
DEVICES = 3
SPEED = 3600.0


@dataclass
class Mixed:
    portal: Portal
    collector_control: str
    direct_control: str
    config: Path

    def control(self, base: str, method: str, path: str) -> Any:
        return control(base, method, path)


@pytest.fixture
def mixed(tmp_path: Path) -> Iterator[Mixed]:
    portal = prepare_portal(tmp_path)
    # Provision the direct-connected printers before they run: serials from the seed.
    credentials = []
    for serial in fleet_serials(seed=DIRECT_SEED, devices=DEVICES):
        add = ["portal", "add-device", *TENANT, "--serial", serial]
        out = json.loads(run_command(add, env=portal.env))
        credentials.append(
            {"serial_number": serial, "key_id": out["key_id"], "secret": out["secret"]}
        )
    credentials_file = tmp_path / "device-credentials.json"
    credentials_file.touch(mode=0o600)
    credentials_file.write_text(json.dumps(credentials))

    subnet = random_subnet()
    with programs() as running:
        url = portal.start(running, tmp_path)
        fleet = start_simulator(
            running, tmp_path, devices=DEVICES, seed=COLLECTOR_SEED, speed=SPEED, subnet=subnet
        )
        direct = Program(
            "sim-direct",
            [
                *("sim-direct", "--portal", url, "--ca-file", str(portal.ca_file)),
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
            token=portal.token,
            ca_file=portal.ca_file,
            data_dir=tmp_path / "collector",
            targets=[subnet],
            port=int(fleet["port"]),
            speed=1.0,
        )
        yield Mixed(portal, fleet["control_url"], direct_ready["control_url"], config)
        assert direct.running(), direct.log_tail()


def _assert_ledger_equals_truth(mixed: Mixed) -> int:
    truth = mixed.control(mixed.collector_control, "GET", "/truth") + mixed.control(
        mixed.direct_control, "GET", "/truth"
    )
    return assert_ledger_equals_truth(mixed.portal, truth)


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
