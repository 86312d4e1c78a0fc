"""The ``moonraker`` driver end to end against a real standalone Moonraker 0.11 (started by
``moonraker_fixtures.moonraker_peer``).

Klipper cannot run here, so Moonraker answers ``/server/*`` but not ``/printer/*``: these
tests cover identity, the Klipper-less state, the job history and the totals as the real
server serves them (from constructed database rows, see the fixture). Printer objects and a
running Klipper are tested on responses in ``fixtures/moonraker`` (test_moonraker_parse).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest

from fleetmeter.devices import registry
from fleetmeter.devices.base import PinStore, ReadOptions, Target
from fleetmeter.devices.errors import DeviceUnreachable, NotSupported
from fleetmeter.devices.moonraker import MoonrakerDriver
from fleetmeter.wire import EngineState, JobStatus, ReportKind
from tests.devices.conftest import DeviceServer
from tests.devices.moonraker_fixtures import (
    JAN_1_2026,
    MoonrakerPeer,
    moonraker_peer_fixture,  # noqa: F401  (provides the moonraker_peer fixture)
)
from tests.devices.octoprint_fixtures import (
    HeaderRecorder,
    header_recorder_fixture,  # noqa: F401  (provides the header_recorder fixture)
)

pytestmark = pytest.mark.anyio


def _target(peer: MoonrakerPeer, *, key: str | None = "peer") -> Target:
    credentials = {"api_key": peer.api_key if key == "peer" else key} if key else {}
    return Target(host="127.0.0.1", port=peer.port, scheme="http", credentials=credentials)


def test_driver_is_registered_under_moonraker() -> None:
    driver = registry.get("moonraker")
    assert isinstance(driver, MoonrakerDriver)
    assert driver.id == "moonraker" and driver.default_port == 7125
    assert registry.BUILTIN.index("moonraker") == registry.BUILTIN.index("octoprint") + 1
    with pytest.raises(ValueError, match="already registered"):
        registry.register(MoonrakerDriver())


async def test_identify_uses_the_instance_id(moonraker_peer: MoonrakerPeer) -> None:
    identity = await MoonrakerDriver().identify(_target(moonraker_peer), PinStore())
    assert identity is not None
    assert identity.vendor == "Moonraker"
    # Moonraker's own per-installation UUID, from its data folder (.moonraker.uuid).
    assert identity.serial_number == moonraker_peer.instance_id
    assert uuid.UUID(identity.serial_number)
    assert identity.firmware_version == "Moonraker 0.11.0"
    assert identity.product_name is None  # only Klipper knows the host name
    assert (identity.driver, identity.address, identity.device_class) == (
        "moonraker",
        "127.0.0.1",
        "printer3d",
    )


async def test_identify_without_a_key_says_why(moonraker_peer: MoonrakerPeer) -> None:
    # Not a trusted client and no key: Moonraker answers 401, and /access/info shows it is
    # Moonraker that refuses.
    with pytest.raises(NotSupported, match="trusted client"):
        await MoonrakerDriver().identify(_target(moonraker_peer, key=None), PinStore())
    with pytest.raises(NotSupported, match="API key is wrong"):
        await MoonrakerDriver().identify(_target(moonraker_peer, key="0" * 32), PinStore())


async def test_read_reports_history_and_totals(moonraker_peer: MoonrakerPeer) -> None:
    report = await MoonrakerDriver().read(_target(moonraker_peer), PinStore(), ReadOptions())
    assert report.kind is ReportKind.USAGE
    assert report.device.serial_number == moonraker_peer.instance_id
    assert report.status is not None and report.additive is not None
    # No Klipper: offline, no heaters, no running build.
    assert report.status.engine_state is EngineState.OFFLINE
    assert report.status.state_reasons == ["klippy disconnected"]
    assert report.additive.temperatures_c == {}
    assert report.additive.build_job is None

    assert [job.sequence_number for job in report.jobs] == [1, 2, 3]
    benchy, bracket, lid = report.jobs
    assert benchy.name == "parts/benchy.gcode"
    assert benchy.status is JobStatus.COMPLETED
    assert benchy.completed_at == datetime.fromtimestamp(JAN_1_2026 + 3612.7, UTC)
    assert (benchy.print_time_s, benchy.duration_s) == (3400, 3613)
    assert (benchy.media_type, benchy.media_length_mm) == ("filament", 4124)
    # 12.5 g for the file's 4200 mm, pro rata for the 4123.6 mm used.
    assert benchy.model_extra == {"filament_g": 12, "material": "PLA"}
    assert benchy.submitter.user is None  # Moonraker's "_TRUSTED_USER_" is nobody
    assert bracket.status is JobStatus.CANCELLED
    assert bracket.submitter.user == "alice"
    assert bracket.model_extra == {"material": "PETG"}  # no slicer weight: no grams
    # Left "in_progress" in the database; the real Moonraker marked it interrupted at start.
    assert lid.status is JobStatus.FAILED
    assert lid.completed_at == datetime.fromtimestamp(JAN_1_2026 + 9000 + 150, UTC)
    assert len({job.job_uuid for job in report.jobs}) == 3

    assert report.usage is not None
    assert report.usage.meters() == {"jobs": 3, "media.filament.length_mm": 4957}
    assert report.usage.model_extra == {"print_time_s": 4021}
    materials = report.additive.materials
    assert [(m.name, m.kind, m.model_extra) for m in materials] == [
        ("filament", "filament", {"consumed_mm": 4957})
    ]
    builds = report.additive.recent_builds
    assert [b.id for b in builds] == ["000003", "000002", "000001"]  # newest first
    assert builds[2].material_used_g == 12 and builds[2].layers_total == 240
    assert builds[0].outcome == "interrupted"

    again = await MoonrakerDriver().read(
        _target(moonraker_peer), PinStore(), ReadOptions(job_cursor=2)
    )
    assert [job.job_uuid for job in again.jobs] == [lid.job_uuid]


async def test_health_report_reads_no_history(moonraker_peer: MoonrakerPeer) -> None:
    report = await MoonrakerDriver().read(
        _target(moonraker_peer), PinStore(), ReadOptions(kind=ReportKind.HEALTH)
    )
    assert report.kind is ReportKind.HEALTH
    assert report.jobs == [] and report.usage is None
    assert report.additive is not None and report.additive.recent_builds == []


async def test_read_without_a_key_is_refused(moonraker_peer: MoonrakerPeer) -> None:
    with pytest.raises(NotSupported, match="HTTP 401"):
        await MoonrakerDriver().read(_target(moonraker_peer, key=None), PinStore(), ReadOptions())


async def test_identify_is_none_for_another_web_server(plain_http_server: DeviceServer) -> None:
    target = Target(host="127.0.0.1", port=plain_http_server.port, scheme="http")
    assert await MoonrakerDriver().identify(target, PinStore()) is None  # 404
    plain_http_server.documents["/server/info"] = b'{"result": {"name": "something else"}}'
    assert await MoonrakerDriver().identify(target, PinStore()) is None
    plain_http_server.documents["/server/info"] = b"<html>hello</html>"
    assert await MoonrakerDriver().identify(target, PinStore()) is None


async def test_identify_raises_unreachable_when_nothing_listens(closed_port: int) -> None:
    target = Target(host="127.0.0.1", port=closed_port, scheme="http")
    start = time.monotonic()
    with pytest.raises(DeviceUnreachable):
        await MoonrakerDriver().identify(target, PinStore(), timeout_s=2)
    assert time.monotonic() - start < 2


async def test_the_api_key_goes_to_moonraker_only(header_recorder: HeaderRecorder) -> None:
    target = Target(
        host="127.0.0.1",
        port=header_recorder.port,
        scheme="http",
        credentials={"api_key": "s3cret"},
    )
    assert await MoonrakerDriver().identify(target, PinStore()) is None
    assert [path for path, _ in header_recorder.requests] == ["/server/info", "/access/info"]
    assert all("s3cret" not in headers.values() for _, headers in header_recorder.requests)
