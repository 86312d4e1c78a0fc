"""VirtualPrinter: determinism, the counter invariant, alerts and maintenance."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from fleetmeter.simulator.models import MODELS, NEUTRAL_COLORS
from fleetmeter.simulator.printer import VirtualPrinter, build_fleet
from fleetmeter.wire import JobKind, JobStatus

START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)  # a Monday


def _printer(model_index: int, *, seed: int = 7, job_buffer: int = 2000) -> VirtualPrinter:
    return VirtualPrinter(
        index=model_index,
        seed=seed,
        model=MODELS[model_index],
        serial_number=f"SG{10_000_000 + model_index}",
        start=START,
        job_buffer=job_buffer,
    )


def _expected_meters(printer: VirtualPrinter) -> dict[str, int]:
    """Initial counters + the sum over every job record, computed from the wire records."""
    exp = dict(printer.initial_counters.meters())
    for job in (j.to_wire() for j in printer.jobs):
        exp["jobs"] += 1
        exp["impressions"] += job.pages
        mono = all(c in NEUTRAL_COLORS for c, v in job.ink_ul.items() if v)
        exp["mono_impressions" if mono else "color_impressions"] += job.pages
        for color, ul in job.ink_ul.items():
            exp[f"ink.{color}.total_ul"] += ul
            exp[f"ink.{color}.vendor_ul"] += ul
            exp["total_ink_ul"] += ul
        if job.media_type is not None:
            exp[f"media.{job.media_type}.area_mm2"] += job.media_area_mm2
            exp[f"media.{job.media_type}.length_mm"] += job.media_length_mm or 0
            exp[f"media.{job.media_type}.impressions"] += job.pages
            exp["total_media_area_mm2"] += job.media_area_mm2
            exp["total_media_length_mm"] += job.media_length_mm or 0
        if job.kind is JobKind.SCAN:
            exp["scan.scan_jobs"] += 1
            exp["scan.scanned_area_mm2"] += job.scan_area_mm2
        elif job.kind is JobKind.COPY:
            exp["scan.copy_jobs"] += 1
            exp["scan.copied_area_mm2"] += job.scan_area_mm2
    # Insertions are driven by cartridge replacements, not jobs.
    for color in printer.colors:
        exp[f"ink.{color}.insertions"] = printer.counters.insertions[color]
    return exp


def test_same_seed_gives_same_fleet_and_same_jobs_however_it_is_advanced() -> None:
    a = build_fleet(seed=3, count=4, start=START)
    b = build_fleet(seed=3, count=4, start=START)
    assert [(p.serial_number, p.model.name) for p in a] == [
        (p.serial_number, p.model.name) for p in b
    ]
    end = START + timedelta(days=3)
    for p in a:
        p.advance_to(end)  # one big step
    step = timedelta(minutes=7, seconds=13)
    t = START
    while t < end:  # many small irregular steps
        t = min(end, t + step)
        for p in b:
            p.advance_to(t)
    for pa, pb in zip(a, b, strict=True):
        assert pa.jobs, "a printer should print within three days"
        assert [j.truth() for j in pa.jobs] == [j.truth() for j in pb.jobs]
        assert [j.to_wire() for j in pa.jobs] == [j.to_wire() for j in pb.jobs]
        assert pa.meters() == pb.meters()


def test_another_seed_gives_another_fleet() -> None:
    a = build_fleet(seed=1, count=5, start=START)
    b = build_fleet(seed=2, count=5, start=START)
    assert [p.serial_number for p in a] != [p.serial_number for p in b]


def test_fleet_identity_is_plausible() -> None:
    fleet = build_fleet(seed=1, count=30, start=START)
    serials = [p.serial_number for p in fleet]
    assert len(set(serials)) == 30
    assert all(s.startswith("SG") and s[2:].isdigit() for s in serials)
    assert {p.model.name for p in fleet} == {m.name for m in MODELS}
    for p in fleet:
        assert 4 <= len(p.model.inks) <= 9
        assert p.counters.impressions > 0 and p.counters.total_ink_ul > 0


@pytest.mark.parametrize("model_index", range(len(MODELS)), ids=[m.name for m in MODELS])
def test_counters_are_initial_plus_sum_of_jobs_after_a_long_run(model_index: int) -> None:
    printer = _printer(model_index)
    initial_insertions = dict(printer.counters.insertions)
    t = START
    for _ in range(12):  # 12 × 10 days, checking the invariant along the way
        t += timedelta(days=10)
        printer.advance_to(t)
        assert printer.meters() == _expected_meters(printer)
    jobs = printer.jobs
    assert len(jobs) > 300
    # Sequence numbers strictly increase by one; UUIDs are unique; time moves forward.
    seqs = [j.sequence_number for j in jobs]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert seqs[0] == printer.initial_counters.jobs + 1
    assert len({j.job_uuid for j in jobs}) == len(jobs)
    assert all(a.completed_at <= b.completed_at for a, b in itertools.pairwise(jobs))
    for job in jobs:
        assert job.submitted_at < job.completed_at
        assert job.duration_s >= job.print_time_s
        assert job.printed_area_mm2 <= job.media_area_mm2
        if job.media_width_mm is not None:
            assert job.media_area_mm2 == job.media_width_mm * (job.media_length_mm or 0)
        assert all(0 <= v <= 1_000_000 for v in job.pixel_coverage_ppm.values())
    # Cartridges ran out and were replaced over 120 days: insertions grew, never shrank.
    grown = [c for c in printer.colors if printer.counters.insertions[c] > initial_insertions[c]]
    assert grown
    assert all(printer.counters.insertions[c] >= initial_insertions[c] for c in printer.colors)
    for cart in printer.cartridges:
        assert 0 <= cart.level_ul <= cart.spec.capacity_ul
    for head in printer.printheads:
        assert 0 <= head.health_percent <= 100
    statuses = Counter(j.status for j in jobs)
    assert statuses[JobStatus.COMPLETED] > 0.9 * len(jobs)
    assert statuses[JobStatus.CANCELLED] > 0
    if printer.model.mfp:
        kinds = Counter(j.kind for j in jobs)
        assert kinds[JobKind.SCAN] > 0 and kinds[JobKind.COPY] > 0


def test_jobs_follow_the_working_day() -> None:
    printer = _printer(1)
    printer.advance_to(START + timedelta(days=56))
    by_hour: Counter[str] = Counter()
    for job in printer.jobs:
        t = START + timedelta(seconds=job.submitted_at - int(START.timestamp()))
        if t.weekday() < 5:
            by_hour["day" if 8 <= t.hour < 18 else "night" if t.hour < 6 else "other"] += 1
    assert by_hour["day"] > 5 * by_hour["night"]
    per_working_hour = by_hour["day"] / (40 * 10)
    assert 1 <= per_working_hour <= 8  # "a few per hour"


def test_alerts_are_raised_and_cleared() -> None:
    printer = _printer(0)  # T830: small cartridges, one roll
    printer.advance_to(START + timedelta(days=120))
    codes = Counter(e.code.split(".")[0] for e in printer.events)
    assert codes["61"] > 0  # cartridge low / empty / replaced
    # Alerts clear: only a few are active at any moment, never stale duplicates.
    assert len(printer.alerts) <= len(printer.colors) * 2 + len(printer.rolls) + 3


def test_advance_never_goes_backwards() -> None:
    printer = _printer(2)
    printer.advance_to(START + timedelta(days=2))
    jobs = len(printer.jobs)
    now = printer.now
    printer.advance_to(START)
    assert printer.now == now and len(printer.jobs) == jobs
