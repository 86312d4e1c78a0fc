"""Pure Moonraker parser: bodies of Moonraker's HTTP API (JSON bytes) in, wire models out.

No I/O here. Bodies are decoded strictly (no ``NaN``/``Infinity``, bounded nesting), the
``{"result": ...}`` envelope is unwrapped, and every value is type-checked before use, so a
hostile or broken server yields ``MalformedResponse`` with a one-line reason, never a crash.

Endpoints and fields: Moonraker's API documentation (moonraker.readthedocs.io, "Server
Administration", "Printer Administration", "Job History", "Database") and Klipper's "Status
Reference" for the printer objects, checked against Moonraker 0.11.

What Moonraker cannot tell:

- **a hardware serial.** The identity's serial is Moonraker's ``instance_id`` (a UUID it
  generates once per installation and keeps in its data folder), read from its database
  namespace ``moonraker``; when that cannot be read, a name-based UUID of address and port.
  Reinstalling Moonraker with a fresh data folder makes a new device.
- **the printer model.** Klipper knows its configuration, not a product; the product name
  is the host name Klipper reports (``/printer/info``), when Klipper is running.
- **printer state without Klipper.** State, heaters and the running build come from Klipper's
  objects through Moonraker; while Klipper is down the report says OFFLINE and carries the
  history only.
- **filament volume and weight, measured.** Klipper measures filament as extruder travel
  (mm). Grams are only given when the slicer's metadata states the file's total weight and
  length (``filament_weight_total``, ``filament_total``), pro rata to the length used; the
  volume would need the filament diameter, which is not in the history: never filled in.
- **deleted history.** Entries removed with ``DELETE /server/history/job`` are gone; their
  job ids leave gaps in the sequence numbers.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fleetmeter.devices import jsondoc
from fleetmeter.devices.errors import MalformedResponse
from fleetmeter.devices.jsondoc import LONG_TEXT as _LONG
from fleetmeter.devices.jsondoc import SHORT_TEXT as _SHORT
from fleetmeter.devices.jsondoc import array as _list
from fleetmeter.devices.jsondoc import boolean as _bool
from fleetmeter.devices.jsondoc import non_negative as _non_negative
from fleetmeter.devices.jsondoc import number as _number
from fleetmeter.devices.jsondoc import obj as _obj
from fleetmeter.devices.jsondoc import req_obj as _req_obj
from fleetmeter.devices.jsondoc import rounded as _rounded
from fleetmeter.devices.jsondoc import shifted as _shifted
from fleetmeter.devices.jsondoc import text as _text
from fleetmeter.devices.jsondoc import timestamp as _timestamp
from fleetmeter.devices.jsondoc import validated as _validated
from fleetmeter.wire import (
    AdditiveStatus,
    Alert,
    AlertSeverity,
    BuildJob,
    DeviceIdentity,
    DeviceReport,
    DeviceStatus,
    EngineState,
    JobKind,
    JobRecord,
    JobStatus,
    LifetimeUsage,
    Material,
    MediaTypeUsage,
    ReportKind,
    Submitter,
    now_utc,
)

__all__ = [
    "DRIVER_ID",
    "MAX_RECENT_BUILDS",
    "PRINTER_OBJECTS",
    "VENDOR",
    "HistoryJob",
    "PrinterState",
    "ServerInfo",
    "Totals",
    "decode",
    "device_serial",
    "finished_jobs",
    "parse_history",
    "parse_identity",
    "parse_instance_id",
    "parse_printer_info",
    "parse_printer_objects",
    "parse_report",
    "parse_server_info",
    "parse_totals",
    "unwrap",
]

DRIVER_ID = "moonraker"
VENDOR = "Moonraker"
"""The identity's vendor: the API the device is read through (Klipper printers carry no
vendor of their own), stable because (vendor, serial) is the device's key in the portal."""

PRINTER_OBJECTS: tuple[str, ...] = ("print_stats", "heater_bed", "extruder", "virtual_sdcard")
"""Klipper objects queried (Klipper "Status Reference"); absent ones are simply missing."""

MAX_RECENT_BUILDS = 20

_MAX_DEPTH = 32
_MAX_JOBS = 100_000
_MAX_TEMPERATURE_C = 2000.0
_JOB_ID = re.compile(r"^[0-9A-Fa-f]{1,12}$")  # Moonraker formats the row id as %06X
_INSTANCE_ID = re.compile(r"^[0-9A-Fa-f-]{8,64}$")

# Moonraker history ``status`` (components/history.py): the job's end, or "in_progress".
_IN_PROGRESS = "in_progress"
_STATUSES = {
    "completed": JobStatus.COMPLETED,
    "cancelled": JobStatus.CANCELLED,
    "error": JobStatus.FAILED,
    "klippy_shutdown": JobStatus.FAILED,
    "klippy_disconnect": JobStatus.FAILED,
    "server_exit": JobStatus.FAILED,
    "interrupted": JobStatus.FAILED,
}


# --------------------------------------------------------------------------- decoding


def decode(body: bytes, *, what: str) -> Any:
    """Strict JSON: refuses NaN/Infinity, over-deep nesting and undecodable bytes."""
    return jsondoc.decode(body, what=what, max_depth=_MAX_DEPTH)


def unwrap(body: bytes, *, what: str) -> Any:
    """Decode a Moonraker answer and return its ``result`` (every endpoint wraps its data
    in ``{"result": ...}``)."""
    doc = decode(body, what=what)
    if not isinstance(doc, dict) or "result" not in doc:
        raise MalformedResponse(f"{what}: not a Moonraker answer (no 'result')")
    return doc["result"]


# --------------------------------------------------------------------------- server, identity


@dataclass(frozen=True)
class ServerInfo:
    """``/server/info``: Moonraker's version and its view of Klipper."""

    moonraker_version: str
    klippy_connected: bool
    klippy_state: str


def parse_server_info(result: Any) -> ServerInfo:
    """``/server/info`` result → ``ServerInfo``. ``MalformedResponse`` when it is not
    Moonraker's (no ``moonraker_version``/``klippy_state``)."""
    info = _req_obj(result, "/server/info")
    version = _text(info.get("moonraker_version"), "/server/info moonraker_version")
    state = _text(info.get("klippy_state"), "/server/info klippy_state")
    if not version or state is None:
        raise MalformedResponse("/server/info: not Moonraker's server info")
    connected = _bool(info.get("klippy_connected"), "/server/info klippy_connected")
    return ServerInfo(
        moonraker_version=version, klippy_connected=bool(connected), klippy_state=state
    )


def parse_instance_id(result: Any) -> str | None:
    """``/server/database/item?namespace=moonraker&key=instance_id`` result → the id."""
    item = _req_obj(result, "/server/database/item")
    value = _text(item.get("value"), "/server/database/item value")
    if value is None or not _INSTANCE_ID.match(value):
        return None
    return value.lower()


def parse_printer_info(result: Any) -> Mapping[str, str | None]:
    """``/printer/info`` result (Klipper) → ``state``, ``state_message``, ``hostname``,
    ``software_version``."""
    info = _req_obj(result, "/printer/info")
    return {
        "state": _text(info.get("state"), "/printer/info state"),
        "state_message": _text(info.get("state_message"), "/printer/info state_message", _LONG),
        "hostname": _text(info.get("hostname"), "/printer/info hostname"),
        "software_version": _text(info.get("software_version"), "/printer/info software_version"),
    }


def device_serial(host: str, port: int, instance_id: str | None) -> str:
    """Moonraker's ``instance_id``; without it, a name-based UUID of address and port."""
    if instance_id:
        return instance_id
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"moonraker://{host.lower()}:{port}"))


def parse_identity(
    server: ServerInfo,
    *,
    host: str,
    port: int,
    instance_id: str | None = None,
    printer_info: Mapping[str, str | None] | None = None,
) -> DeviceIdentity:
    printer_info = printer_info or {}
    fields: dict[str, object] = {
        "vendor": VENDOR,
        "serial_number": device_serial(host, port, instance_id),
        "product_name": printer_info.get("hostname") or None,
        "firmware_version": f"Moonraker {server.moonraker_version}"[:_SHORT],
        "driver": DRIVER_ID,
        "address": host,
        "device_class": "printer3d",
    }
    if printer_info.get("software_version"):
        fields["klipper_version"] = printer_info["software_version"]
    identity: DeviceIdentity = _validated(DeviceIdentity, fields, "/server/info")
    return identity


# --------------------------------------------------------------------------- printer objects


@dataclass
class PrinterState:
    """Engine state, reasons, heaters and the running build from Klipper's objects."""

    state: EngineState = EngineState.UNKNOWN
    reasons: list[str] = field(default_factory=list)
    temperatures_c: dict[str, float] = field(default_factory=dict)
    build_job: BuildJob | None = None
    error: str | None = None


def _heater(status: Mapping[str, Any], name: str, temps: dict[str, float]) -> bool:
    """Record heater ``name``'s temperature and target; whether its target is set."""
    heater = _obj(status.get(name), f"/printer/objects/query {name}")
    if heater is None:
        return False
    actual = _number(heater.get("temperature"), f"{name}.temperature")
    target = _number(heater.get("target"), f"{name}.target")
    if actual is not None and abs(actual) <= _MAX_TEMPERATURE_C:
        temps[name] = actual
    if target is not None and abs(target) <= _MAX_TEMPERATURE_C:
        temps[f"{name}.target"] = target
        return target > 0
    return False


_PRINT_OUTCOMES = {"printing": "running", "paused": "paused"}


def parse_printer_objects(
    result: Any,
    *,
    server: ServerInfo,
    printer_info: Mapping[str, str | None] | None = None,
    collected_at: datetime,
    current_job_id: str | None = None,
) -> PrinterState:
    """``/printer/objects/query`` result (None when Klipper is not connected) → state.

    ``current_job_id`` (the history's in-progress entry) names the running build, so that it
    carries the same id as its job record later."""
    klippy_state = (printer_info or {}).get("state") or server.klippy_state
    message = (printer_info or {}).get("state_message")
    if not server.klippy_connected or klippy_state == "disconnected":
        return PrinterState(state=EngineState.OFFLINE, reasons=["klippy disconnected"])
    if klippy_state in ("shutdown", "error"):
        return PrinterState(
            state=EngineState.ERROR, reasons=[f"klippy {klippy_state}"], error=message
        )
    if klippy_state == "startup":
        return PrinterState(state=EngineState.WARMING, reasons=["klippy startup"])
    if result is None:
        return PrinterState(state=EngineState.UNKNOWN, reasons=[f"klippy {klippy_state}"])
    query = _req_obj(result, "/printer/objects/query")
    status = _req_obj(query.get("status"), "/printer/objects/query status")
    temps: dict[str, float] = {}
    heating = _heater(status, "extruder", temps)
    heating = _heater(status, "heater_bed", temps) or heating
    stats = _obj(status.get("print_stats"), "print_stats") or {}
    print_state = _text(stats.get("state"), "print_stats.state") or ""
    reasons = [print_state] if print_state else []
    build: BuildJob | None = None
    error: str | None = None
    if print_state in _PRINT_OUTCOMES:
        engine = EngineState.PRINTING
        build = _running_build(status, stats, print_state, collected_at, current_job_id)
    elif print_state == "error":
        engine = EngineState.ERROR
        error = _text(stats.get("message"), "print_stats.message", _LONG) or "print error"
    else:  # standby, complete, cancelled: the printer is free
        engine = EngineState.WARMING if heating else EngineState.IDLE
    return PrinterState(
        state=engine, reasons=reasons, temperatures_c=temps, build_job=build, error=error
    )


def _running_build(
    status: Mapping[str, Any],
    stats: Mapping[str, Any],
    print_state: str,
    collected_at: datetime,
    current_job_id: str | None,
) -> BuildJob:
    sdcard = _obj(status.get("virtual_sdcard"), "virtual_sdcard") or {}
    progress = _non_negative(sdcard.get("progress"), "virtual_sdcard.progress")
    info = _obj(stats.get("info"), "print_stats.info") or {}
    filename = _text(stats.get("filename"), "print_stats.filename", _LONG)
    total = _rounded(stats.get("total_duration"), "print_stats.total_duration")
    filament = _rounded(stats.get("filament_used"), "print_stats.filament_used")
    fields: dict[str, object] = {
        "id": current_job_id or (filename or "current")[:_SHORT],
        "name": filename,
        "layers_total": _rounded(info.get("total_layer"), "print_stats.info.total_layer"),
        "layers_done": _rounded(info.get("current_layer"), "print_stats.info.current_layer"),
        # virtual_sdcard.progress is the file position as a fraction (0.0–1.0).
        "progress_percent": min(100, math.floor(progress * 100)) if progress is not None else None,
        "started_at": (
            _shifted(collected_at, -total, "print_stats.total_duration")
            if total is not None
            else None
        ),
        "duration_s": total,
        "outcome": _PRINT_OUTCOMES[print_state],
    }
    if filament is not None:
        # Not a wire field yet: an extra field (kept by every reader), base unit mm.
        fields["filament_mm"] = filament
    build: BuildJob = _validated(BuildJob, fields, "print_stats")
    return build


# --------------------------------------------------------------------------- history


@dataclass(frozen=True)
class HistoryJob:
    """One entry of ``/server/history/list``."""

    job_id: str
    sequence_number: int
    filename: str | None
    user: str | None
    status: str
    started_at: datetime
    ended_at: datetime | None
    print_duration_s: int | None
    total_duration_s: int | None
    filament_mm: int | None
    filament_type: str | None
    layer_count: int | None
    object_height_mm: int | None
    weight_g: int | None

    @property
    def finished(self) -> bool:
        return self.status != _IN_PROGRESS

    def job_uuid(self, device_key: str) -> uuid.UUID:
        """Name-based: the same history entry gives the same UUID on every poll. The start
        time is part of the name because job ids restart when the history is reset."""
        start = round(self.started_at.timestamp() * 1000)
        return uuid.uuid5(uuid.NAMESPACE_URL, f"moonraker-job:{device_key}/{self.job_id}/{start}")


def _weight(used_mm: float | None, metadata: Mapping[str, Any], where: str) -> int | None:
    """Grams used, pro rata from the slicer's stated weight and length of the whole file;
    None when either is missing (the density is never guessed)."""
    total_g = _non_negative(metadata.get("filament_weight_total"), f"{where}.weight_total")
    total_mm = _non_negative(metadata.get("filament_total"), f"{where}.filament_total")
    if used_mm is None or not total_g or not total_mm:
        return None
    return round(total_g * min(used_mm, total_mm) / total_mm)


def _history_job(item: Any, where: str) -> HistoryJob:
    job = _req_obj(item, where)
    job_id = _text(job.get("job_id"), f"{where}.job_id")
    if job_id is None or not _JOB_ID.match(job_id):
        raise MalformedResponse(f"{where}: job_id is not a hexadecimal id")
    job_id = job_id.upper()
    status = _text(job.get("status"), f"{where}.status")
    if status is None or (status != _IN_PROGRESS and status not in _STATUSES):
        # An end Moonraker may add later: keep the job, as failed, rather than lose it.
        status = status if status else "unknown"
    started = _timestamp(job.get("start_time"), f"{where}.start_time")
    if started is None:
        raise MalformedResponse(f"{where}: no start_time")
    filament = _non_negative(job.get("filament_used"), f"{where}.filament_used")
    metadata = _obj(job.get("metadata"), f"{where}.metadata") or {}
    user = _text(job.get("user"), f"{where}.user")
    return HistoryJob(
        job_id=job_id,
        sequence_number=int(job_id, 16),
        filename=_text(job.get("filename"), f"{where}.filename", _LONG),
        # Moonraker's placeholders for "no logged-in user" are not people.
        user=None if not user or user.startswith("_") else user,
        status=status,
        started_at=started,
        ended_at=_timestamp(job.get("end_time"), f"{where}.end_time"),
        print_duration_s=_rounded(job.get("print_duration"), f"{where}.print_duration"),
        total_duration_s=_rounded(job.get("total_duration"), f"{where}.total_duration"),
        filament_mm=round(filament) if filament is not None else None,
        filament_type=_text(metadata.get("filament_type"), f"{where}.metadata.filament_type"),
        layer_count=_rounded(metadata.get("layer_count"), f"{where}.metadata.layer_count"),
        object_height_mm=_rounded(metadata.get("object_height"), f"{where}.metadata.object_height"),
        weight_g=_weight(filament, metadata, f"{where}.metadata"),
    )


def parse_history(results: Iterable[Any]) -> list[HistoryJob]:
    """``/server/history/list`` results (one per page) → jobs, oldest (lowest id) first,
    each id once."""
    jobs: dict[int, HistoryJob] = {}
    for page_number, result in enumerate(results):
        page = _req_obj(result, "/server/history/list")
        for index, item in enumerate(_list(page.get("jobs"), "/server/history/list jobs")):
            job = _history_job(item, f"/server/history/list page {page_number} jobs[{index}]")
            jobs[job.sequence_number] = job
            if len(jobs) > _MAX_JOBS:
                raise MalformedResponse(f"/server/history/list: more than {_MAX_JOBS} jobs")
    return [jobs[key] for key in sorted(jobs)]


def _end(job: HistoryJob) -> datetime:
    if job.ended_at is not None:
        return job.ended_at
    # "interrupted" entries (Moonraker stopped mid-print) may have no end time.
    return _shifted(
        job.started_at,
        job.total_duration_s or 0,
        f"/server/history/list job {job.job_id} total_duration",
    )


def _job_record(job: HistoryJob, device_key: str) -> JobRecord:
    fields: dict[str, object] = {
        "kind": JobKind.PRINT,
        "job_uuid": job.job_uuid(device_key),
        "sequence_number": job.sequence_number,
        "name": job.filename,
        "submitter": Submitter(user=job.user, submitted_at=job.started_at),
        "completed_at": _end(job),
        "print_time_s": job.print_duration_s,
        "duration_s": job.total_duration_s,
        "status": _STATUSES.get(job.status, JobStatus.FAILED),
        "media_type": "filament" if job.filament_mm is not None else None,
        "media_length_mm": job.filament_mm,
    }
    if job.weight_g is not None:
        fields["filament_g"] = job.weight_g
    if job.filament_type is not None:
        fields["material"] = job.filament_type
    record: JobRecord = _validated(JobRecord, fields, f"/server/history/list job {job.job_id}")
    return record


def _build(job: HistoryJob) -> BuildJob:
    fields: dict[str, object] = {
        "id": job.job_id,
        "name": job.filename,
        "material": job.filament_type,
        "layers_total": job.layer_count,
        "started_at": job.started_at,
        "duration_s": job.total_duration_s,
        "build_height_mm": job.object_height_mm,
        "outcome": job.status,
        "material_used_g": job.weight_g,
    }
    if job.filament_mm is not None:
        fields["filament_mm"] = job.filament_mm
    build: BuildJob = _validated(BuildJob, fields, f"/server/history/list job {job.job_id}")
    return build


def finished_jobs(history: Sequence[HistoryJob], *, job_cursor: int | None) -> list[HistoryJob]:
    """Finished jobs after the cursor, oldest first, stopping before the first unfinished
    one: the cursor is a high-water mark, so a job must not be passed while an older one may
    still finish."""
    out: list[HistoryJob] = []
    for job in history:
        if not job.finished:
            break
        if job_cursor is None or job.sequence_number > job_cursor:
            out.append(job)
    return out


# --------------------------------------------------------------------------- totals


@dataclass(frozen=True)
class Totals:
    jobs: int | None
    print_time_s: int | None
    total_time_s: int | None
    filament_mm: int | None


def parse_totals(result: Any) -> Totals:
    """``/server/history/totals`` result → lifetime totals (Moonraker counts them since its
    history began; ``POST /server/history/reset_totals`` sets them back to zero)."""
    doc = _req_obj(result, "/server/history/totals")
    totals = _req_obj(doc.get("job_totals"), "/server/history/totals job_totals")
    where = "/server/history/totals job_totals"
    return Totals(
        jobs=_rounded(totals.get("total_jobs"), f"{where}.total_jobs"),
        print_time_s=_rounded(totals.get("total_print_time"), f"{where}.total_print_time"),
        total_time_s=_rounded(totals.get("total_time"), f"{where}.total_time"),
        filament_mm=_rounded(totals.get("total_filament_used"), f"{where}.total_filament_used"),
    )


def _usage(totals: Totals) -> LifetimeUsage:
    fields: dict[str, object] = {"jobs": totals.jobs}
    if totals.filament_mm is not None:
        # Filament is the 3D printer's medium: its length is a media length meter
        # (``media.filament.length_mm``).
        fields["by_media_type"] = [
            MediaTypeUsage(media_type="filament", length_mm=totals.filament_mm)
        ]
    if totals.print_time_s is not None:
        # No wire field for build hours yet: an extra field, kept by every reader.
        fields["print_time_s"] = totals.print_time_s
    usage: LifetimeUsage = _validated(LifetimeUsage, fields, "/server/history/totals")
    return usage


# --------------------------------------------------------------------------- report


def parse_report(
    *,
    server: Any,
    host: str,
    port: int,
    instance: Any = None,
    printer_info: Any = None,
    objects: Any = None,
    history: Sequence[Any] = (),
    totals: Any = None,
    collected_at: datetime | None = None,
    kind: ReportKind = ReportKind.USAGE,
    job_cursor: int | None = None,
) -> DeviceReport:
    """Unwrapped results → one report. Only ``server`` (``/server/info``) is required;
    ``printer_info`` and ``objects`` are None while Klipper is not running, ``history``
    (pages of ``/server/history/list``) and ``totals`` are read for USAGE reports. Jobs with
    ``sequence_number <= job_cursor`` are left out."""
    when = collected_at or now_utc()
    info = parse_server_info(server)
    klipper = parse_printer_info(printer_info) if printer_info is not None else None
    identity = parse_identity(
        info,
        host=host,
        port=port,
        instance_id=parse_instance_id(instance) if instance is not None else None,
        printer_info=klipper,
    )
    device_key = f"{identity.vendor}/{identity.serial_number}"
    entries = parse_history(history)
    running = next((job.job_id for job in entries if not job.finished), None)
    state = parse_printer_objects(
        objects, server=info, printer_info=klipper, collected_at=when, current_job_id=running
    )
    jobs: list[JobRecord] = []
    usage: LifetimeUsage | None = None
    materials: list[Material] = []
    recent: list[BuildJob] = []
    if kind is ReportKind.USAGE:
        jobs = [
            _job_record(job, device_key) for job in finished_jobs(entries, job_cursor=job_cursor)
        ]
        recent = [_build(job) for job in reversed(entries) if job.finished][:MAX_RECENT_BUILDS]
        if totals is not None:
            parsed = parse_totals(totals)
            usage = _usage(parsed)
            if parsed.filament_mm is not None:
                materials.append(
                    _validated(
                        Material,
                        {"name": "filament", "kind": "filament", "consumed_mm": parsed.filament_mm},
                        "/server/history/totals",
                    )
                )
    alerts: list[Alert] = []
    if state.error:
        alerts.append(
            Alert(
                code="printer_error",
                severity=AlertSeverity.ERROR,
                text=state.error[:_LONG],
                first_seen=when,
                component="printer",
            )
        )
    report: DeviceReport = _validated(
        DeviceReport,
        {
            "kind": kind,
            "collected_at": when,
            "device": identity,
            "status": DeviceStatus(engine_state=state.state, state_reasons=state.reasons),
            "usage": usage,
            "jobs": jobs,
            "alerts": alerts,
            "additive": AdditiveStatus(
                state=state.state,
                build_job=state.build_job,
                recent_builds=recent,
                materials=materials,
                temperatures_c=state.temperatures_c,
            ),
        },
        "Moonraker report",
    )
    return report
