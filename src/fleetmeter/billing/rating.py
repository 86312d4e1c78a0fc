"""Rating: a price plan and a period's usage in, a statement out. Pure: no I/O, no clock.

The rules are stated once in docs/billing.md; in short:

- proration: a device's share of the period is active days / period days. The fixed fee
  is per device, times its share; allowances are per device, times its share, rounded to a
  whole base unit, and pooled over the contract's devices. Minimum charges and the minimum
  commitment are per contract, times the share of days on which any device was active;
- tiers price the billable quantity (quantity − pooled allowance);
- every line amount is rounded once, half up, to the currency's minor unit, from exact
  values; the total is the sum of the rounded lines.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from fleetmeter.billing._exact import round_half_up, round_to_int, to_decimal
from fleetmeter.billing.currency import minor_unit
from fleetmeter.billing.period import Period
from fleetmeter.billing.plan import Component, PricePlan, TierMode
from fleetmeter.billing.statement import LineKind, Statement, StatementLine, TierSlice
from fleetmeter.billing.usage import DeviceUsage, PeriodUsage


def rate(plan: PricePlan, usage: PeriodUsage, *, period: Period) -> Statement:
    """The statement of ``usage`` under ``plan`` for ``period``."""
    places = minor_unit(plan.currency)
    devices = sorted(usage.devices, key=lambda d: d.device)
    shares = {
        d.device: Fraction(period.active_days(d.added_on, d.removed_on), period.days)
        for d in devices
    }
    active: set[int] = set()
    for d in devices:
        active |= period.active_dates(d.added_on, d.removed_on)
    contract_share = Fraction(len(active), period.days)

    lines: list[StatementLine] = []
    if plan.fixed_fee is not None:
        lines += _fixed_fees(plan.fixed_fee, devices, period, places)
    usage_lines = [
        _usage_line(c, usage, devices, shares, period, contract_share, len(active), places)
        for c in plan.components
    ]
    lines += usage_lines
    if plan.minimum_commitment is not None:
        commitment = round_half_up(Fraction(plan.minimum_commitment) * contract_share, places)
        used = _sum(usage_lines, places)
        if used < commitment:
            lines.append(
                StatementLine(
                    kind=LineKind.MINIMUM_COMMITMENT,
                    label="Minimum commitment",
                    active_days=len(active),
                    period_days=period.days,
                    minimum=commitment,
                    minimum_applied=True,
                    usage_amount=used,
                    amount=round_half_up(Fraction(commitment) - Fraction(used), places),
                )
            )
    return Statement(
        plan=plan.name,
        currency=plan.currency,
        period=period,
        lines=tuple(lines),
        total=_sum(lines, places),
    )


def _sum(lines: list[StatementLine], places: int) -> Decimal:
    # Summed as rationals: a Decimal sum would round once past the context's 28 digits.
    return round_half_up(sum((Fraction(line.amount) for line in lines), Fraction()), places)


def _fixed_fees(
    fee: Decimal, devices: list[DeviceUsage], period: Period, places: int
) -> list[StatementLine]:
    out = []
    for d in devices:
        days = period.active_days(d.added_on, d.removed_on)
        if days == 0:
            continue
        out.append(
            StatementLine(
                kind=LineKind.FIXED_FEE,
                label="Fixed fee",
                device=d.device,
                unit_price=fee,
                active_days=days,
                period_days=period.days,
                amount=round_half_up(Fraction(fee) * Fraction(days, period.days), places),
            )
        )
    return out


def _usage_line(
    c: Component,
    usage: PeriodUsage,
    devices: list[DeviceUsage],
    shares: dict[str, Fraction],
    period: Period,
    contract_share: Fraction,
    contract_days: int,
    places: int,
) -> StatementLine:
    factor = c.factor
    quantity = usage.total(c.meter_keys())
    # Rounded per device to a whole base unit (mm², µL, s, ...) so the pooled allowance is
    # an exact number a person can check; the difference is at most half a base unit.
    included = sum(
        (round_to_int(Fraction(c.included) * factor * shares[d.device]) for d in devices), 0
    )
    billable = max(0, quantity - included)
    slices: tuple[TierSlice, ...] = ()
    if c.unit_price is not None:
        exact = Fraction(c.unit_price) * billable / factor
    else:
        slices = _tier_slices(c, billable)
        # Not the sum of the slices' subtotals: those may be display values (6 places).
        exact = _tiers_exact(c, billable)
    amount = round_half_up(exact, places)
    minimum: Decimal | None = None
    applied = False
    if c.minimum_charge is not None:
        minimum = round_half_up(Fraction(c.minimum_charge) * contract_share, places)
        if amount < minimum:
            amount, applied = minimum, True
    return StatementLine(
        kind=LineKind.USAGE,
        label=c.name,
        meter=str(c.meter),
        filter=c.filter_label,
        unit=c.display_unit,
        quantity=to_decimal(Fraction(quantity) / factor),
        included=to_decimal(Fraction(included) / factor),
        billable=to_decimal(Fraction(billable) / factor),
        unit_price=c.unit_price,
        tier_mode=c.tier_mode,
        tiers=slices,
        active_days=contract_days if c.minimum_charge is not None else None,
        period_days=period.days if c.minimum_charge is not None else None,
        minimum=minimum,
        minimum_applied=applied,
        amount=amount,
    )


def _bounds(c: Component) -> list[Fraction | None]:
    """Tier upper bounds in base units (``None``: open-ended)."""
    assert c.tiers is not None
    return [Fraction(t.up_to) * c.factor if t.up_to is not None else None for t in c.tiers]


def _tier_parts(c: Component, billable: int) -> list[tuple[int, Fraction]]:
    """(tier index, base-unit quantity priced at that tier), reached tiers only."""
    bounds = _bounds(c)
    if c.tier_mode is TierMode.VOLUME:
        if billable == 0:
            return []
        index = next(i for i, up in enumerate(bounds) if up is None or billable <= up)
        return [(index, Fraction(billable))]
    parts = []
    lower = Fraction(0)
    for i, upper in enumerate(bounds):
        if billable <= lower:
            break
        top = Fraction(billable) if upper is None else min(Fraction(billable), upper)
        parts.append((i, top - lower))
        lower = upper if upper is not None else lower
    return parts


def _tiers_exact(c: Component, billable: int) -> Fraction:
    assert c.tiers is not None
    tiers = c.tiers
    return sum(
        (Fraction(tiers[i].unit_price) * q / c.factor for i, q in _tier_parts(c, billable)),
        Fraction(),
    )


def _tier_slices(c: Component, billable: int) -> tuple[TierSlice, ...]:
    assert c.tiers is not None
    tiers = c.tiers
    out = []
    for i, q in _tier_parts(c, billable):
        price = tiers[i].unit_price
        above = Decimal(0) if i == 0 else tiers[i - 1].up_to
        assert above is not None
        out.append(
            TierSlice(
                tier=i,
                above=above,
                up_to=tiers[i].up_to,
                quantity=to_decimal(q / c.factor),
                unit_price=price,
                subtotal=to_decimal(Fraction(price) * q / c.factor),
            )
        )
    return tuple(out)
