"""The pure Moonraker parser on the responses in ``fixtures/moonraker`` (recorded from a real
Moonraker 0.11.0, or constructed where only Klipper could answer: see the README there) and
on hostile input, which must raise MalformedResponse, never crash.

Klipper cannot run on these machines, so the printer objects (``/printer/objects/query``)
and a ready or shut-down Klipper (``/printer/info``) are only tested here, on constructed
responses written after Klipper's Status Reference.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fleetmeter.devices.errors import MalformedResponse
from fleetmeter.devices.moonraker.parse import (
    decode,
    device_serial,
    finished_jobs,
    parse_history,
    parse_instance_id,
    parse_printer_info,
    parse_printer_objects,
    parse_report,
    parse_server_info,
    parse_totals,
    unwrap,
)
from fleetmeter.wire import EngineState, JobStatus, ReportKind

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "moonraker"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _result(name: str) -> Any:
    return unwrap((FIXTURES / name).read_bytes(), what=name)


def _raw(name: str) -> Any:
    return json.loads((FIXTURES / name).read_bytes())


SERVER = "server-info-moonraker-0.11.0.json"
SERVER_READY = "server-info-klippy-ready-constructed.json"
HISTORY = "history-list-served-moonraker-0.11.0.json"
RUNNING_HISTORY = "history-list-in-progress-constructed.json"


def test_recorded_server_info() -> None:
    info = parse_server_info(_result(SERVER))
    assert (info.moonraker_version, info.klippy_connected, info.klippy_state) == (
        "0.11.0",
        False,
        "disconnected",
    )


def test_recorded_error_bodies_are_not_results() -> None:
    # Moonraker's 401/404 answers carry {"error": ...}: no result to read.
    for name in ("server-info-401-moonraker-0.11.0.json", "printer-info-404-moonraker-0.11.0.json"):
        with pytest.raises(MalformedResponse, match="no 'result'"):
            _result(name)


def test_instance_id_is_the_serial() -> None:
    instance = parse_instance_id(_result("database-item-instance-id-moonraker-0.11.0.json"))
    assert instance is not None and uuid.UUID(instance)
    assert device_serial("h", 7125, instance) == instance
    fallback = device_serial("Voron.lan", 7125, None)
    assert fallback == str(uuid.uuid5(uuid.NAMESPACE_URL, "moonraker://voron.lan:7125"))
    assert parse_instance_id({"namespace": "moonraker", "value": "../../etc"}) is None


def test_recorded_empty_history_and_totals() -> None:
    assert parse_history([_result("history-list-empty-moonraker-0.11.0.json")]) == []
    totals = parse_totals(_result("history-totals-empty-moonraker-0.11.0.json"))
    assert (totals.jobs, totals.print_time_s, totals.filament_mm) == (0, 0, 0)


def test_served_history_in_base_units() -> None:
    jobs = parse_history([_result(HISTORY)])
    assert [(j.job_id, j.sequence_number, j.status) for j in jobs] == [
        ("000001", 1, "completed"),
        ("000002", 2, "cancelled"),
        ("000003", 3, "interrupted"),
    ]
    benchy = jobs[0]
    assert benchy.started_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert benchy.ended_at == benchy.started_at + timedelta(seconds=3612.7)
    assert (benchy.print_duration_s, benchy.total_duration_s, benchy.filament_mm) == (
        3400,
        3613,
        4124,
    )
    assert (benchy.filament_type, benchy.layer_count, benchy.object_height_mm) == ("PLA", 240, 48)
    assert benchy.weight_g == 12  # 12.5 g x 4123.6 / 4200 mm
    assert benchy.user is None and jobs[1].user == "alice"
    assert jobs[1].weight_g is None  # no slicer weight: grams unknown


def test_pages_overlap_without_duplicates() -> None:
    page = _result(HISTORY)
    assert [j.sequence_number for j in parse_history([page, page])] == [1, 2, 3]


def test_an_unfinished_job_holds_the_cursor_back() -> None:
    jobs = parse_history([_result(RUNNING_HISTORY)])
    assert [j.finished for j in jobs] == [True, True, True, False]
    assert [j.sequence_number for j in finished_jobs(jobs, job_cursor=1)] == [2, 3]
    older_running = [jobs[3], *jobs[:3]]  # an in-progress job older than finished ones
    older_running.sort(key=lambda j: j.sequence_number if j.finished else 0)
    assert finished_jobs(older_running, job_cursor=None) == []


def test_printer_objects_mid_print() -> None:
    server = parse_server_info(_result(SERVER_READY))
    klipper = parse_printer_info(_result("printer-info-ready-constructed.json"))
    state = parse_printer_objects(
        _result("printer-objects-query-printing-constructed.json"),
        server=server,
        printer_info=klipper,
        collected_at=NOW,
        current_job_id="000004",
    )
    assert state.state is EngineState.PRINTING
    assert state.reasons == ["printing"]
    assert state.temperatures_c == {
        "extruder": 214.6,
        "extruder.target": 215.0,
        "heater_bed": 59.87,
        "heater_bed.target": 60.0,
    }
    build = state.build_job
    assert build is not None
    assert (build.id, build.name, build.outcome) == ("000004", "parts/gear.gcode", "running")
    assert (build.layers_total, build.layers_done, build.progress_percent) == (120, 57, 47)
    assert build.duration_s == 1831
    assert build.started_at == NOW - timedelta(seconds=1831)
    assert build.model_extra == {"filament_mm": 1520}


def test_printer_objects_standby_and_klipper_states() -> None:
    server = parse_server_info(_result(SERVER_READY))
    standby = parse_printer_objects(
        _result("printer-objects-query-standby-constructed.json"), server=server, collected_at=NOW
    )
    assert (standby.state, standby.build_job) == (EngineState.IDLE, None)
    shutdown = parse_printer_objects(
        None,
        server=server,
        printer_info=parse_printer_info(_result("printer-info-shutdown-constructed.json")),
        collected_at=NOW,
    )
    assert shutdown.state is EngineState.ERROR
    assert shutdown.error is not None and shutdown.error.startswith("MCU 'mcu' shutdown")
    offline = parse_printer_objects(
        None, server=parse_server_info(_result(SERVER)), collected_at=NOW
    )
    assert offline.state is EngineState.OFFLINE


def test_report_with_klipper_printing() -> None:
    report = parse_report(
        server=_result(SERVER_READY),
        host="voron.lan",
        port=7125,
        instance=_result("database-item-instance-id-moonraker-0.11.0.json"),
        printer_info=_result("printer-info-ready-constructed.json"),
        objects=_result("printer-objects-query-printing-constructed.json"),
        history=[_result(RUNNING_HISTORY)],
        totals=_result("history-totals-served-moonraker-0.11.0.json"),
        collected_at=NOW,
    )
    assert report.device.product_name == "voron24"  # Klipper's host name
    assert report.device.model_extra == {"klipper_version": "v0.12.0-302-g87ac69363"}
    assert report.status is not None and report.status.engine_state is EngineState.PRINTING
    assert report.additive is not None and report.additive.build_job is not None
    assert report.additive.build_job.id == "000004"  # the history's in-progress entry
    # The running job 4 has no record yet; 1-3 are finished.
    assert [j.sequence_number for j in report.jobs] == [1, 2, 3]
    assert [j.status for j in report.jobs] == [
        JobStatus.COMPLETED,
        JobStatus.CANCELLED,
        JobStatus.FAILED,
    ]
    assert report.usage is not None
    assert report.usage.meters() == {"jobs": 3, "media.filament.length_mm": 4957}
    health = parse_report(
        server=_result(SERVER_READY),
        host="voron.lan",
        port=7125,
        history=[_result(RUNNING_HISTORY)],
        kind=ReportKind.HEALTH,
    )
    assert health.jobs == [] and health.usage is None


def test_shutdown_raises_an_alert() -> None:
    report = parse_report(
        server=_result(SERVER_READY),
        host="h",
        port=7125,
        printer_info=_result("printer-info-shutdown-constructed.json"),
        collected_at=NOW,
    )
    assert [(a.code, a.first_seen) for a in report.alerts] == [("printer_error", NOW)]


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    "body",
    [b"", b"null", b"[1]", b'{"error": {"code": 500}}', b'{"result": NaN}', b"[" * 50_000],
)
def test_unwrap_refuses_what_is_not_an_answer(body: bytes) -> None:
    with pytest.raises(MalformedResponse):
        unwrap(body, what="/server/info")


def test_decode_refuses_deep_nesting() -> None:
    with pytest.raises(MalformedResponse, match="nested too deeply"):
        decode(b"[" * 40 + b"]" * 40, what="x")


def _job(**changes: Any) -> dict[str, Any]:
    job = dict(_result(HISTORY)["jobs"][0])
    job.update(changes)
    return {"count": 1, "jobs": [job]}


@pytest.mark.parametrize(
    "changes",
    [
        {"job_id": 12},
        {"job_id": "not-hex"},
        {"job_id": "F" * 40},
        {"start_time": None},
        {"start_time": "2026-01-01"},
        {"start_time": 1e300},
        {"filament_used": -1.0},
        {"filament_used": [1]},
        {"print_duration": True},
        {"status": 3},
        {"metadata": "PLA"},
        {"metadata": {"filament_total": "lots", "filament_weight_total": 1}},
        {"filename": {"a": 1}},
    ],
)
def test_history_wrong_types_are_malformed(changes: dict[str, Any]) -> None:
    with pytest.raises(MalformedResponse):
        parse_history([_job(**changes)])


def test_history_not_a_list_is_malformed() -> None:
    with pytest.raises(MalformedResponse):
        parse_history([{"jobs": {"000001": {}}}])
    with pytest.raises(MalformedResponse):
        parse_history(["jobs"])


def test_unknown_status_is_kept_as_failed() -> None:
    report = parse_report(
        server=_result(SERVER), host="h", port=7125, history=[_job(status="melted")]
    )
    assert [j.status for j in report.jobs] == [JobStatus.FAILED]


@pytest.mark.parametrize(
    ("obj", "field", "value"),
    [
        ("extruder", "temperature", "hot"),
        ("heater_bed", "target", float("1e400")),
        ("print_stats", "state", 1),
        ("print_stats", "info", []),
        ("virtual_sdcard", "progress", "47%"),
        ("print_stats", "filament_used", -3),
    ],
)
def test_printer_objects_wrong_types_are_malformed(obj: str, field: str, value: Any) -> None:
    doc = _result("printer-objects-query-printing-constructed.json")
    doc["status"][obj][field] = value
    with pytest.raises(MalformedResponse):
        parse_printer_objects(
            doc, server=parse_server_info(_result(SERVER_READY)), collected_at=NOW
        )


@pytest.mark.parametrize(
    "result",
    [
        [],
        {"moonraker_version": 11, "klippy_state": "ready"},
        {"klippy_state": "ready"},
        {"moonraker_version": "0.11", "klippy_state": "ready", "klippy_connected": "yes"},
    ],
)
def test_server_info_wrong_types_are_malformed(result: Any) -> None:
    with pytest.raises(MalformedResponse):
        parse_server_info(result)


def test_totals_wrong_types_are_malformed() -> None:
    totals = _raw("history-totals-served-moonraker-0.11.0.json")["result"]
    totals["job_totals"]["total_filament_used"] = "4957"
    with pytest.raises(MalformedResponse):
        parse_totals(totals)
    with pytest.raises(MalformedResponse):
        parse_totals({"job_totals": None})
