"""Pure IPP parser: raw IPP response bodies (bytes) in, a wire ``DeviceReport`` out.

No I/O here. Bodies are decoded with pyipp's parser, but only after ``check_encoding`` has
walked them with the RFC 8010 framing rules: pyipp reads lengths as signed and slices
without bounds checks, so a truncated body or an absurd length would otherwise turn into
garbage, a crash or (a negative length moves the offset backwards) an endless loop.
Anything that cannot be read raises ``MalformedResponse`` with a one-line reason; a
status code that says the device refused the request raises ``NotSupported``.

Attribute names and semantics: RFC 8011 (IPP/1.1 model), PWG 5100.9 (printer-alert,
printer-supply, marker-*), PWG 5100.7 (job extensions: job-uuid, which-jobs values),
CUPS' ``marker-*`` extension. Integers are base units; timestamps are aware UTC.
"""

from __future__ import annotations

import re
import struct
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import IntEnum
from typing import Any

from pyipp.enums import IppStatus
from pyipp.exceptions import IPPParseError
from pyipp.parser import parse as pyipp_parse
from pyipp.parser import parse_make_and_model

from fleetmeter.devices.errors import DeviceError, MalformedResponse, NotSupported
from fleetmeter.devices.modelcheck import checked as _checked
from fleetmeter.devices.modelcheck import validated as _validated
from fleetmeter.wire import (
    Alert,
    AlertSeverity,
    Cartridge,
    DeviceIdentity,
    DeviceReport,
    DeviceStatus,
    EngineState,
    JobKind,
    JobRecord,
    JobStatus,
    LifetimeUsage,
    ReportKind,
    Submitter,
    SupplyState,
    now_utc,
)

__all__ = [
    "DRIVER_ID",
    "IDENTITY_ATTRIBUTES",
    "JOB_ATTRIBUTES",
    "PRINTER_ATTRIBUTES",
    "IppMessage",
    "NoPrinterHere",
    "check_encoding",
    "decode",
    "parse_alerts",
    "parse_cartridges",
    "parse_engine_state",
    "parse_identity",
    "parse_jobs",
    "parse_report",
    "parse_status",
    "parse_usage",
    "require_success",
]

DRIVER_ID = "ipp"

IDENTITY_ATTRIBUTES: tuple[str, ...] = (
    "printer-make-and-model",
    "printer-device-id",
    "printer-uuid",
    "printer-serial-number",
    "printer-firmware-string-version",
    "printer-name",
)
"""What ``identify`` asks for: enough to name the device, nothing more."""

PRINTER_ATTRIBUTES: tuple[str, ...] = (
    *IDENTITY_ATTRIBUTES,
    "printer-state",
    "printer-state-reasons",
    "printer-state-message",
    "printer-state-change-date-time",
    "printer-current-time",
    "printer-up-time",
    "marker-names",
    "marker-levels",
    "marker-low-levels",
    "marker-high-levels",
    "marker-types",
    "marker-colors",
    "printer-supply",
    "printer-supply-description",
    "printer-alert",
    "printer-alert-description",
    "printer-impressions-completed",
    "printer-impressions-completed-col",
)
"""Everything a report is built from (Get-Printer-Attributes ``requested-attributes``)."""

JOB_ATTRIBUTES: tuple[str, ...] = (
    "job-id",
    "job-uuid",
    "job-name",
    "job-originating-user-name",
    "job-state",
    "job-state-reasons",
    "job-impressions-completed",
    "job-media-sheets-completed",
    "job-printer-up-time",
    "time-at-creation",
    "time-at-processing",
    "time-at-completed",
    "date-time-at-creation",
    "date-time-at-completed",
    "copies",
    "media",
    "media-col",
    "print-quality",
)
"""Get-Jobs ``requested-attributes``: accounting data only. Job content is never fetched."""

# Untrusted strings are cut to the wire model's limits rather than failing a whole report.
_SHORT = 256
_LONG = 2048


# --------------------------------------------------------------------------- decoding

# RFC 8010 §3.5.1 delimiter tags pyipp's parser understands as attribute groups.
_GROUP_TAGS = {0x01: "operation", 0x02: "job", 0x04: "printer", 0x05: "unsupported"}
_END_OF_ATTRIBUTES = 0x03
_BEGIN_COLLECTION = 0x34
_END_COLLECTION = 0x37
_EXTENSION = 0x7F
# Value tags whose value has a fixed length (RFC 8010 §3.9). pyipp reads these many bytes
# whatever the value-length says, so a mismatch would desynchronise the rest of the body.
_FIXED_LENGTH = {0x21: 4, 0x22: 1, 0x23: 4, 0x31: 11, 0x32: 9, 0x33: 8}
_TEXT_WITH_LANGUAGE = (0x35, 0x36)
_MAX_COLLECTION_DEPTH = 16  # pyipp recurses per level; real devices nest 2 or 3 deep
_MAX_SIGNED_SHORT = 0x7FFF  # lengths are SIGNED-SHORT on the wire: above this is negative


def check_encoding(data: bytes, *, what: str = "IPP response") -> None:
    """Walk an IPP message with the RFC 8010 framing rules; raise ``MalformedResponse`` at the
    first violation (truncation, a length past the end or negative, a fixed-size value of the
    wrong size, unbalanced collections, a group tag pyipp cannot read)."""
    size = len(data)
    if size < 9:
        raise MalformedResponse(f"{what}: {size} bytes is too short for an IPP message")
    offset = 8  # version (2), status-code (2), request-id (4)
    depth = 0
    grouped = False
    while True:
        if offset >= size:
            raise MalformedResponse(f"{what}: truncated (no end-of-attributes tag)")
        tag = data[offset]
        if tag < 0x10:
            if tag == _END_OF_ATTRIBUTES:
                break
            if tag not in _GROUP_TAGS:
                raise MalformedResponse(f"{what}: unsupported group tag 0x{tag:02x} at {offset}")
            if depth:
                raise MalformedResponse(f"{what}: group tag inside a collection at {offset}")
            grouped = True
            offset += 1
            continue
        if not grouped:
            raise MalformedResponse(f"{what}: attribute before any group tag at {offset}")
        if tag == _EXTENSION:
            raise MalformedResponse(f"{what}: extension tag 0x7f at {offset} is not supported")
        where = offset
        offset += 1
        name_length, offset = _length(data, offset, what)
        offset += name_length
        value_length, offset = _length(data, offset, what)
        if offset + value_length > size:
            raise MalformedResponse(
                f"{what}: value of {value_length} bytes at {where} runs past the end"
            )
        expected = _FIXED_LENGTH.get(tag)
        if expected is not None and value_length != expected:
            raise MalformedResponse(
                f"{what}: tag 0x{tag:02x} at {where} has length {value_length}, not {expected}"
            )
        if tag in _TEXT_WITH_LANGUAGE:
            _check_text_with_language(data[offset : offset + value_length], where, what)
        elif tag == _BEGIN_COLLECTION:
            depth += 1
            if depth > _MAX_COLLECTION_DEPTH:
                raise MalformedResponse(f"{what}: collections nested too deep at {where}")
        elif tag == _END_COLLECTION:
            if depth == 0:
                raise MalformedResponse(f"{what}: end of a collection never begun at {where}")
            depth -= 1
        offset += value_length
    if depth:
        raise MalformedResponse(f"{what}: unterminated collection")


def _length(data: bytes, offset: int, what: str) -> tuple[int, int]:
    if offset + 2 > len(data):
        raise MalformedResponse(f"{what}: truncated at {offset}")
    (value,) = struct.unpack_from(">H", data, offset)
    if value > _MAX_SIGNED_SHORT:
        raise MalformedResponse(f"{what}: length {value} at {offset} is out of range")
    offset += 2
    if offset + value > len(data):
        raise MalformedResponse(f"{what}: length {value} at {offset - 2} runs past the end")
    return value, offset


def _check_text_with_language(value: bytes, where: int, what: str) -> None:
    # textWithLanguage: SIGNED-SHORT language length, language, SIGNED-SHORT text length, text.
    offset = 0
    for _ in range(2):
        if offset + 2 > len(value):
            raise MalformedResponse(f"{what}: bad textWithLanguage at {where}")
        (length,) = struct.unpack_from(">H", value, offset)
        offset += 2 + length
    if offset != len(value):
        raise MalformedResponse(f"{what}: bad textWithLanguage at {where}")


@dataclass(frozen=True)
class IppMessage:
    """A decoded IPP response: status and attribute groups as pyipp decodes them (a single
    value as itself, several values as a list, a collection as a dict)."""

    version: tuple[int, int]
    status_code: int
    request_id: int
    operation: dict[str, Any] = field(default_factory=dict)
    printers: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def printer(self) -> dict[str, Any]:
        """The (first) printer attribute group; empty when the response has none."""
        return self.printers[0] if self.printers else {}


def decode(data: bytes, *, what: str = "IPP response") -> IppMessage:
    """Bytes → ``IppMessage``. Raises ``MalformedResponse`` (never a pyipp or struct error)."""
    check_encoding(data, what=what)
    try:
        parsed = pyipp_parse(data)
    except (IPPParseError, struct.error, ValueError, KeyError, IndexError, TypeError) as exc:
        # ValueError includes UnicodeDecodeError (names must be UTF-8) and enum values that
        # RFC 8011 does not define (pyipp maps printer-state, job-state ... to enums).
        raise MalformedResponse(f"{what}: cannot be decoded ({type(exc).__name__}: {exc})") from exc
    except RecursionError as exc:  # defence in depth: check_encoding caps the nesting
        raise MalformedResponse(f"{what}: cannot be decoded (nested too deep)") from exc
    operation = parsed.get("operation-attributes")
    return IppMessage(
        version=(int(parsed["version"][0]), int(parsed["version"][1])),
        status_code=int(parsed["status-code"]),
        request_id=int(parsed["request-id"]),
        operation=operation if isinstance(operation, dict) else {},
        printers=[p for p in parsed.get("printers", []) if isinstance(p, dict) and p],
        jobs=[j for j in parsed.get("jobs", []) if isinstance(j, dict) and j],
    )


class NoPrinterHere(NotSupported):
    """No IPP printer at this address and path: HTTP 404, or an IPP server's
    client-error-not-found (ippeveprinter and CUPS answer a wrong path so)."""


def _status_name(code: int) -> str:
    try:
        return IppStatus(code).name.lower().replace("_", "-")
    except ValueError:
        return "unknown status"


def require_success(message: IppMessage, *, what: str = "IPP request") -> IppMessage:
    """The message if its status is successful (RFC 8011 §4.1.6: 0x0000-0x00FF), else raise:
    ``NotSupported`` when the device refuses the request (client errors 0x04xx, operation or
    version not supported; ``NoPrinterHere`` for not-found), ``DeviceError`` for the
    device's own failures (busy, internal)."""
    code = message.status_code
    if 0 <= code <= 0x00FF:
        return message
    name = f"status 0x{code:04x} ({_status_name(code)})"
    if code == IppStatus.ERROR_VERSION_NOT_SUPPORTED:
        raise NotSupported(
            f"{what}: the device does not support the IPP version of the request "
            f"(it answered in IPP/{message.version[0]}.{message.version[1]}), {name}"
        )
    if code in (
        IppStatus.ERROR_FORBIDDEN,
        IppStatus.ERROR_NOT_AUTHENTICATED,
        IppStatus.ERROR_NOT_AUTHORIZED,
    ):
        raise NotSupported(f"{what}: the device requires authentication, {name}")
    if code == IppStatus.ERROR_NOT_FOUND:
        raise NoPrinterHere(f"{what}: no such printer, {name}")
    if 0x0400 <= code <= 0x04FF or code == IppStatus.ERROR_OPERATION_NOT_SUPPORTED:
        raise NotSupported(f"{what}: refused by the device, {name}")
    raise DeviceError(f"{what}: the device reports an error, {name}")


# --------------------------------------------------------------------------- helpers


def _values(attrs: Mapping[str, Any], name: str) -> list[Any]:
    """Every value of an attribute (pyipp gives one value bare, several as a list)."""
    value = attrs.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _text(value: Any, limit: int = _SHORT) -> str | None:
    """A non-empty stripped string, cut to ``limit``; out-of-band values (pyipp decodes
    'unknown' / 'no-value' as "") and non-strings are None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    return text[:limit] if text else None


def _first_text(attrs: Mapping[str, Any], name: str, limit: int = _SHORT) -> str | None:
    """The first non-empty text value of an attribute."""
    for value in _values(attrs, name):
        text = _text(value, limit)
        if text:
            return text
    return None


def _int(value: Any) -> int | None:
    """An integer value (enums are ints too); booleans and out-of-band values are None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return int(value)


def _first_int(attrs: Mapping[str, Any], name: str) -> int | None:
    values = _values(attrs, name)
    return _int(values[0]) if values else None


def _count(attrs: Mapping[str, Any], name: str) -> int | None:
    """A counter: a non-negative integer, else None (never read a missing counter as 0)."""
    value = _first_int(attrs, name)
    return value if value is not None and value >= 0 else None


def _datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime) and value.tzinfo is not None:
        try:
            return value.astimezone(UTC)
        except OverflowError:
            # A dateTime of year 1 east of UTC (or 9999 west of it) has no UTC datetime:
            # as unreadable as a missing one (found by tests/devices/test_hostile_ipp.py).
            return None
    return None


def _key_values(text: str) -> dict[str, str]:
    """PWG 5100.9 ``key=value;key=value;`` strings (printer-alert, printer-supply)."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            out.setdefault(key.strip().lower(), value.strip())
    return out


# --------------------------------------------------------------------------- identity

# IEEE 1284 device-id keys that carry a serial number (HP and Epson: SN; others: SERN).
_DEVICE_ID_SERIAL_KEYS = ("SN", "SERN", "SERIALNUMBER", "SERIAL NUMBER")
# Make spellings seen in device-ids and make-and-model → one vendor name, so that the same
# device read by another driver (ledm says "HP") keeps the same (vendor, serial) identity.
_VENDOR_ALIASES = {
    "hp": "HP",
    "hewlett-packard": "HP",
    "hewlett packard": "HP",
    "epson": "EPSON",
    "seiko epson": "EPSON",
    "canon": "Canon",
    "brother": "Brother",
    "xerox": "Xerox",
    "kyocera": "Kyocera",
    "ricoh": "Ricoh",
    "lexmark": "Lexmark",
}


def _device_id(attrs: Mapping[str, Any]) -> dict[str, str]:
    """IEEE 1284 device-id (``MFG:HP;MDL:…;SN:…;``) → upper-case keys. Lenient: pairs that
    do not parse are skipped (pyipp's own helper raises on them)."""
    text = _first_text(attrs, "printer-device-id", limit=4096) or ""
    out: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition(":")
        if sep and key.strip() and value.strip():
            out.setdefault(key.strip().upper(), value.strip())
    return out


def _vendor(make: str) -> str:
    return _VENDOR_ALIASES.get(make.strip().lower(), make.strip())[:_SHORT]


def _strip_urn(value: str) -> str:
    return value[len("urn:uuid:") :] if value.lower().startswith("urn:uuid:") else value


@_checked
def parse_identity(printer: Mapping[str, Any], *, address: str | None = None) -> DeviceIdentity:
    """Printer attributes → identity.

    Serial: ``printer-serial-number`` where the device has it, else the device-id's ``SN:``,
    else ``printer-uuid`` (without ``urn:uuid:``; stable per device, RFC 4122 unique). Vendor:
    the device-id's ``MFG:``, else the make part of ``printer-make-and-model``.
    """
    device_id = _device_id(printer)
    make_and_model = _first_text(printer, "printer-make-and-model")
    model = make_and_model or device_id.get("MDL")
    make = device_id.get("MFG") or device_id.get("MANUFACTURER")
    if make is None and make_and_model is not None:
        make = parse_make_and_model(make_and_model)[0]
    serial = _first_text(printer, "printer-serial-number")
    if serial is None:
        serial = next(
            (device_id[k][:_SHORT] for k in _DEVICE_ID_SERIAL_KEYS if device_id.get(k)), None
        )
    if serial is None:
        printer_uuid = _first_text(printer, "printer-uuid")
        serial = _strip_urn(printer_uuid) if printer_uuid else None
    if serial is None:
        raise MalformedResponse(
            "printer attributes: no printer-serial-number, device-id SN or printer-uuid; "
            "the device cannot be identified"
        )
    if make is None or make == "Unknown":
        make = "unknown"
    return DeviceIdentity(
        vendor=_vendor(make),
        serial_number=serial,
        product_name=model,
        # One value per firmware component; the first is the main firmware (PWG 5100.13).
        firmware_version=_first_text(printer, "printer-firmware-string-version"),
        driver=DRIVER_ID,
        address=address,
    )


# --------------------------------------------------------------------------- state


class _PrinterState(IntEnum):
    IDLE = 3
    PROCESSING = 4
    STOPPED = 5


# printer-state-reasons (RFC 8011 §5.4.12, PWG 5100.9) that say why a stopped printer is
# not printing without it being a fault.
_OFFLINE_REASONS = ("offline", "shutdown", "timed-out", "connecting-to-device")
_PAUSED_REASONS = ("paused", "moving-to-paused", "stopping")


def _reason_base(reason: str) -> tuple[str, str]:
    """``marker-supply-low-warning`` → (``marker-supply-low``, ``warning``). RFC 8011
    §5.4.12: a reason without a suffix "MUST" be taken as an error."""
    for suffix in ("report", "warning", "error"):
        if reason.endswith(f"-{suffix}"):
            return reason[: -len(suffix) - 1], suffix
    return reason, "error"


def _state_reasons(printer: Mapping[str, Any]) -> list[str]:
    reasons: list[str] = []
    for value in _values(printer, "printer-state-reasons"):
        text = _text(value)
        if text and text != "none" and text not in reasons:
            reasons.append(text)
    return reasons


def parse_engine_state(printer: Mapping[str, Any]) -> EngineState:
    """``printer-state`` (3 idle, 4 processing, 5 stopped) and its reasons → EngineState."""
    state = _first_int(printer, "printer-state")
    bases = {_reason_base(r)[0] for r in _state_reasons(printer)}
    if state == _PrinterState.IDLE:
        return EngineState.WARMING if "warming-up" in bases else EngineState.IDLE
    if state == _PrinterState.PROCESSING:
        return EngineState.PRINTING
    if state == _PrinterState.STOPPED:
        if bases & set(_OFFLINE_REASONS):
            return EngineState.OFFLINE
        if bases & set(_PAUSED_REASONS) and not any(
            _reason_base(r)[1] == "error" and _reason_base(r)[0] not in _PAUSED_REASONS
            for r in _state_reasons(printer)
        ):
            # Paused by an operator: not a fault, but not printing either.
            return EngineState.OFFLINE
        return EngineState.ERROR
    return EngineState.UNKNOWN


# --------------------------------------------------------------------------- markers

_COLOR_NAMES = {
    "cyan": "C",
    "magenta": "M",
    "yellow": "Y",
    "black": "K",
    "photoblack": "PK",
    "matteblack": "MK",
    "mattblack": "MK",
    "lightcyan": "LC",
    "photocyan": "LC",
    "lightmagenta": "LM",
    "vividlightmagenta": "LM",
    "photomagenta": "LM",
    "vividmagenta": "M",
    "gray": "G",
    "grey": "G",
    "lightgray": "LG",
    "lightgrey": "LG",
    "lightblack": "LK",
    "lightlightblack": "LLK",
    "darkgray": "DG",
    "darkgrey": "DG",
    "red": "R",
    "green": "GN",
    "blue": "B",
    "orange": "OR",
    "violet": "V",
    "white": "W",
    "color": "CMY",
    "colour": "CMY",
    "tricolor": "CMY",
    "tricolour": "CMY",
    "cmy": "CMY",
    "cmyk": "CMYK",
}
# Words in marker names ("Photo Black ink", "Black Toner Cartridge") that are not colours.
_NOT_COLOR_WORDS = {"ink", "inks", "toner", "cartridge", "cartridges", "tank", "bottle", "supply"}
# marker-colors (CUPS: "#RRGGBB", several concatenated for multi-colour cartridges).
_HEX_COLORS = {"#00FFFF": "C", "#FF00FF": "M", "#FFFF00": "Y", "#000000": "K"}


def _color_code(name: str | None, hex_color: str | None) -> str:
    """Marker or colorant name ("magenta ink", "Photo Black ink") → colour code ("M", "PK");
    the CUPS ``#RRGGBB`` colour when the name is not a colour; else the name itself."""
    if name:
        words = [w for w in re.findall(r"[a-z]+", name.lower()) if w not in _NOT_COLOR_WORDS]
        code = _COLOR_NAMES.get("".join(words))
        if code:
            return code
    if hex_color:
        chunks = [hex_color[i : i + 7].upper() for i in range(0, len(hex_color), 7)]
        codes = [_HEX_COLORS.get(chunk) for chunk in chunks]
        if codes and all(codes):
            return "".join(c for c in codes if c)
    return (name or "unknown")[:_SHORT]


# marker-types / printer-supply type= values (PWG 5100.9, RFC 3805 PrtMarkerSuppliesTypeTC)
# that are colorant supplies, compared without '-' and case. Waste receptacles, fusers, drums
# and the like are parts, not cartridges, and the wire model has no place for them.
_COLORANT_TYPES = {
    "ink",
    "inkcartridge",
    "inktank",
    "inkribbon",
    "toner",
    "tonercartridge",
    "solidwax",
    "ribbonwax",
}


def _is_colorant(kind: str | None) -> bool:
    return kind is None or kind.replace("-", "").lower() in _COLORANT_TYPES


def _supply_state(level: int | None, low: int | None) -> SupplyState:
    """PWG 5100.9 / RFC 3805 levels: -1 unavailable, -2 unknown, -3 "some remaining"."""
    if level is None or level in (-1, -2) or level < -3:
        return SupplyState.UNKNOWN
    if level == -3:
        return SupplyState.OK
    if level == 0:
        return SupplyState.EMPTY
    if low is not None and level <= low:
        return SupplyState.LOW
    return SupplyState.OK


def _level_percent(level: int | None, maximum: int | None = 100) -> int | None:
    if level is None or level < 0 or not maximum or maximum <= 0:
        return None
    percent = round(Decimal(level) * 100 / Decimal(maximum))
    return percent if 0 <= percent <= 100 else None


# printer-supply unit= (RFC 3805 PrtMarkerSuppliesSupplyUnitTC) → µL per unit.
_VOLUME_UL = {
    "tenthsofmilliliters": Decimal(100),
    "hundrethsoffluidounces": Decimal("295.735295625"),  # sic: RFC 3805's spelling
    "hundredthsoffluidounces": Decimal("295.735295625"),
}


def _supply_cartridges(printer: Mapping[str, Any]) -> list[Cartridge]:
    descriptions = [_text(d) for d in _values(printer, "printer-supply-description")]
    out: list[Cartridge] = []
    for position, raw in enumerate(_values(printer, "printer-supply")):
        if not isinstance(raw, str):
            continue
        supply = _key_values(raw)
        supply_class = supply.get("class", "").lower()
        if supply_class and supply_class != "supplythatisconsumed":
            continue  # receptacleThatIsFilled: a waste tank
        if not _is_colorant(supply.get("type")):
            continue
        index = _int_text(supply.get("index"))
        level = _int_text(supply.get("level"))
        maximum = _int_text(supply.get("maxcapacity"))
        unit = supply.get("unit", "").lower()
        # level is in the supply's unit; -1/-2/-3 are the same special values as markers'.
        percent = _level_percent(level, 100 if unit == "percent" else maximum)
        description = descriptions[position] if position < len(descriptions) else None
        factor = _VOLUME_UL.get(unit)
        capacity = round(maximum * factor) if factor and maximum and maximum > 0 else None
        colorant = supply.get("colorantname")
        out.append(
            Cartridge(
                slot=index if index is not None and index >= 0 else position + 1,
                color=_color_code(colorant if colorant != "unknown" else description, None),
                status=_supply_state(percent if percent is not None else level, None),
                level_percent=percent,
                product_name=description,
                capacity_ul=capacity,
            )
        )
    return out


def _int_text(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


@_checked
def parse_cartridges(printer: Mapping[str, Any]) -> list[Cartridge]:
    """``marker-*`` (one entry per marker, CUPS / PWG 5100.9) → cartridges; when a device
    has no ``marker-names``, its ``printer-supply`` entries instead.

    When both are present they describe the same supplies (the HP 6830 capture says so
    twice, with the same levels), so ``marker-*`` alone is used: it has the names and the
    low levels a state is derived from.
    """
    names = _values(printer, "marker-names")
    if not names:
        return _supply_cartridges(printer)
    levels = _values(printer, "marker-levels")
    lows = _values(printer, "marker-low-levels")
    kinds = _values(printer, "marker-types")
    colors = _values(printer, "marker-colors")
    out: list[Cartridge] = []
    for i, raw_name in enumerate(names):
        name = _text(raw_name)
        kind = _text(kinds[i]) if i < len(kinds) else None
        if not _is_colorant(kind):
            continue
        level = _int(levels[i]) if i < len(levels) else None
        low = _int(lows[i]) if i < len(lows) else None
        hex_color = _text(colors[i]) if i < len(colors) else None
        out.append(
            Cartridge(
                slot=i + 1,
                color=_color_code(name, hex_color),
                status=_supply_state(level, low),
                level_percent=_level_percent(level),
            )
        )
    return out


# --------------------------------------------------------------------------- alerts

_SEVERITY_BY_SUFFIX = {
    "report": AlertSeverity.INFO,
    "warning": AlertSeverity.WARNING,
    "error": AlertSeverity.ERROR,
}
# printer-alert severity= (RFC 3805 PrtAlertSeverityLevelTC: other, critical, warning,
# warningBinaryChangeEvent), compared without '-' and case.
_ALERT_SEVERITY = {
    "critical": AlertSeverity.CRITICAL,
    "warning": AlertSeverity.WARNING,
    "warningbinarychangeevent": AlertSeverity.WARNING,
}


def _alert_component(
    alert: Mapping[str, str], cartridges_by_marker: Mapping[int, Cartridge]
) -> str | None:
    group = alert.get("group", "").lower()
    index = _int_text(alert.get("index"))
    if group in ("marker", "markersupplies", "markercolorant") and index is not None:
        cartridge = cartridges_by_marker.get(index)
        return f"cartridge:{cartridge.color}" if cartridge else f"marker:{index}"
    if group == "input" and index is not None:
        return f"input:{index}"
    return None


@_checked
def parse_alerts(
    printer: Mapping[str, Any],
    *,
    collected_at: datetime | None = None,
    cartridges: Sequence[Cartridge] = (),
) -> list[Alert]:
    """Active conditions → alerts: ``printer-state-reasons`` with a severity suffix (RFC 8011
    §5.4.12: -report info, -warning, -error; none means error) and ``printer-alert`` entries
    (PWG 5100.9) of severity critical or warning, or with no severity.

    ``printer-alert`` entries of severity ``other`` are left out: devices use them for a
    history of ordinary events (the HP 6830 capture lists 27: "ready", "inPowerSave",
    "processing", "cancelJob" ...), which are not conditions anyone should act on.

    Neither attribute says when a condition began. ``first_seen`` is the device's
    ``printer-state-change-date-time`` (PWG 5100.9: changes whenever the state, its reasons
    or the alerts change), so that repeated polls report the same alert with the same time;
    ``collected_at`` only when the device does not give it.
    """
    seen = _datetime(next(iter(_values(printer, "printer-state-change-date-time")), None)) or (
        collected_at or now_utc()
    )
    alerts: list[Alert] = []
    keys: set[tuple[str, ...]] = set()

    for reason in _state_reasons(printer):
        base, suffix = _reason_base(reason)
        if base in _PAUSED_REASONS or (base == "other" and suffix == "report"):
            continue
        key: tuple[str, ...] = ("reason", base, suffix)
        if key in keys:
            continue
        keys.add(key)
        alerts.append(
            Alert(
                code=base[:_SHORT],
                severity=_SEVERITY_BY_SUFFIX[suffix],
                text=f"printer-state-reasons: {reason}"[:_LONG],
                first_seen=seen,
            )
        )

    by_marker = {c.slot: c for c in cartridges if c.slot is not None}
    descriptions = _values(printer, "printer-alert-description")
    for position, raw in enumerate(_values(printer, "printer-alert")):
        if not isinstance(raw, str):
            continue
        entry = _key_values(raw)
        severity_text = entry.get("severity", "").replace("-", "").lower()
        if severity_text and severity_text not in _ALERT_SEVERITY:
            continue  # "other", or garbage such as the HP capture's "otherother"
        code = entry.get("code") or "unknown"
        description = _text(descriptions[position], _LONG) if position < len(descriptions) else None
        key = (
            "alert",
            code,
            severity_text,
            entry.get("group", ""),
            entry.get("index", ""),
            description or "",
        )
        if key in keys:
            continue
        keys.add(key)
        details = [f"{k}={entry[k]}" for k in ("group", "index") if entry.get(k)]
        text = description or code
        if details:
            text = f"{text} ({', '.join(details)})"
        alerts.append(
            Alert(
                code=code[:_SHORT],
                severity=_ALERT_SEVERITY.get(severity_text, AlertSeverity.INFO),
                text=text[:_LONG],
                first_seen=seen,
                component=_alert_component(entry, by_marker),
            )
        )
    return alerts


# --------------------------------------------------------------------------- status & usage


@dataclass(frozen=True)
class PrinterStatus:
    """What the printer attributes say about now: status and active alerts."""

    status: DeviceStatus
    alerts: list[Alert]


@_checked
def parse_status(
    printer: Mapping[str, Any], *, collected_at: datetime | None = None
) -> PrinterStatus:
    """Printer attributes → engine state, state reasons, cartridges and active alerts."""
    cartridges = parse_cartridges(printer)
    status = DeviceStatus(
        engine_state=parse_engine_state(printer),
        state_reasons=_state_reasons(printer),
        cartridges=cartridges,
    )
    alerts = parse_alerts(printer, collected_at=collected_at, cartridges=cartridges)
    return PrinterStatus(status=status, alerts=alerts)


@_checked
def parse_usage(printer: Mapping[str, Any]) -> LifetimeUsage | None:
    """Lifetime counters where the device offers them: ``printer-impressions-completed`` and
    ``printer-impressions-completed-col`` (members ``monochrome``, ``full-color``; PWG
    5100.x). None when it offers none (ippeveprinter 2.4, the HP 6830 and EPSON XP-6000
    captures): a missing counter is never reported as zero."""
    impressions = _count(printer, "printer-impressions-completed")
    col = next(iter(_values(printer, "printer-impressions-completed-col")), None)
    mono = color = None
    if isinstance(col, dict):
        mono = _count(col, "monochrome")
        color = _count(col, "full-color")
    if impressions is None and mono is not None and color is not None:
        impressions = mono + color
    if impressions is None and mono is None and color is None:
        return None
    return LifetimeUsage(impressions=impressions, mono_impressions=mono, color_impressions=color)


# --------------------------------------------------------------------------- jobs


class _JobState(IntEnum):
    PENDING = 3
    PENDING_HELD = 4
    PROCESSING = 5
    PROCESSING_STOPPED = 6
    CANCELED = 7
    ABORTED = 8
    COMPLETED = 9


_TERMINAL = {
    _JobState.COMPLETED: JobStatus.COMPLETED,
    _JobState.CANCELED: JobStatus.CANCELLED,
    _JobState.ABORTED: JobStatus.FAILED,
}
# Active jobs that finished jobs with higher ids are held back behind (see parse_jobs).
# pending-held is not among them: a held job may wait for release for days, long after the
# later jobs have dropped out of the device's short job history.
_BLOCKING = {_JobState.PENDING, _JobState.PROCESSING, _JobState.PROCESSING_STOPPED}
_QUALITY = {3: "draft", 4: "normal", 5: "high"}
# PWG 5101.1 self-describing media names: "iso_a4_210x297mm", "na_letter_8.5x11in".
_MEDIA_SIZE = re.compile(r"_(\d+(?:\.\d+)?)x(\d+(?:\.\d+)?)(mm|in)$")


def _job_time(job: Mapping[str, Any], name: str, reference: datetime) -> datetime | None:
    """A job time. ``time-at-*`` counts printer up-time seconds (RFC 8011 §5.3.14); with
    ``job-printer-up-time`` (the up-time when the answer was made) it is placed against our
    own clock, which is kept right, unlike many printers' (no NTP, no RTC battery). The
    device's ``date-time-at-*`` only when the up-times are missing."""
    at = _first_int(job, f"time-at-{name}")
    now = _first_int(job, "job-printer-up-time")
    if at is not None and now is not None and 0 < at <= now:
        return reference - timedelta(seconds=now - at)
    return _datetime(next(iter(_values(job, f"date-time-at-{name}")), None))


def _media(job: Mapping[str, Any]) -> tuple[str | None, int | None, int | None]:
    """(media type, width mm, length mm) from ``media-col``, else a self-describing
    ``media`` name."""
    col = next(iter(_values(job, "media-col")), None)
    if isinstance(col, dict):
        size = col.get("media-size")
        width = length = None
        if isinstance(size, dict):
            x, y = _int(size.get("x-dimension")), _int(size.get("y-dimension"))
            # Hundredths of millimetres (PWG 5100.7 media-size).
            width = round(x / 100) if x is not None and x > 0 else None
            length = round(y / 100) if y is not None and y > 0 else None
        return _text(col.get("media-type")), width, length
    name = _first_text(job, "media")
    match = _MEDIA_SIZE.search(name or "")
    if match is None:
        return None, None, None
    scale = Decimal("25.4") if match.group(3) == "in" else Decimal(1)
    return (
        None,
        round(Decimal(match.group(1)) * scale),
        round(Decimal(match.group(2)) * scale),
    )


def _seconds(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None or end < start:
        return None
    return round((end - start).total_seconds())


def _job_uuid(job: Mapping[str, Any], job_id: int, printer_key: str) -> uuid.UUID:
    """``job-uuid`` (PWG 5100.7, ``urn:uuid:…``); for devices without one, a name-based
    UUID of the printer and job id (and creation time, as job ids restart after a reset),
    the same on every poll so that a re-read job is recognised."""
    text = _first_text(job, "job-uuid")
    if text:
        try:
            return uuid.UUID(_strip_urn(text))
        except ValueError:
            pass  # not a UUID: fall back to a derived one rather than lose the job
    created = _first_int(job, "time-at-creation")
    stamp = _datetime(next(iter(_values(job, "date-time-at-creation")), None))
    anchor = stamp.isoformat() if stamp else str(created)
    return uuid.uuid5(uuid.NAMESPACE_URL, f"ipp-job:{printer_key}/{job_id}/{anchor}")


@_checked
def parse_jobs(
    jobs: Iterable[Mapping[str, Any]],
    *,
    printer_key: str,
    job_cursor: int | None = None,
    collected_at: datetime | None = None,
    active_job_ids: Iterable[int] = (),
) -> list[JobRecord]:
    """Get-Jobs job groups → job records of finished jobs, oldest (lowest job-id) first.

    Jobs with ``job-id <= job_cursor`` were collected before and are skipped. The cursor is
    a high-water mark, so a finished job is held back while an older job is still pending
    or processing (in ``jobs`` or ``active_job_ids``): once the cursor passed it, that older
    job would never be reported. ``printer_key`` (the device serial) seeds the UUID of jobs
    that have no ``job-uuid``.
    """
    reference = collected_at or now_utc()
    records: list[JobRecord] = []
    finished: list[tuple[int, Mapping[str, Any], JobStatus]] = []
    blocking = list(active_job_ids)
    for job in jobs:
        job_id = _first_int(job, "job-id")
        state = _first_int(job, "job-state")
        if job_id is None or job_id < 0 or state is None:
            raise MalformedResponse("Get-Jobs: a job without job-id or job-state")
        if state in _BLOCKING:
            blocking.append(job_id)
        elif state in _TERMINAL:
            finished.append((job_id, job, _TERMINAL[_JobState(state)]))
    oldest_active = min(blocking, default=None)
    for job_id, job, status in sorted(finished, key=lambda item: item[0]):
        if job_cursor is not None and job_id <= job_cursor:
            continue
        if oldest_active is not None and job_id > oldest_active:
            break
        completed = _job_time(job, "completed", reference) or reference
        created = _job_time(job, "creation", reference)
        processing = _job_time(job, "processing", reference)
        media_type, width, length = _media(job)
        sheets = _count(job, "job-media-sheets-completed")
        area = width * length * sheets if width and length and sheets else 0
        copies = _count(job, "copies")
        quality = _first_int(job, "print-quality")
        records.append(
            JobRecord(
                kind=JobKind.PRINT,
                job_uuid=_job_uuid(job, job_id, printer_key),
                sequence_number=job_id,
                name=_first_text(job, "job-name", limit=_LONG),
                submitter=Submitter(
                    user=_first_text(job, "job-originating-user-name"),
                    submitted_at=created,
                ),
                completed_at=completed,
                print_time_s=_seconds(processing, completed),
                duration_s=_seconds(created, completed),
                status=status,
                print_quality=_QUALITY.get(quality) if quality is not None else None,
                pages=_count(job, "job-impressions-completed") or 0,
                copies=copies if copies is not None else 1,
                media_type=media_type,
                media_width_mm=width,
                media_length_mm=length,
                media_area_mm2=area,
            )
        )
    return records


# --------------------------------------------------------------------------- report


def _job_groups(response: bytes | None) -> list[dict[str, Any]] | None:
    """A Get-Jobs response's job groups; None when there is none or the device refused the
    request (Get-Jobs not supported, or the job list is only shown to an authenticated
    user): the report then has no jobs, as an LEDM device without a job log has none."""
    if response is None:
        return None
    try:
        return require_success(decode(response, what="Get-Jobs"), what="Get-Jobs").jobs
    except NotSupported:
        return None


def parse_report(
    printer_response: bytes,
    *,
    completed_jobs: bytes | None = None,
    active_jobs: bytes | None = None,
    address: str | None = None,
    collected_at: datetime | None = None,
    kind: ReportKind = ReportKind.USAGE,
    job_cursor: int | None = None,
) -> DeviceReport:
    """Raw responses → one ``DeviceReport``.

    ``printer_response`` (Get-Printer-Attributes) is required; the Get-Jobs responses
    (``which-jobs`` completed and not-completed) are optional and only read for USAGE
    reports. Raises ``MalformedResponse``, or ``NotSupported`` / ``DeviceError`` when the
    printer attributes request was answered with an error status.
    """
    when = collected_at or now_utc()
    message = require_success(
        decode(printer_response, what="Get-Printer-Attributes"), what="Get-Printer-Attributes"
    )
    printer = message.printer
    if not printer:
        raise MalformedResponse("Get-Printer-Attributes: the response has no printer attributes")
    identity = parse_identity(printer, address=address)
    status = parse_status(printer, collected_at=when)
    usage: LifetimeUsage | None = None
    jobs: list[JobRecord] = []
    if kind is ReportKind.USAGE:
        usage = parse_usage(printer)
        finished = _job_groups(completed_jobs)
        if finished is not None:
            active = [
                job_id
                for job in _job_groups(active_jobs) or []
                if (job_id := _first_int(job, "job-id")) is not None
                and _first_int(job, "job-state") in _BLOCKING
            ]
            jobs = parse_jobs(
                finished,
                printer_key=f"{identity.vendor}/{identity.serial_number}",
                job_cursor=job_cursor,
                collected_at=when,
                active_job_ids=active,
            )
    return _validated(
        DeviceReport,
        {
            "kind": kind,
            "collected_at": when,
            "device": identity,
            "status": status.status,
            "usage": usage,
            "jobs": jobs,
            "alerts": status.alerts,
        },
    )
