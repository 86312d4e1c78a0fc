"""The per-device schedule: stable, spread offsets; never two usage polls within the interval."""

from __future__ import annotations

import random
from collections import Counter

from fleetmeter.collector.scheduler import JITTER_FRACTION, Scheduler, next_slot, phase
from fleetmeter.wire import ReportKind

USAGE_S = 180 * 60.0
HEALTH_S = 5 * 60.0


def test_offsets_are_stable_and_spread_over_the_interval() -> None:
    keys = [("ledm", f"CN{n:08d}", "10.0.0.1") for n in range(1000)]
    phases = [phase(key, ReportKind.USAGE) for key in keys]
    assert phases == [phase(key, ReportKind.USAGE) for key in keys]  # stable (not hash())
    assert all(0 <= p < 1 for p in phases)
    # Serials that differ in one digit land all over the interval: 10 buckets, none empty
    # and none with more than twice its share.
    buckets = Counter(int(p * 10) for p in phases)
    assert len(buckets) == 10 and max(buckets.values()) < 200 and min(buckets.values()) > 50
    # Health has its own phase; the address does not change a device's phase.
    assert phase(keys[0], ReportKind.HEALTH) != phase(keys[0], ReportKind.USAGE)
    assert phase(("ledm", "CN00000000", "10.9.9.9"), ReportKind.USAGE) == phases[0]


def test_next_slot() -> None:
    assert next_slot(100.0, 60.0, 10.0) == 130.0
    assert next_slot(130.0, 60.0, 10.0) == 130.0
    assert next_slot(131.0, 60.0, 10.0) == 190.0


def test_devices_poll_at_their_own_times_never_within_the_usage_interval() -> None:
    scheduler = Scheduler(usage_s=USAGE_S, health_s=HEALTH_S, rng=random.Random(1))
    now = 1_000_000.0
    keys = [("ledm", f"SN{n}", f"10.0.0.{n}") for n in range(50)]
    for key in keys:
        scheduler.add(key, now=now)
    # Never read: all read for usage now (a first reading should not wait).
    due = scheduler.due(now)
    assert sorted(due) == sorted((key, ReportKind.USAGE) for key in keys)
    assert scheduler.due(now) == []  # busy while being polled: never two polls at once
    for key in keys:
        scheduler.done(key, ReportKind.USAGE, started=now)
    next_usage = [scheduler.devices[key].next_usage for key in keys]
    assert all(now + USAGE_S <= t < now + 2 * USAGE_S * (1 + JITTER_FRACTION) for t in next_usage)
    # ... and spread: not in lockstep any more.
    assert max(next_usage) - min(next_usage) > USAGE_S / 2
    next_health = [scheduler.devices[key].next_health for key in keys]
    assert all(
        now + HEALTH_S <= t < now + 2 * HEALTH_S * (1 + JITTER_FRACTION) for t in next_health
    )


def test_a_restart_keeps_the_usage_interval_from_the_last_poll() -> None:
    scheduler = Scheduler(usage_s=USAGE_S, health_s=HEALTH_S)
    now = 1_000_000.0
    key = ("ledm", "SN1", "10.0.0.1")
    schedule = scheduler.add(key, now=now, last_usage=now - 600, last_health=now - 60)
    assert now - 600 + USAGE_S <= schedule.next_usage < now - 600 + 2 * USAGE_S
    assert now - 60 + HEALTH_S <= schedule.next_health < now - 60 + 2 * HEALTH_S
    assert scheduler.due(now) == []
    # Health due before usage: a health poll, which leaves the usage time alone.
    ((due_key, kind),) = scheduler.due(schedule.next_health)
    assert (due_key, kind) == (key, ReportKind.HEALTH)
    usage_before = schedule.next_usage
    scheduler.done(key, ReportKind.HEALTH, started=schedule.next_health)
    assert schedule.next_usage == usage_before
