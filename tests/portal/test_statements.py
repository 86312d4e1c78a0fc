"""Statements through the portal path: real wire batches ingested, a contract, statements
generated from the stored jobs. Each expected amount is the arithmetic a person would do.

Runs on SQLite and on PostgreSQL (``database_url``).
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fleetmeter import wire
from fleetmeter.billing import Period, PeriodUsage, Statement, parse_plan, rate, usage_from_jobs
from fleetmeter.billing.reconcile import FlagKind
from fleetmeter.portal.cli import main as portal_main
from fleetmeter.portal.services import statements
from fleetmeter.portal.services.statements import StatementClosedError, StatementError
from fleetmeter.portal.store.models import StatementRecord
from fleetmeter.wire.codec import encode_batch
from tests.portal.billing_builders import (
    D,
    Fleet,
    adjustment_amounts,
    amounts,
    batch_of,
    device_report,
    lifetime,
    pjob,
    utc,
)
from tests.portal.portal_builders import PASSWORD, Tenant

# --------------------------------------------------------------------------- plans

PER_M2 = """
name = "Area"
currency = "EUR"
[[components]]
name = "Media"
meter = "media_area"
unit_price = "0.55"
"""

INK = """
name = "Ink by colour"
currency = "EUR"
[[components]]
name = "Cyan"
meter = "ink"
color = "C"
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

TIERS = """
name = "Pages"
currency = "USD"
[[components]]
name = "Pages"
meter = "pages"
tier_mode = "{mode}"
tiers = [
  {{ up_to = 1000, unit_price = "0.05" }},
  {{ up_to = 5000, unit_price = "0.04" }},
  {{ unit_price = "0.03" }},
]
"""

CAD = """
name = "CAD studio"
currency = "EUR"
fixed_fee = "49.00"
minimum_commitment = "150.00"
[[components]]
name = "Bond paper"
meter = "media_area"
media_type = "bond"
included = 50
unit_price = "0.85"
"""

MIXED = """
name = "Plot room and print farm"
currency = "EUR"
[[components]]
name = "Bond paper"
meter = "media_area"
media_type = "bond"
unit_price = "0.85"
[[components]]
name = "PLA"
meter = "material_3d"
material = "PLA"
unit = "kg"
unit_price = "28.00"
[[components]]
name = "Build time"
meter = "build_hours"
included = 20
unit_price = "1.50"
"""

M2 = 1_000_000  # mm² in one m²


@pytest.fixture
def fleet(session_factory: sessionmaker[Session], tenant: Tenant) -> Fleet:
    return Fleet(session_factory, tenant)


# --------------------------------------------------------------------------- six plan shapes


def test_1_pure_per_square_metre_on_the_customers_calendar(fleet: Fleet) -> None:
    jobs = [
        # 23:30 UTC on 28 February is 00:30 on 1 March in Berlin: a March job.
        pjob(1, utc(2026, 2, 28, 23, 30), media_area_mm2=1_300_000),
        pjob(2, utc(2026, 3, 15, 12), media_area_mm2=1_000_000),
        # 22:30 UTC on 31 March is 00:30 on 1 April in Berlin (summer time): an April job.
        pjob(3, utc(2026, 3, 31, 22, 30), media_area_mm2=5_000_000),
    ]
    fleet.ingest(device_report("SG1", at=utc(2026, 4, 1, 6), jobs=jobs))
    fleet.contract(PER_M2, timezone="Europe/Berlin")
    fleet.place("SG1")
    doc = fleet.generate("2026-03")
    # 1 300 000 + 1 000 000 mm² = 2.3 m² × 0.55 = 1.265 → half up → 1.27
    (line,) = doc.statement.lines
    assert (line.quantity, line.amount) == (D("2.3"), D("1.27"))
    assert doc.total == D("1.27") and doc.jobs_billed == 2
    # April: 5 m² × 0.55 = 2.75
    assert fleet.generate("2026-04").total == D("2.75")


def test_2_per_millilitre_by_colour_from_two_devices_one_sent_over_http(
    fleet: Fleet, client: TestClient
) -> None:
    fleet.ingest(
        device_report(
            "SG1",
            at=utc(2026, 3, 20),
            jobs=[pjob(1, utc(2026, 3, 5), ink_ul={"C": 40_000, "K": 100_000})],
        )
    )
    # The second device's batch goes through the real ingest API and codec.
    second = batch_of(
        device_report(
            "SG2",
            at=utc(2026, 3, 20),
            jobs=[pjob(1, utc(2026, 3, 6), ink_ul={"C": 500, "K": 23_456})],
        )
    )
    response = client.post(
        "/api/v1/ingest/batches",
        content=encode_batch(second),
        headers={
            "Authorization": f"Bearer {fleet.tenant.token}",
            "Content-Type": "application/json",
            "Content-Encoding": "zstd",
        },
    )
    assert response.status_code == 200, response.text
    fleet.contract(INK)
    fleet.place("SG1")
    fleet.place("SG2")
    doc = fleet.generate("2026-03")
    # Cyan:    40 000 + 500 µL = 40.5 mL × 0.12 = 4.86
    # Magenta: nothing                        = 0.00
    # Black:   100 000 + 23 456 µL = 123.456 mL × 0.09 = 11.11104 → 11.11
    # Total:   4.86 + 0.00 + 11.11 = 15.97
    assert amounts(doc) == {"Cyan": D("4.86"), "Magenta": D("0.00"), "Black": D("11.11")}
    assert doc.total == D("15.97")
    assert [d.device for d in doc.usage.devices] == ["SG1", "SG2"]


def test_3_graduated_tiers(fleet: Fleet) -> None:
    jobs = [pjob(i, utc(2026, 3, 2 + i), pages=p) for i, p in enumerate([2500, 2500, 1200], 1)]
    fleet.ingest(device_report("SG1", at=utc(2026, 3, 30), jobs=jobs))
    fleet.contract(TIERS.format(mode="graduated"))
    fleet.place("SG1")
    (line,) = fleet.generate("2026-03").statement.lines
    # 2500 + 2500 + 1200 = 6200 pages
    # 1000 × 0.05 = 50.00;  4000 × 0.04 = 160.00;  1200 × 0.03 = 36.00
    # 50 + 160 + 36 = 246.00
    assert line.quantity == D(6200)
    assert [(t.quantity, t.subtotal) for t in line.tiers] == [
        (D(1000), D(50)),
        (D(4000), D(160)),
        (D(1200), D(36)),
    ]
    assert line.amount == D("246.00")


def test_4_volume_tiers_count_print_and_copy_pages_not_scans(fleet: Fleet) -> None:
    jobs = [
        pjob(1, utc(2026, 3, 3), pages=5000),
        pjob(2, utc(2026, 3, 4), pages=1000, kind=wire.JobKind.COPY),
        pjob(3, utc(2026, 3, 5), pages=200, kind=wire.JobKind.COPY),
        pjob(4, utc(2026, 3, 6), pages=999, kind=wire.JobKind.SCAN),
    ]
    fleet.ingest(device_report("SG1", at=utc(2026, 3, 30), jobs=jobs))
    fleet.contract(TIERS.format(mode="volume"))
    fleet.place("SG1")
    (line,) = fleet.generate("2026-03").statement.lines
    # Pages: 5000 printed + 1000 + 200 copied = 6200 (the scan's 999 pages are no impressions)
    # 6200 reaches the open tier: all 6200 × 0.03 = 186.00
    assert (line.quantity, line.amount) == (D(6200), D("186.00"))


def test_5_allowance_minimum_commitment_and_a_device_joining_mid_month(fleet: Fleet) -> None:
    fleet.ingest(
        device_report(
            "SGA",
            at=utc(2026, 3, 31, 12),
            jobs=[pjob(1, utc(2026, 3, 3), media_type="bond", media_area_mm2=100 * M2)],
        ),
        device_report(
            "SGB",
            at=utc(2026, 3, 31, 12),
            jobs=[
                # Before SGB joined (10 March): on no contract, never billed.
                pjob(1, utc(2026, 3, 9, 12), media_type="bond", media_area_mm2=500 * M2),
                pjob(2, utc(2026, 3, 20), media_type="bond", media_area_mm2=20 * M2),
            ],
        ),
    )
    fleet.contract(CAD, timezone="Europe/Berlin")
    fleet.place("SGA")
    fleet.place("SGB", on=date(2026, 3, 10))
    doc = fleet.generate("2026-03")
    # Fixed fees:  SGA 49.00 (31/31 days); SGB 49.00 × 22/31 = 34.774… → 34.77
    # Allowance:   SGA 50 m²; SGB 50 × 22/31 = 35.483870967… m² → 35 483 871 mm²
    #              pooled 85 483 871 mm² = 85.483871 m²
    # Bond:        100 + 20 = 120 m² − 85.483871 = 34.516129 m² × 0.85 = 29.33870965 → 29.34
    # Commitment:  a device was active on all 31 days: 150.00; usage 29.34 → top-up 120.66
    # Total:       49.00 + 34.77 + 29.34 + 120.66 = 233.77
    assert amounts(doc) == {
        "SGA": D("49.00"),
        "SGB": D("34.77"),
        "Bond paper": D("29.34"),
        "Minimum commitment": D("120.66"),
    }
    bond = doc.statement.lines[2]
    assert (bond.quantity, bond.included, bond.billable) == (
        D(120),
        D("85.483871"),
        D("34.516129"),
    )
    assert doc.total == D("233.77") and doc.jobs_billed == 2


def test_6_mixed_2d_and_3d(fleet: Fleet) -> None:
    fleet.ingest(
        device_report(
            "PLOT1",
            at=utc(2026, 3, 30),
            jobs=[
                # A plotter reports print time too: it is no build time.
                pjob(
                    1,
                    utc(2026, 3, 4),
                    media_type="bond",
                    media_area_mm2=10 * M2,
                    print_time_s=36_000,
                )
            ],
        ),
        device_report(
            "MK4-1",
            device_class="printer3d",
            at=utc(2026, 3, 30),
            jobs=[
                # The 3D drivers send grams as JobRecord extra fields.
                pjob(1, utc(2026, 3, 5), print_time_s=30 * 3600, filament_g=1500, material="PLA"),
                pjob(2, utc(2026, 3, 6), print_time_s=20 * 3600, filament_g=750, material="PLA"),
            ],
        ),
    )
    fleet.contract(MIXED)
    fleet.place("PLOT1")
    fleet.place("MK4-1")
    doc = fleet.generate("2026-03")
    # Bond:       10 m² × 0.85 = 8.50
    # PLA:        1500 + 750 g = 2.25 kg × 28.00 = 63.00
    # Build time: 30 + 20 = 50 h of the 3D printer only; 20 h included per device, and
    #             both devices bring it: 40 h → 10 h × 1.50 = 15.00
    # Total:      8.50 + 63.00 + 15.00 = 86.50
    assert amounts(doc) == {"Bond paper": D("8.50"), "PLA": D("63.00"), "Build time": D("15.00")}
    build = doc.statement.lines[2]
    assert (build.quantity, build.included, build.billable) == (D(50), D(40), D(10))
    assert doc.total == D("86.50")


# --------------------------------------------------------------------------- proration


def test_a_removed_device_is_billed_until_it_left(fleet: Fleet) -> None:
    jobs = [
        pjob(1, utc(2026, 3, 19, 12), media_area_mm2=2 * M2),
        pjob(2, utc(2026, 3, 20, 12), media_area_mm2=7 * M2),  # the day it left: not billed
    ]
    fleet.ingest(device_report("SG1", at=utc(2026, 3, 31), jobs=jobs))
    fleet.contract(PER_M2)
    fleet.place("SG1")
    fleet.unplace("SG1", on=date(2026, 3, 20))
    doc = fleet.generate("2026-03")
    # Active 1–19 March: 2 m² × 0.55 = 1.10; the 7 m² of 20 March are off the contract.
    assert doc.total == D("1.10") and doc.jobs_billed == 1
    assert doc.usage.devices[0].removed_on == date(2026, 3, 20)


def test_contract_dates_prorate_fees(fleet: Fleet) -> None:
    fleet.ingest(device_report("SG1", at=utc(2026, 3, 1)))
    plan = 'name = "Fee"\ncurrency = "EUR"\nfixed_fee = "31.00"\n'
    fleet.contract(plan, start=date(2026, 3, 11), end=date(2026, 3, 21))
    fleet.place("SG1", on=date(2026, 3, 11))
    # 11–20 March: 10 of 31 days × 31.00 = 10.00
    assert fleet.generate("2026-03").total == D("10.00")
    with pytest.raises(StatementError, match="outside the contract"):
        fleet.generate("2026-04")


# --------------------------------------------------------------------------- closing


def test_a_closed_statement_never_changes(
    fleet: Fleet, session_factory: sessionmaker[Session]
) -> None:
    fleet.ingest(
        device_report(
            "SG1", at=utc(2026, 3, 10), jobs=[pjob(1, utc(2026, 3, 9), media_area_mm2=M2)]
        )
    )
    fleet.contract(PER_M2)
    fleet.place("SG1")
    closed = fleet.close("2026-03")
    assert closed.status == "closed" and closed.closed_at is not None
    assert closed.total == D("0.55")
    # More March usage arrives, the plan changes: the closed statement stays as it was.
    fleet.ingest(
        device_report(
            "SG1", at=utc(2026, 4, 2), jobs=[pjob(2, utc(2026, 3, 20), media_area_mm2=M2)]
        )
    )
    with pytest.raises(StatementClosedError):
        fleet.generate("2026-03")
    again = fleet.close("2026-03")
    assert again.as_json() == closed.as_json()
    with session_factory() as s:
        record = s.scalar(select(StatementRecord).where(StatementRecord.id == closed.id))
        assert record is not None and record.closed_at == closed.closed_at
    # Nothing can reopen it through the service either.
    with session_factory() as s, pytest.raises(StatementClosedError):
        statements.generate_statement(
            s,
            reseller_id=fleet.tenant.reseller_id,
            contract_id=closed.contract_id,
            period=date(2026, 3, 31),
        )


def test_closing_picks_up_what_arrived_since_generation(fleet: Fleet) -> None:
    fleet.ingest(
        device_report(
            "SG1", at=utc(2026, 3, 10), jobs=[pjob(1, utc(2026, 3, 9), media_area_mm2=M2)]
        )
    )
    fleet.contract(PER_M2)
    fleet.place("SG1")
    assert fleet.generate("2026-03").total == D("0.55")
    fleet.ingest(
        device_report(
            "SG1", at=utc(2026, 3, 31), jobs=[pjob(2, utc(2026, 3, 30), media_area_mm2=M2)]
        )
    )
    # 2 m² × 0.55 = 1.10: stored before the close, so billed on time.
    closed = fleet.close("2026-03")
    assert closed.total == D("1.10") and closed.jobs_late == 0


# --------------------------------------------------------------------------- late usage


def test_late_jobs_are_carried_once_as_dated_adjustments(fleet: Fleet) -> None:
    fleet.ingest(
        device_report(
            "SG1", at=utc(2026, 3, 10), jobs=[pjob(1, utc(2026, 3, 9), media_area_mm2=M2)]
        )
    )
    fleet.contract(PER_M2)
    fleet.place("SG1")
    march = fleet.close("2026-03")
    # A collector offline for a week sends a March job in April, and an April job.
    late = pjob(2, utc(2026, 3, 28), media_area_mm2=3 * M2)
    b = fleet.ingest(
        device_report(
            "SG1", at=utc(2026, 4, 5), jobs=[late, pjob(3, utc(2026, 4, 3), media_area_mm2=2 * M2)]
        )
    )
    fleet.send(b)  # re-sent: stored once
    april = fleet.generate("2026-04")
    # April's own: 2 m² × 0.55 = 1.10. March's late 3 m²: 3 × 0.55 = 1.65, dated March.
    assert april.statement.total == D("1.10")
    assert adjustment_amounts(april) == [("2026-03-01", "Media", D("1.65"))]
    (adj,) = april.adjustments
    assert adj.first_completed_at == late.completed_at and adj.jobs == 1
    assert april.total == D("2.75") and april.jobs_late == 1
    assert [f.kind for f in april.reconciliation.flags].count(FlagKind.LATE_USAGE) == 1
    # Regenerating does not count it twice; closing April keeps it there.
    assert fleet.generate("2026-04").total == D("2.75")
    assert fleet.close("2026-04").total == D("2.75")
    # May has nothing to carry: March's late job is billed, by April.
    may = fleet.generate("2026-05")
    assert may.adjustments == () and may.total == D("0.00")
    assert set(fleet.billed_jobs().values()) == {1} and len(fleet.billed_jobs()) == 3
    # March itself never changed.
    assert fleet.close("2026-03").as_json() == march.as_json()


def test_later_adjustments_build_on_earlier_ones_so_they_add_up(fleet: Fleet) -> None:
    plan = """
name = "Allowance"
currency = "EUR"
[[components]]
name = "Media"
meter = "media_area"
included = 5
unit_price = "1.00"
"""
    fleet.ingest(
        device_report(
            "SG1", at=utc(2026, 3, 10), jobs=[pjob(1, utc(2026, 3, 9), media_area_mm2=3 * M2)]
        )
    )
    fleet.contract(plan)
    fleet.place("SG1")
    assert fleet.close("2026-03").total == D("0.00")  # 3 of 5 m² included
    fleet.ingest(
        device_report(
            "SG1", at=utc(2026, 4, 2), jobs=[pjob(2, utc(2026, 3, 20), media_area_mm2=4 * M2)]
        )
    )
    april = fleet.close("2026-04")
    # March had 3 m²; 4 m² more: 7 − 5 included = 2 m² × 1.00 = 2.00
    assert adjustment_amounts(april) == [("2026-03-01", "Media", D("2.00"))]
    fleet.ingest(
        device_report(
            "SG1", at=utc(2026, 5, 2), jobs=[pjob(3, utc(2026, 3, 21), media_area_mm2=4 * M2)]
        )
    )
    may = fleet.generate("2026-05")
    # March now 3 + 4 + 4 = 11 m² − 5 = 6 m² = 6.00, of which 2.00 went on April's: 4.00
    assert adjustment_amounts(may) == [("2026-03-01", "Media", D("4.00"))]
    # 0.00 + 2.00 + 4.00 = 6.00: March as if everything had come on time.
    charged = D("0.00") + april.adjustments[0].amount + may.adjustments[0].amount
    assert charged == D("6.00")


def test_late_jobs_go_to_the_earliest_open_statement(fleet: Fleet) -> None:
    fleet.ingest(
        device_report(
            "SG1", at=utc(2026, 3, 2), jobs=[pjob(1, utc(2026, 3, 1, 12), media_area_mm2=M2)]
        )
    )
    fleet.contract(PER_M2)
    fleet.place("SG1")
    fleet.close("2026-03")
    fleet.generate("2026-05")
    fleet.generate("2026-04")
    fleet.ingest(
        device_report("SG1", at=utc(2026, 5, 2), jobs=[pjob(2, utc(2026, 3, 2), media_area_mm2=M2)])
    )
    # May, though generated after the job arrived, leaves it to April, the earliest open one.
    assert fleet.generate("2026-05").adjustments == ()
    assert adjustment_amounts(fleet.generate("2026-04")) == [("2026-03-01", "Media", D("0.55"))]
    assert fleet.generate("2026-05").adjustments == ()


# --------------------------------------------------------------------------- reconciliation


def test_counters_that_agree_with_the_jobs_leave_nothing_to_flag(fleet: Fleet) -> None:
    first = [
        pjob(1, utc(2026, 3, 3), pages=4, media_type="bond", media_area_mm2=M2, ink_ul={"C": 10})
    ]
    second = [
        pjob(
            2,
            utc(2026, 3, 12),
            pages=6,
            media_type="bond",
            media_area_mm2=2 * M2,
            ink_ul={"C": 30, "K": 5},
        )
    ]
    fleet.ingest(device_report("SG1", at=utc(2026, 2, 27), usage=lifetime([], base=1000)))
    fleet.ingest(
        device_report("SG1", at=utc(2026, 3, 5), jobs=first, usage=lifetime(first, base=1000))
    )
    fleet.ingest(
        device_report(
            "SG1", at=utc(2026, 3, 20), jobs=second, usage=lifetime(first + second, base=1000)
        )
    )
    fleet.contract(PER_M2)
    fleet.place("SG1")
    doc = fleet.generate("2026-03")
    assert doc.reconciliation.flags == ()
    (device,) = doc.reconciliation.devices
    checked = {m.meter: (m.counters, m.jobs) for m in device.meters}
    # From the 27 February reading to the 20 March one: 4 + 6 pages, 1 + 2 m².
    assert checked["impressions"] == (10, 10)
    assert checked["total_media_area_mm2"] == (3 * M2, 3 * M2)
    # Per-colour and per-media counters first appear on 5 March (after job 1): from there,
    # job 2 alone: 30 µL cyan, 2 m² bond.
    assert checked["ink.C.total_ul"] == (30, 30)
    assert checked["media.bond.area_mm2"] == (2 * M2, 2 * M2)


def test_missing_jobs_show_as_a_sequence_gap_and_a_counter_difference(fleet: Fleet) -> None:
    jobs = [pjob(n, utc(2026, 3, n), pages=n) for n in (1, 2, 3, 4, 5)]
    kept = [jobs[0], jobs[1], jobs[4]]  # jobs 3 and 4 never reached the portal
    fleet.ingest(device_report("SG1", at=utc(2026, 2, 28), usage=lifetime([])))
    fleet.ingest(device_report("SG1", at=utc(2026, 3, 10), jobs=kept, usage=lifetime(jobs)))
    fleet.contract(PER_M2)
    fleet.place("SG1")
    flags = {f.kind: f for f in fleet.generate("2026-03").reconciliation.flags}
    # Sequence 1, 2, 5: 3 and 4 missing.
    assert flags[FlagKind.SEQUENCE_GAP].size == 2
    assert flags[FlagKind.SEQUENCE_GAP].ranges == ((3, 4),)
    # Pages: counters 1+2+3+4+5 = 15, jobs 1+2+5 = 8: 7 pages with no job record.
    mismatch = [
        f for f in fleet.generate("2026-03").reconciliation.flags if f.meter == "impressions"
    ]
    assert [(f.counters, f.jobs, f.difference) for f in mismatch] == [(15, 8, 7)]


def test_counter_reset_and_device_swap_are_flagged(fleet: Fleet) -> None:
    fleet.ingest(
        device_report(
            "OLD1",
            at=utc(2026, 3, 1, 1),
            usage=wire.LifetimeUsage(impressions=5000),
            address="10.0.0.7",
        )
    )
    fleet.ingest(
        device_report("OLD1", at=utc(2026, 3, 5), usage=wire.LifetimeUsage(impressions=5100))
    )
    fleet.ingest(
        device_report("OLD1", at=utc(2026, 3, 8), usage=wire.LifetimeUsage(impressions=40))
    )
    fleet.ingest(device_report("NEW1", at=utc(2026, 3, 12), address="10.0.0.7"))
    fleet.contract(PER_M2)
    fleet.place("OLD1")
    fleet.unplace("OLD1", on=date(2026, 3, 10))
    # No placement given: both default to their address, 10.0.0.7 — the same slot.
    fleet.place("NEW1", on=date(2026, 3, 10))
    flags = fleet.generate("2026-03").reconciliation.flags
    reset = next(f for f in flags if f.kind is FlagKind.COUNTER_RESET)
    # 5100 → 40: down by 5060.
    assert (reset.device, reset.meter, reset.size) == ("OLD1", "impressions", 5060)
    swap = next(f for f in flags if f.kind is FlagKind.DEVICE_SWAP)
    assert (swap.device, swap.other_device, swap.placement, swap.size) == (
        "NEW1",
        "OLD1",
        "10.0.0.7",
        0,
    )
    # Counters rose 100 + 40 = 140 pages with no job at all.
    mismatch = next(f for f in flags if f.kind is FlagKind.COUNTER_MISMATCH)
    assert (mismatch.counters, mismatch.jobs) == (140, 0)


# --------------------------------------------------------------------------- API


def _auth(email: str, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{email}:{password}".encode()).decode()}


def _problem(response: object, status: int) -> None:
    r = response  # an httpx.Response
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    assert r.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]


def test_statements_api_generate_get_list_close(fleet: Fleet, client: TestClient) -> None:
    fleet.ingest(
        device_report(
            "SG1", at=utc(2026, 3, 10), jobs=[pjob(1, utc(2026, 3, 9), media_area_mm2=M2)]
        )
    )
    contract_id = fleet.contract(PER_M2)
    fleet.place("SG1")
    me = _auth(fleet.tenant.email)
    r = client.post(
        f"/api/v1/contracts/{contract_id}/statements", json={"period": "2026-03"}, headers=me
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["total"], body["label"], body["currency"]) == (
        "open",
        "0.55",
        "2026-03",
        "EUR",
    )
    assert body["statement"]["lines"][0]["amount"] == "0.55"
    assert body["usage"]["devices"][0]["meters"]["total_media_area_mm2"] == M2
    assert body["devices"][0]["serial_number"] == "SG1"
    assert "flags" in body["reconciliation"]
    statement_id = body["id"]

    r = client.get(f"/api/v1/contracts/{contract_id}/statements", headers=me)
    assert [s["id"] for s in r.json()["items"]] == [statement_id]
    assert client.get(f"/api/v1/statements/{statement_id}", headers=me).json() == body

    closed = client.post(f"/api/v1/statements/{statement_id}/close", headers=me)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    again = client.post(f"/api/v1/statements/{statement_id}/close", headers=me)
    assert again.json() == closed.json()
    _problem(
        client.post(
            f"/api/v1/contracts/{contract_id}/statements", json={"period": "2026-03"}, headers=me
        ),
        409,
    )
    _problem(
        client.post(
            f"/api/v1/contracts/{contract_id}/statements", json={"period": "March"}, headers=me
        ),
        422,
    )
    _problem(
        client.post(
            f"/api/v1/contracts/{contract_id}/statements", json={"period": "2025-03"}, headers=me
        ),
        422,
    )


def test_statements_api_is_scoped_to_the_reseller(
    fleet: Fleet, other_tenant: Tenant, client: TestClient
) -> None:
    fleet.ingest(device_report("SG1", at=utc(2026, 3, 10)))
    contract_id = fleet.contract(PER_M2)
    fleet.place("SG1")
    statement_id = fleet.generate("2026-03").id
    them = _auth(other_tenant.email)
    for method, path, body in [
        ("GET", f"/api/v1/contracts/{contract_id}/statements", None),
        ("POST", f"/api/v1/contracts/{contract_id}/statements", {"period": "2026-03"}),
        ("GET", f"/api/v1/statements/{statement_id}", None),
        ("POST", f"/api/v1/statements/{statement_id}/close", None),
        ("GET", f"/api/v1/statements/{uuid.uuid4()}", None),
    ]:
        _problem(client.request(method, path, json=body, headers=them), 404)
    assert client.get("/api/v1/contracts", headers=them).json() == {"items": []}
    # Nothing of theirs was changed by the attempts.
    assert fleet.generate("2026-03").status == "open"
    _problem(client.get(f"/api/v1/statements/{statement_id}"), 401)


# --------------------------------------------------------------------------- CLI


def test_statement_command_json_csv_and_errors(
    fleet: Fleet, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.ingest(
        device_report(
            "SG1", at=utc(2026, 3, 10), jobs=[pjob(1, utc(2026, 3, 9), media_area_mm2=M2)]
        )
    )
    contract_id = str(fleet.contract(PER_M2))
    fleet.place("SG1")
    db = ["--database-url", database_url, "--data-dir", str(tmp_path)]

    code = portal_main(["statement", "--contract", contract_id, "--period", "2026-03", *db])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["total"] == "0.55"

    target = tmp_path / "march.csv"
    code = portal_main(
        [
            "statement",
            "--contract",
            contract_id,
            "--period",
            "2026-03",
            "--format",
            "csv",
            "--output",
            str(target),
            *db,
        ]
    )
    assert code == 0, capsys.readouterr().err
    rows = target.read_text().splitlines()
    assert rows[0].startswith("period_start,") and rows[1].endswith(",0.55")

    code = portal_main(
        ["portal", "close-statement", "--contract", contract_id, "--period", "2026-03", *db]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["status"] == "closed"
    code = portal_main(
        ["portal", "generate-statement", "--contract", contract_id, "--period", "2026-03", *db]
    )
    out, err = capsys.readouterr()
    assert code == 1 and "is closed" in err and "Traceback" not in err

    for argv, message in [
        (["statement", "--contract", "nope", "--period", "2026-03"], "contract ids are UUIDs"),
        (["statement", "--contract", str(uuid.uuid4()), "--period", "2026-03"], "no contract"),
        (["statement", "--contract", contract_id, "--period", "03/2026"], "write a month"),
    ]:
        code = portal_main([*argv, *db])
        out, err = capsys.readouterr()
        assert code == 1 and message in err and err.count("\n") == 1, err


# --------------------------------------------------------------------------- properties

PROPERTY_PLAN = """
name = "Property plan"
currency = "EUR"
fixed_fee = "20.00"
minimum_commitment = "15.00"
[[components]]
name = "Bond"
meter = "media_area"
media_type = "bond"
included = 3
unit_price = "0.85"
[[components]]
name = "Pages"
meter = "pages"
tier_mode = "graduated"
tiers = [{ up_to = 100, unit_price = "0.05" }, { unit_price = "0.0125" }]
[[components]]
name = "Cyan"
meter = "ink"
color = "C"
unit_price = "0.12"
"""
PROPERTY_DEVICES = ("PA", "PB")
PROPERTY_SETTINGS = settings(
    database=None,
    deadline=None,
    max_examples=12,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def property_jobs(
    draw: st.DrawFn, *, first: datetime, minutes: int
) -> list[tuple[str, wire.JobRecord]]:
    count = draw(st.integers(1, 14))
    out = []
    for i in range(count):
        kind = draw(st.sampled_from([wire.JobKind.PRINT, wire.JobKind.COPY, wire.JobKind.SCAN]))
        out.append(
            (
                draw(st.sampled_from(PROPERTY_DEVICES)),
                pjob(
                    i + 1,
                    first + timedelta(minutes=draw(st.integers(0, minutes))),
                    kind=kind,
                    pages=draw(st.integers(0, 150)),
                    media_type=draw(st.sampled_from(["bond", "photo"])),
                    media_area_mm2=draw(st.integers(0, 4_000_000)),
                    ink_ul={"C": draw(st.integers(0, 20_000))},
                ),
            )
        )
    return out


def _batches(jobs: list[tuple[str, wire.JobRecord]], groups: list[int]) -> list[wire.Batch]:
    by_group: dict[int, dict[str, list[wire.JobRecord]]] = {}
    for (serial, j), g in zip(jobs, groups, strict=True):
        by_group.setdefault(g, {}).setdefault(serial, []).append(j)
    return [
        batch_of(
            *(device_report(s, at=utc(2026, 4, 10), jobs=js) for s, js in sorted(devs.items()))
        )
        for _, devs in sorted(by_group.items())
    ]


def _oracle(jobs: list[tuple[str, wire.JobRecord]], period: Period) -> Statement:
    """The pure rating of the same jobs, straight from the wire models."""
    usage = PeriodUsage(
        devices=tuple(
            usage_from_jobs([j for s, j in jobs if s == serial], device=serial, period=period)
            for serial in PROPERTY_DEVICES
        )
    )
    return rate(parse_plan(PROPERTY_PLAN), usage, period=period)


BERLIN_MARCH = Period.month(2026, 3, timezone="Europe/Berlin")


@PROPERTY_SETTINGS
@given(data=st.data())
def test_property_statement_is_the_same_whatever_the_arrival_order_and_resends(
    session_factory: sessionmaker[Session], data: st.DataObject
) -> None:
    # Jobs from 27 February to 3 April: some fall outside March on the Berlin calendar.
    jobs = data.draw(property_jobs(first=utc(2026, 2, 27), minutes=36 * 24 * 60))
    groups = data.draw(st.lists(st.integers(0, 3), min_size=len(jobs), max_size=len(jobs)))
    batches = _batches(jobs, groups)
    order = data.draw(st.permutations(batches))
    resent = data.draw(st.lists(st.sampled_from(batches), max_size=3))
    requeued = data.draw(st.lists(st.sampled_from(batches), max_size=2))

    fleet = Fleet.new(session_factory)
    for b in order:
        fleet.send(b)
    for b in resent:
        fleet.send(b)  # same batch id: acknowledged, not stored
    for b in requeued:
        fleet.send(b.model_copy(update={"batch_id": uuid.uuid4()}))  # same jobs, new batch
    # Both devices exist from the first batch that named them; make sure both do.
    fleet.ingest(*(device_report(s, at=utc(2026, 4, 10)) for s in PROPERTY_DEVICES))
    fleet.contract(PROPERTY_PLAN, timezone="Europe/Berlin")
    for serial in PROPERTY_DEVICES:
        fleet.place(serial)
    doc = fleet.generate("2026-03")

    assert doc.statement == _oracle(jobs, BERLIN_MARCH)
    assert sum((line.amount for line in doc.statement.lines), D(0)) == doc.statement.total
    assert doc.total == doc.statement.total  # nothing late
    in_march = [
        j
        for _, j in jobs
        if BERLIN_MARCH.start <= BERLIN_MARCH.local_date(j.completed_at) < BERLIN_MARCH.end
    ]
    assert doc.jobs_billed == len(in_march)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_property_late_jobs_land_exactly_once_and_closing_is_idempotent(
    session_factory: sessionmaker[Session], data: st.DataObject
) -> None:
    # Jobs within March (UTC days 2–30, so March in Berlin as well), arriving in three waves:
    # before March closes, before April closes, after that.
    jobs = data.draw(property_jobs(first=utc(2026, 3, 2), minutes=28 * 24 * 60))
    waves = data.draw(st.lists(st.integers(0, 2), min_size=len(jobs), max_size=len(jobs)))

    def wave(n: int) -> None:
        part = [sj for sj, w in zip(jobs, waves, strict=True) if w == n]
        if part:
            for b in _batches(part, [0] * len(part)):
                fleet.send(b)

    fleet = Fleet.new(session_factory)
    fleet.ingest(*(device_report(s, at=utc(2026, 3, 1)) for s in PROPERTY_DEVICES))
    fleet.contract(PROPERTY_PLAN, timezone="Europe/Berlin")
    for serial in PROPERTY_DEVICES:
        fleet.place(serial)
    wave(0)
    march = fleet.close("2026-03")
    wave(1)
    april = fleet.close("2026-04")
    assert fleet.close("2026-04").as_json() == april.as_json()  # closing twice: no change
    assert fleet.close("2026-03").as_json() == march.as_json()  # late jobs never reopen it
    wave(2)
    may = fleet.generate("2026-05")

    billed = fleet.billed_jobs()
    assert set(billed.values()) <= {1} and len(billed) == len(jobs)
    late = [a for doc in (april, may) for a in doc.adjustments]
    assert all(a.period == BERLIN_MARCH for a in late)
    assert march.jobs_billed + sum(a.jobs for a in late) == len(jobs)
    # March closed + every adjustment carried for it = March rated with all jobs on time.
    charged = march.total + sum((a.amount for a in late), D(0))
    assert charged == _oracle(jobs, BERLIN_MARCH).total
    for doc in (march, april, may):
        grand = doc.statement.total + sum((a.amount for a in doc.adjustments), D(0))
        assert doc.total == grand
