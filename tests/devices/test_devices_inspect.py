"""``parse_capture`` and ``probe``: what ``fleetmeter parse`` and ``fleetmeter probe`` run."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetmeter.devices.errors import DeviceUnreachable, MalformedResponse, NotSupported
from fleetmeter.devices.inspect import parse_capture, probe
from tests.devices.conftest import OWN_FIXTURES, DeviceServer, shared_fixtures


def test_parse_capture_of_each_real_capture() -> None:
    officejet = parse_capture("ledm", shared_fixtures() / "ledm" / "hp_officejet_pro_9022e")
    assert officejet.device.product_number == "226Y0B"
    assert officejet.usage is not None and officejet.usage.impressions == 875
    envy = parse_capture(
        "ledm", shared_fixtures() / "ledm" / "hp_envy_photo_7830_all_in_one_printer"
    )
    assert envy.device.product_number == "Y0G50B"
    assert envy.usage is not None and envy.usage.impressions == 4053


def test_parse_capture_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown driver 'nosuch'"):
        parse_capture("nosuch", tmp_path)
    with pytest.raises(ValueError, match="no such directory"):
        parse_capture("ledm", tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "Other.xml").write_text("<x/>")
    with pytest.raises(ValueError, match="no LEDM document found"):
        parse_capture("ledm", tmp_path)
    (tmp_path / "ProductUsageDyn.xml").write_bytes(
        (OWN_FIXTURES / "designjet_synthetic" / "ProductUsageDyn.xml").read_bytes()
    )
    with pytest.raises(MalformedResponse, match=r"ProductConfigDyn\.xml is required"):
        parse_capture("ledm", tmp_path)


@pytest.mark.anyio
async def test_probe_a_live_device(device_server: DeviceServer) -> None:
    device_server.serve_directory(OWN_FIXTURES / "designjet_synthetic")
    report = await probe("127.0.0.1", port=device_server.port)
    assert report.device.serial_number == "SGFM000001"
    assert report.device.address == "127.0.0.1"
    assert len(report.jobs) == 3


@pytest.mark.anyio
async def test_probe_errors(device_server: DeviceServer, closed_port: int) -> None:
    with pytest.raises(DeviceUnreachable, match=f"127.0.0.1:{closed_port}"):
        await probe("127.0.0.1", driver_id="ledm", port=closed_port, timeout_s=2)
    with pytest.raises(NotSupported, match="not recognised by any driver"):
        await probe("127.0.0.1", port=device_server.port)  # answers 404 to everything
    with pytest.raises(ValueError, match="unknown driver"):
        await probe("127.0.0.1", driver_id="nosuch")
    with pytest.raises(ValueError, match="unsupported scheme"):
        await probe("127.0.0.1", scheme="ftp")
