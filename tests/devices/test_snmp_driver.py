"""The ``snmp`` driver end to end against snmpsim replaying real printer recordings."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fleetmeter.devices import registry
from fleetmeter.devices.base import PinStore, ReadOptions, Target
from fleetmeter.devices.errors import DeviceUnreachable, NotSupported
from fleetmeter.devices.snmp import SnmpCommunity, SnmpDriver, SnmpUsmUser
from fleetmeter.wire import ReportKind
from tests.devices.snmp_fixtures import (  # noqa: F401  (snmpsim_fixture: fixture "snmpsim")
    JETDIRECT,
    RICOH,
    V3_AUTH_KEY,
    V3_PRIV_KEY,
    V3_USER,
    SnmpSimulator,
    snmpsim_fixture,
)

pytestmark = pytest.mark.anyio


def _target(sim: SnmpSimulator) -> Target:
    return Target(host=sim.host, port=sim.port)


def test_driver_is_registered_under_snmp() -> None:
    driver = registry.get("snmp")
    assert isinstance(driver, SnmpDriver)
    assert driver.id == "snmp" and driver.default_port == 161
    assert driver.credentials == SnmpCommunity("public")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(SnmpDriver())


async def test_read_jetdirect_m130nw(snmpsim: SnmpSimulator) -> None:
    driver = SnmpDriver(SnmpCommunity(JETDIRECT))
    report = await driver.read(_target(snmpsim), PinStore(), ReadOptions(timeout_s=5))
    assert report.kind is ReportKind.USAGE
    assert (report.device.vendor, report.device.serial_number) == ("HP", "VNCRC48198")
    assert report.device.product_name == "HP LaserJet MFP M130nw"
    assert report.device.address == snmpsim.host
    assert report.usage is not None and report.usage.impressions == 15232
    assert report.usage.model_extra is not None
    assert report.usage.model_extra["marker_power_on_count"] == 237
    assert report.status is not None
    assert [(c.product_name, c.level_percent) for c in report.status.cartridges] == [
        ("Black Cartridge HP CF217A", 28),
        ("Imaging Drum HP CF219A", 71),
    ]
    assert [c.model_extra["max_capacity"] for c in report.status.cartridges if c.model_extra] == [
        100,
        100,
    ]
    assert [(t.name, t.state) for t in report.status.media_sources] == [("Tray 1", "ready")]
    assert report.alerts == [] and report.jobs == []


async def test_read_ricoh_mpc3002_and_identify(snmpsim: SnmpSimulator) -> None:
    driver = SnmpDriver(SnmpCommunity(RICOH))
    identity = await driver.identify(_target(snmpsim), PinStore())
    assert identity is not None
    assert (identity.vendor, identity.serial_number) == ("Ricoh", "W492KB03439")
    assert identity.product_name == "RICOH Aficio MP C3002"

    report = await driver.read(_target(snmpsim), PinStore(), ReadOptions(timeout_s=5))
    assert report.usage is not None and report.usage.impressions == 271871
    assert report.usage.model_extra is not None
    assert report.usage.model_extra["marker_power_on_count"] == 138
    assert report.status is not None
    assert report.status.state_reasons == ["deviceWarning"]
    assert [c.level_percent for c in report.status.cartridges] == [40, 100, 20, 50, 50]
    assert [c.color for c in report.status.cartridges] == ["K", "", "C", "M", "Y"]
    assert len(report.status.media_sources) == 5


async def test_health_read_skips_the_counters(snmpsim: SnmpSimulator) -> None:
    driver = SnmpDriver(SnmpCommunity(RICOH))
    options = ReadOptions(kind=ReportKind.HEALTH, timeout_s=5, job_cursor=42)
    report = await driver.read(_target(snmpsim), PinStore(), options)
    assert report.kind is ReportKind.HEALTH
    assert report.usage is None and report.jobs == []
    assert report.status is not None and len(report.status.cartridges) == 5


async def test_snmpv1_reads_the_same_counter(snmpsim: SnmpSimulator) -> None:
    driver = SnmpDriver(SnmpCommunity(RICOH, version="1"))
    report = await driver.read(_target(snmpsim), PinStore(), ReadOptions(timeout_s=5))
    assert report.usage is not None and report.usage.impressions == 271871


async def test_wrong_community_is_unreachable_quickly(snmpsim: SnmpSimulator) -> None:
    driver = SnmpDriver(SnmpCommunity("not-a-recording"))
    # Whichever timeout fires first (per request or the read's budget), the reason names the
    # likely causes. (How quickly is a matter for the benchmark, not a timed assertion.)
    with pytest.raises(DeviceUnreachable, match=r"no SNMP answer.*wrong community"):
        await driver.read(_target(snmpsim), PinStore(), ReadOptions(timeout_s=1))
    with pytest.raises(DeviceUnreachable):
        await driver.identify(_target(snmpsim), PinStore(), timeout_s=1)


async def test_snmpv3_auth_priv(snmpsim: SnmpSimulator) -> None:
    user = SnmpUsmUser(
        V3_USER,
        auth_key=V3_AUTH_KEY,
        auth_protocol="SHA",
        priv_key=V3_PRIV_KEY,
        priv_protocol="AES",
        context_name=JETDIRECT,  # snmpsim selects the recording by v3 context name
    )
    driver = SnmpDriver(credentials_by_host={snmpsim.host: user})
    report = await driver.read(_target(snmpsim), PinStore(), ReadOptions(timeout_s=5))
    assert report.device.serial_number == "VNCRC48198"
    assert report.usage is not None and report.usage.impressions == 15232


async def test_snmpv3_wrong_key_is_refused(snmpsim: SnmpSimulator) -> None:
    user = SnmpUsmUser(
        V3_USER, auth_key="not-the-auth-key", priv_key=V3_PRIV_KEY, context_name=JETDIRECT
    )
    with pytest.raises(DeviceUnreachable):
        await SnmpDriver(user).read(_target(snmpsim), PinStore(), ReadOptions(timeout_s=2))


async def test_nothing_listening_is_unreachable(closed_port: int) -> None:
    # UDP: a closed port gives no answer (or an ICMP error that pysnmp ignores): a timeout.
    driver = SnmpDriver(SnmpCommunity(JETDIRECT))
    with pytest.raises(DeviceUnreachable):
        await driver.read(Target("127.0.0.1", closed_port), PinStore(), ReadOptions(timeout_s=1))


async def test_unresolvable_host_is_unreachable() -> None:
    with pytest.raises(DeviceUnreachable, match="cannot resolve"):
        await SnmpDriver().read(
            Target("no-such-host.invalid"), PinStore(), ReadOptions(timeout_s=1)
        )


def test_credentials_come_from_the_collector_range() -> None:
    driver = SnmpDriver()
    assert driver.credentials_for(Target("h")) == SnmpCommunity("public")
    assert driver.credentials_for(Target("h", credentials={"community": "s3cret"})) == (
        SnmpCommunity("s3cret")
    )
    v3 = driver.credentials_for(
        Target(
            "h",
            credentials={
                "v3_user": "ops",
                "v3_auth_key": "authpass1",
                "v3_auth_protocol": "sha256",
            },
        )
    )
    assert isinstance(v3, SnmpUsmUser) and v3.auth_protocol == "SHA256" and v3.priv_key is None
    with pytest.raises(NotSupported, match="not both"):
        driver.credentials_for(Target("h", credentials={"community": "c", "v3_user": "u"}))
    with pytest.raises(NotSupported, match="at least 8"):
        driver.credentials_for(Target("h", credentials={"v3_user": "u", "v3_auth_key": "short"}))


def test_fleetmeter_probe_reads_the_live_agent(snmpsim: SnmpSimulator) -> None:
    """The command a technician runs, against snmpsim replaying the real recording."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleetmeter",
            "probe",
            "--driver",
            "snmp",
            "--port",
            str(snmpsim.port),
            "--credential",
            "community=jetdirect_m130nw",
            snmpsim.host,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["usage"]["impressions"] == 15232  # prtMarkerLifeCount in the recording
    assert report["device"]["serial_number"] == "VNCRC48198"
