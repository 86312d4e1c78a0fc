"""Reconciliation and late usage: what job records say against what devices count. Pure.

The portal feeds this module per statement; nothing here reads a database or a clock.

- :func:`reconcile` checks each device of a period: job-record totals against the increase
  of its lifetime counters over the span the counter readings cover, gaps in job sequence
  numbers, counters that went down (rollback or reset), and device swaps (another device in
  the same placement). Every discrepancy is a :class:`Flag` with its size.
- :func:`adjust_late_usage` prices usage that arrived after its period's statement closed:
  the closed period is re-rated with and without the late usage and the difference, line by
  line, is the :class:`Adjustment` the next open statement carries. Re-rating (instead of
  pricing the late quantity at a flat price) keeps allowances, tiers and minimums right: late
  usage inside an unused allowance costs nothing, and a minimum-commitment top-up already
  billed shrinks by what the late usage now covers.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from itertools import pairwise

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NonNegativeInt

from fleetmeter.billing import meters as mk
from fleetmeter.billing._exact import round_half_up
from fleetmeter.billing.currency import minor_unit
from fleetmeter.billing.period import Period
from fleetmeter.billing.plan import PricePlan
from fleetmeter.billing.rating import rate
from fleetmeter.billing.statement import LineKind, Statement, StatementLine

# The per-job meter mapping is usage_from_jobs's own (one place says what a job counts for);
# reconciliation needs it per instant span rather than per calendar period.
from fleetmeter.billing.usage import DeviceClass, DeviceUsage, PeriodUsage, _count
from fleetmeter.wire import JobRecord

MAX_RANGES = 50
"""Sequence gaps listed per device (the flag's size still counts all of them)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------------------- inputs


class Reading(_Frozen):
    """One lifetime-counter reading of a device (``LifetimeUsage.meters()`` names)."""

    meter: str
    read_at: AwareDatetime
    value: NonNegativeInt


class DeviceEvidence(_Frozen):
    """What the portal knows about one device for one statement period.

    ``active_from``/``active_to`` are the UTC instants of the device's part of the period.
    ``readings``: per meter, the last reading at or before ``active_from`` (the baseline) and
    every reading up to ``active_to``. ``jobs``: every stored job of the device completed from
    the earliest baseline reading to ``active_to`` (whichever statement billed it).
    ``previous_sequence``: the sequence number of its last job before ``active_from``.
    """

    device: str
    device_class: DeviceClass = "printer"
    active_from: AwareDatetime
    active_to: AwareDatetime
    jobs: tuple[JobRecord, ...] = ()
    readings: tuple[Reading, ...] = ()
    previous_sequence: NonNegativeInt | None = None


class Slot(_Frozen):
    """A device on a contract in a placement, ``[valid_from, valid_to)`` in local dates."""

    placement: str
    device: str
    valid_from: date
    valid_to: date | None = None


# ---------------------------------------------------------------------------- results


class FlagKind(StrEnum):
    COUNTER_MISMATCH = "counter_mismatch"
    """Job records and the counter increase over the same span differ (size: the difference)."""
    SEQUENCE_GAP = "sequence_gap"
    """Sequence numbers missing between the device's jobs (size: how many)."""
    COUNTER_RESET = "counter_reset"
    """A lifetime counter went down: rollback, reset or a board swap (size: the drop)."""
    DEVICE_SWAP = "device_swap"
    """Another device took over a placement in the period (size: days the placement was
    empty between the two, or both were on it; 0 for a same-day swap)."""
    NO_COUNTERS = "no_counters"
    """Jobs in the period but fewer than two counter readings to check them (size: jobs)."""
    LATE_USAGE = "late_usage"
    """Jobs of a closed period that arrived after it closed, carried here (size: jobs)."""


class Flag(_Frozen):
    """One discrepancy, with its size in ``unit`` and a one-line ``detail`` for a person."""

    kind: FlagKind
    device: str
    size: NonNegativeInt
    unit: str = Field(description="mm2, uL, page, job, g, s, sequence_number, day, ...")
    detail: str
    meter: str | None = None
    counters: int | None = Field(default=None, description="What the counters say.")
    jobs: int | None = Field(default=None, description="What the job records say.")
    difference: int | None = Field(default=None, description="counters − jobs.")
    since: datetime | None = None
    until: datetime | None = None
    ranges: tuple[tuple[int, int], ...] = Field(
        default=(), description="Sequence gaps: missing numbers, first and last of each run."
    )
    placement: str | None = None
    other_device: str | None = Field(default=None, description="Device swap: the one replaced.")
    period: Period | None = Field(default=None, description="Late usage: the period it is for.")

    @property
    def message(self) -> str:
        """The same one line as ``detail`` (the name exports' renderers read)."""
        return self.detail


class MeterCheck(_Frozen):
    """One meter of one device: job total against counter increase over ``(since, until]``."""

    meter: str
    since: datetime
    until: datetime
    counters: int
    jobs: int
    difference: int = Field(description="counters − jobs: > 0 jobs missing, < 0 jobs extra.")


class DeviceReconciliation(_Frozen):
    device: str
    jobs: NonNegativeInt = Field(description="Jobs completed in the device's part of the period.")
    sequence_first: int | None = None
    sequence_last: int | None = None
    sequence_missing: NonNegativeInt = 0
    meters: tuple[MeterCheck, ...] = ()
    flags: tuple[Flag, ...] = ()


class Reconciliation(_Frozen):
    """Every device's checks, and every flag (device flags, swaps, late usage) in one list."""

    period: Period
    devices: tuple[DeviceReconciliation, ...] = ()
    flags: tuple[Flag, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.flags


class AdjustmentLine(_Frozen):
    """How one line of a closed period's statement changes with the late usage."""

    kind: LineKind
    label: str
    device: str | None = None
    meter: str | None = None
    filter: str = ""
    unit: str | None = None
    quantity: Decimal | None = Field(default=None, description="Change of quantity.")
    billable: Decimal | None = Field(default=None, description="Change of billable quantity.")
    amount: Decimal = Field(description="Change of amount (after − before, both rounded once).")


class Adjustment(_Frozen):
    """Late usage of a closed ``period``, priced as the change it makes to that period."""

    period: Period
    plan: str
    currency: str
    jobs: NonNegativeInt
    first_completed_at: datetime | None = None
    last_completed_at: datetime | None = None
    usage: PeriodUsage = Field(description="The late usage alone, meters per device.")
    lines: tuple[AdjustmentLine, ...]
    amount: Decimal = Field(description="Sum of the line amounts.")


# ---------------------------------------------------------------------------- late usage


def add_usage(a: PeriodUsage, b: PeriodUsage) -> PeriodUsage:
    """Meter totals of ``a`` and ``b`` added per device (usage of disjoint job sets adds up).

    A device's active days come from ``a`` when it is in both (they describe the same
    contract slot).
    """
    out: dict[str, DeviceUsage] = {d.device: d for d in a.devices}
    for d in b.devices:
        seen = out.get(d.device)
        if seen is None:
            out[d.device] = d
            continue
        meters = Counter(seen.meters)
        meters.update(d.meters)
        out[d.device] = seen.model_copy(
            update={
                "meters": dict(sorted(meters.items())),
                "jobs_outside": seen.jobs_outside + d.jobs_outside,
            }
        )
    return PeriodUsage(devices=tuple(out[k] for k in sorted(out)))


def _key(line: StatementLine) -> tuple[str, str, str]:
    return (str(line.kind), line.label, line.device or "")


def _minus(after: Decimal | None, before: Decimal | None) -> Decimal | None:
    if after is None and before is None:
        return None
    return (after or Decimal(0)) - (before or Decimal(0))


def statement_difference(before: Statement, after: Statement) -> tuple[AdjustmentLine, ...]:
    """The lines of ``after`` that differ from ``before`` (matched by kind, label, device)."""
    places = minor_unit(after.currency)
    old = {_key(line): line for line in before.lines}
    new = {_key(line): line for line in after.lines}
    keys = [_key(line) for line in after.lines] + [k for k in old if k not in new]
    out = []
    for key in keys:
        a, b = new.get(key), old.get(key)
        shape = a or b
        assert shape is not None
        amount = round_half_up(
            Fraction(a.amount if a else 0) - Fraction(b.amount if b else 0), places
        )
        quantity = _minus(a.quantity if a else None, b.quantity if b else None)
        billable = _minus(a.billable if a else None, b.billable if b else None)
        if not amount and not quantity and not billable:
            continue
        out.append(
            AdjustmentLine(
                kind=shape.kind,
                label=shape.label,
                device=shape.device,
                meter=shape.meter,
                filter=shape.filter,
                unit=shape.unit,
                quantity=quantity,
                billable=billable,
                amount=amount,
            )
        )
    return tuple(out)


def adjust_late_usage(
    plan: PricePlan,
    *,
    period: Period,
    billed: PeriodUsage,
    late: PeriodUsage,
    first_completed_at: datetime | None = None,
    last_completed_at: datetime | None = None,
) -> Adjustment:
    """What ``late`` usage adds to ``period`` already billed with ``billed`` usage.

    ``billed`` is everything the period has been charged for so far: its closed statement's
    usage plus late usage already carried by other closed statements. Adjustments of one
    period therefore add up, whatever their number, to the statement the period would have
    had with all its usage on time.
    """
    before = rate(plan, billed, period=period)
    after = rate(plan, add_usage(billed, late), period=period)
    lines = statement_difference(before, after)
    places = minor_unit(plan.currency)
    return Adjustment(
        period=period,
        plan=plan.name,
        currency=plan.currency,
        jobs=sum(d.meters.get(mk.JOBS, 0) for d in late.devices),
        first_completed_at=first_completed_at,
        last_completed_at=last_completed_at,
        usage=late,
        lines=lines,
        amount=round_half_up(sum((Fraction(x.amount) for x in lines), Fraction()), places),
    )


# ---------------------------------------------------------------------------- reconcile


def meter_unit(meter: str) -> str:
    """The base unit of a meter key, for a flag's size."""
    for suffix, unit in (("_mm2", "mm2"), ("_ul", "uL"), ("_s", "s"), (".g", "g"), ("_g", "g")):
        if meter.endswith(suffix):
            return unit
    if meter.endswith("jobs"):
        return "job"
    return "page"


def reconcile(
    devices: Iterable[DeviceEvidence],
    *,
    period: Period,
    slots: Iterable[Slot] = (),
    adjustments: Iterable[Adjustment] = (),
) -> Reconciliation:
    """Check every device of a statement; flags come out ordered by device, then kind."""
    return assemble(
        [reconcile_device(d) for d in devices], period=period, slots=slots, adjustments=adjustments
    )


def assemble(
    results: Iterable[DeviceReconciliation],
    *,
    period: Period,
    slots: Iterable[Slot] = (),
    adjustments: Iterable[Adjustment] = (),
) -> Reconciliation:
    """A statement's reconciliation from per-device results (made one device at a time, so
    that a caller need not hold every device's jobs at once), swaps and late usage."""
    ordered = tuple(sorted(results, key=lambda r: r.device))
    flags = [f for r in ordered for f in r.flags]
    flags += swap_flags(slots, period)
    flags += late_usage_flags(adjustments)
    return Reconciliation(period=period, devices=ordered, flags=tuple(flags))


def reconcile_device(ev: DeviceEvidence) -> DeviceReconciliation:
    """One device's checks: counters against jobs, counter drops, sequence gaps."""
    jobs = list({j.job_uuid: j for j in ev.jobs}.values())
    in_period = [j for j in jobs if ev.active_from <= j.completed_at < ev.active_to]
    flags: list[Flag] = []
    checks: list[MeterCheck] = []

    by_meter: dict[str, list[Reading]] = defaultdict(list)
    for r in ev.readings:
        by_meter[r.meter].append(r)
    for meter in sorted(by_meter):
        # Only meters that jobs can account for; a counter like mono_impressions has no
        # job-side twin to compare with.
        if not mk.is_priced_key(meter):
            continue
        check, resets = _meter(ev, meter, sorted(by_meter[meter], key=lambda r: r.read_at), jobs)
        flags += resets
        if check is None:
            continue
        checks.append(check)
        if check.difference:
            more = "more" if check.difference > 0 else "less"
            flags.append(
                Flag(
                    kind=FlagKind.COUNTER_MISMATCH,
                    device=ev.device,
                    meter=meter,
                    size=abs(check.difference),
                    unit=meter_unit(meter),
                    counters=check.counters,
                    jobs=check.jobs,
                    difference=check.difference,
                    since=check.since,
                    until=check.until,
                    detail=f"{ev.device}: {meter} counters rose {check.counters}, job records "
                    f"add up to {check.jobs}: counters say {abs(check.difference)} {more}",
                )
            )
    if in_period and not checks:
        flags.append(
            Flag(
                kind=FlagKind.NO_COUNTERS,
                device=ev.device,
                size=len(in_period),
                unit="job",
                jobs=len(in_period),
                since=ev.active_from,
                until=ev.active_to,
                detail=f"{ev.device}: {len(in_period)} jobs but fewer than two counter "
                "readings to check them against",
            )
        )
    sequences = sorted({j.sequence_number for j in in_period})
    gap = _gaps(ev, sequences)
    if gap is not None:
        flags.append(gap)
    return DeviceReconciliation(
        device=ev.device,
        jobs=len(in_period),
        sequence_first=sequences[0] if sequences else None,
        sequence_last=sequences[-1] if sequences else None,
        sequence_missing=gap.size if gap is not None else 0,
        meters=tuple(checks),
        flags=tuple(flags),
    )


def _meter(
    ev: DeviceEvidence, meter: str, readings: Sequence[Reading], jobs: Sequence[JobRecord]
) -> tuple[MeterCheck | None, list[Flag]]:
    """The check of one meter over the span its readings cover, and its resets."""
    before = [i for i, r in enumerate(readings) if r.read_at <= ev.active_from]
    first = before[-1] if before else 0
    upto = [i for i, r in enumerate(readings) if r.read_at <= ev.active_to]
    if not upto or upto[-1] <= first:
        return None, []
    last = upto[-1]
    span = readings[first : last + 1]
    increase = 0
    resets: list[Flag] = []
    for prev, cur in pairwise(span):
        if cur.value >= prev.value:
            increase += cur.value - prev.value
            continue
        # A counter that went down restarted (from zero, as far as anyone can tell): what it
        # counts after the drop is new usage, and the drop itself is flagged.
        increase += cur.value
        resets.append(
            Flag(
                kind=FlagKind.COUNTER_RESET,
                device=ev.device,
                meter=meter,
                size=prev.value - cur.value,
                unit=meter_unit(meter),
                since=prev.read_at,
                until=cur.read_at,
                detail=f"{ev.device}: {meter} went down from {prev.value} to {cur.value} "
                f"between {prev.read_at.isoformat()} and {cur.read_at.isoformat()}",
            )
        )
    since, until = span[0].read_at, span[-1].read_at
    totals: Counter[str] = Counter()
    for job in jobs:
        # A reading counts every job completed up to the moment it was taken.
        if since < job.completed_at <= until:
            _count(totals, job, ev.device_class)
    counted = totals[meter]
    check = MeterCheck(
        meter=meter,
        since=since,
        until=until,
        counters=increase,
        jobs=counted,
        difference=increase - counted,
    )
    return check, resets


def _gaps(ev: DeviceEvidence, sequences: Sequence[int]) -> Flag | None:
    if not sequences:
        return None
    chain = list(sequences)
    # The last job before the period closes the gap at its start, unless numbering restarted.
    if ev.previous_sequence is not None and ev.previous_sequence < chain[0]:
        chain.insert(0, ev.previous_sequence)
    ranges = [(a + 1, b - 1) for a, b in pairwise(chain) if b > a + 1]
    if not ranges:
        return None
    missing = sum(b - a + 1 for a, b in ranges)
    shown = ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in ranges[:5])
    more = f" and {len(ranges) - 5} more runs" if len(ranges) > 5 else ""
    return Flag(
        kind=FlagKind.SEQUENCE_GAP,
        device=ev.device,
        size=missing,
        unit="sequence_number",
        ranges=tuple(ranges[:MAX_RANGES]),
        since=ev.active_from,
        until=ev.active_to,
        detail=f"{ev.device}: {missing} sequence numbers missing ({shown}{more})",
    )


def swap_flags(slots: Iterable[Slot], period: Period) -> list[Flag]:
    """A flag for each placement whose device changed in ``period``."""
    by_placement: dict[str, list[Slot]] = defaultdict(list)
    for s in slots:
        by_placement[s.placement].append(s)
    flags = []
    for placement in sorted(by_placement):
        ordered = sorted(by_placement[placement], key=lambda s: (s.valid_from, s.device))
        for old, new in pairwise(ordered):
            if old.device == new.device or not period.start <= new.valid_from < period.end:
                continue
            if old.valid_to is not None and old.valid_to <= new.valid_from:
                days = (new.valid_from - old.valid_to).days
                how = f"after {days} days empty" if days else "on the same day"
            else:
                stop = old.valid_to or period.end
                days = (min(stop, period.end) - new.valid_from).days
                how = f"with both on it for {days} days"
            flags.append(
                Flag(
                    kind=FlagKind.DEVICE_SWAP,
                    device=new.device,
                    other_device=old.device,
                    placement=placement,
                    size=days,
                    unit="day",
                    detail=f"{placement}: {new.device} replaced {old.device} on "
                    f"{new.valid_from} {how}",
                )
            )
    return flags


def late_usage_flags(adjustments: Iterable[Adjustment]) -> list[Flag]:
    """A flag per device and adjustment: how many late jobs it carries."""
    flags = []
    for adj in adjustments:
        for d in adj.usage.devices:
            count = d.meters.get(mk.JOBS, 0)
            if not count:
                continue
            flags.append(
                Flag(
                    kind=FlagKind.LATE_USAGE,
                    device=d.device,
                    size=count,
                    unit="job",
                    jobs=count,
                    period=adj.period,
                    since=adj.first_completed_at,
                    until=adj.last_completed_at,
                    detail=f"{d.device}: {count} jobs of {adj.period.start}..{adj.period.end} "
                    "arrived after that statement closed; carried here as an adjustment",
                )
            )
    return flags
