"""The pure IPP parser on real captured printer responses, hostile bytes and job lists."""

from __future__ import annotations

import random
import struct
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyipp.enums import IppOperation, IppTag

from fleetmeter.devices.errors import DeviceError, MalformedResponse, NotSupported
from fleetmeter.devices.ipp.client import encode_request
from fleetmeter.devices.ipp.parse import (
    check_encoding,
    decode,
    parse_alerts,
    parse_cartridges,
    parse_engine_state,
    parse_identity,
    parse_jobs,
    parse_report,
    parse_usage,
)
from fleetmeter.wire import AlertSeverity, EngineState, JobStatus, ReportKind, SupplyState
from tests.devices.conftest import shared_fixtures
from tests.devices.ipp_fixtures import ipp_response as response

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def capture(name: str) -> bytes:
    path: Path = shared_fixtures() / "ipp" / f"get-printer-attributes-{name}.bin"
    if not path.is_file():
        pytest.skip(f"IPP capture {path} not found")
    return path.read_bytes()


# --------------------------------------------------------------------------- real captures


def test_hp_officejet_pro_6830_capture() -> None:
    report = parse_report(capture("hp6830"), address="10.0.0.5", collected_at=NOW)
    device = report.device
    assert (device.vendor, device.serial_number) == ("HP", "TH55R620W0")  # device-id SN:
    assert device.product_name == "HP Officejet Pro 6830"
    assert device.firmware_version is None  # the 6830 has no printer-firmware-string-version
    assert (device.driver, device.address) == ("ipp", "10.0.0.5")
    status = report.status
    assert status is not None
    assert status.engine_state is EngineState.IDLE
    assert status.state_reasons == ["marker-supply-low-warning"]
    assert [(c.slot, c.color, c.level_percent, c.status) for c in status.cartridges] == [
        (1, "M", 20, SupplyState.LOW),  # "magenta ink", level 20 <= low level 20
        (2, "C", 20, SupplyState.LOW),
        (3, "Y", 20, SupplyState.LOW),
        (4, "K", 20, SupplyState.LOW),
    ]
    # The 27 printer-alert entries all have severity "other" (a history of "ready",
    # "inPowerSave" ...): left out. The state reason is the one active condition.
    assert [(a.code, a.severity) for a in report.alerts] == [
        ("marker-supply-low", AlertSeverity.WARNING)
    ]
    assert report.alerts[0].first_seen == datetime(2020, 2, 28, 22, 43, 2, tzinfo=UTC)
    assert report.usage is None  # no printer-impressions-completed
    assert report.jobs == []


def test_epson_xp_6000_capture() -> None:
    report = parse_report(capture("epsonxp6000"), collected_at=NOW)
    device = report.device
    assert (device.vendor, device.serial_number) == ("EPSON", "583434593035343012")
    assert device.product_name == "EPSON XP-6000 Series"
    assert device.firmware_version == "20.44.NU25M7"
    status = report.status
    assert status is not None and status.engine_state is EngineState.IDLE
    assert [(c.color, c.level_percent, c.status) for c in status.cartridges] == [
        ("PK", 27, SupplyState.OK),  # "Photo Black ink"
        ("C", 99, SupplyState.OK),
        ("M", 83, SupplyState.OK),
        ("Y", 6, SupplyState.LOW),  # 6 <= low level 15
        ("K", 64, SupplyState.OK),
    ]
    alerts = {a.code: a for a in report.alerts}
    assert alerts["marker-supply-low"].severity is AlertSeverity.WARNING
    # printer-alert "code=other" without a severity, described "feed roller needed soon".
    assert alerts["other"].severity is AlertSeverity.INFO
    assert alerts["other"].text == "feed roller needed soon"
    assert report.usage is None


def test_health_report_of_a_capture_has_no_usage_or_jobs() -> None:
    report = parse_report(capture("epsonxp6000"), collected_at=NOW, kind=ReportKind.HEALTH)
    assert report.kind is ReportKind.HEALTH
    assert report.usage is None and report.jobs == []
    assert report.status is not None and len(report.status.cartridges) == 5


def test_version_not_supported_capture_is_a_clear_not_supported() -> None:
    data = capture("error-0x0503")
    message = decode(data)
    assert (message.version, message.status_code, message.printers) == ((1, 1), 0x0503, [])
    with pytest.raises(NotSupported, match=r"0x0503 \(error-version-not-supported\)"):
        parse_report(data)


# --------------------------------------------------------------------------- hostile input


def test_truncated_responses_are_malformed() -> None:
    data = capture("hp6830")
    for cut in [*range(0, 64), *range(64, len(data), 97), len(data) - 1]:
        with pytest.raises(MalformedResponse):
            parse_report(data[:cut])


@pytest.mark.parametrize(
    ("length", "reason"),
    [(0xFFFF, "out of range"), (0x8000, "out of range"), (0x7FFF, "runs past the end")],
)
def test_absurd_attribute_lengths_are_malformed(length: int, reason: str) -> None:
    # The first attribute's name-length (offset 10): pyipp would read 0xFFFF as -1 and step
    # backwards; 0x7FFF would slice past the end and carry on with garbage.
    data = bytearray(capture("epsonxp6000"))
    struct.pack_into(">H", data, 10, length)
    with pytest.raises(MalformedResponse, match=reason):
        parse_report(bytes(data))


def test_value_length_past_the_end_is_malformed() -> None:
    body = response(printer=[("printer-name", "x", IppTag.NAME)])
    at = body.index(b"printer-name") + len(b"printer-name")
    data = body[:at] + struct.pack(">H", 5000) + body[at + 2 :]
    with pytest.raises(MalformedResponse, match="runs past the end"):
        decode(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x02\x00\x00", "too short"),
        (struct.pack(">bbhi", 2, 0, 0, 1) + b"\x01", "no end-of-attributes"),
        (struct.pack(">bbhi", 2, 0, 0, 1) + b"\x06\x03", "unsupported group tag 0x06"),
        (struct.pack(">bbhi", 2, 0, 0, 1) + b"\x44\x00\x01a\x00\x00\x03", "before any group"),
        # An integer must be 4 bytes; pyipp would read 4 whatever the length says.
        (struct.pack(">bbhi", 2, 0, 0, 1) + b"\x04\x21\x00\x01a\x00\x02\x00\x01\x03", "not 4"),
        # endCollection without a begin, and a begin without an end.
        (struct.pack(">bbhi", 2, 0, 0, 1) + b"\x04\x37\x00\x00\x00\x00\x03", "never begun"),
        (struct.pack(">bbhi", 2, 0, 0, 1) + b"\x04\x34\x00\x01c\x00\x00\x03", "unterminated"),
        (
            struct.pack(">bbhi", 2, 0, 0, 1) + b"\x04\x34\x00\x01c\x00\x00\x02\x03",
            "group tag inside a collection",
        ),
        (
            struct.pack(">bbhi", 2, 0, 0, 1) + b"\x04" + b"\x34\x00\x01c\x00\x00" * 40 + b"\x03",
            "nested too deep",
        ),
        # textWithLanguage whose inner lengths do not add up.
        (
            struct.pack(">bbhi", 2, 0, 0, 1) + b"\x04\x35\x00\x01t\x00\x04\x00\x09en\x03",
            "textWithLanguage",
        ),
    ],
)
def test_broken_framing_is_malformed(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedResponse, match=reason):
        check_encoding(data)


def test_undecodable_values_are_malformed() -> None:
    # A name that is not UTF-8, and a printer-state RFC 8011 does not define.
    bad_name = struct.pack(">bbhi", 2, 0, 0, 1) + b"\x04\x42\x00\x02\xff\xfe\x00\x01x\x03"
    with pytest.raises(MalformedResponse, match="cannot be decoded"):
        decode(bad_name)
    bad_state = response(printer=[("printer-state", 9, IppTag.ENUM)])
    with pytest.raises(MalformedResponse, match="cannot be decoded"):
        decode(bad_state)


def test_random_corruption_never_crashes_or_hangs() -> None:
    """Flip bytes of a real capture: every outcome is a report or a DeviceError."""
    original = capture("hp6830")
    rng = random.Random(6830)
    started = time.monotonic()
    outcomes = {"report": 0, "error": 0}
    for _ in range(400):
        data = bytearray(original)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            parse_report(bytes(data), collected_at=NOW)
            outcomes["report"] += 1
        except DeviceError:
            outcomes["error"] += 1
    assert outcomes["error"] > 0
    assert time.monotonic() - started < 60


def test_an_answer_without_printer_attributes_is_malformed() -> None:
    with pytest.raises(MalformedResponse, match="no printer attributes"):
        parse_report(response())


def test_a_printer_without_any_identity_is_malformed() -> None:
    with pytest.raises(MalformedResponse, match="cannot be identified"):
        parse_report(response(printer=[("printer-state", 3, IppTag.ENUM)]))


def test_requests_we_send_are_well_formed() -> None:
    body = encode_request(
        IppOperation.GET_JOBS,
        [
            ("printer-uri", "ipp://p:631/ipp/print", IppTag.URI),
            ("which-jobs", "completed", IppTag.KEYWORD),
            ("limit", 1000, IppTag.INTEGER),
            ("requested-attributes", ["job-id", "job-uuid"], IppTag.KEYWORD),
        ],
        request_id=77,
    )
    check_encoding(body)
    message = decode(body)  # a request decodes like a response; the "status" is the operation
    assert (message.status_code, message.request_id) == (IppOperation.GET_JOBS, 77)
    assert list(message.operation) == [
        "attributes-charset",
        "attributes-natural-language",
        "printer-uri",
        "which-jobs",
        "limit",
        "requested-attributes",
    ]
    assert message.operation["requested-attributes"] == ["job-id", "job-uuid"]


# --------------------------------------------------------------------------- attributes


def test_identity_fallbacks() -> None:
    by_uuid = parse_identity(
        {
            "printer-make-and-model": "Hewlett-Packard DesignJet Z6",
            "printer-uuid": "urn:uuid:cfe92100-67c4-11d4-a45f-f8d027761251",
        }
    )
    assert (by_uuid.vendor, by_uuid.serial_number) == (
        "HP",
        "cfe92100-67c4-11d4-a45f-f8d027761251",
    )
    by_attribute = parse_identity(
        {
            "printer-serial-number": "CN12345",
            "printer-device-id": "MFG:Canon;MDL:PRO-1000;SN:IGNORED;",
            "printer-firmware-string-version": ["1.2.0", "boot 0.9"],
        }
    )
    assert (by_attribute.vendor, by_attribute.serial_number) == ("Canon", "CN12345")
    assert by_attribute.product_name == "PRO-1000"  # MDL when there is no make-and-model
    assert by_attribute.firmware_version == "1.2.0"


@pytest.mark.parametrize(
    ("state", "reasons", "engine"),
    [
        (3, ["none"], EngineState.IDLE),
        (4, ["none"], EngineState.PRINTING),
        (5, ["media-jam-error"], EngineState.ERROR),
        (5, ["cover-open"], EngineState.ERROR),  # no suffix: an error (RFC 8011)
        (5, ["paused"], EngineState.OFFLINE),
        (5, ["offline-report"], EngineState.OFFLINE),
        (3, ["warming-up"], EngineState.WARMING),
        (None, [], EngineState.UNKNOWN),
    ],
)
def test_engine_state(state: int | None, reasons: list[str], engine: EngineState) -> None:
    printer: dict[str, Any] = {"printer-state-reasons": reasons}
    if state is not None:
        printer["printer-state"] = state
    assert parse_engine_state(printer) is engine


def test_alert_severities_and_components() -> None:
    printer = {
        "printer-state-reasons": ["media-empty-error", "toner-low-report", "door-open", "paused"],
        "printer-alert": [
            "code=jam;severity=critical;group=mediaPath;",
            "code=markerSupplyLow;index=2;severity=warning;group=marker;",
            "code=markerSupplyLow;index=2;severity=warning;group=marker;",  # repeated
            "code=coverOpen;severity=other;group=cover;",  # history, left out
        ],
        "printer-alert-description": ["Paper jam", "", "", "Cover open"],
        "marker-names": ["Black", "Cyan"],
        "marker-levels": [50, 3],
        "marker-low-levels": [10, 10],
        "printer-state-change-date-time": datetime(2026, 2, 1, tzinfo=UTC),
    }
    alerts = parse_alerts(printer, collected_at=NOW, cartridges=parse_cartridges(printer))
    assert [(a.code, a.severity, a.component) for a in alerts] == [
        ("media-empty", AlertSeverity.ERROR, None),
        ("toner-low", AlertSeverity.INFO, None),
        ("door-open", AlertSeverity.ERROR, None),
        ("jam", AlertSeverity.CRITICAL, None),
        ("markerSupplyLow", AlertSeverity.WARNING, "cartridge:C"),
    ]
    assert alerts[3].text == "Paper jam (group=mediaPath)"
    assert {a.first_seen for a in alerts} == {datetime(2026, 2, 1, tzinfo=UTC)}
    # Without a state-change time, the poll time.
    del printer["printer-state-change-date-time"]
    assert parse_alerts(printer, collected_at=NOW)[0].first_seen == NOW


def test_markers_skip_parts_and_handle_special_levels() -> None:
    printer = {
        "marker-names": ["Tri-color ink", "Waste ink", "Gray", "Photo Black ink"],
        "marker-types": ["ink-cartridge", "waste-ink", "ink", "ink-cartridge"],
        "marker-levels": [-3, 80, 0, -2],
        "marker-low-levels": [10, 10, 10, 10],
        "marker-colors": ["#00FFFF#FF00FF#FFFF00", "none", "#808080", "#000000"],
    }
    cartridges = parse_cartridges(printer)
    assert [(c.slot, c.color, c.level_percent, c.status) for c in cartridges] == [
        (1, "CMY", None, SupplyState.OK),  # -3: "some remaining"
        (3, "G", 0, SupplyState.EMPTY),
        (4, "PK", None, SupplyState.UNKNOWN),  # -2: unknown
    ]


def test_supplies_when_there_are_no_markers() -> None:
    printer = {
        "printer-supply": [
            "index=1;class=receptacleThatIsFilled;type=wasteToner;unit=percent;"
            "maxcapacity=100;level=25;colorantname=unknown;",
            "index=2;class=supplyThatIsConsumed;type=toner;unit=percent;maxcapacity=100;"
            "level=75;colorantname=black;",
            "index=3;class=supplyThatIsConsumed;type=inkCartridge;unit=tenthsOfMilliliters;"
            "maxcapacity=1300;level=325;colorantname=cyan;",
        ],
        "printer-supply-description": ["Waste Toner", "Black Toner", "Cyan 130ml"],
    }
    cartridges = parse_cartridges(printer)
    assert [(c.slot, c.color, c.level_percent, c.capacity_ul) for c in cartridges] == [
        (2, "K", 75, None),
        (3, "C", 25, 130_000),
    ]
    assert cartridges[0].product_name == "Black Toner"


def test_lifetime_counters_where_offered() -> None:
    assert parse_usage({}) is None
    usage = parse_usage(
        {
            "printer-impressions-completed": 15232,
            "printer-impressions-completed-col": {"monochrome": 15000, "full-color": 232},
        }
    )
    assert usage is not None
    assert (usage.impressions, usage.mono_impressions, usage.color_impressions) == (
        15232,
        15000,
        232,
    )
    # Out-of-band "unknown" (pyipp decodes it as "") is not a zero.
    assert parse_usage({"printer-impressions-completed": ""}) is None
    summed = parse_usage({"printer-impressions-completed-col": {"monochrome": 7, "full-color": 3}})
    assert summed is not None and summed.impressions == 10


# --------------------------------------------------------------------------- jobs


def job(job_id: int, state: int = 9, **extra: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "job-id": job_id,
        "job-state": state,
        "job-uuid": f"urn:uuid:{uuid.UUID(int=job_id)}",
        "job-name": f"job {job_id}",
        "job-originating-user-name": "alice",
        "job-impressions-completed": job_id * 2,
        "job-printer-up-time": 1000,
        "time-at-creation": 880,
        "time-at-processing": 890,
        "time-at-completed": 900,
    }
    attrs.update(extra)
    return attrs


def test_jobs_become_records_oldest_first() -> None:
    records = parse_jobs(
        [job(3, 7), job(2, 8), job(1, print_quality=5)],
        printer_key="HP/X",
        collected_at=NOW,
    )
    assert [(r.sequence_number, r.status, r.pages) for r in records] == [
        (1, JobStatus.COMPLETED, 2),
        (2, JobStatus.FAILED, 4),  # aborted
        (3, JobStatus.CANCELLED, 6),
    ]
    first = records[0]
    assert first.job_uuid == uuid.UUID(int=1)
    assert (first.name, first.submitter.user) == ("job 1", "alice")
    # time-at-* are printer up-times: placed against the poll time (100 s before it).
    assert first.completed_at == NOW - timedelta(seconds=100)
    assert first.submitter.submitted_at == NOW - timedelta(seconds=120)
    assert (first.duration_s, first.print_time_s) == (20, 10)


def test_job_cursor_skips_jobs_already_collected() -> None:
    jobs = [job(i) for i in (5, 6, 7, 8)]
    assert [r.sequence_number for r in parse_jobs(jobs, printer_key="k", job_cursor=6)] == [7, 8]
    assert parse_jobs(jobs, printer_key="k", job_cursor=8) == []


def test_finished_jobs_wait_behind_an_older_active_job() -> None:
    # Job 6 is still printing while 7 (cancelled) is finished: reporting 7 would move the
    # cursor past 6, which would then never be reported.
    records = parse_jobs([job(5), job(7, 7)], printer_key="k", active_job_ids=[6])
    assert [r.sequence_number for r in records] == [5]
    # A job held for release (pending-held, 4) does not hold the others back.
    records = parse_jobs([job(5), job(6, 4), job(7)], printer_key="k")
    assert [r.sequence_number for r in records] == [5, 7]


def test_jobs_without_uuid_or_up_time() -> None:
    bare = {
        "job-id": 12,
        "job-state": 9,
        "date-time-at-completed": datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC),
        "date-time-at-creation": datetime(2026, 2, 3, 4, 5, 0, tzinfo=UTC),
        "media": "iso_a4_210x297mm",
        "job-media-sheets-completed": 3,
    }
    (record,) = parse_jobs([bare], printer_key="HP/X", collected_at=NOW)
    (again,) = parse_jobs([bare], printer_key="HP/X", collected_at=NOW + timedelta(hours=1))
    assert record.job_uuid == again.job_uuid  # derived, the same on every poll
    assert record.job_uuid != parse_jobs([bare], printer_key="HP/Y")[0].job_uuid
    assert record.completed_at == datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert (record.pages, record.copies, record.name) == (0, 1, None)
    assert (record.media_width_mm, record.media_length_mm) == (210, 297)
    assert record.media_area_mm2 == 210 * 297 * 3


def test_job_without_id_is_malformed() -> None:
    with pytest.raises(MalformedResponse, match="job-id"):
        parse_jobs([{"job-state": 9}], printer_key="k")


def test_report_with_get_jobs_responses() -> None:
    printer = capture("hp6830")
    completed = response(
        jobs=[
            [
                ("job-id", 41, IppTag.INTEGER),
                ("job-state", 9, IppTag.ENUM),
                ("job-uuid", f"urn:uuid:{uuid.UUID(int=41)}", IppTag.URI),
                ("job-name", "Floor plan L2.pdf", IppTag.NAME),
                ("job-impressions-completed", 2, IppTag.INTEGER),
            ],
            [("job-id", 43, IppTag.INTEGER), ("job-state", 9, IppTag.ENUM)],
        ]
    )
    active = response(jobs=[[("job-id", 42, IppTag.INTEGER), ("job-state", 5, IppTag.ENUM)]])
    report = parse_report(printer, completed_jobs=completed, active_jobs=active, collected_at=NOW)
    assert [(j.sequence_number, j.name, j.pages) for j in report.jobs] == [
        (41, "Floor plan L2.pdf", 2)
    ]
    # A device that refuses Get-Jobs (here: authentication needed) gives a report without jobs.
    refused = response(status=0x0403)
    assert parse_report(printer, completed_jobs=refused, collected_at=NOW).jobs == []
    with pytest.raises(MalformedResponse):
        parse_report(printer, completed_jobs=b"\x02\x00", collected_at=NOW)
