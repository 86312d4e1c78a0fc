"""What every export shares: the statement header, and the flattening of statement lines,
late-usage adjustments and device usage into rows of plain values.

The renderers (:mod:`._csv`, :mod:`._xlsx`, :mod:`._pdf`) only lay these rows out, so the
three formats cannot disagree about what a line says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from fleetmeter.billing import meters as mk
from fleetmeter.billing._exact import round_half_up, to_decimal
from fleetmeter.billing.currency import minor_unit
from fleetmeter.billing.errors import BillingError
from fleetmeter.billing.period import Period
from fleetmeter.billing.reconcile import Adjustment
from fleetmeter.billing.statement import LineKind, Statement, StatementLine
from fleetmeter.billing.usage import DeviceUsage, PeriodUsage

_MONTH_NAMES = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


class StatementHeader(BaseModel):
    """Who the statement is for and from: the parts a :class:`Statement` does not carry.

    Every string here may come from a person or a device (a customer name typed into the
    portal), so the renderers treat them as untrusted text.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    reseller: str = Field(description="Who issues the statement.")
    customer: str = Field(description="Who it is addressed to.")
    contract: str = Field(description="The contract's name or reference.")
    number: str | None = Field(default=None, description="Statement number or id, if any.")
    issued_at: AwareDatetime | None = Field(
        default=None,
        description="When the statement was closed/issued; also the files' creation date. "
        "None: the end of the period (midnight, contract time zone), so output is "
        "reproducible.",
    )
    draft: bool = Field(default=False, description="An open statement: marked DRAFT.")


def issued_at(statement: Statement, header: StatementHeader | None) -> datetime:
    """The statement's creation instant (aware UTC): the header's, else the period's end."""
    if header is not None and header.issued_at is not None:
        return header.issued_at.astimezone(UTC)
    zone = ZoneInfo(statement.period.timezone)
    return datetime.combine(statement.period.end, time(), tzinfo=zone).astimezone(UTC)


def long_date(day: date) -> str:
    """``1 March 2026``: month names spelt out so that no reader confuses day and month."""
    return f"{day.day} {_MONTH_NAMES[day.month - 1]} {day.year}"


def period_text(period: Period) -> str:
    """The period as a person reads it: first and last day inclusive, and the time zone."""
    last = period.end - timedelta(days=1)
    return f"{long_date(period.start)} – {long_date(last)} ({period.timezone})"


def plain(value: Decimal | None) -> str:
    """A Decimal as fixed-point text (never ``1E+1``); ``''`` for None."""
    return "" if value is None else f"{value:f}"


def money(value: Decimal, places: int, *, grouped: bool = False) -> str:
    """A money value shown with at least the currency's minor-unit places.

    Amounts already have exactly those places; a tier subtotal may have more (it is not
    rounded) and is shown as it is: padding adds zeros only, it never rounds.
    """
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent < places:
        value = value.quantize(Decimal(1).scaleb(-places))
    return f"{value:,f}" if grouped else f"{value:f}"


def unit_symbol(unit: str | None) -> str:
    return mk.UNIT_SYMBOLS.get(unit or "", unit or "")


def bound(value: Decimal) -> str:
    """A tier bound or count for reading: grouped, no trailing zeros (``1,000``, ``0``)."""
    return f"{value.normalize():,f}"


def with_unit(value: Decimal, unit: str | None, *, exact: bool = False) -> str:
    """``12.5 m²``, ``6,200 pages``: the plan's count units read as plural words.

    ``exact`` keeps the value's own digits (a quantity); otherwise trailing zeros go.
    """
    number = f"{value:,f}" if exact else bound(value)
    if unit in ("page", "job"):
        return f"{number} {unit}{'' if value == 1 else 's'}"
    return f"{number} {unit_symbol(unit)}".rstrip()


# ---------------------------------------------------------------------------- line rows


@dataclass(frozen=True)
class LineRow:
    """A statement line, one tier slice of a tiered line (``kind == 'tier'``), or one line
    of a late-usage adjustment (``adjusts``: the closed period it changes; its quantities
    and amount are changes to that period's statement).

    Tier rows carry a ``subtotal`` (unrounded, informative) and no ``amount``, so summing
    ``amount`` over all rows gives the total, adjustments included.
    """

    kind: str
    label: str
    adjusts: Period | None = None
    device: str | None = None
    meter: str | None = None
    filter: str = ""
    unit: str | None = None
    quantity: Decimal | None = None
    included: Decimal | None = None
    billable: Decimal | None = None
    unit_price: Decimal | None = None
    tier_mode: str | None = None
    tier: int | None = None
    tier_above: Decimal | None = None
    tier_up_to: Decimal | None = None
    minimum: Decimal | None = None
    minimum_applied: bool = False
    active_days: int | None = None
    period_days: int | None = None
    usage_amount: Decimal | None = None
    subtotal: Decimal | None = None
    amount: Decimal | None = None

    def description(self) -> str:
        """What a person reads in the item column."""
        if self.kind == "tier":
            assert self.tier is not None
            above = self.tier_above or Decimal(0)
            if self.tier_up_to is None:
                return f"Tier {self.tier + 1} (above {with_unit(above, self.unit)})"
            up_to = with_unit(self.tier_up_to, self.unit)
            return f"Tier {self.tier + 1} (above {bound(above)} up to {up_to})"
        if self.kind == LineKind.FIXED_FEE:
            return f"{self.label}: {self.device}" if self.device else self.label
        if self.kind == LineKind.MINIMUM_COMMITMENT:
            return f"{self.label} (top-up)"
        text = self.label
        if self.filter:
            text += f" ({self.filter})"
        if self.device:
            text += f": {self.device}"
        return text


def _line_row(line: StatementLine) -> LineRow:
    return LineRow(
        kind=str(line.kind),
        label=line.label,
        device=line.device,
        meter=line.meter,
        filter=line.filter,
        unit=line.unit,
        quantity=line.quantity,
        included=line.included,
        billable=line.billable,
        unit_price=line.unit_price,
        tier_mode=str(line.tier_mode) if line.tier_mode is not None else None,
        minimum=line.minimum,
        minimum_applied=line.minimum_applied,
        active_days=line.active_days,
        period_days=line.period_days,
        usage_amount=line.usage_amount,
        amount=line.amount,
    )


def line_rows(statement: Statement, adjustments: Sequence[Adjustment] = ()) -> list[LineRow]:
    """Every line in statement order, each tiered line followed by its slices, then the
    lines of each adjustment."""
    rows: list[LineRow] = []
    for line in statement.lines:
        rows.append(_line_row(line))
        for s in line.tiers:
            rows.append(
                LineRow(
                    kind="tier",
                    label=line.label,
                    meter=line.meter,
                    filter=line.filter,
                    unit=line.unit,
                    quantity=s.quantity,
                    unit_price=s.unit_price,
                    tier_mode=str(line.tier_mode) if line.tier_mode is not None else None,
                    tier=s.tier,
                    tier_above=s.above,
                    tier_up_to=s.up_to,
                    subtotal=s.subtotal,
                )
            )
    for adjustment in adjustments:
        rows += adjustment_rows(adjustment)
    return rows


def adjustment_rows(adjustment: Adjustment) -> list[LineRow]:
    return [
        LineRow(
            kind=str(line.kind),
            label=line.label,
            adjusts=adjustment.period,
            device=line.device,
            meter=line.meter,
            filter=line.filter,
            unit=line.unit,
            quantity=line.quantity,
            billable=line.billable,
            amount=line.amount,
        )
        for line in adjustment.lines
    ]


def check_currency(statement: Statement, adjustments: Sequence[Adjustment]) -> None:
    """Adjustments add to the statement's total only in the same currency."""
    for adjustment in adjustments:
        if adjustment.currency != statement.currency:
            raise BillingError(
                f"adjustment for {adjustment.period} is in {adjustment.currency}, "
                f"the statement in {statement.currency}"
            )


def grand_total(statement: Statement, adjustments: Sequence[Adjustment]) -> Decimal:
    """The statement's total plus every adjustment's amount (exact: they are all rounded)."""
    check_currency(statement, adjustments)
    total = Fraction(statement.total) + sum((Fraction(a.amount) for a in adjustments), Fraction())
    return round_half_up(total, minor_unit(statement.currency))


# ---------------------------------------------------------------------------- device usage


def base_unit(key: str) -> str:
    """The base unit of a meter key, spelt as plan units are (``mm2``, ``uL``)."""
    if key.endswith("_mm2"):
        return "mm2"
    if key.endswith("_ul"):
        return "uL"
    if key == mk.MATERIAL or key.endswith(".g"):
        return "g"
    if key == mk.BUILD_TIME:
        return "s"
    if key == mk.IMPRESSIONS:
        return "page"
    return "job"


def meter_keys(usage: PeriodUsage) -> list[str]:
    """Every meter key any device has, sorted: the columns of a per-device table."""
    return sorted({key for d in usage.devices for key in d.meters})


def devices(usage: PeriodUsage) -> list[DeviceUsage]:
    """Devices in the order of the statement's fixed-fee lines (by device id)."""
    return sorted(usage.devices, key=lambda d: d.device)


@dataclass(frozen=True)
class SummaryColumn:
    """A headline figure per device for a person: a meter total in a display unit."""

    title: str
    keys: tuple[str, ...]
    factor: int

    def value(self, device: DeviceUsage) -> Decimal:
        total = sum(device.meters.get(k, 0) for k in self.keys)
        return to_decimal(Fraction(total, self.factor))


SUMMARY_COLUMNS = (
    SummaryColumn("Jobs", (mk.JOBS,), 1),
    SummaryColumn("Pages", (mk.IMPRESSIONS,), 1),
    SummaryColumn("Media m²", (mk.TOTAL_MEDIA_AREA,), 1_000_000),
    SummaryColumn("Ink mL", (mk.TOTAL_INK,), 1_000),
    SummaryColumn("Scan/copy m²", (mk.SCANNED_AREA, mk.COPIED_AREA), 1_000_000),
    SummaryColumn("Material g", (mk.MATERIAL,), 1),
    SummaryColumn("Build h", (mk.BUILD_TIME,), 3_600),
)
"""The per-device summary of the PDF: exact conversions of the base-unit totals."""


def summary_columns(usage: PeriodUsage) -> list[SummaryColumn]:
    """The summary columns some device has a non-zero value in (jobs always)."""
    return [
        c
        for c in SUMMARY_COLUMNS
        if c.keys == (mk.JOBS,) or any(d.meters.get(k, 0) for d in usage.devices for k in c.keys)
    ]


def places(statement: Statement) -> int:
    return minor_unit(statement.currency)
