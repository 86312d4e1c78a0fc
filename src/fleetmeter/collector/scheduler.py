"""Per-device poll schedule: each device keeps its own phase, so a site never polls in lockstep.

Every device gets a stable offset within each interval, from a hash of (schedule, driver,
serial) — the same in every run and process, unlike ``hash()`` — so two hundred printers
configured together are read spread over the interval rather than all at :00, and a given
printer is read at the same minute every time. A small random jitter (at most
``JITTER_FRACTION`` of the interval, only ever added) keeps collectors at different sites that
share devices' serial patterns from aligning exactly.

Rules, with ``t`` the start of a device's last poll of that kind (wall clock, persisted in
``state`` so that a restart keeps them):

* never read for usage: read now (a first reading should not wait up to an interval);
* next usage: the device's first slot ``offset + k·interval`` at or after ``t + interval``, so
  two usage polls are never closer than the interval (DESIGN.md: at most every 30 minutes);
* a usage poll counts as a health poll too (it carries status and alerts); next health is the
  first health slot at or after the last poll of either kind plus the health interval.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

from fleetmeter.wire import ReportKind

JITTER_FRACTION = 0.01
"""Random delay added to each slot, as a fraction of the interval (1%: 3 s of a 5-minute health
interval, under 2 minutes of a 3-hour usage interval)."""

DeviceKey = tuple[str, str, str]
"""(driver id, serial number, address). A device is (driver, serial) wherever it is, but two
hosts may answer with one serial (a dual-homed printer, placeholder serials): each is polled."""


def phase(key: DeviceKey, kind: ReportKind) -> float:
    """The device's stable position in ``kind``'s interval, a fraction in [0, 1); from driver
    and serial only, so a device keeps its phase when its address changes."""
    driver, serial = key[0], key[1]
    digest = hashlib.sha256(f"{kind}\0{driver}\0{serial}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _base(slot: float, started: float, interval: float) -> float:
    """Where the next interval of a poll that started at ``started`` counts from."""
    if started < slot:
        return started
    return max(slot, started - interval / 2)


def next_slot(earliest: float, interval: float, offset: float) -> float:
    """The first time ``t >= earliest`` with ``t ≡ offset (mod interval)``."""
    return offset + math.ceil((earliest - offset) / interval) * interval


@dataclass
class DeviceSchedule:
    usage_offset: float
    health_offset: float
    next_usage: float
    next_health: float
    # The slots (before jitter) the next polls belong to: the one after is counted from
    # these, not from when a poll happened to start.
    usage_slot: float = 0.0
    health_slot: float = 0.0
    busy: bool = False  # a poll of this device is in flight: never two at once


class Scheduler:
    """Due times for every device; pure bookkeeping (the agent runs the polls)."""

    def __init__(
        self,
        *,
        usage_s: float,
        health_s: float,
        rng: random.Random | None = None,
    ) -> None:
        self.usage_s = usage_s
        self.health_s = health_s
        self._rng = rng or random.Random()  # noqa: S311 (spreading load, not security)
        self.devices: dict[DeviceKey, DeviceSchedule] = {}

    def _jitter(self, interval: float) -> float:
        return self._rng.uniform(0.0, interval * JITTER_FRACTION)

    def add(
        self,
        key: DeviceKey,
        *,
        now: float,
        last_usage: float | None = None,
        last_health: float | None = None,
    ) -> DeviceSchedule:
        """Schedule ``key`` (no-op if already scheduled), from its persisted poll history."""
        if key in self.devices:
            return self.devices[key]
        usage_offset = phase(key, ReportKind.USAGE) * self.usage_s
        health_offset = phase(key, ReportKind.HEALTH) * self.health_s
        if last_usage is None:
            next_usage = now
        else:
            next_usage = next_slot(last_usage + self.usage_s, self.usage_s, usage_offset)
        last_any = max(t for t in (last_usage, last_health, now - self.health_s) if t is not None)
        next_health = next_slot(last_any + self.health_s, self.health_s, health_offset)
        schedule = DeviceSchedule(
            usage_offset,
            health_offset,
            next_usage,
            next_health,
            usage_slot=next_usage,
            health_slot=next_health,
        )
        self.devices[key] = schedule
        return schedule

    def keep_only(self, keys: Iterable[DeviceKey]) -> None:
        """Forget devices no longer polled (out of the ranges); an in-flight poll finishes."""
        wanted = set(keys)
        for key in [k for k, s in self.devices.items() if k not in wanted and not s.busy]:
            del self.devices[key]

    def remove(self, key: DeviceKey) -> None:
        self.devices.pop(key, None)

    def due(self, now: float) -> list[tuple[DeviceKey, ReportKind]]:
        """Devices to poll now, usage first (it covers health); marks them busy."""
        out = []
        for key, schedule in self.devices.items():
            if schedule.busy:
                continue
            if now >= schedule.next_usage:
                out.append((key, ReportKind.USAGE))
            elif now >= schedule.next_health:
                out.append((key, ReportKind.HEALTH))
            else:
                continue
            schedule.busy = True
        return out

    def done(self, key: DeviceKey, kind: ReportKind, *, started: float) -> None:
        """A poll of ``kind`` that started at ``started`` finished (failed or not)."""
        schedule = self.devices.get(key)
        if schedule is None:
            return
        schedule.busy = False
        # A poll starts a little after its slot (jitter, loop latency). Counting the next slot
        # from `started + interval` would skip one every time (half the documented pace), so
        # it is counted from the slot this poll belonged to; from the start when the poll
        # came before its slot (a first reading; a usage poll covering health); and never
        # from more than half an interval back, so a collector that was asleep does not
        # catch up with a burst of polls.
        if kind is ReportKind.USAGE:
            earliest = _base(schedule.usage_slot, started, self.usage_s)
            schedule.usage_slot = next_slot(
                earliest + self.usage_s, self.usage_s, schedule.usage_offset
            )
            schedule.next_usage = schedule.usage_slot + self._jitter(self.usage_s)
        earliest = _base(schedule.health_slot, started, self.health_s)
        schedule.health_slot = next_slot(
            earliest + self.health_s, self.health_s, schedule.health_offset
        )
        schedule.next_health = schedule.health_slot + self._jitter(self.health_s)

    def next_due(self) -> float | None:
        """The earliest due time of a device not being polled, None if there is none."""
        times = [min(s.next_usage, s.next_health) for s in self.devices.values() if not s.busy]
        return min(times, default=None)
