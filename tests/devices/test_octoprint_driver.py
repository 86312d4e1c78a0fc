"""The ``octoprint`` driver end to end against a real OctoPrint 1.11 with its virtual printer
(started by ``octoprint_fixtures.octoprint_peer``), which really prints the G-code uploaded
through the REST API."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest

from fleetmeter.devices import registry
from fleetmeter.devices.base import PinStore, ReadOptions, Target
from fleetmeter.devices.errors import DeviceUnreachable, NotSupported
from fleetmeter.devices.octoprint import OctoPrintDriver
from fleetmeter.devices.octoprint.parse import device_serial
from fleetmeter.wire import EngineState, JobStatus, ReportKind, now_utc
from tests.devices.conftest import DeviceServer
from tests.devices.octoprint_fixtures import (
    API_KEY,
    FOLDER,
    PART,
    PART_FILAMENT_MM,
    PART_FILAMENT_UL,
    SLOW,
    HeaderRecorder,
    OctoPrintPeer,
    header_recorder_fixture,  # noqa: F401  (provides the header_recorder fixture)
    octoprint_peer_fixture,  # noqa: F401  (provides the octoprint_peer fixture)
)

pytestmark = pytest.mark.anyio


def _target(peer: OctoPrintPeer, *, key: str | None = API_KEY) -> Target:
    credentials = {"api_key": key} if key is not None else {}
    return Target(host="127.0.0.1", port=peer.port, scheme="http", credentials=credentials)


def test_driver_is_registered_under_octoprint() -> None:
    driver = registry.get("octoprint")
    assert isinstance(driver, OctoPrintDriver)
    assert driver.id == "octoprint" and driver.default_port == 80
    assert registry.BUILTIN.index("octoprint") == registry.BUILTIN.index("ipp") + 1
    with pytest.raises(ValueError, match="already registered"):
        registry.register(OctoPrintDriver())


async def test_identify_names_the_instance(octoprint_peer: OctoPrintPeer) -> None:
    identity = await OctoPrintDriver().identify(_target(octoprint_peer), PinStore())
    assert identity is not None
    assert identity.vendor == "OctoPrint"
    assert identity.device_class == "printer3d"
    assert (identity.driver, identity.address) == ("octoprint", "127.0.0.1")
    # The default printer profile's model, and the server version from /api/version.
    assert identity.product_name == "Generic RepRap Printer"
    assert identity.firmware_version is not None
    assert identity.firmware_version.startswith("OctoPrint 1.11.")
    # No serial in OctoPrint: a name-based UUID of address, port and connected profile.
    assert identity.serial_number == device_serial("127.0.0.1", octoprint_peer.port, "_default")
    assert uuid.UUID(identity.serial_number).version == 5
    again = await OctoPrintDriver().identify(_target(octoprint_peer), PinStore())
    assert again == identity


async def test_identify_without_api_key_says_why(octoprint_peer: OctoPrintPeer) -> None:
    with pytest.raises(NotSupported, match="no API key is configured"):
        await OctoPrintDriver().identify(_target(octoprint_peer, key=None), PinStore())


async def test_identify_with_a_wrong_api_key_says_so(octoprint_peer: OctoPrintPeer) -> None:
    with pytest.raises(NotSupported, match="refuses the configured API key"):
        await OctoPrintDriver().identify(_target(octoprint_peer, key="not-the-key"), PinStore())


async def test_read_without_api_key_is_not_supported(octoprint_peer: OctoPrintPeer) -> None:
    with pytest.raises(NotSupported, match="api_key"):
        await OctoPrintDriver().read(_target(octoprint_peer, key=None), PinStore(), ReadOptions())


async def test_read_reports_state_temperatures_and_the_printed_file(
    octoprint_peer: OctoPrintPeer,
) -> None:
    before = now_utc()
    report = await OctoPrintDriver().read(_target(octoprint_peer), PinStore(), ReadOptions())
    assert report.kind is ReportKind.USAGE
    assert report.device.vendor == "OctoPrint"
    assert report.status is not None and report.additive is not None
    assert report.status.engine_state in (EngineState.IDLE, EngineState.WARMING)
    assert report.additive.state == report.status.engine_state
    assert "Operational" in report.status.state_reasons
    # The virtual printer has one hotend and a heated bed, at room temperature or above.
    temps = report.additive.temperatures_c
    assert {"tool0", "bed", "tool0.target", "bed.target"} <= set(temps)
    assert 15.0 <= temps["tool0"] <= 300.0
    assert report.additive.build_job is None  # nothing is printing
    assert report.usage is None  # OctoPrint keeps no lifetime counters

    path = f"{FOLDER}/{PART}"
    jobs = [job for job in report.jobs if job.name == path]
    assert len(jobs) == 1
    job = jobs[0]
    last = octoprint_peer.file(path)["prints"]["last"]
    assert job.status is JobStatus.COMPLETED
    assert job.source == "local"
    assert job.sequence_number == round(last["date"] * 1000)
    assert abs(job.completed_at.timestamp() - last["date"]) < 0.001
    assert job.completed_at <= before + timedelta(seconds=1)
    assert job.print_time_s == round(last["printTime"])
    # Filament from OctoPrint's own G-code analysis of the file, in base units.
    assert (job.media_type, job.media_length_mm) == ("filament", PART_FILAMENT_MM)
    assert job.model_extra == {"filament_ul": PART_FILAMENT_UL}
    builds = [b for b in report.additive.recent_builds if b.name == path]
    assert len(builds) == 1
    assert builds[0].id == str(job.job_uuid)
    assert builds[0].outcome == "completed"
    assert builds[0].model_extra == {
        "prints_success": 1,
        "prints_failure": 0,
        "filament_mm": PART_FILAMENT_MM,
        "filament_ul": PART_FILAMENT_UL,
    }

    # Stable: the same print is the same job on the next poll; the cursor then drops it.
    again = await OctoPrintDriver().read(_target(octoprint_peer), PinStore(), ReadOptions())
    assert [j.job_uuid for j in again.jobs] == [j.job_uuid for j in report.jobs]
    cursor = max(j.sequence_number for j in report.jobs)
    later = await OctoPrintDriver().read(
        _target(octoprint_peer), PinStore(), ReadOptions(job_cursor=cursor)
    )
    assert later.jobs == []
    assert later.additive is not None and later.additive.recent_builds  # display keeps them


async def test_health_report_skips_the_history(octoprint_peer: OctoPrintPeer) -> None:
    report = await OctoPrintDriver().read(
        _target(octoprint_peer), PinStore(), ReadOptions(kind=ReportKind.HEALTH)
    )
    assert report.kind is ReportKind.HEALTH
    assert report.jobs == []
    assert report.additive is not None and report.additive.recent_builds == []
    assert report.additive.temperatures_c


async def test_a_running_print_then_a_cancelled_one(octoprint_peer: OctoPrintPeer) -> None:
    driver = OctoPrintDriver()
    first = await driver.read(_target(octoprint_peer), PinStore(), ReadOptions())
    cursor = max(job.sequence_number for job in first.jobs)
    path = f"{FOLDER}/{SLOW}"
    with octoprint_peer.slow_print():
        running = await driver.read(_target(octoprint_peer), PinStore(), ReadOptions())
        assert running.additive is not None and running.status is not None
        assert running.status.engine_state is EngineState.PRINTING
        build = running.additive.build_job
        assert build is not None
        assert (build.id, build.name, build.outcome) == (f"local:{path}", path, "running")
        assert build.progress_percent is not None and 0 <= build.progress_percent < 100
        assert build.started_at is not None and build.started_at <= running.collected_at
        # The slow file heats the tool to 45 °C before it dwells.
        assert running.additive.temperatures_c["tool0.target"] == 45.0
        assert all(job.name != path for job in running.jobs)  # not finished: no record yet
        cancelled_at = time.time()
    after = await driver.read(_target(octoprint_peer), PinStore(), ReadOptions(job_cursor=cursor))
    assert [job.name for job in after.jobs] == [path]
    job = after.jobs[0]
    # OctoPrint records a cancelled print as failed; the material used is unknown.
    assert job.status is JobStatus.FAILED
    assert job.sequence_number > cursor
    assert abs(job.completed_at.timestamp() - cancelled_at) < 30
    assert job.media_length_mm is None and not job.model_extra
    assert after.additive is not None and after.additive.build_job is None


async def test_identify_is_none_for_another_web_server(plain_http_server: DeviceServer) -> None:
    plain_http_server.documents["/api/version"] = b'{"version": "2.0", "name": "other"}'
    target = Target(host="127.0.0.1", port=plain_http_server.port, scheme="http")
    assert await OctoPrintDriver().identify(target, PinStore()) is None
    del plain_http_server.documents["/api/version"]  # now a 404
    assert await OctoPrintDriver().identify(target, PinStore()) is None


async def test_identify_raises_unreachable_when_nothing_listens(closed_port: int) -> None:
    target = Target(host="127.0.0.1", port=closed_port, scheme="http")
    start = time.monotonic()
    with pytest.raises(DeviceUnreachable):
        await OctoPrintDriver().identify(target, PinStore(), timeout_s=2)
    assert time.monotonic() - start < 2


async def test_the_api_key_goes_to_octoprint_only(header_recorder: HeaderRecorder) -> None:
    # Discovery probes every host of a range: a server that does not show it is OctoPrint
    # must never see the key.
    target = Target(
        host="127.0.0.1",
        port=header_recorder.port,
        scheme="http",
        credentials={"api_key": "s3cret"},
    )
    assert await OctoPrintDriver().identify(target, PinStore()) is None
    assert [path for path, _ in header_recorder.requests] == ["/api/version"]
    assert all("s3cret" not in headers.values() for _, headers in header_recorder.requests)


def test_fleetmeter_probe_reads_the_live_octoprint(octoprint_peer: OctoPrintPeer) -> None:
    """The command a technician runs, against the real OctoPrint and its virtual printer."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleetmeter",
            "probe",
            "--driver",
            "octoprint",
            "--http",
            "--port",
            str(octoprint_peer.port),
            "--credential",
            f"api_key={octoprint_peer.api_key}",
            "127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["device"]["driver"] == "octoprint"
    assert report["device"]["device_class"] == "printer3d"
    assert report["additive"]["temperatures_c"], report["additive"]
    assert octoprint_peer.api_key not in result.stdout + result.stderr  # never echoed


def test_fleetmeter_probe_without_the_api_key_says_so(octoprint_peer: OctoPrintPeer) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleetmeter",
            "probe",
            "--driver",
            "octoprint",
            "--http",
            "--port",
            str(octoprint_peer.port),
            "127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "api" in result.stderr.lower() and "key" in result.stderr.lower()
