"""The pure OctoPrint parser on concrete documents (shaped as OctoPrint 1.11.8 answered them
in the peer tests; the values here are set so that every conversion is checked) and on
hostile input, which must raise MalformedResponse, never crash."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fleetmeter.devices.errors import MalformedResponse
from fleetmeter.devices.octoprint.parse import (
    decode,
    device_serial,
    is_octoprint_version,
    parse_current_job,
    parse_identity,
    parse_print_history,
    parse_printer,
    parse_report,
)
from fleetmeter.wire import EngineState, JobStatus, ReportKind

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
VERSION = {"api": "0.1", "server": "1.11.8", "text": "OctoPrint 1.11.8"}
CONNECTION = {
    "current": {
        "baudrate": 115200,
        "port": "/dev/ttyACM0",
        "printerProfile": "prusa_mk3s",
        "state": "Operational",
    },
    "options": {"printerProfilePreference": "_default", "printerProfiles": []},
}
PROFILES = {
    "profiles": {
        "_default": {"id": "_default", "name": "Default", "model": "Generic RepRap Printer"},
        "prusa_mk3s": {"id": "prusa_mk3s", "name": "MK3S", "model": "Original Prusa i3 MK3S"},
    }
}


def _printer(flags: dict[str, bool], text: str, error: str = "") -> dict[str, Any]:
    names = "cancelling closedOrError error finishing operational paused pausing printing"
    base = dict.fromkeys([*names.split(), "ready", "resuming", "sdReady"], False)
    return {
        "sd": {"ready": True},
        "state": {"error": error, "flags": base | flags, "text": text},
        "temperature": {
            "bed": {"actual": 59.8, "offset": 0, "target": 60.0},
            "tool0": {"actual": 214.6, "offset": 0, "target": 215.0},
        },
    }


PRINTING = _printer({"operational": True, "printing": True, "sdReady": True}, "Printing")
JOB = {
    "job": {
        "estimatedPrintTime": 5400.5,
        "filament": {"tool0": {"length": 4123.6, "volume": 9.92}},
        "file": {
            "date": 1772360000,
            "display": "gear.gcode",
            "name": "gear.gcode",
            "origin": "local",
            "path": "parts/gear.gcode",
            "size": 2345888,
        },
        "user": "alice",
    },
    "progress": {
        "completion": 47.31,
        "filepos": 1109876,
        "printTime": 1830,
        "printTimeLeft": 2040,
        "printTimeLeftOrigin": "estimate",
    },
    "state": "Printing",
}


def _file(path: str, last: dict[str, Any] | None, *, success: int = 1, failure: int = 0) -> dict:
    entry: dict[str, Any] = {
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "type": "machinecode",
        "typePath": ["machinecode", "gcode"],
        "origin": "local",
        "gcodeAnalysis": {"filament": {"tool0": {"length": 4123.6, "volume": 9.92}}},
    }
    if last is not None:
        entry["prints"] = {"success": success, "failure": failure, "last": last}
    return entry


FILES = {
    "files": [
        {
            "name": "parts",
            "path": "parts",
            "type": "folder",
            "origin": "local",
            # OctoPrint sums its children into the folder: must not count as a print.
            "prints": {"success": 2, "failure": 1, "last": {"date": 1772362000.5, "success": True}},
            "children": [
                _file(
                    "parts/gear.gcode",
                    {"date": 1772362000.5, "success": True, "printTime": 5399.6},
                    success=2,
                ),
                _file(
                    "parts/lid.gcode",
                    {"date": 1772350000.25, "success": False},
                    success=0,
                    failure=1,
                ),
            ],
        },
        _file("never-printed.gcode", None),
    ],
    "free": 1000,
    "total": 2000,
}
SERIAL = device_serial("printer.lan", 80, "prusa_mk3s")


def test_identity_from_version_connection_and_profile() -> None:
    identity = parse_identity(
        VERSION, host="printer.lan", port=80, connection=CONNECTION, profiles=PROFILES
    )
    assert identity.vendor == "OctoPrint"
    assert identity.product_name == "Original Prusa i3 MK3S"  # the connected profile's model
    assert identity.firmware_version == "OctoPrint 1.11.8"
    assert identity.device_class == "printer3d"
    assert identity.serial_number == SERIAL
    assert str(uuid.uuid5(uuid.NAMESPACE_URL, "octoprint://printer.lan:80/prusa_mk3s")) == SERIAL
    # Without permission for connection and profiles: still identified, without the profile.
    bare = parse_identity(VERSION, host="PRINTER.lan", port=80)
    assert bare.product_name is None
    assert bare.serial_number == device_serial("printer.lan", 80, None) != SERIAL


def test_version_document_is_recognised() -> None:
    assert is_octoprint_version(VERSION)
    assert not is_octoprint_version({"api": "0.1", "server": "1.0", "text": "Other 1.0"})
    assert not is_octoprint_version([VERSION])
    with pytest.raises(MalformedResponse, match="not an OctoPrint version"):
        parse_identity({"version": "1"}, host="h", port=80)


@pytest.mark.parametrize(
    ("flags", "text", "error", "state"),
    [
        ({"operational": True, "ready": True}, "Operational", "", EngineState.WARMING),
        ({"operational": True, "printing": True}, "Printing", "", EngineState.PRINTING),
        ({"operational": True, "paused": True}, "Paused", "", EngineState.PRINTING),
        ({"closedOrError": True}, "Offline", "", EngineState.OFFLINE),
        ({"closedOrError": True, "error": True}, "Error", "Thermal runaway", EngineState.ERROR),
        ({}, "Connecting", "", EngineState.UNKNOWN),
    ],
)
def test_printer_state_from_flags(
    flags: dict[str, bool], text: str, error: str, state: EngineState
) -> None:
    parsed = parse_printer(_printer(flags, text, error))
    assert parsed.state is state
    assert parsed.reasons == [text]
    assert parsed.error == (error or None)
    # Targets are set (60/215 °C): an operational, idle printer is warming up.
    assert parsed.temperatures_c == {
        "bed": 59.8,
        "bed.target": 60.0,
        "tool0": 214.6,
        "tool0.target": 215.0,
    }


def test_printer_not_connected_is_offline() -> None:
    # OctoPrint answers /api/printer with 409 when no printer is connected: the driver
    # passes None.
    assert parse_printer(None).state is EngineState.OFFLINE


def test_cold_idle_printer_is_idle() -> None:
    doc = _printer({"operational": True, "ready": True}, "Operational")
    doc["temperature"] = {
        "bed": {"actual": 21.3, "target": 0.0},
        "tool0": {"actual": None, "target": 0.0},  # OctoPrint sends null before a reading
        "W": {"actual": 1.0, "target": 0.0},
        "bad name!": {"actual": 1.0},
    }
    parsed = parse_printer(doc)
    assert parsed.state is EngineState.IDLE
    assert parsed.temperatures_c == {
        "bed": 21.3,
        "bed.target": 0.0,
        "tool0.target": 0.0,
        "W": 1.0,
        "W.target": 0.0,
    }


def test_current_job_in_base_units() -> None:
    build = parse_current_job(JOB, collected_at=NOW, active=True)
    assert build is not None
    assert build.id == "local:parts/gear.gcode"
    assert build.name == "parts/gear.gcode"
    assert build.progress_percent == 47
    assert build.duration_s == 1830
    assert build.started_at == NOW - timedelta(seconds=1830)
    assert build.estimated_end == NOW + timedelta(seconds=2040)
    assert build.outcome == "running"
    # 4123.6 mm and 9.92 cm³ of filament for the whole file.
    assert build.model_extra == {"filament_mm": 4124, "filament_ul": 9920}


def test_no_current_job_when_idle() -> None:
    idle = dict(JOB, state="Operational")
    assert parse_current_job(idle, collected_at=NOW, active=False) is None
    empty = {
        "job": {"file": {"name": None, "path": None}, "filament": {"length": None, "volume": None}},
        "progress": {"completion": None, "printTime": None, "printTimeLeft": None},
        "state": "Printing",
    }
    assert parse_current_job(empty, collected_at=NOW, active=True) is None


def test_print_history_walks_folders_and_skips_their_sums() -> None:
    history = parse_print_history(FILES)
    assert [(p.path, p.success, p.sequence_number) for p in history] == [
        ("parts/lid.gcode", False, 1772350000250),
        ("parts/gear.gcode", True, 1772362000500),
    ]
    gear = history[1]
    assert gear.completed_at == datetime.fromtimestamp(1772362000.5, UTC)
    assert gear.print_time_s == 5400
    assert (gear.prints_success, gear.prints_failure) == (2, 0)
    assert (gear.filament.length_mm, gear.filament.volume_ul) == (4124, 9920)


def test_report_jobs_builds_and_cursor() -> None:
    report = parse_report(
        version=VERSION,
        host="printer.lan",
        port=80,
        connection=CONNECTION,
        profiles=PROFILES,
        printer=PRINTING,
        job=JOB,
        files=FILES,
        collected_at=NOW,
    )
    assert report.status is not None and report.additive is not None
    assert report.status.engine_state is EngineState.PRINTING
    assert report.additive.build_job is not None
    assert report.usage is None
    lid, gear = report.jobs
    assert lid.status is JobStatus.FAILED
    assert lid.media_length_mm is None and lid.model_extra == {}  # failed: amount unknown
    assert gear.status is JobStatus.COMPLETED
    assert (gear.media_type, gear.media_length_mm, gear.model_extra) == (
        "filament",
        4124,
        {"filament_ul": 9920},
    )
    assert gear.job_uuid == uuid.uuid5(
        uuid.NAMESPACE_URL, f"octoprint-job:OctoPrint/{SERIAL}/local/parts/gear.gcode/1772362000500"
    )
    assert [b.name for b in report.additive.recent_builds] == [gear.name, lid.name]
    assert report.additive.recent_builds[1].outcome == "failed"

    later = parse_report(
        version=VERSION,
        host="printer.lan",
        port=80,
        connection=CONNECTION,
        profiles=PROFILES,
        files=FILES,
        job_cursor=lid.sequence_number,
    )
    assert [job.job_uuid for job in later.jobs] == [gear.job_uuid]
    health = parse_report(
        version=VERSION, host="printer.lan", port=80, files=FILES, kind=ReportKind.HEALTH
    )
    assert health.jobs == []


def test_error_state_raises_an_alert() -> None:
    printer = _printer({"closedOrError": True, "error": True}, "Error", "Heating failed")
    report = parse_report(version=VERSION, host="h", port=80, printer=printer, collected_at=NOW)
    assert [(a.code, a.text, a.first_seen) for a in report.alerts] == [
        ("printer_error", "Heating failed", NOW)
    ]


def test_zero_volume_means_unknown() -> None:
    # OctoPrint reports volume 0.0 when the file names no filament diameter.
    files = {"files": [_file("a.gcode", {"date": 1.0, "success": True})]}
    files["files"][0]["gcodeAnalysis"]["filament"] = {"tool0": {"length": 30.0, "volume": 0.0}}
    (item,) = parse_print_history(files)
    assert (item.filament.length_mm, item.filament.volume_ul) == (30, None)


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>not json</html>",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b"\xff\xfe\x00garbage",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a": ' + b"9" * 5000 + b"}",
    ],
)
def test_decode_refuses_non_json(body: bytes) -> None:
    with pytest.raises(MalformedResponse):
        decode(body, what="/api/x")


def test_decode_refuses_deep_nesting_the_decoder_accepts() -> None:
    body = json.dumps(json.loads("[" * 300 + "]" * 300)).encode()
    with pytest.raises(MalformedResponse, match="nested too deeply"):
        decode(body, what="/api/x")


def _mutated(doc: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(doc))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["state"], "Operational"),
        (["state", "flags"], ["printing"]),
        (["state", "flags", "printing"], "yes"),
        (["state", "text"], 42),
        (["temperature", "tool0", "actual"], "hot"),
        (["temperature", "tool0", "actual"], 1e308 * 10),
        (["temperature", "tool0", "target"], True),
        (["temperature"], [1, 2]),
    ],
)
def test_printer_wrong_types_are_malformed(path: list[Any], value: Any) -> None:
    with pytest.raises(MalformedResponse):
        parse_printer(_mutated(PRINTING, path, value))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["progress", "completion"], "47%"),
        (["progress", "printTime"], -5),
        (["progress", "printTimeLeft"], 10**30),
        (["job", "file", "path"], {"x": 1}),
        (["job", "filament", "tool0", "length"], -1.0),
        (["job", "filament"], "4m"),
        (["state"], ["Printing"]),
    ],
)
def test_job_wrong_types_are_malformed(path: list[Any], value: Any) -> None:
    with pytest.raises(MalformedResponse):
        parse_current_job(_mutated(JOB, path, value), collected_at=NOW, active=True)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["files"], {"a": 1}),
        (["files", 0], "parts"),
        (["files", 0, "children", 0, "prints", "last", "date"], "yesterday"),
        (["files", 0, "children", 0, "prints", "last", "date"], 1e300),
        (["files", 0, "children", 0, "prints", "last", "success"], 1),
        (["files", 0, "children", 0, "prints", "success"], -3),
        (["files", 0, "children", 0, "path"], None),
        (["files", 0, "children"], "none"),
    ],
)
def test_history_wrong_types_are_malformed(path: list[Any], value: Any) -> None:
    doc = _mutated(FILES, path, value)
    if path[-1] == "path":
        doc["files"][0]["children"][0]["name"] = None
    with pytest.raises(MalformedResponse):
        parse_print_history(doc)


def test_deep_folders_are_malformed_not_a_crash() -> None:
    doc: dict[str, Any] = _file("deep.gcode", {"date": 1.0, "success": True})
    for _ in range(70):
        doc = {"name": "d", "type": "folder", "children": [doc]}
    with pytest.raises(MalformedResponse, match="nested too deeply"):
        parse_print_history({"files": [doc]})


def test_long_untrusted_text_is_cut_not_refused() -> None:
    files = {"files": [_file("x" * 5000 + ".gcode", {"date": 5.0, "success": True})]}
    report = parse_report(version=VERSION, host="h", port=80, files=files)
    assert report.jobs[0].name == "x" * 2048
