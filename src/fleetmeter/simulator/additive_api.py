"""The JSON device web service of a simulated powder-bed printer (FleetMeter's own API).

No public capture of an industrial 3D printer's web service exists, so this API is
FleetMeter's design (docs/architecture.md, "Additive devices"): read-only ``GET`` documents
under ``/api/am/v1/``, camelCase keys, quantities as integers whose key names the unit
(``…Grams``, ``…Microliters``, ``…Seconds``), times in ISO 8601 UTC, ``null`` for what the
device does not know yet (a running build's material use, for one).

| path | what |
|---|---|
| ``device`` | identity: ``api`` = ``fleetmeter-additive``, model, serial, firmware |
| ``status`` | printer state, reasons, door, temperatures, the current build |
| ``consumables`` | agent cartridges (levels) and printheads (health) |
| ``buildunits`` | the cell's build units: state, location, what they hold |
| ``stations`` | the processing station: state, powder in storage, mixing ratio |
| ``alerts`` | active alerts and those cleared within the last day |
| ``counters`` | lifetime counters: builds, build time and volume, material by name |
| ``builds?after=N&limit=M`` | finished builds with sequence number > N, oldest first |
| ``builds?last=N`` | the N newest finished builds, oldest first |

A ``builds`` answer also names the oldest and the newest sequence number the history holds
and whether more builds follow the page (``more``): a reader pages on with ``after`` = the
last sequence number it got.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import parse_qs

from fleetmeter.simulator.additive import (
    STATION_CAPACITY_G,
    STATION_MODEL,
    AdditivePrinter,
    SimBuild,
    iso,
)

API = "fleetmeter-additive"
API_VERSION = "1.0"
PREFIX = "/api/am/v1/"
DOCUMENTS = (
    "device",
    "status",
    "consumables",
    "buildunits",
    "stations",
    "alerts",
    "counters",
    "builds",
)
MAX_PAGE = 200
"""The most builds one ``builds`` page holds (``limit`` above it is cut down to it)."""
DEFAULT_PAGE = 100
SERVER_HEADER = b"FleetMeter-AM/1.0 (simulated device)"
PRINTHEAD_PRODUCT = "FMA-PH1"

_JSON = b"application/json"

Response = tuple[int, bytes, bytes, list[bytes]]


def _body(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _error(status: int, message: str) -> Response:
    return status, _body({"error": message}), _JSON, []


def respond(printer: AdditivePrinter, method: bytes, target: bytes) -> Response:
    """Status, body, content type and extra header names/values for one request."""
    if method not in (b"GET", b"HEAD"):
        return 405, b"", b"text/plain", [b"allow", b"GET, HEAD"]
    raw_path, _, raw_query = target.partition(b"?")
    path = raw_path.decode("ascii", "replace")
    name = path.removeprefix(PREFIX)
    if name == path or name not in DOCUMENTS:
        return _error(404, "not found")
    query = parse_qs(raw_query.decode("ascii", "replace"), keep_blank_values=True)
    if name == "builds":
        try:
            after = _query_int(query, "after", default=0, low=0)
            limit = min(MAX_PAGE, _query_int(query, "limit", default=DEFAULT_PAGE, low=1))
            last = _query_int(query, "last", default=0, low=1) if "last" in query else None
        except ValueError as exc:
            return _error(400, str(exc))
        if last is not None:
            doc = builds(printer, last=min(MAX_PAGE, last))
        else:
            doc = builds(printer, after=after, limit=limit)
        return 200, _body(doc), _JSON, []
    return 200, _body(RENDERERS[name](printer)), _JSON, []


def _query_int(query: dict[str, list[str]], key: str, *, default: int, low: int) -> int:
    values = query.get(key)
    if not values:
        return default
    text = values[-1]
    if not text.isdigit() or len(text) > 18:
        raise ValueError(f"{key} must be a whole number")
    value = int(text)
    if value < low:
        raise ValueError(f"{key} must be at least {low}")
    return value


# --------------------------------------------------------------------------- documents


def device(printer: AdditivePrinter) -> dict[str, Any]:
    model = printer.model
    return {
        "api": API,
        "apiVersion": API_VERSION,
        "deviceClass": "printer3d",
        "technology": "powder_bed_fusion",
        "vendor": "FleetMeter",
        "model": model.name,
        "productNumber": model.product_number,
        "serialNumber": printer.serial_number,
        "uuid": str(printer.uuid),
        "firmwareVersion": printer.firmware_version,
        "installedOn": printer.installed_on.isoformat(),
        "buildVolumeMillimeters": {
            "x": model.bed_x_mm,
            "y": model.bed_y_mm,
            "z": model.max_height_mm,
        },
        "layerThicknessMicrometers": model.layer_um,
    }


def build_doc(printer: AdditivePrinter, build: SimBuild) -> dict[str, Any]:
    """One build as the API shows it; what is not known until it ends is ``null``."""
    now = printer.now_s
    done = build.layers_at(now)
    finished = build.finished
    return {
        "uuid": str(build.uuid),
        "sequenceNumber": build.sequence_number if finished else None,
        "name": build.name,
        "status": build.status,
        "endReason": build.fault if finished else None,
        "material": build.material,
        "submittedBy": build.user,
        "project": build.project,
        "submittedAt": iso(build.submitted_at),
        "startedAt": iso(build.started_at),
        "estimatedEndAt": iso(build.estimated_end()),
        "endedAt": iso(build.ended_at),
        "printSeconds": build.print_time_s if finished else None,
        "layersTotal": build.layers_total,
        "layersDone": done,
        "progressPercent": math.floor(100 * done / build.layers_total),
        "layerThicknessMicrometers": printer.model.layer_um,
        "buildHeightMillimeters": build.height_mm,
        "buildVolumeCubicMillimeters": build.build_volume_mm3 if finished else None,
        "partCount": build.part_count,
        "buildUnitSerialNumber": build.build_unit,
        "powderLoadedGrams": build.powder_load_g if build.build_unit is not None else None,
        "powderUsedGrams": build.powder_used_g if finished else None,
        "agentsUsedMicroliters": dict(build.agent_used_ul) if finished else None,
    }


def _reasons(printer: AdditivePrinter) -> list[str]:
    reasons = [a.code for a in printer.active_alerts() if a.severity == "error" or a.blocking]
    current = printer.current
    if current is not None and current.status == "loading":
        reasons.append("loading_build_unit")
    elif (
        current is None
        and printer.queue
        and printer.engine_state() == "idle"
        and not any(u.state == "ready" for u in printer.units)
    ):
        reasons.append("waiting_for_build_unit")
    return reasons or [printer.engine_state()]


def status(printer: AdditivePrinter) -> dict[str, Any]:
    current = printer.current
    return {
        "state": printer.engine_state(),
        "stateSince": iso(printer.state_since),
        "stateReasons": _reasons(printer),
        "doorOpen": printer.door_open,
        "temperaturesCelsius": printer.temperatures(),
        "queuedBuilds": len(printer.queue),
        "currentBuild": build_doc(printer, current) if current is not None else None,
    }


def consumables(printer: AdditivePrinter) -> dict[str, Any]:
    return {
        "agents": [
            {
                "slot": cart.slot,
                "name": cart.spec.name,
                "productNumber": cart.spec.product_number,
                "serialNumber": cart.serial_number,
                "capacityMicroliters": cart.spec.capacity_ul,
                "levelMicroliters": cart.level_ul,
                "levelPercent": cart.level_percent,
                "state": cart.state,
                "installedOn": cart.installed_on.isoformat(),
            }
            for cart in printer.cartridges
        ],
        "printheads": [
            {
                "slot": head.slot,
                "agents": [cart.spec.name for cart in printer.cartridges],
                "productNumber": PRINTHEAD_PRODUCT,
                "serialNumber": head.serial_number,
                "healthPercent": head.health_percent,
                "state": "replace" if head.replacement_due else "ok",
                "installedOn": head.installed_on.isoformat(),
            }
            for head in printer.printheads
        ],
    }


def build_units(printer: AdditivePrinter) -> dict[str, Any]:
    return {
        "buildUnits": [
            {
                "serialNumber": unit.serial_number,
                "state": unit.state,
                "location": unit.location,
                "buildUuid": str(unit.build.uuid) if unit.build is not None else None,
                "material": unit.material,
                "powderGrams": unit.powder_g,
                "stateSince": iso(unit.state_since),
                "readyAt": iso(unit.ready_at),
            }
            for unit in printer.units
        ]
    }


def stations(printer: AdditivePrinter) -> dict[str, Any]:
    station = printer.station
    op = station.op_at(printer.now_s)
    return {
        "stations": [
            {
                "serialNumber": station.serial_number,
                "model": STATION_MODEL,
                "kind": "processing",
                "functions": ["loading", "mixing", "unpacking", "material_recovery"],
                "state": op.kind if op is not None else "idle",
                "buildUnitSerialNumber": op.unit if op is not None else None,
                "material": station.material,
                "mixingRatioFreshPercent": station.fresh_percent,
                "freshPowderGrams": station.fresh_g,
                "recoveredPowderGrams": station.recovered_g,
                "storageCapacityGrams": STATION_CAPACITY_G,
            }
        ]
    }


def alerts(printer: AdditivePrinter) -> dict[str, Any]:
    return {
        "alerts": [
            {
                "id": alert.sequence_number,
                "code": alert.code,
                "severity": alert.severity,
                "component": alert.component,
                "message": alert.text,
                "raisedAt": iso(alert.raised_at),
                "clearedAt": iso(alert.cleared_at),
            }
            for alert in printer.listed_alerts()
        ]
    }


def counters(printer: AdditivePrinter) -> dict[str, Any]:
    c = printer.counters
    return {
        "builds": c.builds,
        "completedBuilds": c.completed,
        "failedBuilds": c.failed,
        "buildSeconds": c.build_time_s,
        "buildVolumeCubicMillimeters": c.build_volume_mm3,
        "layers": c.layers,
        "materials": [
            {"material": name, "kind": "powder", "usedGrams": grams}
            for name, grams in sorted(c.material_g.items())
        ],
        "agents": [
            {"name": name, "usedMicroliters": microlitres}
            for name, microlitres in sorted(c.agent_ul.items())
        ],
    }


def builds(
    printer: AdditivePrinter, *, after: int = 0, limit: int = DEFAULT_PAGE, last: int | None = None
) -> dict[str, Any]:
    """A page of the history: after a sequence number, or the ``last`` newest."""
    history = printer.recent_builds()
    if last is not None:
        newer = page = history[-last:]
    else:
        newer = [b for b in history if b.sequence_number > after]
        page = newer[:limit]
    return {
        "oldestSequenceNumber": history[0].sequence_number if history else None,
        "latestSequenceNumber": history[-1].sequence_number if history else None,
        "more": len(newer) > len(page),
        "builds": [build_doc(printer, b) for b in page],
    }


RENDERERS = {
    "device": device,
    "status": status,
    "consumables": consumables,
    "buildunits": build_units,
    "stations": stations,
    "alerts": alerts,
    "counters": counters,
}
