"""The simulated powder-bed printers: deterministic from the seed, counters that are the sum of
the builds, a plausible production cell (build units, station, powder, agents), and alerts."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from fleetmeter.simulator.additive import (
    AdditiveFleet,
    AdditivePrinter,
    SimBuild,
    plan_additive,
)
from fleetmeter.simulator.printer import plan_fleet

START = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)


def cell(index: int = 0, seed: int = 1, days: float = 10, **kwargs: int) -> AdditivePrinter:
    printer = AdditiveFleet(seed=seed, count=index + 1, start=START, **kwargs)[index]
    printer.advance_to(START + timedelta(days=days))
    return printer


def test_same_seed_same_builds_however_the_clock_is_read() -> None:
    once = cell(days=6)
    stepwise = AdditiveFleet(seed=1, count=1, start=START)[0]
    t = START
    while t < START + timedelta(days=6):
        t += timedelta(minutes=37)
        stepwise.advance_to(min(t, START + timedelta(days=6)))
    assert once.truth() == stepwise.truth()
    assert len(once.builds) > 5
    assert cell(days=6, seed=2).truth() != once.truth()


def test_plans_are_cheap_and_unique() -> None:
    plans = plan_additive(seed=1, count=50)
    assert len({p.serial_number for p in plans}) == 50
    assert all(p.serial_number.startswith("AM") for p in plans)
    assert plan_additive(seed=1, count=3) == plans[:3]
    assert plan_additive(seed=1, count=0) == []


def test_lifetime_counters_are_initial_plus_the_builds() -> None:
    for index in range(3):
        printer = cell(index, days=20)
        initial, now = printer.initial_counters.meters(), printer.meters()
        builds = printer.builds
        assert now["jobs"] - initial["jobs"] == len(builds)
        assert now["build_time_s"] - initial["build_time_s"] == sum(b.print_time_s for b in builds)
        assert now["build_volume_mm3"] - initial["build_volume_mm3"] == sum(
            b.build_volume_mm3 for b in builds
        )
        powder = printer.powder.name
        used = sum(b.powder_used_g for b in builds)
        assert now[f"material.{powder}.g"] - initial[f"material.{powder}.g"] == used
        assert now["material_g"] - initial["material_g"] == used
        for agent in ("fusing_agent", "detailing_agent"):
            key = f"material.{agent}.total_ul"
            assert now[key] - initial[key] == sum(b.agent_used_ul[agent] for b in builds)
        assert now["material_ul"] - initial["material_ul"] == sum(
            sum(b.agent_used_ul.values()) for b in builds
        )


def test_builds_are_numbered_in_the_order_they_end() -> None:
    printer = cell(days=20)
    sequences = [b.sequence_number for b in printer.builds]
    first = printer.initial_counters.builds + 1
    assert sequences == list(range(first, first + len(sequences)))
    ends = [b.ended_at for b in printer.builds]
    assert ends == sorted(ends)
    assert len({b.uuid for b in printer.builds}) == len(printer.builds)


def _check_build(build: SimBuild) -> None:
    assert build.started_at is not None and build.printing_at is not None
    assert build.ended_at is not None
    assert build.submitted_at <= build.started_at < build.printing_at < build.ended_at
    assert build.print_time_s == build.ended_at - build.started_at
    if build.status == "completed":
        assert build.layers_done == build.layers_total
        assert build.powder_used_g == build.powder_full_g
        assert build.agent_used_ul == build.agents_full_ul
    else:
        # A failed or cancelled build used what it printed, and no more.
        assert 0 < build.layers_done < build.layers_total
        assert build.powder_used_g <= build.powder_full_g
        assert all(build.agent_used_ul[a] <= v for a, v in build.agents_full_ul.items())
    assert 0 < build.powder_used_g < build.powder_load_g
    assert build.build_unit is not None


def test_every_build_went_through_the_line() -> None:
    statuses: Counter[str] = Counter()
    for index in range(4):
        printer = cell(index, days=40)
        for build in printer.builds:
            _check_build(build)
            statuses[build.status] += 1
    assert statuses["completed"] > 100
    assert statuses["failed"] > 0


def test_the_cell_holds_together_at_any_instant() -> None:
    printer = AdditiveFleet(seed=4, count=1, start=START)[0]
    states: Counter[str] = Counter()
    locations: Counter[str] = Counter()
    for hour in range(0, 24 * 15):
        printer.advance_to(START + timedelta(hours=hour))
        state = printer.engine_state()
        states[state] += 1
        in_printer = [u for u in printer.units if u.location == "printer"]
        assert len(in_printer) <= 1
        if printer.state in ("warming", "printing"):
            assert printer.current is not None
            assert [u.serial_number for u in in_printer] == [printer.current.build_unit]
        for unit in printer.units:
            locations[unit.location] += 1
            if unit.state == "ready":
                assert unit.build is None and unit.powder_g == 0
            else:
                assert unit.powder_g > 0
        station = printer.station
        assert station.fresh_g >= 0 and station.recovered_g >= 0
        for cart in printer.cartridges:
            assert 0 <= cart.level_ul <= cart.spec.capacity_ul
    assert {"idle", "warming", "printing", "cooling"} <= set(states)
    assert {"storage", "printer", "cooling", "processing_station"} <= set(locations)


def test_alerts_of_every_kind_appear_and_clear() -> None:
    codes: Counter[str] = Counter()
    for index in range(6):
        printer = cell(index, days=60)
        for alert in printer.alerts:
            codes[alert.code] += 1
            if alert.cleared_at is not None:
                assert alert.cleared_at >= alert.raised_at
        # Everything but what is still wrong now has been cleared.
        active = printer.active_alerts()
        assert len(active) <= 3
    assert {"recoater_crash", "thermal_fault", "material_out", "material_low", "door_open"} <= set(
        codes
    )


def test_an_error_alert_stops_the_line() -> None:
    for index in range(6):
        printer = AdditiveFleet(seed=1, count=index + 1, start=START)[index]
        for hour in range(24 * 40):
            printer.advance_to(START + timedelta(hours=hour))
            if any(a.severity == "error" for a in printer.active_alerts()):
                assert printer.engine_state() == "error"
                assert printer.state not in ("warming", "printing")
                return
    pytest.fail("no error alert in 40 days of six printers")


def test_the_history_is_a_ring_buffer_and_truth_keeps_everything() -> None:
    printer = cell(days=20, build_buffer=5)
    assert len(printer.builds) > 5
    assert printer.recent_builds() == printer.builds[-5:]
    assert [j["job_uuid"] for j in printer.truth()["jobs"]] == [str(b.uuid) for b in printer.builds]


def test_nothing_random_is_drawn_when_the_state_is_read() -> None:
    printer = cell(days=3)
    before = printer.rng.getstate()
    printer.temperatures()
    printer.truth()
    printer.listed_alerts()
    assert printer.rng.getstate() == before


def test_additive_printers_leave_the_large_format_fleet_unchanged() -> None:
    # plan_fleet draws from its own stream: the same seed gives the same plotters whatever
    # else the simulator serves.
    assert plan_fleet(seed=1, count=3) == plan_fleet(seed=1, count=3)
    assert plan_fleet(seed=1, count=0) == []
    with pytest.raises(ValueError, match="count must be >= 0"):
        plan_fleet(seed=1, count=-1)
