"""Reconciliation and late-usage adjustments, pure: each expected value is worked out by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetmeter.billing import DeviceUsage, LineKind, Period, PeriodUsage, rate
from fleetmeter.billing.reconcile import (
    DeviceEvidence,
    Flag,
    FlagKind,
    Reading,
    Slot,
    add_usage,
    adjust_late_usage,
    reconcile,
)
from tests.billing.helpers import job, plan

MARCH = Period.month(2026, 3)  # UTC, 31 days
START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 4, 1, tzinfo=UTC)


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


def evidence(**kw: Any) -> DeviceEvidence:
    kw.setdefault("device", "SG1")
    kw.setdefault("active_from", START)
    kw.setdefault("active_to", END)
    return DeviceEvidence(**kw)


def readings(meter: str, *points: tuple[datetime, int]) -> tuple[Reading, ...]:
    return tuple(Reading(meter=meter, read_at=t, value=v) for t, v in points)


def kinds(flags: tuple[Flag, ...]) -> list[str]:
    return [str(f.kind) for f in flags]


# ---------------------------------------------------------------------------- counters vs jobs


def test_counters_matching_the_jobs_raise_no_flag() -> None:
    jobs = (
        job(sequence_number=1, pages=3, completed_at=at(2)),
        job(sequence_number=2, pages=4, completed_at=at(9)),
    )
    # Baseline on 28 Feb (1000 pages), last reading on 20 March: 1000 + 3 + 4 = 1007.
    rs = readings("impressions", (START - timedelta(days=1), 1000), (at(20), 1007))
    result = reconcile([evidence(jobs=jobs, readings=rs)], period=MARCH)
    assert result.clean
    (device,) = result.devices
    (check,) = device.meters
    assert (check.counters, check.jobs, check.difference) == (7, 7, 0)
    assert (device.sequence_first, device.sequence_last, device.sequence_missing) == (1, 2, 0)


def test_missing_jobs_are_flagged_with_the_difference() -> None:
    jobs = (job(sequence_number=7, media_area_mm2=1_000_000, completed_at=at(5)),)
    rs = readings(
        "total_media_area_mm2", (at(1, 0), 50_000_000), (at(10), 52_500_000), (at(31), 52_500_000)
    )
    result = reconcile([evidence(jobs=jobs, readings=rs)], period=MARCH)
    # Counters rose 52 500 000 − 50 000 000 = 2 500 000 mm²; the one job says 1 000 000 mm²:
    # 1 500 000 mm² printed that no job record accounts for.
    (flag,) = result.flags
    assert flag.kind is FlagKind.COUNTER_MISMATCH
    assert (flag.meter, flag.counters, flag.jobs, flag.difference, flag.size, flag.unit) == (
        "total_media_area_mm2",
        2_500_000,
        1_000_000,
        1_500_000,
        1_500_000,
        "mm2",
    )
    assert flag.since == at(1, 0) and flag.until == at(31)
    assert "1500000 more" in flag.detail and flag.message == flag.detail


def test_only_jobs_the_readings_cover_are_compared() -> None:
    # Readings at 10:00 on 2 March and 10:00 on 30 March. A job at 09:00 on 2 March is in
    # the first reading already; one at 11:00 on 30 March is in neither: neither is compared.
    jobs = (
        job(sequence_number=1, pages=100, completed_at=at(2, 9)),
        job(sequence_number=2, pages=5, completed_at=at(15)),
        job(sequence_number=3, pages=100, completed_at=at(30, 11)),
    )
    rs = readings("impressions", (at(2, 10), 500), (at(30, 10), 505))
    result = reconcile([evidence(jobs=jobs, readings=rs)], period=MARCH)
    assert result.clean
    assert result.devices[0].meters[0].jobs == 5
    assert result.devices[0].jobs == 3


def test_counters_nobody_prices_are_not_compared() -> None:
    rs = readings("mono_impressions", (at(1), 1), (at(30), 99))
    rs += readings("ink.C.vendor_ul", (at(1), 1), (at(30), 99))
    result = reconcile([evidence(jobs=(job(completed_at=at(3)),), readings=rs)], period=MARCH)
    # No comparable counter: the job cannot be checked, and that is said.
    (flag,) = result.flags
    assert flag.kind is FlagKind.NO_COUNTERS and flag.size == 1


def test_a_single_reading_is_no_span_to_check() -> None:
    rs = readings("impressions", (at(1), 10))
    result = reconcile([evidence(jobs=(job(completed_at=at(3)),), readings=rs)], period=MARCH)
    assert kinds(result.flags) == ["no_counters"]
    # No jobs and no readings: nothing to say.
    assert reconcile([evidence()], period=MARCH).clean


def test_counter_reset_is_flagged_and_counting_restarts_from_zero() -> None:
    jobs = tuple(
        job(sequence_number=i, pages=p, completed_at=at(d))
        for i, (d, p) in enumerate([(5, 50), (12, 20), (20, 40)], start=1)
    )
    rs = readings("impressions", (at(1), 100), (at(10), 150), (at(15), 20), (at(25), 60))
    result = reconcile([evidence(jobs=jobs, readings=rs)], period=MARCH)
    # 100 → 150: +50; 150 → 20: the counter went down by 130 and restarted: +20;
    # 20 → 60: +40. Increase 50 + 20 + 40 = 110 = the jobs' 50 + 20 + 40.
    (flag,) = result.flags
    assert flag.kind is FlagKind.COUNTER_RESET
    assert (flag.size, flag.since, flag.until) == (130, at(10), at(15))
    assert result.devices[0].meters[0].counters == 110


# ---------------------------------------------------------------------------- sequence numbers


def test_sequence_gaps_count_from_the_last_job_before_the_period() -> None:
    jobs = tuple(
        job(sequence_number=n, completed_at=at(2 + i)) for i, n in enumerate([11, 12, 15, 19])
    )
    result = reconcile([evidence(jobs=jobs, previous_sequence=9)], period=MARCH)
    # 9 (February) → 11: 10 missing; 12 → 15: 13, 14; 15 → 19: 16, 17, 18. 1 + 2 + 3 = 6.
    gap = next(f for f in result.flags if f.kind is FlagKind.SEQUENCE_GAP)
    assert gap.size == 6
    assert gap.ranges == ((10, 10), (13, 14), (16, 18))
    assert result.devices[0].sequence_missing == 6


def test_numbering_that_restarted_is_not_a_gap_at_the_start() -> None:
    jobs = (job(sequence_number=1, completed_at=at(2)), job(sequence_number=2, completed_at=at(3)))
    result = reconcile([evidence(jobs=jobs, previous_sequence=4000)], period=MARCH)
    assert FlagKind.SEQUENCE_GAP not in [f.kind for f in result.flags]


def test_order_of_jobs_and_repeats_do_not_matter() -> None:
    jobs = [job(sequence_number=n, pages=n, completed_at=at(n)) for n in (1, 2, 4)]
    rs = readings("impressions", (at(1, 0), 0), (at(31), 9))
    one = reconcile([evidence(jobs=tuple(jobs), readings=rs)], period=MARCH)
    other = reconcile(
        [evidence(jobs=(jobs[2], jobs[0], jobs[1], jobs[0]), readings=rs[::-1])], period=MARCH
    )
    assert one == other
    # 1 + 2 + 4 = 7 pages in jobs, counters 9: 2 more; sequence 3 missing.
    assert sorted((str(f.kind), f.size) for f in one.flags) == [
        ("counter_mismatch", 2),
        ("sequence_gap", 1),
    ]


# ---------------------------------------------------------------------------- swaps


def test_device_swap_in_a_placement_is_flagged_with_the_days_between() -> None:
    slots = [
        Slot(
            placement="2nd floor",
            device="OLD1",
            valid_from=date(2026, 1, 1),
            valid_to=date(2026, 3, 10),
        ),
        Slot(placement="2nd floor", device="NEW1", valid_from=date(2026, 3, 12)),
        Slot(placement="lobby", device="LOB1", valid_from=date(2026, 1, 1)),
    ]
    (flag,) = reconcile([], period=MARCH, slots=slots).flags
    # OLD1 off from 10 March, NEW1 on from 12 March: 10 and 11 March had no device.
    assert flag.kind is FlagKind.DEVICE_SWAP
    assert (flag.device, flag.other_device, flag.placement, flag.size, flag.unit) == (
        "NEW1",
        "OLD1",
        "2nd floor",
        2,
        "day",
    )


def test_same_day_swap_is_size_zero_and_swaps_of_other_periods_are_not_flagged() -> None:
    same_day = [
        Slot(placement="P", device="A", valid_from=date(2026, 1, 1), valid_to=date(2026, 3, 5)),
        Slot(placement="P", device="B", valid_from=date(2026, 3, 5)),
    ]
    (flag,) = reconcile([], period=MARCH, slots=same_day).flags
    assert flag.size == 0 and "same day" in flag.detail
    february = [
        Slot(placement="P", device="A", valid_from=date(2026, 1, 1), valid_to=date(2026, 2, 5)),
        Slot(placement="P", device="B", valid_from=date(2026, 2, 5)),
    ]
    assert reconcile([], period=MARCH, slots=february).clean


# ---------------------------------------------------------------------------- late usage

ALLOWANCE_PLAN = """
name = "Bond with allowance"
currency = "EUR"
minimum_commitment = "30.00"
[[components]]
name = "Bond"
meter = "media_area"
media_type = "bond"
included = 10
unit_price = "2.00"
"""


def bond(device: str, m2: int) -> DeviceUsage:
    return DeviceUsage(
        device=device, meters={"media.bond.area_mm2": m2 * 1_000_000, "jobs": 1} if m2 else {}
    )


def test_late_usage_inside_the_allowance_costs_nothing_but_is_shown() -> None:
    p = plan(ALLOWANCE_PLAN)
    billed = PeriodUsage(devices=(bond("D1", 4),))
    late = PeriodUsage(devices=(bond("D1", 5),))
    adj = adjust_late_usage(p, period=MARCH, billed=billed, late=late)
    # March billed 4 m² of a 10 m² allowance: 0.00, and the commitment topped up 30.00.
    # With 5 m² more: 9 m², still inside the allowance: nothing changes but the quantity.
    (line,) = adj.lines
    assert (line.label, line.quantity, line.billable, line.amount) == (
        "Bond",
        Decimal(5),
        Decimal(0),
        Decimal("0.00"),
    )
    assert adj.amount == Decimal("0.00") and adj.jobs == 1


def test_late_usage_over_the_allowance_shrinks_the_commitment_top_up() -> None:
    p = plan(ALLOWANCE_PLAN)
    billed = PeriodUsage(devices=(bond("D1", 12),))
    late = PeriodUsage(devices=(bond("D1", 10),))
    adj = adjust_late_usage(p, period=MARCH, billed=billed, late=late)
    # Before: (12 − 10) × 2.00 = 4.00, commitment top-up 30.00 − 4.00 = 26.00, total 30.00.
    # After:  (22 − 10) × 2.00 = 24.00, top-up 30.00 − 24.00 = 6.00, total 30.00.
    # The late 10 m² cost 20.00 on the Bond line and 20.00 less top-up: 0.00 in all.
    assert [(line.kind, line.amount) for line in adj.lines] == [
        (LineKind.USAGE, Decimal("20.00")),
        (LineKind.MINIMUM_COMMITMENT, Decimal("-20.00")),
    ]
    assert adj.amount == Decimal("0.00")
    # Past the commitment it costs money: 30 m² more → (42 − 10) × 2.00 = 64.00, no top-up.
    adj = adjust_late_usage(
        p, period=MARCH, billed=billed, late=PeriodUsage(devices=(bond("D1", 30),))
    )
    # 64.00 − 30.00 already billed = 34.00.
    assert adj.amount == Decimal("34.00")


def test_add_usage_adds_meters_per_device() -> None:
    a = PeriodUsage(
        devices=(DeviceUsage(device="A", meters={"jobs": 2}, added_on=date(2026, 3, 4)),)
    )
    b = PeriodUsage(
        devices=(DeviceUsage(device="A", meters={"jobs": 1, "impressions": 3}), bond("B", 1))
    )
    both = add_usage(a, b)
    assert [(d.device, d.meters, d.added_on) for d in both.devices] == [
        ("A", {"impressions": 3, "jobs": 3}, date(2026, 3, 4)),
        ("B", {"jobs": 1, "media.bond.area_mm2": 1_000_000}, None),
    ]


def test_late_usage_flags_name_the_period_and_count_the_jobs() -> None:
    p = plan(ALLOWANCE_PLAN)
    adj = adjust_late_usage(
        p,
        period=MARCH,
        billed=PeriodUsage(devices=(bond("D1", 1),)),
        late=PeriodUsage(devices=(bond("D1", 1),)),
    )
    (flag,) = reconcile([], period=Period.month(2026, 4), adjustments=[adj]).flags
    assert (flag.kind, flag.device, flag.size, flag.period) == (FlagKind.LATE_USAGE, "D1", 1, MARCH)


TIERED_PLAN = """
name = "Tiered"
currency = "EUR"
fixed_fee = "10.00"
minimum_commitment = "40.00"
[[components]]
name = "Pages"
meter = "pages"
included = 100
tier_mode = "graduated"
tiers = [{ up_to = 500, unit_price = "0.013" }, { unit_price = "0.0075" }]
"""

PROPERTY = settings(
    database=None, deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY
@given(
    billed=st.integers(0, 3000),
    parts=st.lists(st.integers(0, 2000), min_size=1, max_size=5),
)
def test_adjustments_add_up_to_rating_everything_on_time(billed: int, parts: list[int]) -> None:
    """However late usage trickles in, the closed statement plus its adjustments is the
    statement the period would have had with all its usage on time."""
    p = plan(TIERED_PLAN)

    def pages(n: int) -> PeriodUsage:
        return PeriodUsage(devices=(DeviceUsage(device="D1", meters={"impressions": n}),))

    so_far = pages(billed)
    charged = rate(p, so_far, period=MARCH).total
    for n in parts:
        adj = adjust_late_usage(p, period=MARCH, billed=so_far, late=pages(n))
        assert adj.amount == sum((line.amount for line in adj.lines), Decimal(0))
        charged += adj.amount
        so_far = add_usage(so_far, pages(n))
    assert charged == rate(p, pages(billed + sum(parts)), period=MARCH).total
