"""Pure OctoPrint parser: bodies of OctoPrint's REST API (JSON bytes) in, wire models out.

No I/O here. Bodies are decoded strictly (no ``NaN``/``Infinity``, bounded nesting) and every
value is type-checked before use, so a hostile or broken server yields ``MalformedResponse``
with a one-line reason, never a crash.

Endpoints and fields: OctoPrint REST API documentation (docs.octoprint.org, "REST API":
Version information, Connection handling, Printer profile operations, Printer operations,
Job operations, File operations), checked against OctoPrint 1.11.

What OctoPrint cannot tell:

- **a device serial.** OctoPrint is software on a host (often a Raspberry Pi) driving a
  printer over USB; neither exposes a serial number. The identity's serial is a name-based
  UUID of the address, port and the connected printer profile id: stable while the printer
  is read at the same address (give the host a DHCP reservation or a name) and attached with
  the same profile, new when either changes. ``/api/settings`` is never read: it carries
  secrets (the global API key) and no stable id either.
- **a full print log.** Each file keeps only ``prints.success``/``prints.failure`` counts
  and the *last* print (date, success, print time). A file printed twice between two polls
  yields one job record; the counts in ``recent_builds`` show how many prints were not
  itemised. The history of a deleted file is gone. (A print-history plugin would know more;
  it is not part of OctoPrint.)
- **cancelled versus failed.** The history records both as ``success: false``.
- **material actually used.** Filament comes from OctoPrint's G-code analysis: the length
  (mm) and volume (cm³) the *whole file* needs, per tool. A completed print is taken to have
  used that; for a failed print the amount is unknown and left out. Grams need the material's
  density, which OctoPrint does not know: never filled in.
- **lifetime counters.** Summing per-file counts would go backwards when a file is deleted,
  so no ``LifetimeUsage`` is reported.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
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
from fleetmeter.devices.jsondoc import rounded as _seconds
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
    ReportKind,
    now_utc,
)

__all__ = [
    "DRIVER_ID",
    "MAX_RECENT_BUILDS",
    "VENDOR",
    "FilePrint",
    "PrinterState",
    "decode",
    "device_serial",
    "is_octoprint_version",
    "parse_current_job",
    "parse_identity",
    "parse_print_history",
    "parse_printer",
    "parse_report",
]

DRIVER_ID = "octoprint"
VENDOR = "OctoPrint"
"""The identity's vendor: the profile's free-text model may be edited at any time, and
(vendor, serial) is the device's key in the portal, so it must not move."""

MAX_RECENT_BUILDS = 20
"""``AdditiveStatus.recent_builds``: the newest last prints, for display; jobs are complete."""

_MAX_DEPTH = 64  # OctoPrint nests folders; 64 levels is far beyond any real library
_MAX_FILES = 100_000
_MAX_TEMPERATURES = 32
_MAX_TEMPERATURE_C = 2000.0
# Heater names OctoPrint reports: tool0..N, bed, chamber; plugins may add more.
_HEATER_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

# OctoPrint's state flags (octoprint.printer.PrinterInterface.get_current_data) that mean a
# job is on the printer.
_ACTIVE_FLAGS = ("printing", "pausing", "paused", "resuming", "finishing", "cancelling")


# --------------------------------------------------------------------------- decoding


def decode(body: bytes, *, what: str) -> Any:
    """Strict JSON: refuses NaN/Infinity, over-deep nesting and undecodable bytes."""
    # Folders add two levels each (children list, entry).
    return jsondoc.decode(body, what=what, max_depth=_MAX_DEPTH * 2 + 8)


# --------------------------------------------------------------------------- identity


def is_octoprint_version(doc: Any) -> bool:
    """Whether a ``/api/version`` body is OctoPrint's: ``{"api", "server", "text"}`` with a
    text naming OctoPrint. Never raises: anything else is simply not OctoPrint."""
    if not isinstance(doc, dict):
        return False
    text = doc.get("text")
    return (
        isinstance(doc.get("api"), str)
        and isinstance(doc.get("server"), str)
        and isinstance(text, str)
        and text.startswith("OctoPrint")
    )


def device_serial(host: str, port: int, profile_id: str | None) -> str:
    """The stable stand-in for a serial number (OctoPrint has none): a name-based UUID of
    where the instance is read and which printer profile is connected."""
    name = f"octoprint://{host.lower()}:{port}/{profile_id or ''}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def _current_profile(connection: Any, profiles: Any) -> tuple[str | None, Mapping[str, Any] | None]:
    """The connected printer profile's id and document, from ``/api/connection``
    (``current.printerProfile``, else the preferred one) and ``/api/printerprofiles``."""
    profile_id: str | None = None
    if connection is not None:
        conn = _req_obj(connection, "/api/connection")
        current = _obj(conn.get("current"), "/api/connection current")
        if current is not None:
            profile_id = _text(current.get("printerProfile"), "/api/connection current.profile")
        if profile_id is None:
            options = _obj(conn.get("options"), "/api/connection options")
            if options is not None:
                profile_id = _text(
                    options.get("printerProfilePreference"),
                    "/api/connection options.printerProfilePreference",
                )
    profile: Mapping[str, Any] | None = None
    if profiles is not None:
        listing = _obj(_req_obj(profiles, "/api/printerprofiles").get("profiles"), "profiles")
        for key, value in (listing or {}).items():
            entry = _obj(value, f"/api/printerprofiles profiles.{key[:40]}")
            if entry is None:
                continue
            if (profile_id is not None and key == profile_id) or (
                profile_id is None and _bool(entry.get("current"), "profile current")
            ):
                profile, profile_id = entry, key
                break
    return profile_id, profile


def parse_identity(
    version: Any,
    *,
    host: str,
    port: int,
    connection: Any = None,
    profiles: Any = None,
) -> DeviceIdentity:
    """``/api/version`` (required), ``/api/connection`` and ``/api/printerprofiles`` (either
    may be None when the API key lacks the permission) → the device identity."""
    if not is_octoprint_version(version):
        raise MalformedResponse("/api/version: not an OctoPrint version document")
    profile_id, profile = _current_profile(connection, profiles)
    product_name: str | None = None
    if profile is not None:
        # "model" is the printer model the user picked ("Original Prusa i3 MK3S"); "name"
        # the profile's own name. Either is free text.
        product_name = _text(profile.get("model"), "profile model") or _text(
            profile.get("name"), "profile name"
        )
    identity: DeviceIdentity = _validated(
        DeviceIdentity,
        {
            "vendor": VENDOR,
            "serial_number": device_serial(host, port, profile_id),
            "product_name": product_name or None,
            "firmware_version": _text(version.get("text"), "/api/version text"),
            "driver": DRIVER_ID,
            "address": host,
            "device_class": "printer3d",
        },
        "/api/version",
    )
    return identity


# --------------------------------------------------------------------------- printer state


@dataclass
class PrinterState:
    """What ``/api/printer`` says: engine state, its text, heaters, an error alert."""

    state: EngineState = EngineState.UNKNOWN
    reasons: list[str] = field(default_factory=list)
    temperatures_c: dict[str, float] = field(default_factory=dict)
    active: bool = False
    error: str | None = None


def _temperatures(doc: Mapping[str, Any] | None) -> tuple[dict[str, float], bool]:
    """Heater readings ``{"tool0": 210.1, "tool0.target": 210.0, ...}`` and whether any
    heater has a target set."""
    temps: dict[str, float] = {}
    heating = False
    for name, reading in list((doc or {}).items())[:_MAX_TEMPERATURES]:
        where = f"/api/printer temperature.{name[:40]}"
        entry = _obj(reading, where)
        # "history" only appears when asked for; plugins may add odd keys: skip non-heaters.
        if entry is None or not _HEATER_NAME.match(name):
            continue
        actual = _number(entry.get("actual"), f"{where}.actual")
        target = _number(entry.get("target"), f"{where}.target")
        if actual is not None and abs(actual) <= _MAX_TEMPERATURE_C:
            temps[name] = actual
        if target is not None and abs(target) <= _MAX_TEMPERATURE_C:
            temps[f"{name}.target"] = target
            heating = heating or target > 0
    return temps, heating


def parse_printer(doc: Any) -> PrinterState:
    """``/api/printer`` → state. ``None`` stands for OctoPrint's HTTP 409 "printer is not
    operational" (no printer connected): the printer is offline."""
    if doc is None:
        return PrinterState(state=EngineState.OFFLINE, reasons=["not connected"])
    printer = _req_obj(doc, "/api/printer")
    state = _req_obj(printer.get("state"), "/api/printer state")
    text = _text(state.get("text"), "/api/printer state.text") or ""
    error = _text(state.get("error"), "/api/printer state.error", _LONG) or None
    flags_doc = _obj(state.get("flags"), "/api/printer state.flags") or {}
    flags = {
        name: bool(_bool(value, f"/api/printer state.flags.{name[:40]}"))
        for name, value in flags_doc.items()
    }
    temps, heating = _temperatures(_obj(printer.get("temperature"), "/api/printer temperature"))
    active = any(flags.get(name, False) for name in _ACTIVE_FLAGS)
    if flags.get("error"):
        engine = EngineState.ERROR
    elif flags.get("closedOrError"):
        # Closed without an error: the serial connection is down.
        engine = EngineState.ERROR if error else EngineState.OFFLINE
    elif active:
        engine = EngineState.PRINTING
    elif flags.get("operational"):
        engine = EngineState.WARMING if heating else EngineState.IDLE
    else:
        engine = EngineState.UNKNOWN
    reasons = [text] if text else []
    return PrinterState(
        state=engine, reasons=reasons, temperatures_c=temps, active=active, error=error
    )


# --------------------------------------------------------------------------- filament


@dataclass(frozen=True)
class Filament:
    """Filament a file needs, summed over tools: length in mm, volume in µL."""

    length_mm: int | None = None
    volume_ul: int | None = None


def _filament(doc: Any, where: str) -> Filament:
    """``{"tool0": {"length": mm, "volume": cm³}, ...}`` (G-code analysis) → totals. The job
    endpoint sends ``{"length": null, "volume": null}`` when no file is selected."""
    tools = _obj(doc, where)
    if not tools:
        return Filament()
    if "length" in tools or "volume" in tools:
        tools = {"tool": tools}
    length = volume = 0.0
    any_length = False
    volume_known = True
    for name, entry_doc in tools.items():
        entry = _obj(entry_doc, f"{where}.{name[:40]}")
        if entry is None:
            continue
        tool_length = _non_negative(entry.get("length"), f"{where}.{name[:40]}.length")
        tool_volume = _non_negative(entry.get("volume"), f"{where}.{name[:40]}.volume")
        if tool_length is not None:
            length, any_length = length + tool_length, True
        # OctoPrint's analysis computes the volume from a ``filament_diameter`` comment the
        # slicer left in the file, and reports 0.0 when there was none
        # (octoprint/util/gcodeInterpreter.py): a zero volume for a non-zero length means
        # "unknown", not "nothing".
        if tool_volume is None or (tool_volume == 0 and (tool_length or 0) > 0):
            volume_known = volume_known and not tool_length
        else:
            volume += tool_volume
    return Filament(
        length_mm=round(length) if any_length else None,
        # cm³ → µL: 1 cm³ = 1 mL = 1000 µL.
        volume_ul=round(volume * 1000) if any_length and volume_known else None,
    )


def _filament_extras(filament: Filament) -> dict[str, int]:
    # The wire model has no filament fields yet: these travel as extra fields (kept by
    # every reader, see WireModel) in base units.
    extras: dict[str, int] = {}
    if filament.length_mm is not None:
        extras["filament_mm"] = filament.length_mm
    if filament.volume_ul is not None:
        extras["filament_ul"] = filament.volume_ul
    return extras


# --------------------------------------------------------------------------- current job


_JOB_OUTCOMES = {
    "Printing": "running",
    "Printing from SD": "running",
    "Sending file to SD": "running",
    "Transferring file to SD": "running",
    "Starting": "running",
    "Starting print from SD": "running",
    "Pausing": "pausing",
    "Paused": "paused",
    "Resuming": "running",
    "Finishing": "finishing",
    "Cancelling": "cancelling",
}


def parse_current_job(doc: Any, *, collected_at: datetime, active: bool) -> BuildJob | None:
    """``/api/job`` → the build on the printer, or None when nothing prints. ``active`` is
    the printer flags' say (``parse_printer``); the job state text decides when the printer
    state is unknown."""
    job_doc = _req_obj(doc, "/api/job")
    state = _text(job_doc.get("state"), "/api/job state") or ""
    outcome = _JOB_OUTCOMES.get(state)
    if not active and outcome is None:
        return None
    job = _obj(job_doc.get("job"), "/api/job job") or {}
    file = _obj(job.get("file"), "/api/job job.file") or {}
    path = _text(file.get("path"), "/api/job job.file.path", _LONG)
    name = _text(file.get("name"), "/api/job job.file.name", _LONG)
    if path is None and name is None:
        return None
    progress = _obj(job_doc.get("progress"), "/api/job progress") or {}
    completion = _non_negative(progress.get("completion"), "/api/job progress.completion")
    elapsed = _seconds(progress.get("printTime"), "/api/job progress.printTime")
    left = _seconds(progress.get("printTimeLeft"), "/api/job progress.printTimeLeft")
    filament = _filament(job.get("filament"), "/api/job job.filament")
    origin = _text(file.get("origin"), "/api/job job.file.origin") or "local"
    fields: dict[str, object] = {
        # The file is the only handle OctoPrint gives a running job.
        "id": f"{origin}:{path or name}"[:_SHORT],
        "name": path or name,
        "progress_percent": min(100, math.floor(completion)) if completion is not None else None,
        "started_at": (
            _shifted(collected_at, -elapsed, "/api/job progress.printTime")
            if elapsed is not None
            else None
        ),
        "estimated_end": (
            _shifted(collected_at, left, "/api/job progress.printTimeLeft")
            if left is not None
            else None
        ),
        "duration_s": elapsed,
        "outcome": outcome or "running",
        **_filament_extras(filament),
    }
    result: BuildJob = _validated(BuildJob, fields, "/api/job")
    return result


# --------------------------------------------------------------------------- print history


@dataclass(frozen=True)
class FilePrint:
    """The last print of one file, as ``/api/files`` tells it."""

    origin: str
    path: str
    completed_at: datetime
    sequence_number: int
    success: bool
    print_time_s: int | None
    prints_success: int
    prints_failure: int
    filament: Filament

    def job_uuid(self, device_key: str) -> uuid.UUID:
        """Name-based: the same print gives the same UUID on every poll and every collector."""
        name = f"octoprint-job:{device_key}/{self.origin}/{self.path}/{self.sequence_number}"
        return uuid.uuid5(uuid.NAMESPACE_URL, name)


def _count(value: Any, where: str) -> int:
    number = _non_negative(value, where)
    return 0 if number is None else int(number)


def _file_print(entry: Mapping[str, Any], where: str) -> FilePrint | None:
    prints = _obj(entry.get("prints"), f"{where}.prints")
    if prints is None:
        return None
    last = _obj(prints.get("last"), f"{where}.prints.last")
    if last is None:
        return None
    date = _non_negative(last.get("date"), f"{where}.prints.last.date")
    if date is None:
        return None
    completed_at = _timestamp(date, f"{where}.prints.last.date")
    assert completed_at is not None
    path = _text(entry.get("path"), f"{where}.path", _LONG) or _text(
        entry.get("name"), f"{where}.name", _LONG
    )
    if not path:
        raise MalformedResponse(f"{where}: a printed file without path or name")
    analysis = _obj(entry.get("gcodeAnalysis"), f"{where}.gcodeAnalysis") or {}
    return FilePrint(
        origin=_text(entry.get("origin"), f"{where}.origin") or "local",
        path=path,
        completed_at=completed_at,
        # Milliseconds of the completion time: increases with every finished print (OctoPrint
        # stamps history entries when the print ends), so the collector's cursor works, and
        # two files finishing in the same second still get distinct numbers.
        sequence_number=round(date * 1000),
        success=bool(_bool(last.get("success"), f"{where}.prints.last.success")),
        print_time_s=_seconds(last.get("printTime"), f"{where}.prints.last.printTime"),
        prints_success=_count(prints.get("success"), f"{where}.prints.success"),
        prints_failure=_count(prints.get("failure"), f"{where}.prints.failure"),
        filament=_filament(analysis.get("filament"), f"{where}.gcodeAnalysis.filament"),
    )


def parse_print_history(doc: Any) -> list[FilePrint]:
    """``/api/files?recursive=true`` → the last print of every file that has one, oldest
    first. Folders are walked (their own ``prints`` are sums of their children's and are
    skipped, so nothing counts twice)."""
    listing = _req_obj(doc, "/api/files")
    out: list[FilePrint] = []
    stack: list[tuple[Any, str, int]] = [
        (item, "/api/files files", 0) for item in reversed(_list(listing.get("files"), "files"))
    ]
    seen = 0
    while stack:
        item, where, depth = stack.pop()
        seen += 1
        if seen > _MAX_FILES:
            raise MalformedResponse(f"/api/files: more than {_MAX_FILES} entries")
        entry = _req_obj(item, where)
        kind = _text(entry.get("type"), f"{where}.type")
        if kind == "folder":
            if depth >= _MAX_DEPTH:
                raise MalformedResponse(f"{where}: folders nested too deeply")
            name = _text(entry.get("name"), f"{where}.name") or "?"
            children = _list(entry.get("children"), f"{where}.children")
            stack.extend((child, f"{where}/{name[:40]}", depth + 1) for child in reversed(children))
            continue
        record = _file_print(entry, where)
        if record is not None:
            out.append(record)
    out.sort(key=lambda p: (p.sequence_number, p.origin, p.path))
    return out


def _job_record(item: FilePrint, device_key: str) -> JobRecord:
    filament = item.filament if item.success else Filament()
    fields: dict[str, object] = {
        "kind": JobKind.PRINT,
        "job_uuid": item.job_uuid(device_key),
        "sequence_number": item.sequence_number,
        "name": item.path,
        "completed_at": item.completed_at,
        "print_time_s": item.print_time_s,
        "status": JobStatus.COMPLETED if item.success else JobStatus.FAILED,
        "source": item.origin,
        "media_type": "filament" if filament.length_mm is not None else None,
        "media_length_mm": filament.length_mm,
    }
    if filament.volume_ul is not None:
        fields["filament_ul"] = filament.volume_ul
    record: JobRecord = _validated(JobRecord, fields, f"/api/files {item.path[:60]}")
    return record


def _recent_build(item: FilePrint, device_key: str) -> BuildJob:
    filament = item.filament if item.success else Filament()
    started = (
        _shifted(item.completed_at, -item.print_time_s, f"/api/files {item.path[:60]} printTime")
        if item.print_time_s is not None
        else None
    )
    fields: dict[str, object] = {
        "id": str(item.job_uuid(device_key)),
        "name": item.path,
        "started_at": started,
        "duration_s": item.print_time_s,
        "outcome": "completed" if item.success else "failed",
        # How many prints of this file OctoPrint counted: more than one means earlier ones
        # exist that no job record itemises.
        "prints_success": item.prints_success,
        "prints_failure": item.prints_failure,
        **_filament_extras(filament),
    }
    build: BuildJob = _validated(BuildJob, fields, f"/api/files {item.path[:60]}")
    return build


# --------------------------------------------------------------------------- report


def parse_report(
    *,
    version: Any,
    host: str,
    port: int,
    connection: Any = None,
    profiles: Any = None,
    printer: Any = None,
    job: Any = None,
    files: Any = None,
    collected_at: datetime | None = None,
    kind: ReportKind = ReportKind.USAGE,
    job_cursor: int | None = None,
) -> DeviceReport:
    """Decoded API documents → one report. ``printer`` None means OctoPrint answered 409 (no
    printer connected); ``job`` and ``files`` may be None when not read (HEALTH reports do
    not read ``files``). Jobs with ``sequence_number <= job_cursor`` are left out."""
    when = collected_at or now_utc()
    identity = parse_identity(
        version, host=host, port=port, connection=connection, profiles=profiles
    )
    device_key = f"{identity.vendor}/{identity.serial_number}"
    state = parse_printer(printer)
    build = parse_current_job(job, collected_at=when, active=state.active) if job else None
    jobs: list[JobRecord] = []
    recent: list[BuildJob] = []
    if kind is ReportKind.USAGE and files is not None:
        history = parse_print_history(files)
        jobs = [
            _job_record(item, device_key)
            for item in history
            if job_cursor is None or item.sequence_number > job_cursor
        ]
        recent = [_recent_build(item, device_key) for item in reversed(history)][:MAX_RECENT_BUILDS]
    alerts: list[Alert] = []
    if state.error:
        alerts.append(
            Alert(
                code="printer_error",
                severity=AlertSeverity.ERROR,
                text=state.error,
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
            "jobs": jobs,
            "alerts": alerts,
            "additive": AdditiveStatus(
                state=state.state,
                build_job=build,
                recent_builds=recent,
                temperatures_c=state.temperatures_c,
            ),
        },
        "OctoPrint report",
    )
    return report
