"""The ``ipp`` driver end to end against a real IPP Everywhere printer (CUPS' ippeveprinter,
started by ``ipp_fixtures.ipp_peer``), printing real jobs with ipptool."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest

from fleetmeter.devices import registry
from fleetmeter.devices.base import PinStore, ReadOptions, Target
from fleetmeter.devices.errors import CertificateMismatch, DeviceUnreachable
from fleetmeter.devices.ipp import IppDriver
from fleetmeter.devices.ipp.client import IppClient
from fleetmeter.devices.ipp.parse import decode
from fleetmeter.wire import (
    AlertSeverity,
    EngineState,
    JobStatus,
    ReportKind,
    SupplyState,
    now_utc,
)
from tests.devices.conftest import DeviceServer
from tests.devices.ipp_fixtures import (
    MAKE,
    MARKER_LEVELS,
    MODEL,
    IppPeer,
    ipp_peer_fixture,  # noqa: F401  (provides the ipp_peer fixture)
)

pytestmark = pytest.mark.anyio


def _target(peer: IppPeer, scheme: str = "http") -> Target:
    return Target(host="127.0.0.1", port=peer.port, scheme=scheme)


def test_driver_is_registered_under_ipp() -> None:
    driver = registry.get("ipp")
    assert isinstance(driver, IppDriver)
    assert driver.id == "ipp" and driver.default_port == 631
    assert driver.base_path == "/ipp/print"
    with pytest.raises(ValueError, match="already registered"):
        registry.register(IppDriver())


async def test_identify_names_the_printer(ipp_peer: IppPeer) -> None:
    identity = await IppDriver().identify(_target(ipp_peer), PinStore())
    assert identity is not None
    assert identity.vendor == MAKE  # -M HP → device-id MFG:HP
    assert identity.product_name == f"{MAKE} {MODEL}"  # -m → printer-make-and-model
    # ippeveprinter has no serial number: the printer-uuid stands in for it.
    assert uuid.UUID(identity.serial_number)
    assert (identity.driver, identity.address) == ("ipp", "127.0.0.1")


async def test_read_reports_markers_alerts_and_printed_jobs(ipp_peer: IppPeer) -> None:
    first = ipp_peer.print_job("Floor plan L2.pdf", pages=3, user="alice")
    second = ipp_peer.print_job("Élévation nord – rév. 2", pages=2, user="bob")
    before = now_utc()
    report = await IppDriver().read(_target(ipp_peer), PinStore(), ReadOptions())

    assert report.kind is ReportKind.USAGE
    assert report.device.product_name == f"{MAKE} {MODEL}"
    status = report.status
    assert status is not None
    assert status.engine_state is EngineState.IDLE
    # Exactly what engine.sh reported through ATTR: marker-levels=71,64,80,12 (low 15).
    assert [(c.color, c.level_percent) for c in status.cartridges] == list(
        zip(("C", "M", "Y", "K"), MARKER_LEVELS, strict=True)
    )
    assert [c.status for c in status.cartridges] == [SupplyState.OK] * 3 + [SupplyState.LOW]

    alerts = {(a.code, a.component): a for a in report.alerts}
    printer_alert = alerts[("markerSupplyLow", "cartridge:K")]  # ATTR: printer-alert=…index=4
    assert printer_alert.severity is AlertSeverity.WARNING
    # STATE: +marker-supply-low-warning; ippeveprinter itself picks the suffix it reports.
    assert ("marker-supply-low", None) in alerts
    assert any(r.startswith("marker-supply-low") for r in status.state_reasons)

    # ippeveprinter 2.4 keeps no lifetime counters (no printer-impressions-completed).
    assert report.usage is None

    jobs = {job.sequence_number: job for job in report.jobs}
    assert {first, second} <= set(jobs)
    assert [j.sequence_number for j in report.jobs] == sorted(jobs)
    one, two = jobs[first], jobs[second]
    assert (one.name, one.pages, one.submitter.user) == ("Floor plan L2.pdf", 3, "alice")
    assert (two.name, two.pages, two.submitter.user) == ("Élévation nord – rév. 2", 2, "bob")
    assert one.status is two.status is JobStatus.COMPLETED
    assert one.job_uuid != two.job_uuid
    for job in (one, two):
        assert before - timedelta(seconds=60) <= job.completed_at <= before + timedelta(seconds=5)

    # job_uuid is the device's own job-uuid.
    async with IppClient(_target(ipp_peer), PinStore()) as client:
        listed = decode(await client.get_jobs("completed", ["job-id", "job-uuid"])).jobs
    device_uuids = {j["job-id"]: j["job-uuid"] for j in listed}
    assert device_uuids[first] == f"urn:uuid:{one.job_uuid}"


async def test_job_cursor_skips_jobs_already_collected(ipp_peer: IppPeer) -> None:
    driver, pins = IppDriver(), PinStore()
    seen = ipp_peer.print_job("before the cursor", pages=1)
    report = await driver.read(_target(ipp_peer), pins, ReadOptions())
    cursor = max(job.sequence_number for job in report.jobs)
    assert cursor == seen

    new = ipp_peer.print_job("after the cursor", pages=4)
    again = await driver.read(_target(ipp_peer), pins, ReadOptions(job_cursor=cursor))
    assert [(j.sequence_number, j.name, j.pages) for j in again.jobs] == [
        (new, "after the cursor", 4)
    ]
    latest = await driver.read(_target(ipp_peer), pins, ReadOptions(job_cursor=new))
    assert latest.jobs == []


async def test_health_read_has_no_jobs_or_counters(ipp_peer: IppPeer) -> None:
    ipp_peer.print_job("health", pages=1)
    report = await IppDriver().read(
        _target(ipp_peer), PinStore(), ReadOptions(kind=ReportKind.HEALTH)
    )
    assert report.kind is ReportKind.HEALTH
    assert report.jobs == [] and report.usage is None
    assert report.status is not None and len(report.status.cartridges) == 4


async def test_ipps_pins_the_printer_certificate(ipp_peer: IppPeer) -> None:
    driver, pins = IppDriver(), PinStore()
    identity = await driver.identify(_target(ipp_peer, "https"), pins)
    assert identity is not None and identity.product_name == f"{MAKE} {MODEL}"
    key = f"127.0.0.1:{ipp_peer.port}"
    assert list(pins.pins) == [key]
    report = await driver.read(_target(ipp_peer, "https"), pins, ReadOptions())
    assert report.device.serial_number == identity.serial_number

    wrong = PinStore(pins={key: "0" * 64})
    with pytest.raises(CertificateMismatch):
        await driver.read(_target(ipp_peer, "https"), wrong, ReadOptions())
    assert wrong.pins == {key: "0" * 64}  # a mismatch never re-pins


async def test_identify_is_none_where_no_ipp_printer_answers(
    plain_http_server: DeviceServer, ipp_peer: IppPeer
) -> None:
    # A web server that is not a printer (it answers POST with 501) ...
    web = Target(host="127.0.0.1", port=plain_http_server.port, scheme="http")
    assert await IppDriver().identify(web, PinStore()) is None
    # ... and an IPP server with no printer at the path (ippeveprinter answers 404).
    assert await IppDriver(base_path="/ipp/none").identify(_target(ipp_peer), PinStore()) is None


async def test_unreachable_printer(closed_port: int) -> None:
    target = Target(host="127.0.0.1", port=closed_port, scheme="http")
    with pytest.raises(DeviceUnreachable):
        await IppDriver().identify(target, PinStore(), timeout_s=2)
    with pytest.raises(DeviceUnreachable):
        await IppDriver().read(target, PinStore(), ReadOptions(timeout_s=2))


def test_fleetmeter_probe_reads_the_live_printer(ipp_peer: IppPeer) -> None:
    """The command a technician runs, against the real ippeveprinter."""
    # The print command reports the marker levels; after a job they are the engine's.
    job_id = ipp_peer.print_job("probe me", pages=1)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleetmeter",
            "probe",
            "--driver",
            "ipp",
            "--http",
            "--port",
            str(ipp_peer.port),
            "127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["device"]["product_name"] == ipp_peer.product_name
    assert report["device"]["driver"] == "ipp"
    assert [c["level_percent"] for c in report["status"]["cartridges"]] == [71, 64, 80, 12]
    assert job_id in [job["sequence_number"] for job in report["jobs"]]
