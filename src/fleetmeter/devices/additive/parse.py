"""Pure parser of the ``fleetmeter-additive`` JSON device API: decoded documents in, wire
models out. No I/O here.

The API (docs/architecture.md, "Additive devices") is FleetMeter's own: no public capture of
an industrial powder-bed printer's web service exists, so the simulator serves it and this
parser reads it. Bodies are decoded strictly (``jsondoc``) and every value is type-checked
before use, so a hostile or broken server yields ``MalformedResponse`` with a one-line reason
naming where, never a crash.

What the device cannot tell, and the report therefore leaves unset (never zero):

- **a running build's material use**: powder and agents are known when the build ends;
- **builds older than the printer's history** (a ring buffer): a collector that was away for
  longer than the history lasts gets a gap in sequence numbers, which billing flags;
- **fresh powder per build**: the station mixes fresh and recovered powder; a build is billed
  the powder it used up (fused, or too aged by the heat to recover), as the printer reports;
- **other cells' build units**: a printer lists only the build units and the station paired
  with it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fleetmeter.devices import jsondoc
from fleetmeter.devices.errors import MalformedResponse
from fleetmeter.devices.jsondoc import LONG_TEXT as _LONG
from fleetmeter.devices.jsondoc import array as _list
from fleetmeter.devices.jsondoc import boolean as _bool
from fleetmeter.devices.jsondoc import number as _number
from fleetmeter.devices.jsondoc import obj as _obj
from fleetmeter.devices.jsondoc import req_obj as _req_obj
from fleetmeter.devices.jsondoc import rounded as _count
from fleetmeter.devices.jsondoc import text as _text
from fleetmeter.devices.jsondoc import validated as _validated
from fleetmeter.wire import (
    AdditiveStatus,
    Alert,
    AlertSeverity,
    BuildJob,
    BuildUnit,
    DeviceIdentity,
    DeviceReport,
    DeviceStatus,
    EngineState,
    JobKind,
    JobRecord,
    JobStatus,
    LifetimeUsage,
    Material,
    MaterialUsage,
    Printhead,
    ProcessingStation,
    ReportKind,
    Submitter,
    SupplyState,
    now_utc,
)

__all__ = [
    "API",
    "DOCUMENTS",
    "DRIVER_ID",
    "MAX_RECENT_BUILDS",
    "Build",
    "decode",
    "finished_after",
    "is_additive_device",
    "parse_alerts",
    "parse_build_units",
    "parse_builds",
    "parse_consumables",
    "parse_counters",
    "parse_identity",
    "parse_report",
    "parse_stations",
    "parse_status",
]

DRIVER_ID = "additive"
API = "fleetmeter-additive"
"""The ``api`` value of ``/api/am/v1/device`` that identifies the API."""
API_MAJOR = "1"
DOCUMENTS = ("device", "status", "consumables", "buildunits", "stations", "alerts")
"""The documents every read takes (``counters`` and the build history are added for usage)."""
MAX_RECENT_BUILDS = 10
"""``AdditiveStatus.recent_builds``: the newest finished builds, for display."""

_MAX_DEPTH = 8
_MAX_ITEMS = 1_000  # list entries per document (agents, heads, units, alerts)
_MAX_BUILDS = 20_000  # builds over all history pages of one read
_MAX_TEMPERATURES = 32
_MAX_TEMPERATURE_C = 2000.0

_STATES = {
    "idle": EngineState.IDLE,
    "warming": EngineState.WARMING,
    "printing": EngineState.PRINTING,
    "cooling": EngineState.COOLING,
    "error": EngineState.ERROR,
    "offline": EngineState.OFFLINE,
}
_FINISHED = {
    "completed": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
}
_SEVERITIES = {s.value: s for s in AlertSeverity}
_SUPPLY_STATES = {
    "ok": SupplyState.OK,
    "low": SupplyState.LOW,
    "empty": SupplyState.EMPTY,
    "missing": SupplyState.MISSING,
}
_HEAD_STATES = {"ok": SupplyState.OK, "replace": SupplyState.VERY_LOW}


# --------------------------------------------------------------------------- decoding


def decode(body: bytes, *, what: str) -> Any:
    """Strict JSON (no NaN/Infinity, at most a few levels deep, valid UTF-8)."""
    return jsondoc.decode(body, what=what, max_depth=_MAX_DEPTH)


def _time(value: Any, where: str) -> datetime | None:
    """An ISO 8601 time with a zone (``2026-03-02T07:30:00Z``) → aware UTC; None for null."""
    raw = _text(value, where)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise MalformedResponse(f"{where}: not an ISO 8601 time: {raw[:40]!r}") from exc
    if moment.tzinfo is None:
        raise MalformedResponse(f"{where}: time without a zone: {raw[:40]!r}")
    return moment


def _items(value: Any, where: str) -> Sequence[Any]:
    items = _list(value, where)
    if len(items) > _MAX_ITEMS:
        raise MalformedResponse(f"{where}: more than {_MAX_ITEMS} entries")
    return items


def _amounts(value: Any, where: str) -> dict[str, int]:
    """``{"fusing_agent": 1200, ...}`` → name → non-negative integer."""
    doc = _obj(value, where) or {}
    if len(doc) > _MAX_ITEMS:
        raise MalformedResponse(f"{where}: more than {_MAX_ITEMS} entries")
    out: dict[str, int] = {}
    for name, amount in doc.items():
        count = _count(amount, f"{where}.{name[:40]}")
        if count is not None and name:
            out[name[: jsondoc.SHORT_TEXT]] = count
    return out


# --------------------------------------------------------------------------- identity


def is_additive_device(doc: Any) -> bool:
    """Whether a ``/api/am/v1/device`` body is this API's (major version 1). Never raises."""
    if not isinstance(doc, dict):
        return False
    version = doc.get("apiVersion")
    return (
        doc.get("api") == API
        and isinstance(version, str)
        and version.split(".")[0] == API_MAJOR
        and isinstance(doc.get("serialNumber"), str)
        and bool(doc["serialNumber"].strip())
    )


def parse_identity(doc: Any, *, host: str | None) -> DeviceIdentity:
    """``/api/am/v1/device`` → the device identity."""
    where = "/api/am/v1/device"
    if not is_additive_device(doc):
        raise MalformedResponse(f"{where}: not a {API} device document (api version 1)")
    identity: DeviceIdentity = _validated(
        DeviceIdentity,
        {
            "vendor": _text(doc.get("vendor"), f"{where} vendor") or "unknown",
            "serial_number": _text(doc.get("serialNumber"), f"{where} serialNumber"),
            "product_number": _text(doc.get("productNumber"), f"{where} productNumber"),
            "product_name": _text(doc.get("model"), f"{where} model"),
            "firmware_version": _text(doc.get("firmwareVersion"), f"{where} firmwareVersion"),
            "driver": DRIVER_ID,
            "address": host,
            "device_class": "printer3d",
        },
        where,
    )
    return identity


# --------------------------------------------------------------------------- builds


@dataclass(frozen=True)
class Build:
    """One build as the API describes it (the running one or a finished one)."""

    uuid: uuid.UUID
    sequence_number: int | None
    name: str | None
    status: str
    end_reason: str | None
    material: str | None
    user: str | None
    project: str | None
    submitted_at: datetime | None
    started_at: datetime | None
    estimated_end: datetime | None
    ended_at: datetime | None
    print_time_s: int | None
    layers_total: int | None
    layers_done: int | None
    progress_percent: int | None
    build_height_mm: int | None
    build_volume_mm3: int | None
    build_unit: str | None
    powder_used_g: int | None
    agent_used_ul: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in _FINISHED

    def to_build_job(self, where: str) -> BuildJob:
        fields: dict[str, object] = {
            "id": str(self.uuid),
            "name": self.name,
            "material": self.material,
            "layers_total": self.layers_total,
            "layers_done": self.layers_done,
            "progress_percent": self.progress_percent,
            "started_at": self.started_at,
            "estimated_end": self.estimated_end,
            "duration_s": self.print_time_s,
            "build_height_mm": self.build_height_mm,
            "outcome": self.status,
            "material_used_g": self.powder_used_g,
            "agent_used_ul": dict(self.agent_used_ul),
            "sequence_number": self.sequence_number,
            "ended_at": self.ended_at,
            "print_time_s": self.print_time_s,
            "build_volume_mm3": self.build_volume_mm3,
            "build_unit": self.build_unit,
        }
        job: BuildJob = _validated(BuildJob, fields, where)
        return job

    def to_job_record(self, where: str) -> JobRecord:
        """The billable record of a finished build. 3D quantities travel as JobRecord extra
        fields (the wire model keeps them; billing reads ``material``, ``material_used_g``,
        ``agent_used_ul`` and ``build_volume_mm3``: docs/billing.md)."""
        if not self.finished or self.sequence_number is None or self.ended_at is None:
            raise MalformedResponse(f"{where}: a finished build needs sequenceNumber, endedAt")
        duration = None
        if self.submitted_at is not None and self.ended_at >= self.submitted_at:
            duration = round((self.ended_at - self.submitted_at).total_seconds())
        fields: dict[str, object] = {
            "kind": JobKind.PRINT,
            "job_uuid": self.uuid,
            "sequence_number": self.sequence_number,
            "name": self.name,
            "submitter": Submitter(
                project=self.project, user=self.user, submitted_at=self.submitted_at
            ),
            "completed_at": self.ended_at,
            "print_time_s": self.print_time_s,
            "duration_s": duration,
            "status": _FINISHED[self.status],
            "pages": 0,
            "copies": 1,
        }
        extras: dict[str, object | None] = {
            "material": self.material,
            "material_used_g": self.powder_used_g,
            "agent_used_ul": dict(self.agent_used_ul) if self.agent_used_ul else None,
            "build_volume_mm3": self.build_volume_mm3,
            "build_height_mm": self.build_height_mm,
            "layers_total": self.layers_total,
            "layers_done": self.layers_done,
            "build_unit": self.build_unit,
            "end_reason": self.end_reason,
        }
        # Unknown stays absent: an extra field of None would read as "zero used" to some.
        fields.update({k: v for k, v in extras.items() if v is not None})
        record: JobRecord = _validated(JobRecord, fields, where)
        return record


def _build(item: Any, where: str) -> Build:
    doc = _req_obj(item, where)
    raw_uuid = _text(doc.get("uuid"), f"{where}.uuid")
    try:
        build_uuid = uuid.UUID(raw_uuid or "")
    except ValueError as exc:
        raise MalformedResponse(f"{where}: uuid is not a UUID") from exc
    status = _text(doc.get("status"), f"{where}.status") or "unknown"
    agents = doc.get("agentsUsedMicroliters")
    progress = _number(doc.get("progressPercent"), f"{where}.progressPercent")
    return Build(
        uuid=build_uuid,
        sequence_number=_count(doc.get("sequenceNumber"), f"{where}.sequenceNumber"),
        name=_text(doc.get("name"), f"{where}.name", _LONG),
        status=status,
        end_reason=_text(doc.get("endReason"), f"{where}.endReason"),
        material=_text(doc.get("material"), f"{where}.material"),
        user=_text(doc.get("submittedBy"), f"{where}.submittedBy"),
        project=_text(doc.get("project"), f"{where}.project"),
        submitted_at=_time(doc.get("submittedAt"), f"{where}.submittedAt"),
        started_at=_time(doc.get("startedAt"), f"{where}.startedAt"),
        estimated_end=_time(doc.get("estimatedEndAt"), f"{where}.estimatedEndAt"),
        ended_at=_time(doc.get("endedAt"), f"{where}.endedAt"),
        print_time_s=_count(doc.get("printSeconds"), f"{where}.printSeconds"),
        layers_total=_count(doc.get("layersTotal"), f"{where}.layersTotal"),
        layers_done=_count(doc.get("layersDone"), f"{where}.layersDone"),
        # A device may round up near the end; the wire model's percent stops at 100.
        progress_percent=None if progress is None else max(0, min(100, int(progress))),
        build_height_mm=_count(doc.get("buildHeightMillimeters"), f"{where}.buildHeight"),
        build_volume_mm3=_count(doc.get("buildVolumeCubicMillimeters"), f"{where}.buildVolume"),
        build_unit=_text(doc.get("buildUnitSerialNumber"), f"{where}.buildUnitSerialNumber"),
        powder_used_g=_count(doc.get("powderUsedGrams"), f"{where}.powderUsedGrams"),
        agent_used_ul=_amounts(agents, f"{where}.agentsUsedMicroliters"),
    )


def parse_builds(pages: Iterable[Any]) -> list[Build]:
    """``/api/am/v1/builds`` pages → the builds, each sequence number once, oldest first.
    Every history entry must carry a sequence number (it is the job cursor)."""
    builds: dict[int, Build] = {}
    for number, page in enumerate(pages):
        where = f"/api/am/v1/builds page {number}"
        doc = _req_obj(page, where)
        for index, item in enumerate(_list(doc.get("builds"), f"{where} builds")):
            build = _build(item, f"{where} builds[{index}]")
            if build.sequence_number is None:
                raise MalformedResponse(f"{where} builds[{index}]: no sequenceNumber")
            builds[build.sequence_number] = build
            if len(builds) > _MAX_BUILDS:
                raise MalformedResponse(f"/api/am/v1/builds: more than {_MAX_BUILDS} builds")
    return [builds[key] for key in sorted(builds)]


def finished_after(builds: Sequence[Build], *, job_cursor: int | None) -> list[Build]:
    """Finished builds after the cursor, oldest first, stopping before the first unfinished
    one: the cursor is a high-water mark, so no build may be passed while an older one may
    still end (the API lists only finished builds; this guards against one that does not)."""
    out: list[Build] = []
    for build in builds:
        if not build.finished:
            break
        assert build.sequence_number is not None  # parse_builds insists
        if job_cursor is None or build.sequence_number > job_cursor:
            out.append(build)
    return out


# --------------------------------------------------------------------------- status


@dataclass
class PrinterStatus:
    state: EngineState = EngineState.UNKNOWN
    reasons: list[str] = field(default_factory=list)
    temperatures_c: dict[str, float] = field(default_factory=dict)
    build: Build | None = None


def parse_status(doc: Any) -> PrinterStatus:
    """``/api/am/v1/status`` → state, reasons, temperatures and the running build."""
    where = "/api/am/v1/status"
    status = _req_obj(doc, where)
    raw_state = _text(status.get("state"), f"{where} state") or "unknown"
    reasons = [
        reason
        for index, item in enumerate(_items(status.get("stateReasons"), f"{where} stateReasons"))
        if (reason := _text(item, f"{where} stateReasons[{index}]"))
    ]
    if raw_state not in _STATES and raw_state not in reasons:
        reasons.insert(0, raw_state)  # a state this driver does not know: keep its name
    if _bool(status.get("doorOpen"), f"{where} doorOpen") and "door_open" not in reasons:
        reasons.append("door_open")
    temps: dict[str, float] = {}
    readings = _obj(status.get("temperaturesCelsius"), f"{where} temperaturesCelsius") or {}
    for name, value in list(readings.items())[:_MAX_TEMPERATURES]:
        reading = _number(value, f"{where} temperaturesCelsius.{name[:40]}")
        if reading is not None and abs(reading) <= _MAX_TEMPERATURE_C and name:
            temps[name[: jsondoc.SHORT_TEXT]] = round(reading, 1)
    current = status.get("currentBuild")
    return PrinterStatus(
        state=_STATES.get(raw_state, EngineState.UNKNOWN),
        reasons=reasons,
        temperatures_c=temps,
        build=_build(current, f"{where} currentBuild") if current is not None else None,
    )


# --------------------------------------------------------------------------- consumables


def parse_consumables(doc: Any) -> tuple[list[Material], list[Printhead]]:
    """``/api/am/v1/consumables`` → agent cartridges (as materials, µL) and printheads."""
    where = "/api/am/v1/consumables"
    cons = _req_obj(doc, where)
    materials: list[Material] = []
    for index, item in enumerate(_items(cons.get("agents"), f"{where} agents")):
        at = f"{where} agents[{index}]"
        agent = _req_obj(item, at)
        state = _text(agent.get("state"), f"{at}.state")
        material: Material = _validated(
            Material,
            {
                "name": _text(agent.get("name"), f"{at}.name") or f"agent {index}",
                "kind": "agent",
                "location": "printer",
                "remaining_ul": _count(agent.get("levelMicroliters"), f"{at}.levelMicroliters"),
                "capacity_ul": _count(agent.get("capacityMicroliters"), f"{at}.capacity"),
                "level_percent": _count(agent.get("levelPercent"), f"{at}.levelPercent"),
                "status": _SUPPLY_STATES.get(state or "", SupplyState.UNKNOWN),
            },
            at,
        )
        materials.append(material)
    heads: list[Printhead] = []
    for index, item in enumerate(_items(cons.get("printheads"), f"{where} printheads")):
        at = f"{where} printheads[{index}]"
        head = _req_obj(item, at)
        agents = [
            name
            for i, value in enumerate(_items(head.get("agents"), f"{at}.agents"))
            if (name := _text(value, f"{at}.agents[{i}]"))
        ]
        state = _text(head.get("state"), f"{at}.state")
        printhead: Printhead = _validated(
            Printhead,
            {
                "slot": _count(head.get("slot"), f"{at}.slot"),
                "colors": agents,
                "status": _HEAD_STATES.get(state or "", SupplyState.UNKNOWN),
                "health_percent": _count(head.get("healthPercent"), f"{at}.healthPercent"),
                "product_number": _text(head.get("productNumber"), f"{at}.productNumber"),
                "serial_number": _text(head.get("serialNumber"), f"{at}.serialNumber"),
            },
            at,
        )
        heads.append(printhead)
    return materials, heads


# --------------------------------------------------------------------------- the cell


def parse_build_units(doc: Any) -> list[BuildUnit]:
    """``/api/am/v1/buildunits`` → the build units paired with the printer."""
    where = "/api/am/v1/buildunits"
    units: list[BuildUnit] = []
    for index, item in enumerate(_items(_req_obj(doc, where).get("buildUnits"), where)):
        at = f"{where} buildUnits[{index}]"
        unit = _req_obj(item, at)
        serial = _text(unit.get("serialNumber"), f"{at}.serialNumber")
        if not serial:
            raise MalformedResponse(f"{at}: no serialNumber")
        build_unit: BuildUnit = _validated(
            BuildUnit,
            {
                "serial_number": serial,
                "state": _text(unit.get("state"), f"{at}.state") or "unknown",
                "location": _text(unit.get("location"), f"{at}.location") or "unknown",
                "build_job_id": _text(unit.get("buildUuid"), f"{at}.buildUuid"),
                "material": _text(unit.get("material"), f"{at}.material"),
                "powder_g": _count(unit.get("powderGrams"), f"{at}.powderGrams"),
                "state_since": _time(unit.get("stateSince"), f"{at}.stateSince"),
                "ready_at": _time(unit.get("readyAt"), f"{at}.readyAt"),
            },
            at,
        )
        units.append(build_unit)
    return units


def parse_stations(doc: Any) -> tuple[list[ProcessingStation], list[Material]]:
    """``/api/am/v1/stations`` → the processing stations, and their powder as materials."""
    where = "/api/am/v1/stations"
    stations: list[ProcessingStation] = []
    powders: list[Material] = []
    for index, item in enumerate(_items(_req_obj(doc, where).get("stations"), where)):
        at = f"{where} stations[{index}]"
        st = _req_obj(item, at)
        serial = _text(st.get("serialNumber"), f"{at}.serialNumber")
        if not serial:
            raise MalformedResponse(f"{at}: no serialNumber")
        fresh = _count(st.get("freshPowderGrams"), f"{at}.freshPowderGrams")
        recovered = _count(st.get("recoveredPowderGrams"), f"{at}.recoveredPowderGrams")
        material = _text(st.get("material"), f"{at}.material")
        station: ProcessingStation = _validated(
            ProcessingStation,
            {
                "serial_number": serial,
                "kind": _text(st.get("kind"), f"{at}.kind") or "unknown",
                "state": _text(st.get("state"), f"{at}.state") or "unknown",
                "powder_stored_g": (
                    fresh + recovered if fresh is not None and recovered is not None else None
                ),
                "mixing_ratio_percent": _count(
                    st.get("mixingRatioFreshPercent"), f"{at}.mixingRatioFreshPercent"
                ),
                "product_name": _text(st.get("model"), f"{at}.model"),
                "material": material,
                "fresh_powder_g": fresh,
                "recovered_powder_g": recovered,
                "build_unit": _text(st.get("buildUnitSerialNumber"), f"{at}.buildUnit"),
            },
            at,
        )
        stations.append(station)
        capacity = _count(st.get("storageCapacityGrams"), f"{at}.storageCapacityGrams")
        if material is not None and fresh is not None:
            powder: Material = _validated(
                Material,
                {
                    "name": material,
                    "kind": "powder",
                    "location": f"station:{serial}",
                    "remaining_g": fresh,
                    "capacity_g": capacity,
                    "level_percent": (
                        min(100, round(fresh * 100 / capacity)) if capacity else None
                    ),
                },
                at,
            )
            powders.append(powder)
    return stations, powders


# --------------------------------------------------------------------------- alerts


def parse_alerts(doc: Any) -> list[Alert]:
    """``/api/am/v1/alerts`` → active and recently cleared alerts."""
    where = "/api/am/v1/alerts"
    alerts: list[Alert] = []
    for index, item in enumerate(_items(_req_obj(doc, where).get("alerts"), where)):
        at = f"{where} alerts[{index}]"
        entry = _req_obj(item, at)
        code = _text(entry.get("code"), f"{at}.code")
        raised = _time(entry.get("raisedAt"), f"{at}.raisedAt")
        if not code or raised is None:
            raise MalformedResponse(f"{at}: an alert needs a code and raisedAt")
        severity = _text(entry.get("severity"), f"{at}.severity") or ""
        alert: Alert = _validated(
            Alert,
            {
                "code": code,
                # A severity this driver does not know is shown, not dropped.
                "severity": _SEVERITIES.get(severity, AlertSeverity.WARNING),
                "text": _text(entry.get("message"), f"{at}.message", _LONG) or "",
                "first_seen": raised,
                "cleared_at": _time(entry.get("clearedAt"), f"{at}.clearedAt"),
                "component": _text(entry.get("component"), f"{at}.component"),
            },
            at,
        )
        alerts.append(alert)
    return alerts


# --------------------------------------------------------------------------- counters


def parse_counters(doc: Any) -> LifetimeUsage:
    """``/api/am/v1/counters`` → lifetime usage (builds, build time and volume, material)."""
    where = "/api/am/v1/counters"
    counters = _req_obj(doc, where)
    by_material: list[MaterialUsage] = []
    grams: int | None = None
    microlitres: int | None = None
    for index, item in enumerate(_items(counters.get("materials"), f"{where} materials")):
        at = f"{where} materials[{index}]"
        entry = _req_obj(item, at)
        used = _count(entry.get("usedGrams"), f"{at}.usedGrams")
        name = _text(entry.get("material"), f"{at}.material")
        if name and used is not None:
            by_material.append(_validated(MaterialUsage, {"material": name, "used_g": used}, at))
            grams = (grams or 0) + used
    for index, item in enumerate(_items(counters.get("agents"), f"{where} agents")):
        at = f"{where} agents[{index}]"
        entry = _req_obj(item, at)
        used = _count(entry.get("usedMicroliters"), f"{at}.usedMicroliters")
        name = _text(entry.get("name"), f"{at}.name")
        if name and used is not None:
            by_material.append(_validated(MaterialUsage, {"material": name, "used_ul": used}, at))
            microlitres = (microlitres or 0) + used
    usage: LifetimeUsage = _validated(
        LifetimeUsage,
        {
            "jobs": _count(counters.get("builds"), f"{where} builds"),
            "build_time_s": _count(counters.get("buildSeconds"), f"{where} buildSeconds"),
            "build_volume_mm3": _count(
                counters.get("buildVolumeCubicMillimeters"), f"{where} buildVolume"
            ),
            "material_g": grams,
            "material_ul": microlitres,
            "by_material": by_material,
        },
        where,
    )
    return usage


# --------------------------------------------------------------------------- report


def parse_report(
    docs: Mapping[str, Any],
    *,
    host: str | None,
    history: Sequence[Any] = (),
    recent: Any = None,
    collected_at: datetime | None = None,
    kind: ReportKind = ReportKind.USAGE,
    job_cursor: int | None = None,
) -> DeviceReport:
    """Decoded documents (by name: ``device`` required, the rest of ``DOCUMENTS`` and
    ``counters`` optional) → one report. ``history`` holds the ``builds`` pages read after
    the job cursor (USAGE reports), ``recent`` the ``builds?last=N`` page. Builds with
    ``sequence_number <= job_cursor`` are left out."""
    when = collected_at or now_utc()
    identity = parse_identity(docs.get("device"), host=host)
    printer = parse_status(docs["status"]) if docs.get("status") is not None else PrinterStatus()
    agents: list[Material] = []
    heads: list[Printhead] = []
    if docs.get("consumables") is not None:
        agents, heads = parse_consumables(docs["consumables"])
    units = parse_build_units(docs["buildunits"]) if docs.get("buildunits") is not None else []
    stations: list[ProcessingStation] = []
    powders: list[Material] = []
    if docs.get("stations") is not None:
        stations, powders = parse_stations(docs["stations"])
    alerts = parse_alerts(docs["alerts"]) if docs.get("alerts") is not None else []
    recent_builds = [
        b.to_build_job(f"/api/am/v1/builds {b.sequence_number}")
        for b in reversed(parse_builds([recent] if recent is not None else []))
        if b.finished
    ][:MAX_RECENT_BUILDS]

    jobs: list[JobRecord] = []
    usage: LifetimeUsage | None = None
    if kind is ReportKind.USAGE:
        jobs = [
            b.to_job_record(f"/api/am/v1/builds {b.sequence_number}")
            for b in finished_after(parse_builds(history), job_cursor=job_cursor)
        ]
        if docs.get("counters") is not None:
            usage = parse_counters(docs["counters"])
    if usage is not None:
        # Lifetime consumption per material, beside the levels, for the 3D view.
        used = {m.material: m for m in usage.by_material}
        for material in [*powders, *agents]:
            entry = used.get(material.name)
            if entry is not None:
                material.consumed_g = entry.used_g
                material.consumed_ul = entry.used_ul
    current = (
        printer.build.to_build_job("/api/am/v1/status currentBuild")
        if printer.build is not None
        else None
    )
    report: DeviceReport = _validated(
        DeviceReport,
        {
            "kind": kind,
            "collected_at": when,
            "device": identity,
            "status": DeviceStatus(
                engine_state=printer.state, state_reasons=printer.reasons, printheads=heads
            ),
            "usage": usage,
            "jobs": jobs,
            "alerts": alerts,
            "additive": AdditiveStatus(
                state=printer.state,
                build_job=current,
                recent_builds=recent_builds,
                materials=[*powders, *agents],
                build_units=units,
                stations=stations,
                temperatures_c=printer.temperatures_c,
            ),
        },
        "additive report",
    )
    return report
