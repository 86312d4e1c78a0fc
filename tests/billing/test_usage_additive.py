"""3D meters from industrial builds: agents by volume, builds, build volume, and a mixed
contract priced from job records as the ``additive`` driver sends them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fleetmeter.billing import Period, PeriodUsage, PlanError, UsageError, rate, usage_from_jobs
from fleetmeter.billing import meters as mk
from fleetmeter.wire import JobRecord, JobStatus, LifetimeUsage, MaterialUsage
from tests.billing.helpers import job, plan

MARCH = Period.month(2026, 3)


def build(**fields: object) -> JobRecord:
    """A finished powder-bed build as the additive driver sends it (3D extras included)."""
    base: dict[str, object] = {
        "material": "PA12",
        "material_used_g": 2_500,
        "agent_used_ul": {"fusing_agent": 240_000, "detailing_agent": 90_000},
        "build_volume_mm3": 18_000_000,
        "print_time_s": 5 * 3600,
    }
    base.update(fields)
    return job(**base)


def test_builds_map_to_3d_meters() -> None:
    builds = [build(), build(status=JobStatus.FAILED, material_used_g=500, print_time_s=3600)]
    usage = usage_from_jobs(builds, device="AM1", period=MARCH, device_class="printer3d")
    assert usage.meters == {
        "jobs": 2,
        "print_jobs": 2,
        "builds": 2,
        "build_time_s": 6 * 3600,
        "build_volume_mm3": 36_000_000,
        "material_g": 3_000,
        "material.PA12.g": 3_000,
        "material_ul": 660_000,
        "material.fusing_agent.total_ul": 480_000,
        "material.detailing_agent.total_ul": 180_000,
    }


def test_2d_jobs_are_no_builds() -> None:
    usage = usage_from_jobs([job(pages=2, print_time_s=60)], device="DJ", period=MARCH)
    assert "builds" not in usage.meters and "build_time_s" not in usage.meters


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"agent_used_ul": {"fusing_agent": 1.5}}, "agent_used_ul.fusing_agent must be a whole"),
        ({"agent_used_ul": {"fusing_agent": -1}}, "whole number of microlitres"),
        ({"agent_used_ul": [1, 2]}, "must map names to microlitres"),
        ({"agent_used_ul": {"": 1}}, "empty name"),
        ({"build_volume_mm3": 1.5}, "build_volume_mm3 must be a whole number"),
        ({"build_volume_mm3": True}, "build_volume_mm3 must be a whole number"),
    ],
)
def test_bad_3d_quantities_are_refused(extra: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        usage_from_jobs([build(**extra)], device="AM1", period=MARCH, device_class="printer3d")


def test_lifetime_counters_and_job_sums_use_the_same_meter_keys() -> None:
    # Reconciliation compares counter deltas with job sums key by key: every 3D counter the
    # wire model flattens must be a key billing prices.
    usage = LifetimeUsage(
        jobs=10,
        build_time_s=1,
        build_volume_mm3=2,
        material_g=3,
        material_ul=4,
        by_material=[
            MaterialUsage(material="PA12", used_g=3),
            MaterialUsage(material="fusing_agent", used_ul=4),
        ],
    )
    for key in usage.meters():
        assert mk.is_priced_key(key), key


MIXED = """
name = "Mixed 2D/3D"
currency = "EUR"
[[components]]
name = "Media"
meter = "media_area"
unit_price = "1.00"
[[components]]
name = "PA12"
meter = "material_3d"
material = "PA12"
unit = "kg"
unit_price = "60.00"
[[components]]
name = "Fusing agent"
meter = "material_3d_volume"
material = "fusing_agent"
unit = "L"
unit_price = "80.00"
[[components]]
name = "Agents, all"
meter = "material_3d_volume"
unit_price = "0.01"
[[components]]
name = "Builds"
meter = "builds"
unit_price = "15.00"
[[components]]
name = "Build volume"
meter = "build_volume"
unit = "L"
unit_price = "0.50"
[[components]]
name = "Build time"
meter = "build_hours"
unit_price = "2.00"
"""


def test_a_mixed_contract_prices_builds_beside_plotter_jobs() -> None:
    plotter = [job(media_area_mm2=3_000_000, print_time_s=600)]
    cell = [build(), build(material_used_g=1_500, agent_used_ul={"fusing_agent": 60_000})]
    usage = PeriodUsage(
        devices=(
            usage_from_jobs(plotter, device="DJ1", period=MARCH),
            usage_from_jobs(cell, device="AM1", period=MARCH, device_class="printer3d"),
        )
    )
    s = rate(plan(MIXED), usage, period=MARCH)
    lines = {line.label: line.amount for line in s.lines}
    # Media: 3 m² × 1.00 = 3.00; PA12: 4 kg × 60 = 240.00;
    # Fusing agent: 0.3 L × 80 = 24.00; agents: 390 mL × 0.01 = 3.90;
    # Builds: 2 × 15 = 30.00 (the plotter's job is no build);
    # Build volume: 36 L × 0.50 = 18.00; build time: 10 h × 2 = 20.00 (not the plotter's).
    assert lines == {
        "Media": Decimal("3.00"),
        "PA12": Decimal("240.00"),
        "Fusing agent": Decimal("24.00"),
        "Agents, all": Decimal("3.90"),
        "Builds": Decimal("30.00"),
        "Build volume": Decimal("18.00"),
        "Build time": Decimal("20.00"),
    }


def test_material_filters_are_for_material_meters_only() -> None:
    with pytest.raises(PlanError, match="only components with meter"):
        plan(MIXED.replace('meter = "builds"', 'meter = "builds"\nmaterial = "PA12"'))
