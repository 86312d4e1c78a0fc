"""The whole path with real processes: simulated printers → collector → portal, on loopback.

Portal, simulator and collector run as the ``fleetmeter`` programs an operator starts, over
real HTTPS (the portal's certificate from a test CA the collector trusts; the printers'
self-signed and pinned on first use). The simulator's ground truth is the reference: the
portal must hold exactly the jobs it printed — none missing, none twice — and the lifetime
counters it reports.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleetmeter.demo import write_collector_config
from fleetmeter.supervise import Program, programs, run_command
from tests.e2e_stack import (
    Portal,
    assert_ledger_equals_truth,
    control,
    prepare_portal,
    random_subnet,
    start_simulator,
)

pytestmark = pytest.mark.slow

SEED = 7
DEVICES = 4
SPEED = 3600.0  # one simulated hour per real second


@dataclass
class Stack:
    portal: Portal
    control_url: str
    config: Path

    def sim(self, method: str, path: str) -> Any:
        return control(self.control_url, method, path)

    def poll_once(self) -> str:
        return run_command(["collector", "poll-once", "--config", str(self.config)], timeout_s=120)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    portal = prepare_portal(tmp_path)
    subnet = random_subnet()
    with programs() as running:
        url = portal.start(running, tmp_path)
        fleet = start_simulator(
            running, tmp_path, devices=DEVICES, seed=SEED, speed=SPEED, subnet=subnet
        )
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
        yield Stack(portal, fleet["control_url"], config)


def _assert_portal_equals_truth(stack: Stack) -> int:
    return assert_ledger_equals_truth(stack.portal, stack.sim("GET", "/truth"))


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
