"""The pure LEDM parser on every real capture, on FleetMeter's own DesignJet-style documents,
and on hostile XML. Expected values are read from the capture files themselves."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from fleetmeter.devices.errors import MalformedResponse
from fleetmeter.devices.ledm import parse
from fleetmeter.devices.ledm.parse import parse_documents
from fleetmeter.wire import (
    AlertSeverity,
    DeviceReport,
    EngineState,
    JobKind,
    JobStatus,
    ReportKind,
    SupplyState,
)
from tests.devices.conftest import OWN_FIXTURES, ledm_captures, read_docs, shared_fixtures

WHEN = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
DESIGNJET = OWN_FIXTURES / "designjet_synthetic"


def _capture(name: str) -> dict[str, bytes]:
    return read_docs(shared_fixtures() / "ledm" / name)


@pytest.fixture
def officejet() -> DeviceReport:
    return parse_documents(
        _capture("hp_officejet_pro_9022e"), collected_at=WHEN, address="10.0.0.9"
    )


@pytest.fixture
def envy() -> DeviceReport:
    return parse_documents(_capture("hp_envy_photo_7830_all_in_one_printer"), collected_at=WHEN)


@pytest.fixture
def designjet() -> DeviceReport:
    return parse_documents(read_docs(DESIGNJET), collected_at=WHEN)


# --------------------------------------------------------------------------- every capture


def test_every_real_capture_parses_into_a_full_report() -> None:
    captures = ledm_captures()
    assert captures, "no LEDM captures found"
    for directory in captures:
        report = parse_documents(read_docs(directory), collected_at=WHEN)
        assert report.device.vendor == "HP", directory.name
        assert report.device.driver == "ledm"
        assert report.device.product_number, directory.name
        assert report.status is not None and report.status.cartridges, directory.name
        assert report.usage is not None and report.usage.impressions, directory.name
        # The per-colour ink adds up to the device's own total on every capture.
        assert report.usage.total_ink_ul == sum(
            c.total_ink_ul for c in report.usage.by_cartridge_type
        ), directory.name
        # Round trip through JSON, as the collector sends it.
        assert DeviceReport.model_validate_json(report.model_dump_json()) == report


# --------------------------------------------------------------------------- OfficeJet Pro 9022e


def test_officejet_identity(officejet: DeviceReport) -> None:
    device = officejet.device
    assert device.product_name == "HP OfficeJet Pro 9020 series"
    assert device.product_number == "226Y0B"
    assert device.serial_number == "REDACTED"
    assert device.firmware_version == "MANHHIPP1N005.2623A.00"  # not the schema's SVN-IPG-LEDM.690
    assert device.address == "10.0.0.9"
    assert officejet.collected_at == WHEN


def test_officejet_status_cartridges_and_printhead(officejet: DeviceReport) -> None:
    status = officejet.status
    assert status is not None
    assert status.engine_state is EngineState.SLEEP  # pscat:StatusCategory inPowerSave
    assert status.state_reasons == []
    by_color = {c.color: c for c in status.cartridges}
    assert list(by_color) == ["C", "M", "Y", "K"]
    assert {c: by_color[c].level_percent for c in by_color} == {"C": 40, "M": 40, "Y": 40, "K": 80}
    assert {c: by_color[c].product_number for c in by_color} == {
        "C": "3JA86A",
        "M": "3JA87A",
        "Y": "3JA88A",
        "K": "3JA89A",
    }
    # MaxCapacity in tenthsOfMilliliters: 298 → 29.8 mL → 29800 µL.
    assert {c: by_color[c].capacity_ul for c in by_color} == {
        "C": 29800,
        "M": 29900,
        "Y": 29900,
        "K": 84500,
    }
    cyan = by_color["C"]
    assert cyan.slot == 1
    assert cyan.status is SupplyState.OK  # ConsumableState "used"
    assert cyan.manufacturer == "HP"
    assert cyan.non_vendor is False
    assert cyan.installed_on == date(2024, 3, 18)
    assert cyan.expires_on == date(2025, 2, 26)
    assert by_color["K"].installed_on == date(2024, 11, 11)
    [head] = status.printheads
    assert head.slot == 0
    assert head.colors == ["C", "M", "Y", "K"]
    assert head.status is SupplyState.OK
    assert head.installed_on == date(2023, 7, 31)


def test_officejet_lifetime_usage(officejet: DeviceReport) -> None:
    usage = officejet.usage
    assert usage is not None
    assert usage.impressions == 875
    assert usage.mono_impressions == 226
    assert usage.color_impressions == 649
    assert usage.total_ink_ul == 112_000  # 112 milliliters
    ink = {c.color: c for c in usage.by_cartridge_type}
    assert {c: ink[c].total_ink_ul for c in ink} == {
        "C": 23_000,
        "M": 22_000,
        "Y": 24_000,
        "K": 43_000,
    }
    assert all(c.vendor_ink_ul == c.total_ink_ul and c.non_vendor_ink_ul == 0 for c in ink.values())
    assert {c.insertions for c in ink.values()} == {2}
    media = {m.media_type: m.impressions for m in usage.by_media_type}
    assert media["iso_a4_210x297mm"] == 864
    assert media["na_letter_8.5x11in"] == 2
    assert media["iso_a5_148x210mm"] == 9
    assert media["a4_or_letter"] == 866
    assert media["plain"] == 875  # from UsageByMediaType
    assert usage.total_media_area_mm2 is None  # the device states no area
    meters = usage.meters()
    assert meters["impressions"] == 875
    assert meters["ink.K.total_ul"] == 43_000


def test_officejet_media_sources_and_supported_media(officejet: DeviceReport) -> None:
    status = officejet.status
    assert status is not None
    tray1, tray2 = status.media_sources
    assert (tray1.name, tray1.state, tray1.media_type) == ("Tray1", "ready", "plain")
    assert (tray1.width_mm, tray1.height_mm) == (210, 297)
    assert (tray2.name, tray2.state) == ("Tray2", "empty")  # MediaState "missing"
    assert (tray2.width_mm, tray2.height_mm) == (148, 210)
    assert [m.id for m in status.supported_media] == ["plain"]
    assert [a.name for a in status.accessories] == ["autoDuplexor", "adf"]


def test_officejet_event_log_becomes_cleared_alert_history(officejet: DeviceReport) -> None:
    alerts = officejet.alerts
    assert len(alerts) == 20  # 20 pldyn:Event entries; the alert table is empty
    first = alerts[0]
    assert first.code == "71.00.ED"
    assert first.severity is AlertSeverity.WARNING
    assert first.first_seen == datetime(2024, 12, 6, 11, 0, 23, tzinfo=UTC)
    assert first.cleared_at == first.first_seen
    assert "4 occurrences" in first.text and "486 impressions" in first.text
    assert [a.code for a in alerts].count("31.13.02") == 5
    assert sum(a.severity is AlertSeverity.ERROR for a in alerts) == 9
    assert {a.code for a in alerts} >= {"17.03.80", "62.80.A0", "01.48.06"}


# --------------------------------------------------------------------------- ENVY Photo 7830


def test_envy_identity_and_status(envy: DeviceReport) -> None:
    assert envy.device.product_name == "ENVY Photo 7800 All-in-One Printer series"
    assert envy.device.product_number == "Y0G50B"
    assert envy.device.firmware_version == "PALSUPPPXN003.2420A.00"
    status = envy.status
    assert status is not None
    # trayEmpty + inPowerSave: the tray condition is a reason, the engine sleeps.
    assert status.engine_state is EngineState.SLEEP
    assert status.state_reasons == ["trayEmpty"]
    assert [(c.color, c.level_percent, c.slot) for c in status.cartridges] == [
        ("CMY", 50, 0),
        ("K", 60, 1),
    ]
    assert all(c.status is SupplyState.OK for c in status.cartridges)  # newGenuineHP
    assert all(c.capacity_ul is None for c in status.cartridges)  # MaxCapacity 0 = unknown
    assert status.printheads == []
    photo = status.media_sources[1]
    assert (photo.name, photo.media_type, photo.width_mm, photo.height_mm) == (
        "PhotoTray",
        "photoStandard",
        102,
        127,
    )


def test_envy_active_alerts(envy: DeviceReport) -> None:
    # ProductLogsDyn events carry no timestamps there, so only the alert table remains.
    assert [(a.code, a.severity, a.component) for a in envy.alerts] == [
        ("trayEmpty", AlertSeverity.WARNING, "PhotoTray"),
        ("genuineHP", AlertSeverity.INFO, "cartridge:CMY"),
        ("genuineHP", AlertSeverity.INFO, "cartridge:K"),
    ]
    assert all(a.first_seen == WHEN and a.cleared_at is None for a in envy.alerts)


def test_envy_usage_and_its_mislabelled_ink_unit(envy: DeviceReport) -> None:
    usage = envy.usage
    assert usage is not None
    assert usage.impressions == 4053
    assert usage.mono_impressions == 0
    assert usage.color_impressions == 3417
    assert usage.total_ink_ul == 163_000
    # The per-cartridge blocks say "microliters" but 55 + 108 = the 163 mL device total.
    ink = {c.color: (c.total_ink_ul, c.insertions) for c in usage.by_cartridge_type}
    assert ink == {"CMY": (55_000, 6), "K": (108_000, 9)}
    media = {m.media_type: m.impressions for m in usage.by_media_type}
    assert media["iso_a4_210x297mm"] == 4024
    assert media["plain"] == 4042
    assert media["photoStandard"] == 11


# --------------------------------------------------------------------------- DesignJet-style


def test_designjet_per_colour_ink_with_half_even_rounding(designjet: DeviceReport) -> None:
    usage = designjet.usage
    assert usage is not None
    assert usage.jobs == 57
    assert usage.total_ink_ul == 1_234_568  # 1234.5675 mL = 1234567.5 µL → even
    ink = {c.color: c for c in usage.by_cartridge_type}
    assert list(ink) == ["C", "M", "Y", "MK", "PK"]
    assert ink["C"].total_ink_ul == 300_000  # 300000.5 µL → even (not the 999 mL subunit value)
    assert ink["C"].insertions == 3
    assert (ink["Y"].vendor_ink_ul, ink["Y"].non_vendor_ink_ul) == (150_000, 50_000)
    assert (ink["MK"].total_ink_ul, ink["MK"].vendor_ink_ul, ink["MK"].non_vendor_ink_ul) == (
        123_456,
        100_000,
        23_456,
    )
    assert ink["PK"].total_ink_ul == 12_000  # only in ConsumableSubunit


def test_designjet_media_area_length_and_scan(designjet: DeviceReport) -> None:
    usage = designjet.usage
    assert usage is not None
    assert usage.total_media_area_mm2 == 512_345_678  # 512.3456785 m² → even
    assert usage.total_media_length_mm == 437_500
    media = {m.media_type: m for m in usage.by_media_type}
    assert (media["bond"].area_mm2, media["bond"].length_mm, media["bond"].impressions) == (
        400_250_000,
        437_500,
        800,
    )
    assert media["coatedPaper"].area_mm2 == 112_095_678
    assert usage.meters()["media.bond.area_mm2"] == 400_250_000
    assert usage.scan is not None
    assert (usage.scan.scan_jobs, usage.scan.scanned_area_mm2) == (12, 3_500_000)
    assert (usage.scan.copy_jobs, usage.scan.copied_area_mm2) == (4, 1_000_000)


def test_designjet_status(designjet: DeviceReport) -> None:
    status = designjet.status
    assert status is not None
    assert status.engine_state is EngineState.PRINTING
    assert status.state_reasons == ["inkLow"]
    yellow, cyan = status.cartridges
    assert (yellow.color, yellow.status, yellow.non_vendor, yellow.capacity_ul) == (
        "Y",
        SupplyState.VERY_LOW,
        True,
        300_000,
    )
    assert yellow.expires_on == date(2027, 6, 30)
    assert cyan.level_percent is None  # 255: not a level
    [head] = status.printheads
    assert (head.colors, head.health_percent) == (["MK", "PK", "Y"], 87)
    roll, tray = status.media_sources
    assert (roll.name, roll.state, roll.width_mm, roll.height_mm, roll.remaining_length_mm) == (
        "Roll1",
        "ready",
        914,
        None,
        45_500,
    )
    assert tray.state == "open"
    [alert] = designjet.alerts
    assert (alert.code, alert.component) == ("cartridgeLow", "cartridge:Y")
    assert alert.first_seen == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def test_job_accounting_every_field(designjet: DeviceReport) -> None:
    old, job, scan = designjet.jobs
    assert [j.sequence_number for j in designjet.jobs] == [1041, 1042, 1043]
    assert old.name == "Old job.pdf" and old.pages == 1 and old.copies == 1
    assert job.job_uuid == uuid.UUID("6f1c2d3e-4b5a-4c6d-8e7f-901234567890")
    assert job.kind is JobKind.PRINT and job.status is JobStatus.COMPLETED
    assert job.name == "Floor plan L2 & <annex>.pdf"
    assert job.source == "network"
    sub = job.submitter
    assert (sub.project, sub.application, sub.account, sub.user, sub.user_defined) == (
        "Tower B",
        "AutoCAD",
        "ACC-7",
        "jdoe",
        "rev C",
    )
    assert sub.submitted_at == datetime(2026, 1, 5, 8, 57, 40, tzinfo=UTC)
    assert job.completed_at == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    assert (job.print_time_s, job.duration_s) == (95, 140)
    assert (job.application_category, job.coverage_category, job.print_quality) == (
        "cad_lines",
        "low",
        "normal",
    )
    assert (job.pages, job.copies, job.media_type) == (2, 1, "bond")
    assert (job.media_width_mm, job.media_length_mm) == (914, 1189)
    assert (job.media_area_mm2, job.printed_area_mm2, job.scan_area_mm2) == (1086746, 998000, 0)
    assert job.ink_ul == {"C": 412, "MK": 1207}
    assert job.total_ink_ul == 1619
    assert job.pixel_coverage_ppm == {"C": 31000, "MK": 88000}
    assert (scan.kind, scan.status, scan.scan_area_mm2, scan.copies) == (
        JobKind.SCAN,
        JobStatus.CANCELLED,
        623700,
        0,
    )


def test_job_cursor_skips_collected_jobs() -> None:
    docs = read_docs(DESIGNJET)
    report = parse_documents(docs, collected_at=WHEN, job_cursor=1042)
    assert [j.sequence_number for j in report.jobs] == [1043]
    assert parse_documents(docs, collected_at=WHEN, job_cursor=5000).jobs == []


def test_health_report_carries_identity_status_and_active_alerts_only() -> None:
    report = parse_documents(read_docs(DESIGNJET), collected_at=WHEN, kind=ReportKind.HEALTH)
    assert report.kind is ReportKind.HEALTH
    assert report.status is not None and report.status.engine_state is EngineState.PRINTING
    assert report.usage is None and report.jobs == []
    assert [a.code for a in report.alerts] == ["cartridgeLow"]
    officejet = parse_documents(
        _capture("hp_officejet_pro_9022e"), collected_at=WHEN, kind=ReportKind.HEALTH
    )
    assert officejet.alerts == []  # no event-log history in a health report


# --------------------------------------------------------------------------- missing parts


def test_missing_documents_leave_their_parts_absent() -> None:
    docs = _capture("hp_officejet_pro_9022e")
    only_config = parse_documents({"ProductConfigDyn.xml": docs["ProductConfigDyn.xml"]})
    assert only_config.device.product_number == "226Y0B"
    assert only_config.status is None and only_config.usage is None and only_config.alerts == []
    with_usage = parse_documents(
        {name: docs[name] for name in ("ProductConfigDyn.xml", "ProductUsageDyn.xml")}
    )
    assert with_usage.status is None
    assert with_usage.usage is not None and with_usage.usage.impressions == 875


def test_product_config_is_required() -> None:
    docs = _capture("hp_officejet_pro_9022e")
    del docs["ProductConfigDyn.xml"]
    with pytest.raises(MalformedResponse, match=r"ProductConfigDyn\.xml is required"):
        parse_documents(docs)


def test_discovery_tree_lists_documents() -> None:
    tree = _capture("hp_officejet_pro_9022e")["DiscoveryTree.xml"]
    names = parse.parse_discovery_tree(tree)
    assert {"ProductConfigDyn.xml", "ProductUsageDyn.xml", "ProductLogsDyn.xml"} <= set(names)
    assert "JobAccountingDyn.xml" not in names
    assert "JobAccountingDyn.xml" in parse.parse_discovery_tree(
        (DESIGNJET / "DiscoveryTree.xml").read_bytes()
    )
    with pytest.raises(MalformedResponse, match="not DiscoveryTree"):
        parse.parse_discovery_tree(b"<html><body>EWS</body></html>")


# --------------------------------------------------------------------------- hostile input

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<ProductUsageDyn><PrinterSubunit><TotalImpressions>&lol4;</TotalImpressions></PrinterSubunit>
</ProductUsageDyn>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<ProductConfigDyn><ProductInformation><SerialNumber>&xxe;</SerialNumber></ProductInformation>
</ProductConfigDyn>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE r SYSTEM "http://attacker.invalid/evil.dtd">
<ProductConfigDyn/>"""


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("ProductUsageDyn.xml", BILLION_LAUGHS),
        ("ProductConfigDyn.xml", EXTERNAL_ENTITY),
        ("ProductConfigDyn.xml", EXTERNAL_DTD),
    ],
)
def test_hostile_xml_is_refused(name: str, body: bytes) -> None:
    docs = _capture("hp_officejet_pro_9022e")
    docs[name] = body
    with pytest.raises(MalformedResponse, match="refused unsafe XML") as info:
        parse_documents(docs)
    assert "\n" not in str(info.value)


def test_truncated_and_garbage_documents_are_malformed() -> None:
    docs = _capture("hp_envy_photo_7830_all_in_one_printer")
    for name in ("ProductUsageDyn.xml", "ConsumableConfigDyn.xml", "ProductStatusDyn.xml"):
        broken = dict(docs)
        broken[name] = docs[name][: len(docs[name]) // 2]
        with pytest.raises(MalformedResponse, match=f"{name}: not well-formed XML"):
            parse_documents(broken)
    with pytest.raises(MalformedResponse):
        parse_documents({"ProductConfigDyn.xml": b"\x00\xff not xml"})


def _usage(body: str) -> bytes:
    return (
        '<pudyn:ProductUsageDyn xmlns:pudyn="http://www.hp.com/schemas/imaging/con/ledm/'
        'productusagedyn/2007/12/11" xmlns:dd="http://www.hp.com/schemas/imaging/con/'
        f'dictionaries/1.0/"><pudyn:PrinterSubunit>{body}</pudyn:PrinterSubunit>'
        "</pudyn:ProductUsageDyn>"
    ).encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("<dd:TotalImpressions>many</dd:TotalImpressions>", "not a number"),
        ("<dd:TotalImpressions>-5</dd:TotalImpressions>", "negative"),
        ("<dd:TotalImpressions>NaN</dd:TotalImpressions>", "not a finite number"),
        # Absurd magnitudes: refused before int() (which is quadratic in the digit count).
        ("<dd:TotalImpressions>1e10000000</dd:TotalImpressions>", "out of range"),
        ("<dd:TotalImpressions>1e30</dd:TotalImpressions>", "out of range"),
        # Within Decimal's reach but beyond a 64-bit counter: refused by the wire model.
        ("<dd:TotalImpressions>18446744073709551615</dd:TotalImpressions>", "out of range"),
        ("<dd:TotalImpressions>9999999999999999999</dd:TotalImpressions>", "impressions"),
        ("<dd:TotalArea>12</dd:TotalArea>", "without a unit"),
        (
            "<dd:TotalArea><dd:ValueFloat>1</dd:ValueFloat><dd:Unit>acres</dd:Unit></dd:TotalArea>",
            "unknown area unit",
        ),
    ],
)
def test_bad_counter_values_are_malformed(body: str, reason: str) -> None:
    with pytest.raises(MalformedResponse, match=reason):
        parse.parse_product_usage(_usage(body))


def test_out_of_range_job_values_are_malformed_not_a_crash() -> None:
    body = (DESIGNJET / "JobAccountingDyn.xml").read_bytes()
    bad = body.replace(b"<jadyn:PixelCoveragePpm>31000<", b"<jadyn:PixelCoveragePpm>2000000<")
    with pytest.raises(MalformedResponse, match="pixel_coverage_ppm"):
        parse.parse_job_accounting(bad)
    with pytest.raises(MalformedResponse, match="unknown value 'fax'"):
        parse.parse_job_accounting(body.replace(b">scan</jadyn:JobType>", b">fax</jadyn:JobType>"))
    with pytest.raises(MalformedResponse, match="bad UUID"):
        parse.parse_job_accounting(body.replace(b"6f1c2d3e-4b5a-4c6d-8e7f-901234567891", b"nope"))


def test_untrusted_job_name_is_cut_to_the_wire_limit() -> None:
    body = (DESIGNJET / "JobAccountingDyn.xml").read_bytes()
    long_name = b"x" * 5000
    jobs = parse.parse_job_accounting(body.replace(b"Old job.pdf", long_name))
    assert jobs[0].name == "x" * 2048


def test_fixture_files_are_ours(tmp_path: Path) -> None:
    # Guard: the synthetic fixtures say they are synthetic, so nobody mistakes them for captures.
    for file in DESIGNJET.glob("*.xml"):
        assert b"not a device capture" in file.read_bytes(), file.name
