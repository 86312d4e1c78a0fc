"""Pure mapping from SNMP values (dotted OID → value) to the wire model, driven by a profile.

Nothing here does I/O: the driver fetches the objects the profile lists and hands them over;
tests feed the same mapping from real ``.snmprec`` recordings. Device values are untrusted:
a value of the wrong type, a capacity below -3, an over-long string is dropped or cut, never a
crash; what still does not fit the wire model raises ``MalformedResponse``.

What SNMP gives for usage: Printer-MIB has lifetime marker counters only (prtMarkerLifeCount).
There is no per-job accounting in any standard MIB, so SNMP reports never carry jobs and the
collector's job cursor is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import ValidationError

from fleetmeter.devices.errors import MalformedResponse, NotSupported
from fleetmeter.devices.snmp.client import Oid, SnmpValue
from fleetmeter.devices.snmp.profile import Column, Profile, Table, load_profile
from fleetmeter.wire import (
    Alert,
    AlertSeverity,
    Cartridge,
    DeviceIdentity,
    DeviceReport,
    DeviceStatus,
    EngineState,
    LifetimeUsage,
    MediaSource,
    ReportKind,
    SupplyState,
    now_utc,
)

__all__ = [
    "DRIVER_ID",
    "PrinterData",
    "parse_identity",
    "parse_report",
    "tables",
]

DRIVER_ID = "snmp"

# Untrusted strings are cut to the wire model's limits rather than failing a whole report.
_SHORT = 256
_LONG = 2048

# RFC 3805 special values of capacities and levels (prtMarkerSuppliesMaxCapacity/Level,
# prtInputMaxCapacity/CurrentLevel): -1 other (no restriction), -2 unknown, -3 "some
# remaining" (at least one unit). Anything below -3 is not defined: treated as absent.
OTHER, UNKNOWN, SOME_REMAINING = -1, -2, -3

# The widest SNMP integers: Integer32's minimum and Counter64's maximum (RFC 2578 §7.1).
_MIN_INTEGER = -(2**31)
_MAX_UNSIGNED = 2**64 - 1
# TimeTicks (sysUpTime, prtAlertTime) are unsigned 32-bit hundredths of a second.
_MAX_TIMETICKS = 2**32 - 1

# hrDeviceTypes (RFC 2790): hrDevicePrinter.
_HR_DEVICE_PRINTER: Oid = (1, 3, 6, 1, 2, 1, 25, 3, 1, 5)
_ENTERPRISES: Oid = (1, 3, 6, 1, 4, 1)

# prtMarkerCounterUnit values that count pages, and lengths converted to millimetres.
_PAGE_UNITS = {"impressions", "sheets"}
_MM_PER_UNIT = {
    "tenThousandthsOfInches": 0.00254,
    "micrometers": 0.001,
    "feet": 304.8,
    "meters": 1000.0,
}
# hrPrinterDetectedErrorState conditions that stop the engine (the rest are warnings such as
# lowToner). RFC 3805 §2.2.13.2.1 pairs these with hrDeviceStatus down(5) or warning(3).
_STOPPING_CONDITIONS = {
    "noToner",
    "doorOpen",
    "jammed",
    "serviceRequested",
    "inputTrayMissing",
    "outputTrayMissing",
    "markerSupplyMissing",
    "outputFull",
}
_COLOR_CODES = {
    "black": "K",
    "cyan": "C",
    "magenta": "M",
    "yellow": "Y",
    "lightcyan": "LC",
    "lightmagenta": "LM",
    "photoblack": "PK",
    "matteblack": "MK",
    "gray": "G",
    "grey": "G",
    "lightgray": "LG",
    "lightgrey": "LG",
    "red": "R",
    "green": "GN",
    "blue": "B",
}
_COLOR_WORD = re.compile(
    r"\b(light\s*cyan|light\s*magenta|photo\s*black|matte\s*black|light\s*gr[ae]y|"
    r"black|cyan|magenta|yellow|gr[ae]y)\b",
    re.IGNORECASE,
)
# HP JetDirect sysDescr carries "SN:<serial>" (e.g. "HP ETHERNET MULTI-ENVIRONMENT,SN:VNC…").
_SERIAL_IN_DESCR = re.compile(r"(?:^|[,;\s])SN:\s*([A-Za-z0-9-]{4,64})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


# --------------------------------------------------------------------------- value access


def _text(value: SnmpValue | None, limit: int = _SHORT) -> str | None:
    """An OCTET STRING as display text: UTF-8, else Latin-1 (RFC 3805 localised strings are
    often either); control characters removed, cut to ``limit``; None when empty."""
    if not isinstance(value, bytes):
        return None
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = value.decode("latin-1")
    text = _CONTROL.sub(" ", text).strip()
    return text[:limit] if text else None


def _int(value: SnmpValue | None) -> int | None:
    # bool is an int subclass; a recording parser or a future client must not smuggle it in.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _oid(value: SnmpValue | None) -> Oid | None:
    return value if isinstance(value, tuple) else None


@dataclass
class Row:
    """One conceptual row: its index (after the entry's hrDeviceIndex) and values by name."""

    device: int
    index: tuple[int, ...]
    values: dict[str, SnmpValue] = field(default_factory=dict)

    def text(self, name: str, limit: int = _SHORT) -> str | None:
        return _text(self.values.get(name), limit)

    def number(self, name: str) -> int | None:
        return _int(self.values.get(name))

    def oid(self, name: str) -> Oid | None:
        return _oid(self.values.get(name))


def _typed(col: Column, value: SnmpValue) -> SnmpValue | None:
    """Keep a value only when it has its column's syntax (a device's wrong type is dropped)."""
    if col.syntax in ("string", "octets"):
        return value if isinstance(value, bytes) else None
    if col.syntax == "oid":
        return value if isinstance(value, tuple) else None
    number = _int(value)
    if number is None or not _MIN_INTEGER <= number <= _MAX_UNSIGNED:
        # No SNMP type carries such an integer; a recording (``.snmprec``) can hold one, and
        # it would overflow float arithmetic further on.
        return None
    if col.syntax == "counter" and number < 0:
        return None  # Counter32/Gauge32/TimeTicks are unsigned (RFC 2578 §7.1)
    return number


def tables(values: Mapping[str, SnmpValue], table: Table) -> list[Row]:
    """The rows of ``table`` found in ``values``, ordered by index; only profile columns."""
    prefix = table.oid + "."
    by_number = table.column_by_number()
    rows: dict[tuple[int, ...], Row] = {}
    for key, value in values.items():
        if not key.startswith(prefix):
            continue
        try:
            parts = tuple(int(p) for p in key[len(prefix) :].split("."))
        except ValueError:
            raise MalformedResponse(f"not a numeric OID: {key[:80]!r}") from None
        if len(parts) < 2:
            continue
        col = by_number.get(parts[0])
        if col is None:
            continue
        typed = _typed(col, value)
        if typed is None:
            continue
        index = parts[1:]
        row = rows.get(index)
        if row is None:
            row = rows[index] = Row(device=index[0], index=index[1:])
        row.values[col.name] = typed
    return [rows[key] for key in sorted(rows)]


# --------------------------------------------------------------------------- gathered data


@dataclass
class PrinterData:
    """The profile's objects for one agent, grouped: scalars and table rows by table name."""

    scalars: dict[str, SnmpValue]
    rows: dict[str, list[Row]]
    profile: Profile

    @classmethod
    def from_values(
        cls, values: Mapping[str, SnmpValue], profile: Profile | None = None
    ) -> PrinterData:
        prof = profile or load_profile()
        scalars: dict[str, SnmpValue] = {}
        for scalar in prof.scalars.values():
            value = values.get(scalar.oid)
            if value is None:
                continue
            typed = _typed(Column(scalar.name, 0, scalar.syntax, scalar.ref), value)
            if typed is not None:
                scalars[scalar.name] = typed
        rows = {name: tables(values, table) for name, table in prof.tables.items()}
        return cls(scalars=scalars, rows=rows, profile=prof)

    def table(self, name: str, device: int | None = None) -> list[Row]:
        rows = self.rows.get(name, [])
        return rows if device is None else [r for r in rows if r.device == device]

    def row(self, name: str, device: int) -> Row | None:
        return next(iter(self.table(name, device)), None)

    def enum(self, row: Row, column: str) -> str | None:
        """A row's enumerated value by its name in the profile ("running"), else None."""
        value = row.number(column)
        enum = self.profile.column(column).enum
        if value is None or enum is None:
            return None
        return self.profile.enum_name(enum, value)

    def printer_device(self) -> int | None:
        """The hrDeviceIndex of the printer: the first hrDevicePrinter in hrDeviceTable
        (RFC 3805 §3.2: the printer is a row there), else the first Printer-MIB row."""
        for row in self.table("hrDeviceEntry"):
            if row.oid("hrDeviceType") == _HR_DEVICE_PRINTER:
                return row.device
        for name in ("prtGeneralEntry", "prtMarkerEntry", "prtMarkerSuppliesEntry"):
            rows = self.table(name)
            if rows:
                return rows[0].device
        return None


# --------------------------------------------------------------------------- identity


def _vendor(data: PrinterData, descriptions: list[str]) -> str:
    sys_oid = _oid(data.scalars.get("sysObjectID"))
    if sys_oid is not None and sys_oid[: len(_ENTERPRISES)] == _ENTERPRISES:
        enterprise = sys_oid[len(_ENTERPRISES) : len(_ENTERPRISES) + 1]
        name = data.profile.enterprises.get(enterprise[0]) if enterprise else None
        if name is not None:
            return name
    for description in descriptions:
        words = description.split()
        if words:
            name = data.profile.vendor_words.get(words[0].lower().strip(",;:"))
            if name is not None:
                return name
    return "unknown"


def _identity(data: PrinterData, device: int | None, address: str | None) -> DeviceIdentity | None:
    sys_descr = _text(data.scalars.get("sysDescr"))
    hr = data.row("hrDeviceEntry", device) if device is not None else None
    general = data.row("prtGeneralEntry", device) if device is not None else None
    hr_descr = hr.text("hrDeviceDescr") if hr else None
    serial = general.text("prtGeneralSerialNumber", 128) if general else None
    if serial is None:
        # prtGeneralSerialNumber is optional (General V2 group); JetDirect cards put the
        # serial in sysDescr as "SN:…" — the same value the LEDM driver reports.
        match = _SERIAL_IN_DESCR.search(sys_descr or "")
        serial = match.group(1) if match else None
    if serial is None:
        return None
    descriptions = [d for d in (hr_descr, sys_descr) if d]
    return DeviceIdentity.model_validate(
        {
            "vendor": _vendor(data, descriptions),
            "serial_number": serial,
            "product_name": hr_descr or sys_descr,
            "driver": DRIVER_ID,
            "address": address[:_SHORT] if address else None,
            "sys_descr": sys_descr,  # extra: what the agent calls itself, for support
        }
    )


def parse_identity(
    values: Mapping[str, SnmpValue],
    *,
    address: str | None = None,
    profile: Profile | None = None,
) -> DeviceIdentity | None:
    """Identity from the profile's "identify" objects; None when the agent is not a printer
    (no hrDevicePrinter and no Printer-MIB rows) or names no serial number."""
    data = PrinterData.from_values(values, profile)
    device = data.printer_device()
    if device is None:
        return None
    try:
        return _identity(data, device, address)
    except ValidationError as exc:
        raise MalformedResponse(_reason(exc)) from exc


# --------------------------------------------------------------------------- status


def _error_bits(data: PrinterData, value: SnmpValue | None) -> list[str]:
    """hrPrinterDetectedErrorState BITS → condition names. Bit 0 is the high bit of the first
    octet (RFC 2578 §7.1.4); unknown bits read as "errorBit<N>"."""
    if not isinstance(value, bytes):
        return []
    names = data.profile.bits.get("hrPrinterDetectedErrorState", {})
    out: list[str] = []
    for octet_index, octet in enumerate(value[:8]):  # RFC 3805 defines 2 octets; allow some
        for bit in range(8):
            if octet & (0x80 >> bit):
                number = octet_index * 8 + bit
                out.append(names.get(number, f"errorBit{number}"))
    return out


def _engine_state(
    device_status: str | None, printer_status: str | None, conditions: list[str]
) -> EngineState:
    """RFC 3805 §2.2.13.2.1 ("Host Resources MIB Printer Status") combines hrDeviceStatus and
    hrPrinterStatus: running+idle = idle, running+printing = busy, running+other = standby,
    down+warmup = moving on-line, down+other = unavailable / critical alert; the offline bit
    of hrPrinterDetectedErrorState says the printer is off-line."""
    if "offline" in conditions:
        return EngineState.OFFLINE
    if device_status == "down" or any(c in _STOPPING_CONDITIONS for c in conditions):
        return EngineState.WARMING if printer_status == "warmup" else EngineState.ERROR
    if printer_status == "idle":
        return EngineState.IDLE
    if printer_status == "printing":
        return EngineState.PRINTING
    if printer_status == "warmup":
        return EngineState.WARMING
    if printer_status == "other" and device_status in ("running", "warning"):
        return EngineState.SLEEP  # "standby" in the RFC 3805 table
    # No hrPrinterStatus (some agents, and both real recordings, leave it out): hrDeviceStatus
    # running/warning alone does not say whether the engine is idle or printing.
    return EngineState.UNKNOWN


def _color(description: str | None, colorant: str | None) -> str:
    """Colour code: the supply's colorant (prtMarkerColorantValue, e.g. "cyan") when it has
    one, else a colour word in its description; "" for supplies without a colour (drums,
    fusers, waste receptacles)."""
    if colorant:
        key = re.sub(r"[\s_-]", "", colorant).lower()
        # A colorant the table does not know ("orange", "clear") is still its colour.
        return _COLOR_CODES.get(key, colorant[:_SHORT])
    match = _COLOR_WORD.search(description or "")
    if match:
        return _COLOR_CODES.get(re.sub(r"\s", "", match.group(1)).lower(), "")
    return ""


def _percent(level: int, maximum: int) -> int:
    # A level above its maximum is a device bug: cap at 100 rather than refuse the report.
    return max(0, min(100, round(level * 100 / maximum)))


def _cartridge(data: PrinterData, row: Row, colorants: dict[int, str]) -> Cartridge:
    description = row.text("prtMarkerSuppliesDescription")
    colorant_index = row.number("prtMarkerSuppliesColorantIndex")
    colorant = colorants.get(colorant_index) if colorant_index else None
    supply_class = data.enum(row, "prtMarkerSuppliesClass")
    supply_type = data.enum(row, "prtMarkerSuppliesType")
    maximum = row.number("prtMarkerSuppliesMaxCapacity")
    level = row.number("prtMarkerSuppliesLevel")
    # prtMarkerSuppliesClass is optional in practice (the Ricoh recording lacks it); the
    # waste* supply types are receptacles by definition.
    receptacle = supply_class == "receptacleThatIsFilled" or (
        supply_class is None and (supply_type or "").startswith("waste")
    )

    level_percent: int | None = None
    status = SupplyState.UNKNOWN
    if level is not None and level >= 0:
        if maximum is not None and maximum > 0:
            level_percent = _percent(level, maximum)
        # A consumed supply at 0 is empty; a receptacle's level is its remaining space
        # (RFC 3805 prtMarkerSuppliesLevel), and the wire model has no "full" state.
        status = (
            SupplyState.OK
            if level > 0
            else (SupplyState.UNKNOWN if receptacle else SupplyState.EMPTY)
        )
    elif level == SOME_REMAINING:
        status = SupplyState.OK
    extras: dict[str, object] = {
        "supply_type": supply_type,
        "supply_class": supply_class,
        "supply_unit": data.enum(row, "prtMarkerSuppliesSupplyUnit"),
        # Raw values, special ones included (-1 other, -2 unknown, -3 some remaining).
        "max_capacity": maximum if maximum is None or maximum >= UNKNOWN else None,
        "level": level if level is None or level >= SOME_REMAINING else None,
    }
    if receptacle and level == 0:
        extras["full"] = True
    fields: dict[str, object] = {
        "slot": row.index[0] if row.index and row.index[0] >= 0 else None,
        "color": _color(description, colorant),
        "status": status,
        "level_percent": level_percent,
        "product_name": description,
    }
    fields.update((k, v) for k, v in extras.items() if v is not None)
    return Cartridge.model_validate(fields)


def _media_source(data: PrinterData, row: Row) -> MediaSource:
    name = (
        row.text("prtInputName")
        or row.text("prtInputDescription")
        or f"input{'.'.join(map(str, row.index))}"
    )
    level = row.number("prtInputCurrentLevel")
    if level is None or level in (OTHER, UNKNOWN) or level < SOME_REMAINING:
        state = "unknown"
    elif level == 0:
        state = "empty"
    else:
        state = "ready"  # > 0, or -3: at least one sheet (RFC 3805 prtInputCurrentLevel)
    maximum = row.number("prtInputMaxCapacity")
    extras: dict[str, object] = {
        "capacity_unit": data.enum(row, "prtInputCapacityUnit"),
        "max_capacity": maximum if maximum is None or maximum >= UNKNOWN else None,
        "current_level": level if level is None or level >= SOME_REMAINING else None,
    }
    fields: dict[str, object] = {
        "name": name,
        "state": state,
        "media_type": row.text("prtInputMediaName"),
    }
    fields.update((k, v) for k, v in extras.items() if v is not None)
    return MediaSource.model_validate(fields)


def _status(data: PrinterData, device: int) -> DeviceStatus:
    hr = data.row("hrDeviceEntry", device)
    printer = data.row("hrPrinterEntry", device)
    device_status = data.enum(hr, "hrDeviceStatus") if hr else None
    printer_status = data.enum(printer, "hrPrinterStatus") if printer else None
    conditions = (
        _error_bits(data, printer.values.get("hrPrinterDetectedErrorState")) if printer else []
    )
    reasons = list(conditions)
    if device_status in ("warning", "down", "testing"):
        # RFC 3805 §2.2.13.2.1: warning = a non-critical alert is active, down = critical.
        reasons.insert(0, f"device{device_status.capitalize()}")
    colorants = {
        row.index[0]: text
        for row in data.table("prtMarkerColorantEntry", device)
        if row.index and (text := row.text("prtMarkerColorantValue")) is not None
    }
    return DeviceStatus.model_validate(
        {
            "engine_state": _engine_state(device_status, printer_status, conditions),
            "state_reasons": [r[:_SHORT] for r in reasons],
            "cartridges": [
                _cartridge(data, row, colorants)
                for row in data.table("prtMarkerSuppliesEntry", device)
            ],
            "media_sources": [
                _media_source(data, row) for row in data.table("prtInputEntry", device)
            ],
        }
        # Extras: the raw Host Resources states, for support.
        | {
            k: v
            for k, v in (("hr_device_status", device_status), ("hr_printer_status", printer_status))
            if v is not None
        }
    )


# --------------------------------------------------------------------------- alerts


_SEVERITY = {
    "critical": AlertSeverity.CRITICAL,
    "warning": AlertSeverity.WARNING,
    "warningBinaryChangeEvent": AlertSeverity.WARNING,
    "other": AlertSeverity.INFO,
}


def _alerts(data: PrinterData, device: int, collected_at: datetime) -> list[Alert]:
    uptime = _int(data.scalars.get("sysUpTime"))
    out: list[Alert] = []
    for row in data.table("prtAlertEntry", device):
        code_number = row.number("prtAlertCode")
        code = data.enum(row, "prtAlertCode") or (
            f"alert{code_number}" if code_number is not None else "unknown"
        )
        severity = _SEVERITY.get(
            data.enum(row, "prtAlertSeverityLevel") or "", AlertSeverity.WARNING
        )
        group = data.enum(row, "prtAlertGroup")
        group_index = row.number("prtAlertGroupIndex")
        component = None
        if group is not None:
            component = (
                f"{group}:{group_index}" if group_index is not None and group_index > 0 else group
            )
        # prtAlertTime is sysUpTime (1/100 s) when the alert was added (RFC 3805): its age is
        # the difference, so first_seen survives the collector's restarts.
        first_seen = collected_at
        alert_time = row.number("prtAlertTime")
        # Both are TimeTicks (RFC 2578 §7.1.8: 32 bits); an agent that sends a Counter64 in
        # their place could otherwise ask for a timedelta beyond datetime's range.
        if (
            uptime is not None
            and alert_time is not None
            and 0 <= alert_time <= uptime <= _MAX_TIMETICKS
        ):
            first_seen = collected_at - timedelta(seconds=(uptime - alert_time) / 100)
        out.append(
            Alert(
                code=code[:_SHORT],
                severity=severity,
                text=row.text("prtAlertDescription", _LONG) or code,
                first_seen=first_seen,
                component=component[:_SHORT] if component else None,
            )
        )
    return out


# --------------------------------------------------------------------------- usage


def _usage(data: PrinterData, device: int) -> LifetimeUsage | None:
    markers = data.table("prtMarkerEntry", device)
    if not markers:
        return None
    general = data.row("prtGeneralEntry", device)
    default = general.number("prtMarkerDefaultIndex") if general else None
    # Several markers (rare) each count their own marks; the default marker is the page
    # counter (RFC 3805 prtMarkerDefaultIndex), else the first one.
    marker = next((m for m in markers if m.index and m.index[0] == default), markers[0])
    unit = data.enum(marker, "prtMarkerCounterUnit")
    life = marker.number("prtMarkerLifeCount")
    fields: dict[str, object] = {
        # Extras, not meters: the power-on count restarts at every power cycle.
        "marker_counter_unit": unit,
        "marker_life_count": life,
        "marker_power_on_count": marker.number("prtMarkerPowerOnCount"),
    }
    if life is not None and unit in _PAGE_UNITS:
        fields["impressions"] = life
    elif life is not None and unit in _MM_PER_UNIT:
        fields["total_media_length_mm"] = round(life * _MM_PER_UNIT[unit])
    return LifetimeUsage.model_validate({k: v for k, v in fields.items() if v is not None})


# --------------------------------------------------------------------------- report


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in first["loc"]) or "value"
    return f"device data out of range at {loc}: {first['msg']}"


def parse_report(
    values: Mapping[str, SnmpValue],
    *,
    address: str | None = None,
    collected_at: datetime | None = None,
    kind: ReportKind = ReportKind.USAGE,
    profile: Profile | None = None,
) -> DeviceReport:
    """Everything the profile's objects say about one printer → one ``DeviceReport``.

    HEALTH: identity, status (engine state, supplies, trays) and active alerts. USAGE adds
    the lifetime counters. ``jobs`` is always empty: no standard MIB has per-job data.
    Raises ``NotSupported`` (not a printer, or no serial number), ``MalformedResponse``.
    """
    when = collected_at or now_utc()
    data = PrinterData.from_values(values, profile)
    device = data.printer_device()
    if device is None:
        raise NotSupported("the SNMP agent has no printer (no hrDevicePrinter, no Printer-MIB)")
    try:
        identity = _identity(data, device, address)
        if identity is None:
            raise NotSupported(
                "the printer reports no serial number (prtGeneralSerialNumber) over SNMP"
            )
        status = _status(data, device)
        alerts = _alerts(data, device, when)
        usage = _usage(data, device) if kind is ReportKind.USAGE else None
        return DeviceReport(
            kind=kind,
            collected_at=when,
            device=identity,
            status=status,
            usage=usage,
            jobs=[],
            alerts=alerts,
        )
    except ValidationError as exc:
        raise MalformedResponse(_reason(exc)) from exc
