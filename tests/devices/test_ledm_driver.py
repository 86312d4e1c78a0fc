"""The ``ledm`` driver end to end against a real local HTTPS server serving real captures."""

from __future__ import annotations

import pytest

from fleetmeter.devices import registry
from fleetmeter.devices.base import PinStore, ReadOptions, Target
from fleetmeter.devices.errors import CertificateMismatch, DeviceUnreachable
from fleetmeter.devices.ledm import LedmDriver
from fleetmeter.signing.certs import self_signed
from fleetmeter.wire import EngineState, ReportKind
from tests.devices.conftest import OWN_FIXTURES, DeviceServer, shared_fixtures

pytestmark = pytest.mark.anyio


def _target(server: DeviceServer) -> Target:
    return Target(host="127.0.0.1", port=server.port)


def test_driver_is_registered_under_ledm() -> None:
    driver = registry.get("ledm")
    assert isinstance(driver, LedmDriver)
    assert driver.id == "ledm" and driver.default_port == 443
    with pytest.raises(ValueError, match="already registered"):
        registry.register(LedmDriver())


async def test_identify_and_read_a_real_capture(device_server: DeviceServer) -> None:
    device_server.serve_directory(shared_fixtures() / "ledm" / "hp_officejet_pro_9022e")
    driver, pins = LedmDriver(), PinStore()
    identity = await driver.identify(_target(device_server), pins)
    assert identity is not None
    assert (identity.product_number, identity.address) == ("226Y0B", "127.0.0.1")
    assert list(pins.pins) == [f"127.0.0.1:{device_server.port}"]

    report = await driver.read(_target(device_server), pins, ReadOptions())
    assert report.kind is ReportKind.USAGE
    assert report.device.product_name == "HP OfficeJet Pro 9020 series"
    assert report.usage is not None and report.usage.impressions == 875
    assert report.status is not None and report.status.engine_state is EngineState.SLEEP
    assert len(report.alerts) == 20
    # Only documents listed in the DiscoveryTree and known to the parser were asked for.
    paths = {path for _, path in device_server.requests}
    assert "/DevMgmt/ProductLogsDyn.xml" in paths
    assert "/DevMgmt/JobAccountingDyn.xml" not in paths  # not listed by this device
    assert "/DevMgmt/FaxConfigDyn.xml" not in paths


async def test_health_read_skips_usage(device_server: DeviceServer) -> None:
    device_server.serve_directory(
        shared_fixtures() / "ledm" / "hp_envy_photo_7830_all_in_one_printer"
    )
    report = await LedmDriver().read(
        _target(device_server), PinStore(), ReadOptions(kind=ReportKind.HEALTH)
    )
    assert report.kind is ReportKind.HEALTH
    assert report.usage is None
    assert report.status is not None and report.status.state_reasons == ["trayEmpty"]
    assert [a.code for a in report.alerts] == ["trayEmpty", "genuineHP", "genuineHP"]
    paths = {path for _, path in device_server.requests}
    assert "/DevMgmt/ProductUsageDyn.xml" not in paths


async def test_jobs_after_the_cursor_through_the_driver(device_server: DeviceServer) -> None:
    device_server.serve_directory(OWN_FIXTURES / "designjet_synthetic")
    report = await LedmDriver().read(
        _target(device_server), PinStore(), ReadOptions(job_cursor=1041)
    )
    assert [j.sequence_number for j in report.jobs] == [1042, 1043]
    assert report.usage is not None and report.usage.total_media_area_mm2 == 512_345_678


async def test_missing_listed_document_is_left_out(device_server: DeviceServer) -> None:
    device_server.serve_directory(OWN_FIXTURES / "designjet_synthetic")
    del device_server.documents["/DevMgmt/ProductUsageDyn.xml"]
    report = await LedmDriver().read(_target(device_server), PinStore(), ReadOptions())
    assert report.usage is None
    assert len(report.jobs) == 3


async def test_not_ledm_is_none(device_server: DeviceServer) -> None:
    driver = LedmDriver()
    assert await driver.identify(_target(device_server), PinStore()) is None  # all 404
    device_server.documents["/DevMgmt/DiscoveryTree.xml"] = b"<html><body>router</body></html>"
    assert await driver.identify(_target(device_server), PinStore()) is None


async def test_certificate_change_between_polls(device_server: DeviceServer) -> None:
    device_server.serve_directory(shared_fixtures() / "ledm" / "hp_officejet_pro_9022e")
    driver, pins = LedmDriver(), PinStore()
    await driver.read(_target(device_server), pins, ReadOptions(kind=ReportKind.HEALTH))
    device_server.use_certificate(self_signed("other", ["127.0.0.1"]))
    with pytest.raises(CertificateMismatch):
        await driver.read(_target(device_server), pins, ReadOptions(kind=ReportKind.HEALTH))


async def test_unreachable(closed_port: int) -> None:
    with pytest.raises(DeviceUnreachable):
        await LedmDriver().identify(Target(host="127.0.0.1", port=closed_port), PinStore())
