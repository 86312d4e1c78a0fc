"""Hand-computed statements: each test writes out the arithmetic a person would do."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from fleetmeter.billing import (
    DeviceUsage,
    LineKind,
    Period,
    PeriodUsage,
    Statement,
    rate,
    usage_from_jobs,
)
from tests.billing.helpers import job, one_device, plan

MARCH = Period.month(2026, 3)  # 31 days
D = Decimal


def amounts(statement: Statement) -> dict[str, Decimal]:
    """Line amounts by device (fixed fees) or label."""
    return {line.device or line.label: line.amount for line in statement.lines}


# ---------------------------------------------------------------------------- 1. per m²


def test_pure_per_square_metre_from_jobs_rounds_half_up() -> None:
    p = plan(
        'name = "Area"\ncurrency = "EUR"\n[[components]]\nname = "Media"\n'
        'meter = "media_area"\nunit_price = "0.55"\n'
    )
    jobs = [job(media_area_mm2=1_300_000), job(media_area_mm2=1_000_000)]
    usage = PeriodUsage(devices=(usage_from_jobs(jobs, device="D1", period=MARCH),))
    s = rate(p, usage, period=MARCH)
    # 1 300 000 + 1 000 000 mm² = 2 300 000 mm² = 2.3 m²
    # 2.3 × 0.55 = 1.265 → half up → 1.27 (half-even would say 1.26)
    (line,) = s.lines
    assert line.quantity == Decimal("2.3")
    assert line.billable == Decimal("2.3")
    assert line.amount == Decimal("1.27")
    assert str(line.amount) == "1.27"
    assert s.total == Decimal("1.27")


# ---------------------------------------------------------------------------- 2. per mL by colour

INK_PLAN = """
name = "Ink by colour"
currency = "EUR"
[[components]]
name = "Cyan"
meter = "ink"
color = "C"
unit = "mL"
unit_price = "0.12"
[[components]]
name = "Magenta"
meter = "ink"
color = "M"
unit_price = "0.12"
[[components]]
name = "Black"
meter = "ink"
color = "K"
unit_price = "0.09"
"""


def test_per_millilitre_by_colour() -> None:
    jobs = [job(ink_ul={"C": 40_000, "K": 100_000}), job(ink_ul={"C": 500, "K": 23_456})]
    usage = PeriodUsage(devices=(usage_from_jobs(jobs, device="D1", period=MARCH),))
    s = rate(plan(INK_PLAN), usage, period=MARCH)
    # Cyan:    40 000 + 500 µL = 40 500 µL = 40.5 mL × 0.12 = 4.86
    # Magenta: nothing used                              = 0.00
    # Black:   100 000 + 23 456 µL = 123.456 mL × 0.09 = 11.11104 → 11.11
    # Total:   4.86 + 0.00 + 11.11 = 15.97
    assert amounts(s) == {
        "Cyan": Decimal("4.86"),
        "Magenta": Decimal("0.00"),
        "Black": Decimal("11.11"),
    }
    assert [line.quantity for line in s.lines] == [Decimal("40.5"), Decimal(0), Decimal("123.456")]
    assert s.total == Decimal("15.97")


# ---------------------------------------------------------------------------- 3./4. tiers

TIERS = """
name = "Pages"
currency = "USD"
[[components]]
name = "Pages"
meter = "pages"
included = {included}
tier_mode = "{mode}"
tiers = [
  {{ up_to = 1000, unit_price = "0.05" }},
  {{ up_to = 5000, unit_price = "0.04" }},
  {{ unit_price = "0.03" }},
]
"""


def test_graduated_tiers() -> None:
    p = plan(TIERS.format(mode="graduated", included=0))
    s = rate(p, one_device({"impressions": 6200}), period=MARCH)
    # 1000 × 0.05 = 50.00
    # 4000 × 0.04 = 160.00   (pages 1001–5000)
    # 1200 × 0.03 = 36.00    (pages 5001–6200)
    # 50 + 160 + 36 = 246.00
    (line,) = s.lines
    assert line.amount == Decimal("246.00")
    assert [(t.tier, t.quantity, t.unit_price, t.subtotal) for t in line.tiers] == [
        (0, D(1000), D("0.05"), D(50)),
        (1, D(4000), D("0.04"), D(160)),
        (2, D(1200), D("0.03"), D(36)),
    ]
    assert [(t.above, t.up_to) for t in line.tiers] == [
        (D(0), D(1000)),
        (D(1000), D(5000)),
        (D(5000), None),
    ]


def test_graduated_tiers_price_what_is_left_after_the_allowance() -> None:
    p = plan(TIERS.format(mode="graduated", included=200))
    s = rate(p, one_device({"impressions": 6200}), period=MARCH)
    # billable = 6200 − 200 = 6000
    # 1000 × 0.05 + 4000 × 0.04 + 1000 × 0.03 = 50 + 160 + 30 = 240.00
    (line,) = s.lines
    assert (line.quantity, line.included, line.billable) == (D(6200), D(200), D(6000))
    assert line.amount == Decimal("240.00")


def test_graduated_tiers_stop_at_the_tier_reached() -> None:
    p = plan(TIERS.format(mode="graduated", included=0))
    (line,) = rate(p, one_device({"impressions": 999}), period=MARCH).lines
    # 999 × 0.05 = 49.95, one slice only
    assert line.amount == Decimal("49.95")
    assert len(line.tiers) == 1


@pytest.mark.parametrize(
    ("pages", "expected"),
    [
        (6200, "186.00"),  # reaches tier 3: 6200 × 0.03 = 186.00
        (5000, "200.00"),  # bounds are inclusive: 5000 is tier 2: 5000 × 0.04 = 200.00
        (5001, "150.03"),  # one more page reaches tier 3: 5001 × 0.03 = 150.03
        (1000, "50.00"),  # tier 1: 1000 × 0.05 = 50.00
        (0, "0.00"),  # nothing used, nothing owed, no slice
    ],
)
def test_volume_tiers(pages: int, expected: str) -> None:
    p = plan(TIERS.format(mode="volume", included=0))
    (line,) = rate(p, one_device({"impressions": pages}), period=MARCH).lines
    assert line.amount == Decimal(expected)
    assert len(line.tiers) == (1 if pages else 0)


# ------------------------------------------------------------ 5. allowance + commitment

COMMITTED = """
name = "Committed"
currency = "EUR"
minimum_commitment = "150.00"
[[components]]
name = "Bond"
meter = "media_area"
media_type = "bond"
included = 50
unit_price = "0.85"
"""


def test_allowance_and_minimum_commitment_top_up() -> None:
    usage = PeriodUsage(
        devices=(
            DeviceUsage(device="A", meters={"media.bond.area_mm2": 70_000_000}),
            DeviceUsage(device="B", meters={"media.bond.area_mm2": 60_000_000}),
        )
    )
    s = rate(plan(COMMITTED), usage, period=MARCH)
    # used:     70 + 60 = 130 m² (pooled)
    # included: 50 m² per device × 2 full-month devices = 100 m²
    # billable: 130 − 100 = 30 m² × 0.85 = 25.50
    # commitment 150.00 > 25.50 → top-up 150.00 − 25.50 = 124.50
    # total: 25.50 + 124.50 = 150.00
    bond, top_up = s.lines
    assert (bond.quantity, bond.included, bond.billable) == (D(130), D(100), D(30))
    assert bond.amount == Decimal("25.50")
    assert top_up.kind is LineKind.MINIMUM_COMMITMENT
    assert (top_up.minimum, top_up.usage_amount) == (Decimal("150.00"), Decimal("25.50"))
    assert top_up.amount == Decimal("124.50")
    assert s.total == Decimal("150.00")


def test_no_top_up_when_usage_reaches_the_commitment() -> None:
    s = rate(plan(COMMITTED), one_device({"media.bond.area_mm2": 250_000_000}), period=MARCH)
    # (250 − 50) m² × 0.85 = 170.00 ≥ 150.00: no commitment line
    assert [line.kind for line in s.lines] == [LineKind.USAGE]
    assert s.total == Decimal("170.00")


def test_usage_below_the_allowance_is_free() -> None:
    s = rate(plan(COMMITTED), one_device({"media.bond.area_mm2": 20_000_000}), period=MARCH)
    # 20 m² used, 50 included: billable 0, amount 0.00; top-up 150.00
    bond, top_up = s.lines
    assert (bond.billable, bond.amount, top_up.amount) == (D(0), D("0.00"), D("150.00"))


# ---------------------------------------------------------------------------- 6. mixed 2D/3D

MIXED = """
name = "Mixed 2D and 3D"
currency = "EUR"
fixed_fee = "10.00"
[[components]]
name = "Media"
meter = "media_area"
unit_price = "1.20"
[[components]]
name = "Ink"
meter = "ink"
unit_price = "0.10"
[[components]]
name = "PLA"
meter = "material_3d"
material = "PLA"
unit = "kg"
unit_price = "28.00"
[[components]]
name = "Material handling, all"
meter = "material_3d"
unit_price = "0.045"
[[components]]
name = "Build time"
meter = "build_hours"
included = 10
unit_price = "1.50"
[[components]]
name = "Print jobs"
meter = "jobs"
job_kind = "print"
unit_price = "0.25"
"""


def test_mixed_2d_and_3d_from_jobs() -> None:
    plotter = [
        job(media_area_mm2=2_000_000, ink_ul={"C": 1_500, "K": 2_500}, print_time_s=300),
        job(media_area_mm2=500_000, ink_ul={"K": 1_000}),
    ]
    farm = [
        job(filament_g=250, material="PLA", print_time_s=36_000, media_type="filament"),
        job(filament_g=1_250, material="PLA", print_time_s=54_000),
        job(material_used_g=90, material="PETG", print_time_s=5_400),
    ]
    usage = PeriodUsage(
        devices=(
            usage_from_jobs(plotter, device="DJ1", period=MARCH),
            usage_from_jobs(farm, device="MK4", period=MARCH, device_class="printer3d"),
        )
    )
    s = rate(plan(MIXED), usage, period=MARCH)
    # Fixed fee:  10.00 per device, both whole month                        = 10.00 + 10.00
    # Media:      2 000 000 + 500 000 mm² = 2.5 m² × 1.20                  = 3.00
    # Ink:        1500 + 2500 + 1000 µL = 5 mL × 0.10                      = 0.50
    # PLA:        250 + 1250 g = 1.5 kg × 28.00                            = 42.00
    # Material:   250 + 1250 + 90 g = 1590 g × 0.045                       = 71.55
    # Build time: 10 + 15 + 1.5 h = 26.5 h (the plotter's 300 s print time is not build
    #             time); included 10 h × 2 devices = 20 h; 6.5 h × 1.50    = 9.75
    # Print jobs: 5 × 0.25                                                 = 1.25
    # Total: 20.00 + 3.00 + 0.50 + 42.00 + 71.55 + 9.75 + 1.25             = 148.05
    assert amounts(s) == {
        "DJ1": Decimal("10.00"),
        "MK4": Decimal("10.00"),
        "Media": Decimal("3.00"),
        "Ink": Decimal("0.50"),
        "PLA": Decimal("42.00"),
        "Material handling, all": Decimal("71.55"),
        "Build time": Decimal("9.75"),
        "Print jobs": Decimal("1.25"),
    }
    build = next(line for line in s.lines if line.label == "Build time")
    assert (build.quantity, build.included, build.billable) == (
        Decimal("26.5"),
        Decimal(20),
        Decimal("6.5"),
    )
    assert s.total == Decimal("148.05")


def test_build_hours_that_are_not_a_finite_decimal_are_priced_exactly() -> None:
    p = plan(
        'name = "B"\ncurrency = "EUR"\n[[components]]\nname = "Build"\n'
        'meter = "build_hours"\nunit_price = "6"\n'
    )
    (line,) = rate(p, one_device({"build_time_s": 3}), period=MARCH).lines
    # 3 s = 3/3600 h = 0.000833… h; × 6.00 = 18/3600 = 0.005 exactly → half up → 0.01.
    # Had the quantity been rounded first (0.000833 × 6 = 0.004998) it would be 0.00.
    assert line.quantity == Decimal("0.000833")  # display only, 6 places
    assert line.amount == Decimal("0.01")


# ---------------------------------------------------------------------------- proration

PRORATED = """
name = "Prorated"
currency = "EUR"
fixed_fee = "49.00"
minimum_commitment = "150.00"
[[components]]
name = "Bond"
meter = "media_area"
media_type = "bond"
included = 50
unit_price = "0.85"
minimum_charge = "10.00"
"""


def test_fixed_fee_and_allowance_prorate_per_device() -> None:
    usage = PeriodUsage(
        devices=(
            DeviceUsage(device="A", meters={"media.bond.area_mm2": 200_000_000}),
            DeviceUsage(device="B", added_on=date(2026, 3, 10)),
            DeviceUsage(device="C", removed_on=date(2026, 3, 16)),
            DeviceUsage(device="D", removed_on=date(2026, 2, 20)),
        )
    )
    s = rate(plan(PRORATED), usage, period=MARCH)
    # A: 31/31 days; B: 10–31 March = 22 days; C: 1–15 March = 15 days; D: gone before March.
    # Fees: 49.00; 49 × 22/31 = 34.774… → 34.77; 49 × 15/31 = 23.709… → 23.71; D: no line.
    # Allowance, rounded per device to whole mm²:
    #   A 50 000 000; B 50 000 000 × 22/31 = 35 483 870.97 → 35 483 871;
    #   C 50 000 000 × 15/31 = 24 193 548.39 → 24 193 548;  D 0
    #   pooled: 109 677 419 mm² = 109.677419 m²
    # Bond: 200 − 109.677419 = 90.322581 m² × 0.85 = 76.77419385 → 76.77
    # Commitment: some device active on every day → 150.00 in full; 150.00 − 76.77 = 73.23
    # Total: 49.00 + 34.77 + 23.71 + 76.77 + 73.23 = 257.48
    fees = [line for line in s.lines if line.kind is LineKind.FIXED_FEE]
    assert [(f.device, f.active_days, f.amount) for f in fees] == [
        ("A", 31, Decimal("49.00")),
        ("B", 22, Decimal("34.77")),
        ("C", 15, Decimal("23.71")),
    ]
    bond = next(line for line in s.lines if line.kind is LineKind.USAGE)
    assert bond.included == Decimal("109.677419")
    assert bond.billable == Decimal("90.322581")
    assert bond.amount == Decimal("76.77")
    assert s.lines[-1].amount == Decimal("73.23")
    assert s.total == Decimal("257.48")


def test_minimums_prorate_by_the_days_any_device_was_active() -> None:
    usage = PeriodUsage(devices=(DeviceUsage(device="B", added_on=date(2026, 3, 10)),))
    s = rate(plan(PRORATED), usage, period=MARCH)
    # Only B, from 10 March: 22 of 31 days.
    # Fee 49 × 22/31 = 34.77; Bond: nothing used, minimum 10.00 × 22/31 = 7.096… → 7.10
    # Commitment 150 × 22/31 = 106.4516… → 106.45; usage lines 7.10 → top-up 99.35
    # Total: 34.77 + 7.10 + 99.35 = 141.22
    fee, bond, top_up = s.lines
    assert fee.amount == Decimal("34.77")
    assert (bond.minimum, bond.minimum_applied, bond.amount) == (
        Decimal("7.10"),
        True,
        Decimal("7.10"),
    )
    assert (bond.active_days, bond.period_days) == (22, 31)
    assert (top_up.minimum, top_up.amount) == (Decimal("106.45"), Decimal("99.35"))
    assert s.total == Decimal("141.22")


def test_overlapping_devices_do_not_count_a_day_twice_for_minimums() -> None:
    usage = PeriodUsage(
        devices=(
            DeviceUsage(device="X", added_on=date(2026, 3, 10), removed_on=date(2026, 3, 20)),
            DeviceUsage(device="Y", added_on=date(2026, 3, 15), removed_on=date(2026, 3, 25)),
        )
    )
    s = rate(plan(PRORATED), usage, period=MARCH)
    # X 10–19 March, Y 15–24 March: union 10–24 March = 15 days.
    # Commitment 150 × 15/31 = 72.580… → 72.58; Bond minimum 10 × 15/31 = 4.838… → 4.84
    bond, top_up = s.lines[2:]
    assert bond.amount == Decimal("4.84")
    assert top_up.minimum == Decimal("72.58")
    assert top_up.amount == Decimal("67.74")  # 72.58 − 4.84


def test_zero_decimal_currency_rounds_to_whole_yen() -> None:
    p = plan('name = "Y"\ncurrency = "JPY"\nfixed_fee = 1000\n')
    usage = PeriodUsage(devices=(DeviceUsage(device="B", added_on=date(2026, 3, 10)),))
    (fee,) = rate(p, usage, period=MARCH).lines
    # 1000 × 22/31 = 709.677… → 710 (no minor unit)
    assert str(fee.amount) == "710"


def test_a_device_with_no_active_days_gets_no_allowance() -> None:
    usage = PeriodUsage(
        devices=(
            DeviceUsage(
                device="gone", removed_on=date(2026, 3, 1), meters={"media.bond.area_mm2": 1}
            ),
        )
    )
    s = rate(plan(COMMITTED), usage, period=MARCH)
    # Usage that is given is rated (1 mm² × 0.85/m² = 0.00000085 → 0.00), but the device
    # brings no allowance, and no day of March was active: the commitment prorates to 0.
    bond, *rest = s.lines
    assert (bond.included, bond.amount) == (D(0), D("0.00"))
    assert rest == []
