"""Pure LEDM parser: HP ``/DevMgmt/*.xml`` documents (bytes) in, a wire ``DeviceReport`` out.

No I/O here. Every document is parsed with defusedxml (no DTDs, no entities, no external
references), and anything that cannot be read raises ``MalformedResponse`` with a one-line
reason. A document that is absent leaves its part of the report empty; it is not an error.

Elements are matched by *local name*: HP moves the same ``dd:`` element between dictionary
namespaces (``dictionaries/1.0/`` vs ``dictionaries/2008/10/10``) and document schema
revisions (``productconfigdyn/2007/11/05`` vs ``2009/03/16``) from one firmware to the next,
so a namespace-exact match would silently miss data on some devices. The documented
namespaces are listed in ``NS`` for reference and for writers of fixtures.

Quantities become integers in base units (µL, mm², mm). Devices give some of them as decimal
text ("870.5", "112"); those are converted with ``Decimal`` (no binary-float error) and
rounded half-even, so that summing many rounded readings has no upward bias.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Literal, Protocol, TypeVar

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError

from fleetmeter.devices.errors import MalformedResponse
from fleetmeter.devices.modelcheck import checked as _checked
from fleetmeter.devices.modelcheck import validated as _validated
from fleetmeter.wire import (
    Accessory,
    Alert,
    AlertSeverity,
    Cartridge,
    CartridgeTypeUsage,
    DeviceIdentity,
    DeviceReport,
    DeviceStatus,
    EngineState,
    JobKind,
    JobRecord,
    JobStatus,
    LifetimeUsage,
    MediaSource,
    MediaType,
    MediaTypeUsage,
    Printhead,
    ReportKind,
    ScanUsage,
    Submitter,
    SupplyState,
    now_utc,
)

__all__ = [
    "DOCUMENTS",
    "HEALTH_DOCUMENTS",
    "NS",
    "VENDOR",
    "parse_consumable_config",
    "parse_discovery_tree",
    "parse_documents",
    "parse_job_accounting",
    "parse_media",
    "parse_media_handling",
    "parse_product_config",
    "parse_product_logs",
    "parse_product_status",
    "parse_product_usage",
    "parse_xml",
]

VENDOR = "HP"
DRIVER_ID = "ledm"

NS = {
    "dd": "http://www.hp.com/schemas/imaging/con/dictionaries/1.0/",
    "dd2": "http://www.hp.com/schemas/imaging/con/dictionaries/2008/10/10",
    "ledm": "http://www.hp.com/schemas/imaging/con/ledm/2007/09/21",
    "prdcfgdyn": "http://www.hp.com/schemas/imaging/con/ledm/productconfigdyn/2007/11/05",
    "prdcfgdyn2": "http://www.hp.com/schemas/imaging/con/ledm/productconfigdyn/2009/03/16",
    "psdyn": "http://www.hp.com/schemas/imaging/con/ledm/productstatusdyn/2007/10/31",
    "pscat": "http://www.hp.com/schemas/imaging/con/ledm/productstatuscategories/2007/10/31",
    "ad": "http://www.hp.com/schemas/imaging/con/ledm/alertdetails/2007/10/31",
    "ccdyn": "http://www.hp.com/schemas/imaging/con/ledm/consumableconfigdyn/2007/11/19",
    "pudyn": "http://www.hp.com/schemas/imaging/con/ledm/productusagedyn/2007/12/11",
    "mhdyn": "http://www.hp.com/schemas/imaging/con/ledm/mediahandlingdyn/2007/11/21",
    "mediadyn": "http://www.hp.com/schemas/imaging/con/ledm/mediadyn/2007/11/28",
    "pldyn": "http://www.hp.com/schemas/imaging/con/ledm/productlogsdyn/2008/01/16",
    "jadyn": "http://www.fleetmeter.org/schemas/ledm/jobaccountingdyn/2026/01",
}

PRODUCT_CONFIG = "ProductConfigDyn.xml"
PRODUCT_STATUS = "ProductStatusDyn.xml"
CONSUMABLE_CONFIG = "ConsumableConfigDyn.xml"
PRODUCT_USAGE = "ProductUsageDyn.xml"
MEDIA_HANDLING = "MediaHandlingDyn.xml"
MEDIA = "MediaDyn.xml"
PRODUCT_LOGS = "ProductLogsDyn.xml"
JOB_ACCOUNTING = "JobAccountingDyn.xml"
DISCOVERY_TREE = "DiscoveryTree.xml"

DOCUMENTS: tuple[str, ...] = (
    PRODUCT_CONFIG,
    PRODUCT_STATUS,
    CONSUMABLE_CONFIG,
    PRODUCT_USAGE,
    MEDIA_HANDLING,
    MEDIA,
    PRODUCT_LOGS,
    JOB_ACCOUNTING,
)
"""Every document the parser understands, in the order a driver should ask for them."""

HEALTH_DOCUMENTS: tuple[str, ...] = (
    PRODUCT_CONFIG,
    PRODUCT_STATUS,
    CONSUMABLE_CONFIG,
    MEDIA_HANDLING,
)
"""What a HEALTH poll needs: identity, engine state, alerts, supply levels, trays."""

# Untrusted strings are cut to the wire model's limits rather than failing a whole report.
_SHORT = 256
_LONG = 2048


# --------------------------------------------------------------------------- XML helpers


class Element(Protocol):
    """What the parser reads of an XML element. Elements only ever come from defusedxml
    (``parse_xml``); the parser needs nothing of the standard library's XML modules."""

    tag: str
    text: str | None

    def get(self, key: str, default: None = None) -> str | None: ...
    def iter(self) -> Iterator[Element]: ...
    def __iter__(self) -> Iterator[Element]: ...
    def __len__(self) -> int: ...


def parse_xml(data: bytes, *, document: str = "document") -> Element:
    """Parse untrusted bytes with defusedxml: DTDs, entities and external references are refused."""
    try:
        # Some EWS firmwares send whitespace before the XML declaration, which expat refuses.
        root: Element = DefusedET.fromstring(
            data.lstrip(), forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise MalformedResponse(f"{document}: refused unsafe XML ({type(exc).__name__})") from exc
    except ParseError as exc:
        raise MalformedResponse(f"{document}: not well-formed XML ({exc})") from exc
    except (LookupError, ValueError) as exc:
        # The XML declaration names an encoding Python does not know ("bogus": LookupError)
        # or one expat cannot read ("utf-7", any multi-byte codec: ValueError).
        raise MalformedResponse(f"{document}: unreadable XML encoding ({exc})") from exc
    return root


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(elem: Element, name: str) -> Iterator[Element]:
    """Direct children with this local name (any namespace)."""
    return (child for child in elem if _local(child.tag) == name)


def _child(elem: Element | None, *path: str) -> Element | None:
    """Follow direct children by local name; None as soon as a step is missing."""
    node = elem
    for name in path:
        if node is None:
            return None
        node = next(_children(node, name), None)
    return node


def _descendants(elem: Element, name: str) -> Iterator[Element]:
    return (node for node in elem.iter() if _local(node.tag) == name)


def _text(elem: Element | None, *path: str, limit: int = _SHORT) -> str | None:
    """Stripped text of a child path; None when missing or empty; cut to ``limit`` chars."""
    node = _child(elem, *path) if path else elem
    if node is None or node.text is None:
        return None
    text = node.text.strip()
    return text[:limit] if text else None


def _where(document: str, elem: Element) -> str:
    return f"{document}: <{_local(elem.tag)}>"


def _round(value: Decimal) -> int:
    # Half-even: unbiased when many readings are rounded and then summed.
    return int(value.to_integral_value(rounding="ROUND_HALF_EVEN"))


def _decimal(text: str, where: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise MalformedResponse(f"{where}: {text[:40]!r} is not a number") from exc
    if not value.is_finite():
        raise MalformedResponse(f"{where}: {text[:40]!r} is not a finite number")
    if not _in_range(value):
        raise MalformedResponse(f"{where}: {text[:40]!r} is out of range")
    return value


def _in_range(value: Decimal) -> bool:
    # No counter of a real device has more than 18 digits; a bigger exponent ('1e10000000')
    # would cost minutes of CPU in int() and could never be stored anyway.
    return not value or abs(value.adjusted()) <= 18


def _int(elem: Element | None, document: str, *path: str) -> int | None:
    """An integer child (decimal text rounded half-even); None when absent."""
    node = _child(elem, *path) if path else elem
    if node is None:
        return None
    text = _text(node)
    if text is None:
        return None
    value = _round(_decimal(text, _where(document, node)))
    if value < 0:
        raise MalformedResponse(f"{_where(document, node)}: negative value {value}")
    return value


def _lenient_int(elem: Element | None, *path: str) -> int | None:
    """An integer for descriptive fields (levels, slots): unreadable → None, not an error."""
    text = _text(elem, *path)
    if text is None:
        return None
    # Bounded like every other number: "Infinity" would raise OverflowError in int(), and
    # "1e999999999" would take minutes of CPU (found by tests/devices/test_hostile_ledm.py).
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return _round(value) if value.is_finite() and _in_range(value) else None


def _date(elem: Element | None, *path: str) -> date | None:
    text = _text(elem, *path)
    if text is None:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def _datetime(elem: Element | None, document: str, *path: str) -> datetime | None:
    node = _child(elem, *path) if path else elem
    text = _text(node)
    if node is None or text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise MalformedResponse(f"{_where(document, node)}: bad timestamp {text[:40]!r}") from exc
    if value.tzinfo is None:
        # LEDM timestamps carry "Z" or an offset; a naive one is taken as UTC, the only
        # zone a device without one can be assumed to mean.
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # "0001-01-01T00:00+05:00" is before datetime.min in UTC
        raise MalformedResponse(f"{_where(document, node)}: bad timestamp {text[:40]!r}") from exc


# --------------------------------------------------------------------------- units

# Base unit factors. Names as HP spells them (dd:Unit), compared case-insensitively.
_VOLUME_UL = {
    "microliters": Decimal(1),
    "microlitres": Decimal(1),
    "hundredthsofmilliliters": Decimal(10),
    "tenthsofmilliliters": Decimal(100),
    "milliliters": Decimal(1000),
    "millilitres": Decimal(1000),
    "liters": Decimal(1_000_000),
    "litres": Decimal(1_000_000),
}
_AREA_MM2 = {
    "squaremillimeters": Decimal(1),
    "squaremillimetres": Decimal(1),
    "squarecentimeters": Decimal(100),
    "squaremeters": Decimal(1_000_000),
    "squaremetres": Decimal(1_000_000),
    "squareinches": Decimal("645.16"),
    "squarefeet": Decimal("92903.04"),
}
_LENGTH_MM = {
    "millimeters": Decimal(1),
    "millimetres": Decimal(1),
    "centimeters": Decimal(10),
    "meters": Decimal(1000),
    "metres": Decimal(1000),
    "inches": Decimal("25.4"),
    "feet": Decimal("304.8"),
}
_UNITS = {"volume": _VOLUME_UL, "area": _AREA_MM2, "length": _LENGTH_MM}
Dimension = Literal["volume", "area", "length"]


def _factor(unit: str, dimension: Dimension, where: str) -> Decimal:
    try:
        return _UNITS[dimension][unit.strip().lower()]
    except KeyError:
        raise MalformedResponse(f"{where}: unknown {dimension} unit {unit[:40]!r}") from None


def _quantity(node: Element, dimension: Dimension, document: str) -> int | None:
    """A quantity element → integer base units. Accepted forms (first match wins):

    - ``<X><dd:ValueFloat>1.5</dd:ValueFloat><dd:Unit>milliliters</dd:Unit></X>``
      (also ``dd:Value`` / ``dd:ValueInteger``), HP's own form;
    - ``<X unit="squareMeters">1.5</X>``;
    - ``<XSquareMillimeters>1500000</XSquareMillimeters>``: the unit is the name's suffix.
    """
    where = _where(document, node)
    value_node = next(
        (c for c in node if _local(c.tag) in ("ValueFloat", "Value", "ValueInteger", "ValueInt")),
        None,
    )
    if value_node is not None:
        text = _text(value_node)
        unit = _text(node, "Unit")
        if text is None:
            return None
        if unit is None:
            raise MalformedResponse(f"{where}: value without dd:Unit")
        raw = _decimal(text, where) * _factor(unit, dimension, where)
    else:
        text = _text(node)
        if text is None:
            return None
        unit_attr = node.get("unit") or node.get("Unit")
        if unit_attr is not None:
            factor = _factor(unit_attr, dimension, where)
        else:
            name = _local(node.tag).lower()
            suffix = next((u for u in _UNITS[dimension] if name.endswith(u)), None)
            if suffix is None:
                raise MalformedResponse(f"{where}: quantity without a unit")
            factor = _UNITS[dimension][suffix]
        raw = _decimal(text, where) * factor
    value = _round(raw)
    if value < 0:
        raise MalformedResponse(f"{where}: negative quantity")
    return value


def _quantity_child(
    elem: Element, names: tuple[str, ...], dimension: Dimension, document: str
) -> int | None:
    for child in elem:
        if _local(child.tag) in names:
            return _quantity(child, dimension, document)
    return None


_AREA_NAMES = (
    "TotalArea",
    "MediaArea",
    "Area",
    "TotalAreaSquareMillimeters",
    "AreaSquareMillimeters",
    "MediaAreaSquareMillimeters",
)
_LENGTH_NAMES = (
    "TotalLength",
    "MediaLength",
    "Length",
    "TotalLengthMillimeters",
    "LengthMillimeters",
    "MediaLengthMillimeters",
)


# --------------------------------------------------------------------------- colours

_COLOR_NAMES = {
    "cyan": "C",
    "magenta": "M",
    "yellow": "Y",
    "black": "K",
    "photoblack": "PK",
    "matteblack": "MK",
    "lightcyan": "LC",
    "lightmagenta": "LM",
    "gray": "G",
    "grey": "G",
    "lightgray": "LG",
    "lightgrey": "LG",
    "darkgray": "DG",
    "darkgrey": "DG",
    "chromaticred": "CR",
    "chromaticblue": "CB",
    "red": "R",
    "green": "GN",
    "blue": "B",
    "cyanmagentayellow": "CMY",
    "tricolor": "CMY",
    "tricolour": "CMY",
    "cyanmagentayellowblack": "CMYK",
}
# Two-letter colour codes, tried before single letters when splitting a printhead's label
# ("PKMK" → PK, MK; "CMYK" → C, M, Y, K).
_TWO_LETTER_CODES = {"MK", "PK", "LC", "LM", "LK", "LG", "DG", "GY", "CR", "CB", "GN"}


def _color_code(value: str) -> str:
    """HP colour names (dd:MarkerColor "Cyan") → short codes ("C"); codes pass unchanged."""
    compact = re.sub(r"[\s_-]", "", value)
    return _COLOR_NAMES.get(compact.lower(), compact if len(compact) <= 4 else value)[:_SHORT]


def _split_colors(label: str) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(label):
        if label[i : i + 2] in _TWO_LETTER_CODES:
            out.append(label[i : i + 2])
            i += 2
        else:
            out.append(label[i])
            i += 1
    return out


def _marker_color(elem: Element) -> str | None:
    name = _text(elem, "MarkerColor") or _text(elem, "ConsumableLabelCode")
    return _color_code(name) if name else None


# --------------------------------------------------------------------------- identity


def parse_discovery_tree(data: bytes) -> list[str]:
    """Document names (``ProductUsageDyn.xml``) the device lists under ``/DevMgmt/``.

    Raises ``MalformedResponse`` when the bytes are not an LEDM discovery tree.
    """
    root = parse_xml(data, document=DISCOVERY_TREE)
    if _local(root.tag) != "DiscoveryTree":
        raise MalformedResponse(
            f"{DISCOVERY_TREE}: root is <{_local(root.tag)}>, not DiscoveryTree"
        )
    names: list[str] = []
    for node in _descendants(root, "ResourceURI"):
        uri = _text(node) or ""
        if uri.startswith("/DevMgmt/") and uri.endswith(".xml"):
            name = uri.removeprefix("/DevMgmt/")
            if "/" not in name and name not in names:
                names.append(name)
    return names


@_checked
def parse_product_config(data: bytes, *, address: str | None = None) -> DeviceIdentity:
    """``ProductConfigDyn.xml`` → identity (model, product number, serial, firmware)."""
    root = parse_xml(data, document=PRODUCT_CONFIG)
    info = _child(root, "ProductInformation")
    if info is None:
        raise MalformedResponse(f"{PRODUCT_CONFIG}: no ProductInformation element")
    serial = _text(info, "SerialNumber")
    if serial is None:
        raise MalformedResponse(
            f"{PRODUCT_CONFIG}: no SerialNumber; the device cannot be identified"
        )
    return DeviceIdentity(
        vendor=VENDOR,
        serial_number=serial,
        product_number=_text(info, "ProductNumber"),
        product_name=_text(info, "MakeAndModel"),
        # ProductInformation/Version is the firmware; the root dd:Version is the schema's.
        firmware_version=_text(info, "Version", "Revision"),
        driver=DRIVER_ID,
        address=address,
    )


# --------------------------------------------------------------------------- status


# pscat:StatusCategory → engine state. Categories not listed here (trayEmpty, inkLow, ...)
# are conditions, not states: they go to state_reasons and leave the engine state alone.
_STATE_BY_CATEGORY = {
    "ready": EngineState.IDLE,
    "idle": EngineState.IDLE,
    "inpowersave": EngineState.SLEEP,
    "powersave": EngineState.SLEEP,
    "sleep": EngineState.SLEEP,
    "deepsleep": EngineState.SLEEP,
    "standby": EngineState.SLEEP,
    "printing": EngineState.PRINTING,
    "processing": EngineState.PRINTING,
    "busy": EngineState.PRINTING,
    "copying": EngineState.PRINTING,
    "scanning": EngineState.PRINTING,
    "warmingup": EngineState.WARMING,
    "initializing": EngineState.WARMING,
    "calibrating": EngineState.WARMING,
    "coolingdown": EngineState.COOLING,
    "cooling": EngineState.COOLING,
    "offline": EngineState.OFFLINE,
    "shuttingdown": EngineState.OFFLINE,
}
# Categories containing one of these words stop the engine (jams, open doors, failures).
_ERROR_WORDS = ("jam", "error", "fail", "fault", "missing", "open", "stall", "service")
# When several categories are reported at once, the most severe one is the engine state.
_STATE_PRIORITY = [
    EngineState.ERROR,
    EngineState.OFFLINE,
    EngineState.PRINTING,
    EngineState.WARMING,
    EngineState.COOLING,
    EngineState.IDLE,
    EngineState.SLEEP,
]


def _category_state(category: str) -> EngineState | None:
    key = category.lower()
    if key in _STATE_BY_CATEGORY:
        return _STATE_BY_CATEGORY[key]
    if any(word in key for word in _ERROR_WORDS):
        return EngineState.ERROR
    return None


_SEVERITY = {
    "info": AlertSeverity.INFO,
    "information": AlertSeverity.INFO,
    "informational": AlertSeverity.INFO,
    "warning": AlertSeverity.WARNING,
    "error": AlertSeverity.ERROR,
    "critical": AlertSeverity.CRITICAL,
    "fatal": AlertSeverity.CRITICAL,
}


def _severity(text: str | None, default: AlertSeverity) -> AlertSeverity:
    return _SEVERITY.get((text or "").lower(), default)


@dataclass(frozen=True)
class ProductStatus:
    """What ``ProductStatusDyn.xml`` says: engine state, raw categories and active alerts."""

    engine_state: EngineState
    state_reasons: list[str]
    alerts: list[Alert]


@_checked
def parse_product_status(data: bytes, *, collected_at: datetime | None = None) -> ProductStatus:
    """``ProductStatusDyn.xml`` → engine state (pscat:StatusCategory) and psdyn:AlertTable alerts.

    The alert table has no timestamps, so an active alert's ``first_seen`` is the device's
    dd:TimeStamp when it gives one, otherwise ``collected_at``.
    """
    seen_at = collected_at or now_utc()
    root = parse_xml(data, document=PRODUCT_STATUS)
    states: list[EngineState] = []
    reasons: list[str] = []
    for status in _children(root, "Status"):
        category = _text(status, "StatusCategory")
        if category is None:
            continue
        state = _category_state(category)
        if state is not None:
            states.append(state)
        # Reasons are conditions (trayEmpty, inkLow) and faults (jammed), not plain states.
        if state in (None, EngineState.ERROR) and category not in reasons:
            reasons.append(category)
    engine = next((s for s in _STATE_PRIORITY if s in states), EngineState.UNKNOWN)

    alerts: list[Alert] = []
    table = _child(root, "AlertTable")
    for node in _children(table, "Alert") if table is not None else ():
        code = _text(node, "ProductStatusAlertID")
        if code is None:
            continue
        details = _child(node, "AlertDetails")
        component: str | None = None
        parts: list[str] = [code]
        if details is not None:
            bin_name = _text(details, "AlertDetailsInputBin")
            color = _text(details, "AlertDetailsMarkerColor")
            ctype = _text(details, "AlertDetailsConsumableTypeEnum")
            if bin_name:
                component = bin_name
                parts.append(f"input {bin_name}")
            elif color:
                kind = "printhead" if (ctype or "").lower().startswith("printhead") else "cartridge"
                component = f"{kind}:{_color_code(color)}"
                parts.append(f"{color} {ctype or kind}")
            action = _text(details, "AlertDetailsUserAction")
            if action:
                parts.append(f"action {action}")
        alerts.append(
            Alert(
                code=code,
                severity=_severity(_text(node, "Severity"), AlertSeverity.WARNING),
                text=", ".join(parts)[:_LONG],
                first_seen=_datetime(node, PRODUCT_STATUS, "TimeStamp") or seen_at,
                component=component,
            )
        )
    return ProductStatus(engine_state=engine, state_reasons=reasons, alerts=alerts)


# --------------------------------------------------------------------------- consumables


def _supply_state(text: str | None) -> SupplyState:
    """dd:ConsumableState → SupplyState. HP spells states many ways across firmware
    (``ok``, ``used``, ``newGenuineHP``, ``veryLow``, ``out``), hence word matching."""
    key = (text or "").lower()
    if not key:
        return SupplyState.UNKNOWN
    if "missing" in key or key == "notinstalled":
        return SupplyState.MISSING
    if "expired" in key:
        return SupplyState.EXPIRED
    if "verylow" in key:
        return SupplyState.VERY_LOW
    if "low" in key:
        return SupplyState.LOW
    if key in ("out", "empty", "depleted") or "empty" in key:
        return SupplyState.EMPTY
    if any(word in key for word in ("defective", "incompatible", "fail", "damaged", "fault")):
        return SupplyState.FAULTY
    if key in ("ok", "new", "used", "installed", "refilled") or "genuine" in key:
        return SupplyState.OK
    return SupplyState.UNKNOWN


def _percent(elem: Element, name: str) -> int | None:
    value = _lenient_int(elem, name)
    # Out-of-range levels (some firmware report 255 for "unknown") are not levels.
    return value if value is not None and 0 <= value <= 100 else None


_CARTRIDGE_TYPES = {"ink", "inkcartridge", "toner", "tonercartridge", "inktank"}
_PRINTHEAD_TYPES = {"printhead", "printheadcartridge"}


@_checked
def parse_consumable_config(data: bytes) -> tuple[list[Cartridge], list[Printhead]]:
    """``ConsumableConfigDyn.xml`` → cartridges (ink / toner) and printheads."""
    root = parse_xml(data, document=CONSUMABLE_CONFIG)
    cartridges: list[Cartridge] = []
    printheads: list[Printhead] = []
    for info in _descendants(root, "ConsumableInfo"):
        ctype = (_text(info, "ConsumableTypeEnum") or "").lower()
        life = _child(info, "ConsumableLifeState")
        state = _supply_state(_text(life, "ConsumableState") or _text(info, "ConsumableState"))
        brand = _text(life, "Brand") or _text(info, "Brand")
        label = _text(info, "ConsumableLabelCode") or _text(info, "MarkerColor") or ""
        # Warranty/ExpirationDate is the date HP stops guaranteeing the ink: the expiry.
        expires = _date(info, "Warranty", "ExpirationDate") or _date(info, "ExpirationDate")
        common = {
            "slot": _lenient_int(info, "ConsumableStation"),
            "status": state,
            "product_number": _text(info, "ProductNumber"),
            "serial_number": _text(info, "SerialNumber"),
            "installed_on": _date(info, "Installation", "Date"),
            "expires_on": expires,
        }
        if ctype in _CARTRIDGE_TYPES:
            capacity_node = _child(info, "Capacity")
            capacity: int | None = None
            if capacity_node is not None:
                max_capacity = _child(capacity_node, "MaxCapacity")
                unit = _text(capacity_node, "Unit")
                if max_capacity is not None and unit is not None:
                    where = _where(CONSUMABLE_CONFIG, capacity_node)
                    raw = _decimal(_text(max_capacity) or "0", where)
                    # MaxCapacity 0 (tri-colour and subscription cartridges) means "not known".
                    capacity = _round(raw * _factor(unit, "volume", where)) or None
            cartridges.append(
                Cartridge(
                    color=_color_code(label) if label else "unknown",
                    level_percent=_percent(info, "ConsumablePercentageLevelRemaining"),
                    product_name=_text(info, "ConsumableSelectibilityNumber"),
                    manufacturer=_text(info, "Manufacturer", "Name"),
                    capacity_ul=capacity,
                    non_vendor=brand is not None and brand.upper() != VENDOR,
                    **common,
                )
            )
        elif ctype in _PRINTHEAD_TYPES:
            printheads.append(
                Printhead(
                    colors=_split_colors(_color_code(label)) if label else [],
                    health_percent=_percent(info, "ConsumablePercentageLevelRemaining"),
                    product_name=_text(info, "ConsumableSelectibilityNumber"),
                    **common,
                )
            )
    return cartridges, printheads


# --------------------------------------------------------------------------- media


def _size_mm(size_name: str | None) -> tuple[int | None, int | None]:
    """PWG media size name → (width, height) mm: ``iso_a4_210x297mm``, ``na_letter_8.5x11in``."""
    if not size_name:
        return None, None
    match = re.search(r"_(\d+(?:\.\d+)?)x(\d+(?:\.\d+)?)(mm|in)$", size_name)
    if match is None:
        return None, None
    factor = Decimal(1) if match.group(3) == "mm" else Decimal("25.4")
    return _round(Decimal(match.group(1)) * factor), _round(Decimal(match.group(2)) * factor)


_MEDIA_STATE = {
    "present": "ready",
    "loaded": "ready",
    "missing": "empty",
    "empty": "empty",
    "out": "empty",
}
_SOURCE_ELEMENTS = ("InputTray", "InputRoll", "Roll")


@dataclass(frozen=True)
class MediaHandling:
    sources: list[MediaSource]
    accessories: list[Accessory]


@_checked
def parse_media_handling(data: bytes) -> MediaHandling:
    """``MediaHandlingDyn.xml`` → media sources (trays, rolls) and media-handling accessories."""
    root = parse_xml(data, document=MEDIA_HANDLING)
    sources: list[MediaSource] = []
    for node in root.iter():
        if _local(node.tag) not in _SOURCE_ELEMENTS:
            continue
        name = _text(node, "InputBin") or _text(node, "RollID") or _local(node.tag)
        media_state = (_text(node, "MediaState") or "").lower()
        tray_state = (_text(node, "TrayState") or "").lower()
        if media_state:
            state = _MEDIA_STATE.get(media_state, media_state)
        elif tray_state in ("open", "opened"):
            state = "open"
        elif tray_state == "notinstalled":
            state = "missing"
        else:
            state = tray_state or "unknown"
        width, height = _size_mm(_text(node, "MediaSizeName"))
        measured_width = _quantity_child(node, ("MediaWidth", "Width"), "length", MEDIA_HANDLING)
        sources.append(
            MediaSource(
                name=name,
                state=state[:_SHORT],
                media_type=_text(node, "MediaType"),
                width_mm=measured_width if measured_width is not None else width,
                height_mm=None if _local(node.tag) != "InputTray" else height,
                remaining_length_mm=_quantity_child(
                    node, ("RemainingLength", "MediaLengthRemaining"), "length", MEDIA_HANDLING
                ),
            )
        )
    accessories = [
        Accessory(name=function)
        for node in _children(root, "Accessories")
        if (function := _text(node, "MediaHandlingDeviceFunctionType"))
    ]
    return MediaHandling(sources=sources, accessories=accessories)


@_checked
def parse_media(data: bytes) -> list[MediaType]:
    """``MediaDyn.xml`` → media types the device knows (``dd:MediaType`` text), with localised
    names when a sibling ``LocalizedName``/``DisplayName`` carries ``xml:lang``."""
    root = parse_xml(data, document=MEDIA)
    out: dict[str, MediaType] = {}
    for parent in root.iter():
        for node in _children(parent, "MediaType"):
            media_id = _text(node)
            if media_id is None or len(node):
                continue
            names: dict[str, str] = {}
            for sibling in parent:
                if _local(sibling.tag) in ("LocalizedName", "DisplayName"):
                    lang = sibling.get("{http://www.w3.org/XML/1998/namespace}lang") or sibling.get(
                        "lang"
                    )
                    text = _text(sibling)
                    if lang and text:
                        names[lang[:_SHORT]] = text
            entry = out.setdefault(media_id, MediaType(id=media_id))
            entry.names.update(names)
    return list(out.values())


# --------------------------------------------------------------------------- usage


@dataclass
class _InkReading:
    total: int | None = None
    vendor: int | None = None
    non_vendor: int | None = None
    insertions: int | None = None
    unit_micro: bool = False  # stated in microliters (see the rescale note in parse_product_usage)


def _ink_reading(block: Element, document: str) -> _InkReading:
    reading = _InkReading()
    for child in block:
        name = _local(child.tag)
        if name == "CumulativeMarkingAgentUsed":
            reading.total = _quantity(child, "volume", document)
            reading.unit_micro = (_text(child, "Unit") or "").lower().startswith("micro")
        elif name == "CumulativeHPMarkingAgentUsed":
            reading.vendor = _quantity(child, "volume", document)
        elif name in ("CumulativeNonHPMarkingAgentUsed", "CumulativeNonHpMarkingAgentUsed"):
            reading.non_vendor = _quantity(child, "volume", document)
        elif name in ("CumulativeConsumableCount", "ConsumableInsertions"):
            reading.insertions = _int(child, document)
    return reading


def _cartridge_usage(color: str, r: _InkReading, scale: int) -> CartridgeTypeUsage:
    # What the device does not state stays None: a missing vendor/non-vendor split or
    # insertion count must not read as a measured zero downstream.
    total = (r.total or 0) * scale
    vendor = r.vendor * scale if r.vendor is not None else None
    non_vendor = r.non_vendor * scale if r.non_vendor is not None else None
    if non_vendor is None and vendor is not None:
        non_vendor = max(total - vendor, 0)
    if vendor is None and non_vendor is not None:
        vendor = max(total - non_vendor, 0)
    return CartridgeTypeUsage(
        color=color,
        total_ink_ul=total,
        vendor_ink_ul=vendor,
        non_vendor_ink_ul=non_vendor,
        insertions=r.insertions,
    )


@_checked
def parse_product_usage(data: bytes) -> LifetimeUsage:
    """``ProductUsageDyn.xml`` → lifetime counters.

    Read from ``pudyn:PrinterSubunit``: ``dd:TotalImpressions`` / ``MonochromeImpressions`` /
    ``ColorImpressions``; ``pudyn:UsageByMarkingAgent`` (without a colour child: device totals;
    with ``dd:MarkerColor`` or ``dd:ConsumableLabelCode``: that colour); ``pudyn:UsageByMedia``
    (key ``dd:MediaType``, else ``dd:MediaSizeName``; impressions, area, length); lifetime
    area/length children. Per-colour ink also comes from ``pudyn:ConsumableSubunit/
    pudyn:Consumable`` (real HP devices), for colours not given in UsageByMarkingAgent.
    """
    doc = PRODUCT_USAGE
    root = parse_xml(data, document=doc)
    printer = _child(root, "PrinterSubunit")
    fields: dict[str, object] = {}
    totals = _InkReading()
    per_color: dict[str, _InkReading] = {}
    if printer is not None:
        fields["impressions"] = _int(printer, doc, "TotalImpressions")
        fields["mono_impressions"] = _int(printer, doc, "MonochromeImpressions")
        fields["color_impressions"] = _int(printer, doc, "ColorImpressions")
        fields["jobs"] = _int(printer, doc, "TotalJobs")
        for block in _children(printer, "UsageByMarkingAgent"):
            color = _marker_color(block)
            reading = _ink_reading(block, doc)
            if color is None:
                totals = reading
            else:
                per_color[color] = reading
        media_area: int | None = None
        media_length: int | None = None
        by_media: dict[str, MediaTypeUsage] = {}
        for tag in ("UsageByMedia", "UsageByMediaType"):
            for block in _children(printer, tag):
                key = _text(block, "MediaType") or _text(block, "MediaSizeName")
                # UsageByMediaType repeats, per media type, what UsageByMedia may already say:
                # the first (UsageByMedia) wins so that nothing is counted twice.
                if key is None or key in by_media:
                    continue
                area = _quantity_child(block, _AREA_NAMES, "area", doc)
                length = _quantity_child(block, _LENGTH_NAMES, "length", doc)
                if area is not None:
                    media_area = (media_area or 0) + area
                if length is not None:
                    media_length = (media_length or 0) + length
                by_media[key] = MediaTypeUsage(
                    media_type=key,
                    # The wire model has no "unknown" area: 0 when the device gives none.
                    area_mm2=area,
                    length_mm=length,
                    impressions=_int(block, doc, "TotalImpressions"),
                )
        fields["by_media_type"] = list(by_media.values())
        total_area = _quantity_child(printer, _AREA_NAMES, "area", doc)
        total_length = _quantity_child(printer, _LENGTH_NAMES, "length", doc)
        fields["total_media_area_mm2"] = total_area if total_area is not None else media_area
        fields["total_media_length_mm"] = total_length if total_length is not None else media_length

    subunit = _child(root, "ConsumableSubunit")
    for block in _children(subunit, "Consumable") if subunit is not None else ():
        color = _marker_color(block)
        if color is not None and color not in per_color:
            if (_text(block, "ConsumableTypeEnum") or "ink").lower() in _PRINTHEAD_TYPES:
                continue
            per_color[color] = _ink_reading(block, doc)

    colored = [r for r in per_color.values() if r.total is not None]
    scale = 1
    if totals.total and colored and all(r.unit_micro for r in colored):
        # Firmware bug seen on the ENVY Photo 7830 (fixtures/ledm/hp_envy_photo_7830...):
        # the per-cartridge blocks say "microliters" but hold millilitres (55 + 108 "µL"
        # against a 163 mL device total). When the per-colour values only add up to the
        # total read as millilitres, they are millilitres.
        summed = sum(r.total or 0 for r in colored)
        tolerance = 1000 * len(colored)  # each colour rounded to whole mL on the device
        if abs(summed * 1000 - totals.total) <= tolerance < abs(summed - totals.total):
            scale = 1000
    by_cartridge = [_cartridge_usage(c, r, scale) for c, r in per_color.items()]
    total_ink = totals.total
    if total_ink is None and by_cartridge:
        total_ink = sum(c.total_ink_ul for c in by_cartridge)
    fields["total_ink_ul"] = total_ink
    fields["by_cartridge_type"] = by_cartridge
    fields["scan"] = _scan_usage(root, doc)
    return _validated(LifetimeUsage, fields)


def _scan_usage(root: Element, doc: str) -> ScanUsage | None:
    """Scan/copy jobs and areas, when a device states them (HP MFPs report images, which the
    wire model has no meter for, so those are not mapped)."""
    scan_unit = _child(root, "ScanApplicationSubunit") or _child(root, "ScannerEngineSubunit")
    copy_unit = _child(root, "CopyApplicationSubunit")
    found = False
    scan = ScanUsage()
    if scan_unit is not None:
        jobs = _int(scan_unit, doc, "ScanJobs")
        jobs = jobs if jobs is not None else _int(scan_unit, doc, "TotalJobs")
        area = _quantity_child(scan_unit, ("ScannedArea", *_AREA_NAMES), "area", doc)
        if jobs is not None or area is not None:
            found = True
            scan.scan_jobs = jobs or 0
            scan.scanned_area_mm2 = area or 0
    if copy_unit is not None:
        jobs = _int(copy_unit, doc, "CopyJobs")
        jobs = jobs if jobs is not None else _int(copy_unit, doc, "TotalJobs")
        area = _quantity_child(copy_unit, ("CopiedArea", *_AREA_NAMES), "area", doc)
        if jobs is not None or area is not None:
            found = True
            scan.copy_jobs = jobs or 0
            scan.copied_area_mm2 = area or 0
    return scan if found else None


# --------------------------------------------------------------------------- logs


@_checked
def parse_product_logs(data: bytes) -> list[Alert]:
    """``ProductLogsDyn.xml`` event log → alert history.

    Each pldyn:Event is a past, one-shot occurrence, so it is reported already cleared
    (``cleared_at == first_seen``); conditions still active are in ProductStatusDyn's alert
    table. Events without a dd:TimeStamp cannot be placed in time and are left out: stamping
    them with the poll time would make one event look new on every poll.
    """
    root = parse_xml(data, document=PRODUCT_LOGS)
    alerts: list[Alert] = []
    log = _child(root, "EventLog")
    for event in _children(log, "Event") if log is not None else ():
        code = _text(event, "EventCode")
        when = _datetime(event, PRODUCT_LOGS, "TimeStamp")
        if code is None or when is None:
            continue
        parts = [f"event {code}"]
        occurrences = _lenient_int(event, "EventOccurrences")
        if occurrences and occurrences > 1:
            parts.append(f"{occurrences} occurrences")
        impressions = _lenient_int(event, "TotalImpressions")
        if impressions is not None:
            parts.append(f"at {impressions} impressions")
        firmware = _text(event, "FirmwareVersion", "Revision")
        if firmware:
            parts.append(f"firmware {firmware}")
        alerts.append(
            Alert(
                code=code,
                severity=_severity(_text(event, "Severity"), AlertSeverity.INFO),
                text=", ".join(parts)[:_LONG],
                first_seen=when,
                cleared_at=when,
                component="eventlog",
            )
        )
    return alerts


# --------------------------------------------------------------------------- jobs


_E = TypeVar("_E", JobKind, JobStatus)


def _enum_value(enum: type[_E], text: str | None, default: _E, where: str) -> _E:
    if text is None:
        return default
    try:
        return enum(text.lower())
    except ValueError:
        raise MalformedResponse(f"{where}: unknown value {text[:40]!r}") from None


@_checked
def parse_job_accounting(data: bytes, *, job_cursor: int | None = None) -> list[JobRecord]:
    """FleetMeter's ``JobAccountingDyn.xml`` (docs/architecture.md) → job records, oldest first.

    Jobs with ``SequenceNumber <= job_cursor`` were collected before and are skipped.
    """
    doc = JOB_ACCOUNTING
    root = parse_xml(data, document=doc)
    jobs: list[JobRecord] = []
    for node in _descendants(root, "Job"):
        where = _where(doc, node)
        sequence = _int(node, doc, "SequenceNumber")
        if sequence is None:
            raise MalformedResponse(f"{where}: no SequenceNumber")
        if job_cursor is not None and sequence <= job_cursor:
            continue
        uuid_text = _text(node, "UUID")
        try:
            job_uuid = uuid.UUID(uuid_text or "")
        except ValueError as exc:
            raise MalformedResponse(f"{where} {sequence}: bad UUID {uuid_text!r}") from exc
        completed = _datetime(node, doc, "CompletedTime")
        if completed is None:
            raise MalformedResponse(f"{where} {sequence}: no CompletedTime")
        submitter_node = _child(node, "Submitter")
        submitter = Submitter(
            project=_text(submitter_node, "Project"),
            application=_text(submitter_node, "Application"),
            account=_text(submitter_node, "Account"),
            user=_text(submitter_node, "User"),
            user_defined=_text(submitter_node, "UserDefined"),
            submitted_at=_datetime(submitter_node, doc, "TimeStamp"),
        )
        ink: dict[str, int] = {}
        coverage: dict[str, int] = {}
        for ink_node in _descendants(node, "Ink"):
            color = _marker_color(ink_node)
            if color is None:
                raise MalformedResponse(f"{where} {sequence}: Ink without MarkerColor")
            microliters = _int(ink_node, doc, "Microliters")
            if microliters is not None:
                ink[color] = ink.get(color, 0) + microliters
            ppm = _int(ink_node, doc, "PixelCoveragePpm")
            if ppm is not None:
                coverage[color] = ppm
        copies = _int(node, doc, "Copies")
        jobs.append(
            JobRecord(
                kind=_enum_value(JobKind, _text(node, "JobType"), JobKind.PRINT, where),
                job_uuid=job_uuid,
                sequence_number=sequence,
                name=_text(node, "JobName", limit=_LONG),
                submitter=submitter,
                completed_at=completed,
                print_time_s=_int(node, doc, "PrintTimeSeconds"),
                duration_s=_int(node, doc, "DurationSeconds"),
                status=_enum_value(JobStatus, _text(node, "Status"), JobStatus.COMPLETED, where),
                source=_text(node, "Source"),
                coverage_category=_text(node, "CoverageCategory"),
                application_category=_text(node, "ApplicationCategory"),
                print_quality=_text(node, "PrintQuality"),
                pages=_int(node, doc, "TotalImpressions") or 0,
                copies=copies if copies is not None else 1,
                ink_ul=ink,
                media_type=_text(node, "MediaType"),
                media_width_mm=_int(node, doc, "MediaWidthMillimeters"),
                media_length_mm=_int(node, doc, "MediaLengthMillimeters"),
                media_area_mm2=_int(node, doc, "MediaAreaSquareMillimeters") or 0,
                printed_area_mm2=_int(node, doc, "PrintedAreaSquareMillimeters") or 0,
                pixel_coverage_ppm=coverage,
                scan_area_mm2=_int(node, doc, "ScanAreaSquareMillimeters") or 0,
            )
        )
    jobs.sort(key=lambda job: job.sequence_number)
    return jobs


# --------------------------------------------------------------------------- report


def parse_documents(
    docs: Mapping[str, bytes],
    *,
    address: str | None = None,
    collected_at: datetime | None = None,
    kind: ReportKind = ReportKind.USAGE,
    job_cursor: int | None = None,
) -> DeviceReport:
    """Documents by name (``"ProductConfigDyn.xml"`` → bytes) → one ``DeviceReport``.

    ``ProductConfigDyn.xml`` is required (it identifies the device); every other document is
    optional and its part of the report is simply absent. HEALTH reports carry identity,
    status and the active alerts only; USAGE reports add lifetime counters, the event-log
    history and the jobs after ``job_cursor``. Raises ``MalformedResponse``.
    """
    when = collected_at or now_utc()
    if PRODUCT_CONFIG not in docs:
        raise MalformedResponse(f"{PRODUCT_CONFIG} is required to identify the device")
    identity = parse_product_config(docs[PRODUCT_CONFIG], address=address)

    status: DeviceStatus | None = None
    alerts: list[Alert] = []
    if any(name in docs for name in (PRODUCT_STATUS, CONSUMABLE_CONFIG, MEDIA_HANDLING, MEDIA)):
        parts: dict[str, object] = {}
        if PRODUCT_STATUS in docs:
            product_status = parse_product_status(docs[PRODUCT_STATUS], collected_at=when)
            parts["engine_state"] = product_status.engine_state
            parts["state_reasons"] = product_status.state_reasons
            alerts.extend(product_status.alerts)
        if CONSUMABLE_CONFIG in docs:
            parts["cartridges"], parts["printheads"] = parse_consumable_config(
                docs[CONSUMABLE_CONFIG]
            )
        if MEDIA_HANDLING in docs:
            handling = parse_media_handling(docs[MEDIA_HANDLING])
            parts["media_sources"] = handling.sources
            parts["accessories"] = handling.accessories
        if MEDIA in docs:
            parts["supported_media"] = parse_media(docs[MEDIA])
        status = _validated(DeviceStatus, parts)

    usage: LifetimeUsage | None = None
    jobs: list[JobRecord] = []
    if kind is ReportKind.USAGE:
        if PRODUCT_USAGE in docs:
            usage = parse_product_usage(docs[PRODUCT_USAGE])
        if PRODUCT_LOGS in docs:
            alerts.extend(parse_product_logs(docs[PRODUCT_LOGS]))
        if JOB_ACCOUNTING in docs:
            jobs = parse_job_accounting(docs[JOB_ACCOUNTING], job_cursor=job_cursor)
    return _validated(
        DeviceReport,
        {
            "kind": kind,
            "collected_at": when,
            "device": identity,
            "status": status,
            "usage": usage,
            "jobs": jobs,
            "alerts": alerts,
        },
    )
