"""The ``additive`` driver over the network against the simulator's powder-bed printers
(FleetMeter's own API, over HTTPS with a self-signed, pinned certificate): identity, what the
report holds against the simulator's ground truth, the job cursor over history pages, and
discovery beside large-format printers with every driver enabled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from fleetmeter.collector.config import ProbeTarget
from fleetmeter.collector.discovery import discover
from fleetmeter.devices import registry
from fleetmeter.devices.additive import AdditiveDriver
from fleetmeter.devices.additive import driver as driver_module
from fleetmeter.devices.base import PinStore, ReadOptions, Target
from fleetmeter.devices.errors import CertificateMismatch, DeviceError
from fleetmeter.simulator.server import Simulator, SimulatorConfig
from fleetmeter.wire import DeviceReport, EngineState, JobStatus, ReportKind

pytestmark = pytest.mark.anyio

START = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)
SUBNET = "127.0.76.0/28"  # apart from the other simulator tests' subnets


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


SPEED = 200_000.0  # 2.3 simulated days per real second


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # Two large-format printers (127.0.76.1-2) and two additive ones (127.0.76.3-4), paused
    # after about three simulated days: ground truth stands still while the tests read.
    config = SimulatorConfig(
        devices=2, additive=2, seed=3, speed=SPEED, subnet=SUBNET, start=START, build_buffer=50
    )
    async with Simulator(config) as running:
        await asyncio.sleep(1.3)
        running.pause()
        yield running


def _target(sim: Simulator, address: str) -> Target:
    return Target(host=address, port=sim.port)


async def _truth(sim: Simulator) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=sim.control_url, timeout=10) as control:
        truth = (await control.get("/truth")).json()
    return {t["serial_number"]: t for t in truth}


def test_driver_is_registered_after_ledm() -> None:
    driver = registry.get("additive")
    assert isinstance(driver, AdditiveDriver)
    assert driver.id == "additive" and driver.default_port == 443
    assert registry.BUILTIN.index("additive") == registry.BUILTIN.index("ledm") + 1
    with pytest.raises(ValueError, match="already registered"):
        registry.register(AdditiveDriver())


async def test_identify_reads_additive_printers_only(sim: Simulator) -> None:
    pins = PinStore()
    driver = AdditiveDriver()
    for cell in sim.additive_endpoints:
        identity = await driver.identify(_target(sim, cell.address), pins)
        assert identity is not None
        assert identity.serial_number == cell.serial_number
        assert identity.product_name == cell.printer.model.name
        assert (identity.driver, identity.device_class) == ("additive", "printer3d")
    for lfp in sim.endpoints:  # a large-format printer answers 404 to this API
        assert await driver.identify(_target(sim, lfp.address), pins) is None


async def test_no_other_driver_claims_an_additive_printer(sim: Simulator) -> None:
    cell = sim.additive_endpoints[0]
    for other in registry.all_drivers():
        if other.id == "additive":
            continue
        try:
            identity = await other.identify(_target(sim, cell.address), PinStore(), timeout_s=2)
        except DeviceError:
            continue  # answered with an error or nothing: not a claim
        assert identity is None, f"{other.id} claims {cell.address}"


async def test_discovery_with_every_driver(sim: Simulator) -> None:
    drivers = {driver.id: driver for driver in registry.all_drivers()}
    targets = [
        ProbeTarget(target=Target(host=e.address, port=sim.port), drivers=None)
        for e in sim.all_endpoints
    ]
    result = await discover(targets, drivers, PinStore(), timeout_s=2)
    found = {d.address: (d.driver, d.identity.serial_number) for d in result.found}
    assert found == {
        **{e.address: ("ledm", e.serial_number) for e in sim.endpoints},
        **{e.address: ("additive", e.serial_number) for e in sim.additive_endpoints},
    }


async def test_usage_report_equals_ground_truth(sim: Simulator) -> None:
    truth = await _truth(sim)
    for cell in sim.additive_endpoints:
        report = await AdditiveDriver().read(
            _target(sim, cell.address), PinStore(), ReadOptions(kind=ReportKind.USAGE)
        )
        expected = truth[cell.serial_number]
        assert report.device.serial_number == cell.serial_number
        assert report.usage is not None and report.usage.meters() == expected["meters"]
        _assert_jobs_are_the_builds(report, expected["jobs"])
        assert report.additive is not None
        printer = cell.printer
        assert report.additive.state is EngineState(printer.engine_state())
        assert [u.serial_number for u in report.additive.build_units] == [
            u.serial_number for u in printer.units
        ]
        assert report.additive.stations[0].serial_number == printer.station.serial_number


def _assert_jobs_are_the_builds(report: DeviceReport, builds: list[dict[str, Any]]) -> None:
    assert len(builds) > 5, "too few builds to prove anything"
    assert [str(j.job_uuid) for j in report.jobs] == [b["job_uuid"] for b in builds]
    for job, build in zip(report.jobs, builds, strict=True):
        extra = job.model_extra or {}
        assert job.sequence_number == build["sequence_number"]
        assert job.status is JobStatus(build["status"])
        assert (job.print_time_s, job.duration_s) == (build["print_time_s"], build["duration_s"])
        assert job.completed_at == datetime.fromisoformat(build["completed_at"])
        assert extra["material"] == build["material"]
        assert extra["material_used_g"] == build["material_used_g"]
        assert extra["agent_used_ul"] == build["agent_used_ul"]
        assert extra["build_volume_mm3"] == build["build_volume_mm3"]


async def test_the_cursor_pages_through_the_history_without_loss_or_repeat(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(driver_module, "HISTORY_PAGE", 3)  # many pages from a short history
    cell = sim.additive_endpoints[0]
    target = _target(sim, cell.address)
    builds = (await _truth(sim))[cell.serial_number]["jobs"]
    sequences = [b["sequence_number"] for b in builds]
    driver = AdditiveDriver()
    pins = PinStore()

    everything = await driver.read(target, pins, ReadOptions(kind=ReportKind.USAGE))
    assert [j.sequence_number for j in everything.jobs] == sequences

    cursor = sequences[4]
    rest = await driver.read(target, pins, ReadOptions(job_cursor=cursor))
    assert [j.sequence_number for j in rest.jobs] == sequences[5:]
    done = await driver.read(target, pins, ReadOptions(job_cursor=sequences[-1]))
    assert done.jobs == []

    # More building, then a poll from the last cursor: exactly the new builds.
    sim.resume()
    await asyncio.sleep(1.0)
    sim.pause()
    later = (await _truth(sim))[cell.serial_number]["jobs"]
    assert len(later) > len(builds)
    new = await driver.read(target, pins, ReadOptions(job_cursor=sequences[-1]))
    assert [str(j.job_uuid) for j in new.jobs] == [b["job_uuid"] for b in later[len(builds) :]]


async def test_health_report(sim: Simulator) -> None:
    cell = sim.additive_endpoints[1]
    report = await AdditiveDriver().read(
        _target(sim, cell.address), PinStore(), ReadOptions(kind=ReportKind.HEALTH)
    )
    assert report.kind is ReportKind.HEALTH
    assert report.jobs == [] and report.usage is None
    assert report.status is not None and len(report.status.printheads) == 6
    assert report.additive is not None and report.additive.recent_builds
    assert {m.kind for m in report.additive.materials} == {"powder", "agent"}


async def test_a_changed_certificate_is_refused(sim: Simulator) -> None:
    cell = sim.additive_endpoints[0]
    pins = PinStore()
    pins.pins[pins.key(_target(sim, cell.address))] = "0" * 64
    with pytest.raises(CertificateMismatch):
        await AdditiveDriver().read(_target(sim, cell.address), pins, ReadOptions())
