"""usage_from_jobs: job fields to meters, dedup, the customer's calendar, active days, 3D extras."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from fleetmeter.billing import DeviceUsage, Period, PeriodUsage, UsageError, usage_from_jobs
from fleetmeter.wire import JobKind, JobStatus
from tests.billing.helpers import job

MARCH = Period.month(2026, 3)


def test_job_fields_map_to_meters() -> None:
    jobs = [
        job(
            pages=4,
            copies=2,
            media_type="bond",
            application_category="cad_lines",
            media_area_mm2=1_000,
            ink_ul={"C": 10, "K": 5},
        ),
        job(
            kind=JobKind.COPY, pages=1, media_area_mm2=50, scan_area_mm2=70, status=JobStatus.FAILED
        ),
        job(kind=JobKind.SCAN, pages=3, scan_area_mm2=300),
    ]
    usage = usage_from_jobs(jobs, device="D1", period=MARCH)
    assert usage.meters == {
        "jobs": 3,
        "print_jobs": 1,
        "scan.copy_jobs": 1,
        "scan.scan_jobs": 1,
        "impressions": 5,  # 4 + 1: a scan prints nothing
        "total_media_area_mm2": 1_050,
        "media.bond.area_mm2": 1_000,
        "category.cad_lines.area_mm2": 1_000,
        "total_ink_ul": 15,
        "ink.C.total_ul": 10,
        "ink.K.total_ul": 5,
        "scan.copied_area_mm2": 70,  # a failed job still counts what it used
        "scan.scanned_area_mm2": 300,
    }
    assert usage.jobs_outside == 0


def test_3d_material_from_extra_fields_and_build_time_only_on_3d_devices() -> None:
    jobs = [
        job(filament_g=12, material="PLA", print_time_s=600),
        job(material_used_g=30, print_time_s=60),
        job(filament_g=5, material_used_g=99),  # filament_g wins
    ]
    on_3d = usage_from_jobs(jobs, device="P", period=MARCH, device_class="printer3d")
    assert on_3d.meters == {
        "jobs": 3,
        "print_jobs": 3,
        "material_g": 47,
        "material.PLA.g": 12,
        "build_time_s": 660,
        "builds": 3,
    }
    on_2d = usage_from_jobs(jobs, device="P", period=MARCH)
    assert "build_time_s" not in on_2d.meters
    assert "builds" not in on_2d.meters


@pytest.mark.parametrize("bad", [12.5, -1, "12", True])
def test_a_material_quantity_that_is_not_whole_grams_is_refused(bad: object) -> None:
    with pytest.raises(UsageError, match="filament_g must be a whole number of grams"):
        usage_from_jobs([job(filament_g=bad)], device="P", period=MARCH)


def test_repeated_jobs_count_once() -> None:
    a, b = job(pages=1), job(pages=10)
    usage = usage_from_jobs([a, b, a, b.model_copy(), a], device="D", period=MARCH)
    assert usage.meters["impressions"] == 11
    assert usage.meters["jobs"] == 2


def test_two_different_jobs_under_one_uuid_are_refused() -> None:
    same = uuid.UUID(int=999_999)
    with pytest.raises(UsageError, match="appears twice with different content"):
        usage_from_jobs(
            [job(job_uuid=same, pages=1), job(job_uuid=same, pages=2)], device="D", period=MARCH
        )


def test_jobs_belong_to_the_period_on_the_customers_calendar() -> None:
    late_utc = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)  # 1 April 01:30 in Berlin (CEST)
    early_utc = datetime(2026, 2, 28, 23, 30, tzinfo=UTC)  # 1 March 00:30 in Berlin (CET)
    jobs = [job(completed_at=late_utc, pages=1), job(completed_at=early_utc, pages=100)]
    utc = usage_from_jobs(jobs, device="D", period=MARCH)
    berlin = usage_from_jobs(
        jobs, device="D", period=Period.month(2026, 3, timezone="Europe/Berlin")
    )
    assert (utc.meters["impressions"], utc.jobs_outside) == (1, 1)
    assert (berlin.meters["impressions"], berlin.jobs_outside) == (100, 1)


def test_jobs_outside_the_active_days_are_not_counted() -> None:
    def at(day: int) -> datetime:
        return datetime(2026, 3, day, 12, tzinfo=UTC)

    jobs = [job(completed_at=at(d), pages=d) for d in (5, 10, 19, 20)]
    usage = usage_from_jobs(
        jobs, device="D", period=MARCH, added_on=date(2026, 3, 10), removed_on=date(2026, 3, 20)
    )
    assert usage.meters["impressions"] == 10 + 19
    assert usage.jobs_outside == 2


def test_period_and_device_validation() -> None:
    with pytest.raises(ValueError, match="not an IANA time zone"):
        Period.month(2026, 3, timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="must be after start"):
        Period(start=date(2026, 3, 1), end=date(2026, 3, 1))
    with pytest.raises(ValueError, match="must be after added_on"):
        DeviceUsage(device="D", added_on=date(2026, 3, 5), removed_on=date(2026, 3, 5))
    with pytest.raises(ValueError, match="unknown meter 'toner_g'"):
        DeviceUsage(device="D", meters={"toner_g": 1})
    with pytest.raises(ValueError, match="'D' appears more than once"):
        PeriodUsage(devices=(DeviceUsage(device="D"), DeviceUsage(device="D")))


def test_calendar_periods() -> None:
    from fleetmeter.billing import BillingPeriod

    assert Period.month(2026, 12).end == date(2027, 1, 1)
    assert Period.month(2028, 2).days == 29
    q = Period.containing(date(2026, 8, 17), BillingPeriod.QUARTERLY)
    assert (q.start, q.end, q.days) == (date(2026, 7, 1), date(2026, 10, 1), 92)
    y = Period.containing(date(2026, 8, 17), BillingPeriod.YEARLY)
    assert (y.start, y.end) == (date(2026, 1, 1), date(2027, 1, 1))
