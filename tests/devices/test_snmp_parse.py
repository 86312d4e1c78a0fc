"""The SNMP profile and the pure OID → wire-model mapping, fed from real snmpsim recordings
(``../shared/fixtures/snmp``) and from hand-made garbage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fleetmeter.devices.errors import MalformedResponse, NotSupported
from fleetmeter.devices.snmp import SnmpValue, load_profile, parse_identity, parse_report
from fleetmeter.devices.snmp.profile import ProfileError, parse_profile
from fleetmeter.devices.snmp.snmprec import read_snmprec
from fleetmeter.wire import AlertSeverity, DeviceReport, EngineState, ReportKind, SupplyState
from tests.devices.snmp_fixtures import JETDIRECT, RICOH, recording, snmprec_lines

WHEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

SUPPLIES = "1.3.6.1.2.1.43.11.1.1"
MARKER = "1.3.6.1.2.1.43.10.2.1"
SERIAL = "1.3.6.1.2.1.43.5.1.1.17"


def _report(name: str, kind: ReportKind = ReportKind.USAGE) -> DeviceReport:
    return parse_report(
        read_snmprec(recording(name)), address="192.0.2.7", collected_at=WHEN, kind=kind
    )


# --------------------------------------------------------------------------- profile


def test_profile_lists_every_object_with_its_source() -> None:
    profile = load_profile()
    assert profile.name == "printer_mib"
    assert profile.scalars["sysDescr"].oid == "1.3.6.1.2.1.1.1.0"
    supplies = profile.tables["prtMarkerSuppliesEntry"]
    assert supplies.oid == SUPPLIES
    assert supplies.columns["prtMarkerSuppliesLevel"].column == 9
    assert profile.tables["prtGeneralEntry"].columns["prtGeneralSerialNumber"].column == 17
    for table in profile.tables.values():
        assert "RFC" in table.ref
        for column in table.columns.values():
            assert "RFC" in column.ref, f"{table.name}.{column.name} names no source"
    assert profile.enum_name("PrtMarkerSuppliesTypeTC", 21) == "tonerCartridge"
    assert profile.enterprises[11] == "HP"


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (
            {"profile": {"name": "x", "description": "d"}, "scalars": {"a": {"oid": "1.3"}}},
            "syntax",
        ),
        (
            {
                "profile": {"name": "x", "description": "d"},
                "scalars": {"a": {"oid": "1.3.x", "syntax": "integer", "ref": "RFC"}},
            },
            "dotted OID",
        ),
        (
            {
                "profile": {"name": "x", "description": "d"},
                "tables": {
                    "t": {
                        "oid": "1.3.6",
                        "index": ["i"],
                        "ref": "RFC",
                        "reports": ["usage"],
                        "columns": {
                            "c": {"column": 1, "syntax": "integer", "ref": "r", "enum": "E"}
                        },
                    }
                },
            },
            "no enum 'E'",
        ),
        ({"scalars": {}}, r"\[profile\]"),
    ],
)
def test_a_broken_profile_is_refused_with_the_key(broken: dict[str, object], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_profile(broken, source="broken.toml")


# --------------------------------------------------------------------------- real recordings


def test_jetdirect_m130nw_recording() -> None:
    path = recording(JETDIRECT)
    report = _report(JETDIRECT)
    device = report.device
    assert (device.vendor, device.serial_number) == ("HP", "VNCRC48198")
    assert device.product_name == "HP LaserJet MFP M130nw"
    assert device.driver == "snmp" and device.address == "192.0.2.7"
    assert device.model_extra is not None
    assert device.model_extra["sys_descr"].startswith("HP ETHERNET MULTI-ENVIRONMENT,SN:VNCRC48198")

    assert report.usage is not None
    assert report.usage.impressions == 15232
    assert report.usage.meters() == {"impressions": 15232}  # power-on count is no meter
    assert report.usage.model_extra == {
        "marker_counter_unit": "impressions",
        "marker_life_count": 15232,
        "marker_power_on_count": 237,
    }
    assert report.jobs == []

    status = report.status
    assert status is not None
    assert status.engine_state is EngineState.UNKNOWN  # the recording has no hrPrinterStatus
    assert status.state_reasons == []
    lines = snmprec_lines(path, SUPPLIES)
    assert [(c.slot, c.product_name, c.color, c.level_percent) for c in status.cartridges] == [
        (1, lines[f"{SUPPLIES}.6.1.1"], "K", int(lines[f"{SUPPLIES}.9.1.1"])),
        (5, lines[f"{SUPPLIES}.6.1.5"], "", int(lines[f"{SUPPLIES}.9.1.5"])),
    ]
    toner, drum = status.cartridges
    assert (toner.product_name, toner.level_percent) == ("Black Cartridge HP CF217A", 28)
    assert toner.model_extra == {
        "supply_type": "toner",
        "max_capacity": 100,
        "level": 28,
    }
    assert (drum.product_name, drum.level_percent, drum.status) == (
        "Imaging Drum HP CF219A",
        71,
        SupplyState.OK,
    )
    assert drum.model_extra is not None and drum.model_extra["supply_type"] == "opc"
    # prtInputCurrentLevel -3: "at least one unit remains" (RFC 3805).
    [tray] = status.media_sources
    assert (tray.name, tray.state) == ("Tray 1", "ready")
    assert tray.model_extra == {"max_capacity": 150, "current_level": -3}
    assert report.alerts == []  # the recording has no prtAlertTable rows


def test_ricoh_mpc3002_recording() -> None:
    path = recording(RICOH)
    report = _report(RICOH)
    assert (report.device.vendor, report.device.serial_number) == ("Ricoh", "W492KB03439")
    assert report.device.product_name == "RICOH Aficio MP C3002"
    assert snmprec_lines(path, SERIAL)[f"{SERIAL}.1"] == "W492KB03439"

    assert report.usage is not None and report.usage.impressions == 271871
    assert report.usage.model_extra is not None
    assert report.usage.model_extra["marker_power_on_count"] == 138
    # This Ricoh counts sheets (prtMarkerCounterUnit 8), kept beside the number.
    assert report.usage.model_extra["marker_counter_unit"] == "sheets"
    assert snmprec_lines(path, MARKER)[f"{MARKER}.4.1.1"] == "271871"

    status = report.status
    assert status is not None
    assert status.state_reasons == ["deviceWarning"]  # hrDeviceStatus.1 = warning(3)
    assert status.engine_state is EngineState.UNKNOWN
    assert status.model_extra == {"hr_device_status": "warning"}
    lines = snmprec_lines(path, SUPPLIES)
    expected = [
        (
            index,
            lines[f"{SUPPLIES}.6.1.{index}"],
            int(lines[f"{SUPPLIES}.9.1.{index}"]) * 100 // int(lines[f"{SUPPLIES}.8.1.{index}"]),
        )
        for index in range(1, 6)
    ]
    assert [(c.slot, c.product_name, c.level_percent) for c in status.cartridges] == expected
    assert [c.color for c in status.cartridges] == ["K", "", "C", "M", "Y"]
    assert [c.level_percent for c in status.cartridges] == [40, 100, 20, 50, 50]
    waste = status.cartridges[1]
    assert waste.model_extra is not None and waste.model_extra["supply_type"] == "wasteToner"
    assert [(t.name, t.state) for t in status.media_sources] == [
        ("Tray 1", "ready"),
        ("Tray 2", "ready"),
        ("Tray 3", "ready"),
        ("Tray 4", "empty"),
        ("Bypass Tray", "empty"),
    ]
    assert report.alerts == []


def test_health_report_has_no_usage() -> None:
    report = _report(RICOH, ReportKind.HEALTH)
    assert report.kind is ReportKind.HEALTH
    assert report.usage is None
    assert report.status is not None and len(report.status.cartridges) == 5


def test_identity_from_the_recordings() -> None:
    identity = parse_identity(read_snmprec(recording(JETDIRECT)), address="h")
    assert identity is not None and identity.serial_number == "VNCRC48198"


# --------------------------------------------------------------------------- hand-made data

SYS_OBJECT = "1.3.6.1.2.1.1.2.0"
HR_TYPE = "1.3.6.1.2.1.25.3.2.1.2"
HR_STATUS = "1.3.6.1.2.1.25.3.2.1.5"
HR_PRINTER = "1.3.6.1.2.1.25.3.5.1"
ALERTS = "1.3.6.1.2.1.43.18.1.1"


def _printer(extra: dict[str, SnmpValue] | None = None) -> dict[str, SnmpValue]:
    values: dict[str, SnmpValue] = {
        "1.3.6.1.2.1.1.1.0": b"ACME Laser 9000",
        SYS_OBJECT: (1, 3, 6, 1, 4, 1, 1602, 4, 7),
        "1.3.6.1.2.1.1.3.0": 100_000,  # sysUpTime: 1000 s
        f"{HR_TYPE}.1": (1, 3, 6, 1, 2, 1, 25, 3, 1, 5),
        "1.3.6.1.2.1.25.3.2.1.3.1": b"Canon iR-ADV C5535",
        f"{HR_STATUS}.1": 2,
        f"{SERIAL}.1": b"SN-1",
        f"{MARKER}.3.1.1": 7,
        f"{MARKER}.4.1.1": 500,
    }
    values.update(extra or {})
    return values


def _parse(values: dict[str, SnmpValue], kind: ReportKind = ReportKind.USAGE) -> DeviceReport:
    return parse_report(values, collected_at=WHEN, kind=kind)


def test_vendor_from_the_enterprise_number_then_the_description() -> None:
    assert _parse(_printer()).device.vendor == "Canon"
    values = _printer()
    values[SYS_OBJECT] = (1, 3, 6, 1, 4, 1, 99999)
    assert _parse(values).device.vendor == "Canon"  # first word of hrDeviceDescr
    values["1.3.6.1.2.1.25.3.2.1.3.1"] = b"Nameless printer"
    assert _parse(values).device.vendor == "unknown"


def test_engine_state_combines_host_resources_objects() -> None:
    def state(
        device: int, printer: int | None, bits: bytes = b"\x00"
    ) -> tuple[EngineState, list[str]]:
        values = _printer()
        values[f"{HR_STATUS}.1"] = device
        if printer is not None:
            values[f"{HR_PRINTER}.1.1"] = printer
        values[f"{HR_PRINTER}.2.1"] = bits
        status = _parse(values, ReportKind.HEALTH).status
        assert status is not None
        return status.engine_state, status.state_reasons

    assert state(2, 3) == (EngineState.IDLE, [])
    assert state(2, 4) == (EngineState.PRINTING, [])
    assert state(5, 5) == (EngineState.WARMING, ["deviceDown"])
    assert state(2, 1) == (EngineState.SLEEP, [])  # running + other = standby
    assert state(5, 1) == (EngineState.ERROR, ["deviceDown"])
    # lowToner is bit 2 (0x20); jammed bit 5 (0x04); offline bit 6 (0x02); bit 10 in octet 2.
    assert state(3, 4, b"\x20") == (EngineState.PRINTING, ["deviceWarning", "lowToner"])
    assert state(3, 3, b"\x04") == (EngineState.ERROR, ["deviceWarning", "jammed"])
    assert state(5, 1, b"\x02\x20") == (
        EngineState.OFFLINE,
        ["deviceDown", "offline", "markerSupplyMissing"],
    )
    assert state(2, 3, b"\x00\x00\x01") == (EngineState.IDLE, ["errorBit23"])


def test_alerts_from_the_alert_table() -> None:
    values = _printer(
        {
            f"{ALERTS}.2.1.1": 3,  # critical
            f"{ALERTS}.4.1.1": 8,  # input
            f"{ALERTS}.5.1.1": 2,
            f"{ALERTS}.7.1.1": 808,  # inputMediaSupplyEmpty
            f"{ALERTS}.8.1.1": b"Tray 2 empty",
            f"{ALERTS}.9.1.1": 40_000,  # 600 s before sysUpTime (100000)
            f"{ALERTS}.2.1.2": 5,  # warningBinaryChangeEvent
            f"{ALERTS}.4.1.2": 11,
            f"{ALERTS}.5.1.2": -1,
            f"{ALERTS}.7.1.2": 31999,  # not in the profile
            f"{ALERTS}.9.1.2": 200_000,  # after sysUpTime: device clock nonsense
        }
    )
    first, second = _parse(values, ReportKind.HEALTH).alerts
    assert (first.code, first.severity, first.text, first.component) == (
        "inputMediaSupplyEmpty",
        AlertSeverity.CRITICAL,
        "Tray 2 empty",
        "input:2",
    )
    assert first.first_seen == WHEN - timedelta(seconds=600)
    assert (second.code, second.severity, second.text, second.component) == (
        "alert31999",
        AlertSeverity.WARNING,
        "alert31999",
        "markerSupplies",
    )
    assert second.first_seen == WHEN


def test_supply_special_values_per_rfc_3805() -> None:
    supplies: dict[str, SnmpValue] = {
        # index 1: -3 "some remaining", max unknown
        f"{SUPPLIES}.6.1.1": b"Cyan Ink",
        f"{SUPPLIES}.8.1.1": -2,
        f"{SUPPLIES}.9.1.1": -3,
        # index 2: unknown level
        f"{SUPPLIES}.6.1.2": b"Magenta Ink",
        f"{SUPPLIES}.8.1.2": 400,
        f"{SUPPLIES}.9.1.2": -2,
        # index 3: empty, through a colorant row
        f"{SUPPLIES}.3.1.3": 7,
        "1.3.6.1.2.1.43.12.1.1.4.1.7": b"yellow",
        f"{SUPPLIES}.6.1.3": b"Cartridge 3",
        f"{SUPPLIES}.8.1.3": 400,
        f"{SUPPLIES}.9.1.3": 0,
        # index 4: a full waste receptacle (its level is the remaining space)
        f"{SUPPLIES}.4.1.4": 4,
        f"{SUPPLIES}.6.1.4": b"Waste ink",
        f"{SUPPLIES}.8.1.4": 100,
        f"{SUPPLIES}.9.1.4": 0,
        # index 5: max -1 (other: no restriction), level in units
        f"{SUPPLIES}.6.1.5": b"Staples",
        f"{SUPPLIES}.8.1.5": -1,
        f"{SUPPLIES}.9.1.5": 3000,
    }
    status = _parse(_printer(supplies), ReportKind.HEALTH).status
    assert status is not None
    got = [(c.color, c.status, c.level_percent) for c in status.cartridges]
    assert got == [
        ("C", SupplyState.OK, None),
        ("M", SupplyState.UNKNOWN, None),
        ("Y", SupplyState.EMPTY, 0),
        ("", SupplyState.UNKNOWN, 0),
        ("", SupplyState.OK, None),
    ]
    assert status.cartridges[0].model_extra == {"max_capacity": -2, "level": -3}
    assert status.cartridges[3].model_extra == {
        "supply_class": "receptacleThatIsFilled",
        "max_capacity": 100,
        "level": 0,
        "full": True,
    }


def test_length_counters_become_media_length() -> None:
    values = _printer()
    values[f"{MARKER}.3.1.1"] = 17  # meters
    values[f"{MARKER}.4.1.1"] = 1234
    usage = _parse(values).usage
    assert usage is not None
    assert (usage.impressions, usage.total_media_length_mm) == (None, 1_234_000)


def test_the_default_marker_is_the_page_counter() -> None:
    values = _printer()
    values[f"{MARKER}.3.1.2"] = 7
    values[f"{MARKER}.4.1.2"] = 999
    values["1.3.6.1.2.1.43.5.1.1.8.1"] = 2  # prtMarkerDefaultIndex
    usage = _parse(values).usage
    assert usage is not None and usage.impressions == 999


# --------------------------------------------------------------------------- garbage


def test_garbage_values_are_dropped_or_cut_not_a_crash() -> None:
    values = _printer()
    values[f"{MARKER}.4.1.1"] = b"lots"  # a string where a Counter32 belongs
    values[f"{MARKER}.5.1.1"] = -5  # a negative counter
    values[f"{SUPPLIES}.6.1.1"] = b"\xff\xfe" + b"A" * 100_000  # huge, not UTF-8
    values[f"{SUPPLIES}.8.1.1"] = -7  # capacity below the RFC's special values
    values[f"{SUPPLIES}.9.1.1"] = 50
    values[f"{SUPPLIES}.6.1.2"] = (1, 3, 6)  # an OID where a string belongs
    values[f"{SUPPLIES}.8.1.2"] = 10
    values[f"{SUPPLIES}.9.1.2"] = 250  # above its maximum
    values[f"{HR_STATUS}.1"] = 77  # not an hrDeviceStatus value
    values["1.3.6.1.2.1.43.8.2.1.13.1.1"] = b"\x00Tray\x07 1\n"
    values["1.3.6.1.2.1.43.8.2.1.10.1.1"] = -99
    report = _parse(values)
    assert report.usage is not None and report.usage.impressions is None
    assert report.usage.model_extra == {"marker_counter_unit": "impressions"}
    assert report.status is not None
    first, second = report.status.cartridges
    assert first.product_name is not None and len(first.product_name) == 256
    assert first.product_name.startswith("ÿþAAA")  # Latin-1 fallback
    assert (first.level_percent, first.status) == (None, SupplyState.OK)
    assert first.model_extra == {"level": 50}
    assert (second.product_name, second.level_percent) == (None, 100)
    [tray] = report.status.media_sources
    assert (tray.name, tray.state) == ("Tray  1", "unknown")
    assert report.status.engine_state is EngineState.UNKNOWN


def test_no_serial_is_not_supported_and_no_printer_is_not_a_printer() -> None:
    values = _printer()
    del values[f"{SERIAL}.1"]
    with pytest.raises(NotSupported, match="serial"):
        _parse(values)
    assert parse_identity(values) is None
    # A JetDirect-style sysDescr still names the serial.
    values["1.3.6.1.2.1.1.1.0"] = b"HP ETHERNET MULTI-ENVIRONMENT,SN:ABC12345,FN:X"
    assert _parse(values).device.serial_number == "ABC12345"

    router: dict[str, SnmpValue] = {
        "1.3.6.1.2.1.1.1.0": b"Some router",
        SYS_OBJECT: (1, 3, 6, 1, 4, 1, 9, 1, 1),
    }
    with pytest.raises(NotSupported, match="no printer"):
        _parse(router)
    assert parse_identity(router) is None


def test_a_non_numeric_oid_is_malformed() -> None:
    values = _printer()
    values[f"{SUPPLIES}.9.1.x"] = 5
    with pytest.raises(MalformedResponse, match="not a numeric OID"):
        _parse(values)


def test_an_over_long_serial_is_cut_not_refused() -> None:
    values = _printer()
    values[f"{SERIAL}.1"] = b"S" * 5000
    assert _parse(values).device.serial_number == "S" * 128


def test_colour_comes_from_the_colorant_table_first() -> None:
    values = _printer(
        {
            f"{SUPPLIES}.3.1.1": 2,
            "1.3.6.1.2.1.43.12.1.1.4.1.2": b"orange",
            f"{SUPPLIES}.6.1.1": b"Black-ish cartridge",  # the colorant wins
            f"{SUPPLIES}.3.1.2": 3,
            "1.3.6.1.2.1.43.12.1.1.4.1.3": b"light-cyan",
            f"{SUPPLIES}.6.1.3": b"Light Magenta Ink",
        }
    )
    status = _parse(values, ReportKind.HEALTH).status
    assert status is not None
    assert [c.color for c in status.cartridges] == ["orange", "LC", "LM"]
