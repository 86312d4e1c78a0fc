"""What-if quotes: a plan file and a usage file (meter totals per device) → a statement.

Usage files (docs/billing.md, "Usage files") are JSON or CSV, told apart by suffix. Their
meter names are those of :mod:`fleetmeter.billing.meters` (the ``LifetimeUsage.meters()``
names where one exists); lifetime-counter names that no component prices are skipped, any
other name is refused so that a typo cannot make usage free.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError

from fleetmeter.billing import meters as mk
from fleetmeter.billing.currency import minor_unit
from fleetmeter.billing.errors import UsageError, key_path
from fleetmeter.billing.period import Period
from fleetmeter.billing.plan import load_plan
from fleetmeter.billing.rating import rate
from fleetmeter.billing.statement import LineKind, Statement
from fleetmeter.billing.usage import DeviceUsage, PeriodUsage


class _UsageDevice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: Annotated[str, Field(min_length=1, max_length=256)]
    added_on: date | None = None
    removed_on: date | None = None
    # strict: a JSON 12.5 or "12" is refused, quantities are whole base units.
    meters: dict[str, Annotated[NonNegativeInt, Field(strict=True)]] = Field(default_factory=dict)


class _UsageFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    period: Period | None = None
    devices: list[_UsageDevice]


def _priced(meters: Mapping[str, int], where: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, value in meters.items():
        if mk.is_unpriced_counter(key):
            continue
        if not mk.is_priced_key(key):
            raise UsageError(f"{where}: unknown meter {key!r}")
        out[key] = value
    return out


def _device(entry: _UsageDevice, where: str) -> DeviceUsage:
    try:
        return DeviceUsage(
            device=entry.device,
            meters=_priced(entry.meters, where),
            added_on=entry.added_on,
            removed_on=entry.removed_on,
        )
    except ValidationError as exc:
        raise UsageError(f"{where}: {exc.errors()[0]['msg']}") from exc


def _from_json(text: str, source: str) -> tuple[PeriodUsage, Period | None]:
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source}: not valid JSON: {exc}") from exc
    try:
        doc = _UsageFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise UsageError(f"{source}: {key_path(tuple(first['loc'])) or 'file'}: {message}") from exc
    devices = [_device(d, f"{source}: devices[{i}]") for i, d in enumerate(doc.devices)]
    return _usage(devices, source), doc.period


def _from_csv(text: str, source: str) -> PeriodUsage:
    reader = csv.DictReader(io.StringIO(text))
    missing = {"device", "meter", "quantity"} - set(reader.fieldnames or ())
    if missing:
        raise UsageError(f"{source}: missing column(s) {', '.join(sorted(missing))}")
    meters: dict[str, dict[str, int]] = {}
    dates: dict[str, tuple[date | None, date | None]] = {}
    for row in reader:
        where = f"{source} line {reader.line_num}"
        device, meter, raw = row["device"].strip(), row["meter"].strip(), row["quantity"].strip()
        if not device:
            raise UsageError(f"{where}: device is empty")
        if not raw.isdigit():
            raise UsageError(f"{where}: quantity {raw!r} is not a whole number of base units")
        window = (_date(row.get("added_on"), where), _date(row.get("removed_on"), where))
        if dates.setdefault(device, window) != window:
            raise UsageError(f"{where}: added_on/removed_on differ from {device}'s earlier rows")
        per_device = meters.setdefault(device, {})
        if meter in per_device:
            raise UsageError(f"{where}: {device} has meter {meter!r} twice")
        per_device[meter] = int(raw)
    devices = []
    for device, values in meters.items():
        added_on, removed_on = dates[device]
        entry = _UsageDevice(device=device, added_on=added_on, removed_on=removed_on, meters=values)
        devices.append(_device(entry, f"{source}: device {device}"))
    return _usage(devices, source)


def _date(value: str | None, where: str) -> date | None:
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise UsageError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from exc


def _usage(devices: list[DeviceUsage], source: str) -> PeriodUsage:
    try:
        return PeriodUsage(devices=tuple(devices))
    except ValidationError as exc:
        raise UsageError(f"{source}: {exc.errors()[0]['msg']}") from exc


def load_usage(path: str | Path) -> tuple[PeriodUsage, Period | None]:
    """Read a usage file (``.json`` or ``.csv``); the period is the JSON file's, if it has one."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from exc
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _from_json(text, str(path))
    if suffix == ".csv":
        return _from_csv(text, str(path)), None
    raise UsageError(f"{path}: a usage file is .json or .csv")


def quote(
    plan_path: str | Path, usage_path: str | Path, *, period: Period | None = None
) -> Statement:
    """Rate a usage file under a plan file. ``period`` overrides the usage file's period."""
    plan = load_plan(plan_path)
    usage, file_period = load_usage(usage_path)
    chosen = period if period is not None else file_period
    if chosen is None:
        raise UsageError(f"{usage_path}: no period: give one in the file or as an argument")
    return rate(plan, usage, period=chosen)


# ---------------------------------------------------------------------------- rendering


def _n(value: Decimal | None) -> str:
    return "" if value is None else f"{value:f}"


def _money(value: Decimal, places: int) -> str:
    # A tier subtotal is exact (50, 269.09776): pad it to the currency's places for reading,
    # which adds zeros only and never rounds.
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent < places:
        value = value.quantize(Decimal(1).scaleb(-places))
    return f"{value:f}"


def render_text(statement: Statement) -> str:
    """The statement as a plain-text table for a terminal."""
    cur = statement.currency
    places = minor_unit(cur)
    rows: list[tuple[str, ...]] = [("Item", "Quantity", "Included", "Billable", "Price", "Amount")]
    for line in statement.lines:
        if line.kind is LineKind.FIXED_FEE:
            days = f"{line.active_days}/{line.period_days} days"
            rows.append(
                (f"Fixed fee, {line.device}", days, "", "", _n(line.unit_price), _n(line.amount))
            )
        elif line.kind is LineKind.USAGE:
            unit = mk.UNIT_SYMBOLS.get(line.unit or "", line.unit or "")
            price = (
                f"{line.unit_price:f}/{unit}"
                if line.unit_price is not None
                else f"{line.tier_mode}"
            )
            amount = _n(line.amount) + (" (minimum)" if line.minimum_applied else "")
            rows.append(
                (
                    f"{line.label} [{unit}]",
                    _n(line.quantity),
                    _n(line.included),
                    _n(line.billable),
                    price,
                    amount,
                )
            )
            for s in line.tiers:
                span = f"above {s.above:f}" + (f" up to {s.up_to:f}" if s.up_to is not None else "")
                rows.append(
                    (
                        f"  tier {s.tier + 1}: {span}",
                        _n(s.quantity),
                        "",
                        "",
                        f"{s.unit_price:f}",
                        f"({_money(s.subtotal, places)})",
                    )
                )
        else:
            rows.append(
                (
                    "Minimum commitment top-up",
                    "",
                    "",
                    "",
                    f"min {line.minimum:f}" if line.minimum is not None else "",
                    _n(line.amount),
                )
            )
    rows.append((f"Total {cur}", "", "", "", "", _n(statement.total)))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    out = [
        f"{statement.plan}",
        f"Period {statement.period.start} to {statement.period.end} (end exclusive, "
        f"{statement.period.timezone}), amounts in {cur}",
        "",
    ]
    for i, row in enumerate(rows):
        if i == len(rows) - 1:
            out.append("-" * (sum(widths) + 2 * 5))
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out) + "\n"
