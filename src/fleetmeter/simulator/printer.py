"""Virtual large-format printers: seeded state, a deterministic job stream and lifetime counters.

Everything a printer does comes from its own ``random.Random`` (seeded from the fleet seed
and the device index) and a queue of timed events processed in (time, insertion) order, so
the same seed and start time give the same fleet, the same jobs at the same simulated
seconds and the same alerts, however often or seldom ``advance_to`` is called.

Invariant (checked by the tests): every lifetime counter equals its initial value plus the
sum over the device's job records; cartridge insertions are the one counter driven by
replacements rather than jobs. Definitions, per job record:

- ``jobs`` +1 for every record (print, scan and copy); ``scan.scan_jobs`` / ``scan.copy_jobs``
  +1 per scan / copy record (MFP models only).
- ``impressions`` += ``pages`` (printed impressions, copies included); ``mono_impressions``
  when the job used neutral inks only (K, MK, PK, G, LG), ``color_impressions`` otherwise.
- ``ink.<c>.total_ul`` (= ``vendor_ul``; all ink is HP ink) += ``ink_ul[c]``;
  ``total_ink_ul`` is their sum.
- ``media.<type>.area_mm2 / length_mm / impressions`` += the job's media area, media length
  and pages; ``total_media_area_mm2`` / ``total_media_length_mm`` are the sums over types.
- ``scan.scanned_area_mm2`` += ``scan_area_mm2`` of scan jobs, ``scan.copied_area_mm2`` +=
  ``scan_area_mm2`` of copy jobs.
"""

from __future__ import annotations

import heapq
import math
import random
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, overload

from fleetmeter.simulator.models import (
    CATEGORIES,
    MEDIA,
    MODELS,
    NEUTRAL_COLORS,
    InkSpec,
    ModelSpec,
    PrintheadSpec,
)
from fleetmeter.wire import (
    CartridgeTypeUsage,
    EngineState,
    JobKind,
    JobRecord,
    JobStatus,
    LifetimeUsage,
    MediaTypeUsage,
    ScanUsage,
    Submitter,
)

DEFAULT_JOB_BUFFER = 2000
"""Jobs a device keeps in its accounting log (ring buffer), like HP's job log."""

_QUEUE_LIMIT = 30  # jobs waiting at the device; users give up beyond that
_INK_UL_PER_M2 = 14_000  # µL per m² at 100 % pixel coverage and normal quality
_LOW_INK_FRACTION = 0.10
_SLEEP_AFTER_S = 15 * 60
_QUALITY_INK = {"fast": 0.7, "normal": 1.0, "best": 1.35}
_QUALITY_TIME = {"fast": 0.6, "normal": 1.0, "best": 1.8}

_NASTY_NAMES = (
    "<script>alert(1)</script>.pdf",
    'Tom & Jerry "final" v2.pdf',
    "O'Brien's <draft> & notes.dwg",
    "Ünïcödé plan – 製図 ✓.pdf",
    "]]> <!-- not a comment --> &amp; &lt;.pdf",
    "🏗️ Site plan (rev C).pdf",
    "Plan " + "very long name " * 20 + ".pdf",
)
_PROJECTS = (
    "Riverside Campus",
    "Harbour Bridge Retrofit",
    "North Clinic Extension",
    "City Flood Plan 2026",
    "Spring Campaign",
    "Museum Wayfinding",
    "Tower B – Fit-out",
    "Müller & Söhne HQ",
)
_APPLICATIONS = {
    "cad_lines": ("AutoCAD 2025", "Revit 2025", "MicroStation CONNECT", "Archicad 27"),
    "gis_map": ("ArcGIS Pro 3.3", "QGIS 3.34"),
    "poster": ("Adobe Illustrator 2025", "Adobe InDesign 2025", "HP Click 2.7"),
    "photo": ("Adobe Photoshop 2025", "Adobe Lightroom Classic 13"),
    "render": ("Blender 4.1", "V-Ray 6", "Enscape 4.0"),
    "scan": ("Front panel",),
    "copy": ("Front panel",),
}
_USERS = ("a.rossi", "j.smith", "m.müller", "s.tanaka", "l.dubois", "k.nowak", "p.o'brien")


def _epoch(t: datetime) -> int:
    return math.floor(t.timestamp())


def _dt(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# --------------------------------------------------------------------------- state


@dataclass(slots=True)
class InkCartridge:
    slot: int
    spec: InkSpec
    serial_number: str
    level_ul: int
    installed_on: date
    manufactured_on: date
    out: bool = False
    low_alerted: bool = False

    @property
    def level_percent(self) -> int:
        return max(0, min(100, round(self.level_ul * 100 / self.spec.capacity_ul)))

    @property
    def state(self) -> str:
        """LEDM ``dd:ConsumableState``."""
        if self.out:
            return "out"
        if self.level_ul < self.spec.capacity_ul * _LOW_INK_FRACTION / 2:
            return "veryLow"
        if self.level_ul < self.spec.capacity_ul * _LOW_INK_FRACTION:
            return "low"
        return "ok"


@dataclass(slots=True)
class PrintheadState:
    slot: int
    spec: PrintheadSpec
    serial_number: str
    health: float
    installed_on: date
    replacement_due: bool = False

    @property
    def health_percent(self) -> int:
        return max(0, min(100, math.floor(self.health)))


@dataclass(slots=True)
class Roll:
    name: str
    media_type: str
    width_mm: int
    length_mm: int
    remaining_mm: int
    loaded: bool = True


@dataclass(slots=True)
class SimAlert:
    sequence_number: int
    code: str
    """LEDM ``ad:ProductStatusAlertID``."""
    severity: str
    """LEDM ``ad:Severity``: Info, Warning or Error."""
    component: str
    """``cartridge:<colour>``, ``printhead:<slot>``, ``roll:<name>`` or ``engine``."""
    text: str
    raised_at: int
    blocking: bool


@dataclass(slots=True)
class LogEvent:
    sequence_number: int
    code: str
    severity: str
    at: int
    impressions: int
    text: str


@dataclass(slots=True)
class SimJob:
    """One accounted job, in base units, as the device keeps it."""

    kind: JobKind
    job_uuid: uuid.UUID
    name: str
    project: str
    application: str
    account: str
    user: str
    user_defined: str | None
    submitted_at: int
    source: str
    application_category: str
    coverage_category: str
    print_quality: str
    pages: int
    copies: int
    media_type: str | None
    media_width_mm: int | None
    media_length_mm: int | None
    media_area_mm2: int
    printed_area_mm2: int
    scan_area_mm2: int
    ink_ul: dict[str, int]
    pixel_coverage_ppm: dict[str, int]
    status: JobStatus
    print_time_s: int
    roll: str | None
    ready_at: int
    sequence_number: int = 0
    completed_at: int = 0
    xml: str | None = field(default=None, repr=False)
    """The rendered ``jadyn:Job`` element, cached by ``ledm_docs`` while the job is in the log."""

    @property
    def duration_s(self) -> int:
        return self.completed_at - self.submitted_at

    @property
    def total_ink_ul(self) -> int:
        return sum(self.ink_ul.values())

    @property
    def mono(self) -> bool:
        return all(c in NEUTRAL_COLORS for c, v in self.ink_ul.items() if v > 0)

    def to_wire(self) -> JobRecord:
        return JobRecord(
            kind=self.kind,
            job_uuid=self.job_uuid,
            sequence_number=self.sequence_number,
            name=self.name,
            submitter=Submitter(
                project=self.project,
                application=self.application,
                account=self.account,
                user=self.user,
                user_defined=self.user_defined,
                submitted_at=_dt(self.submitted_at),
            ),
            completed_at=_dt(self.completed_at),
            print_time_s=self.print_time_s,
            duration_s=self.duration_s,
            status=self.status,
            source=self.source,
            coverage_category=self.coverage_category,
            application_category=self.application_category,
            print_quality=self.print_quality,
            pages=self.pages,
            copies=self.copies,
            ink_ul=dict(self.ink_ul),
            media_type=self.media_type,
            media_width_mm=self.media_width_mm,
            media_length_mm=self.media_length_mm,
            media_area_mm2=self.media_area_mm2,
            printed_area_mm2=self.printed_area_mm2,
            pixel_coverage_ppm=dict(self.pixel_coverage_ppm),
            scan_area_mm2=self.scan_area_mm2,
        )

    def truth(self) -> dict[str, Any]:
        """The job as ``GET /truth`` lists it."""
        return {
            "job_uuid": str(self.job_uuid),
            "sequence_number": self.sequence_number,
            "kind": self.kind.value,
            "status": self.status.value,
            "completed_at": _dt(self.completed_at).isoformat().replace("+00:00", "Z"),
            "pages": self.pages,
            "media_type": self.media_type,
            "media_area_mm2": self.media_area_mm2,
            "media_length_mm": self.media_length_mm or 0,
            "scan_area_mm2": self.scan_area_mm2,
            "ink_ul": dict(self.ink_ul),
            "total_ink_ul": self.total_ink_ul,
        }


@dataclass
class Counters:
    """Lifetime counters. Totals are sums over the per-colour / per-media entries."""

    colors: tuple[str, ...]
    media_types: tuple[str, ...]
    has_scanner: bool
    jobs: int = 0
    impressions: int = 0
    mono_impressions: int = 0
    color_impressions: int = 0
    ink_ul: dict[str, int] = field(default_factory=dict)
    insertions: dict[str, int] = field(default_factory=dict)
    media_area_mm2: dict[str, int] = field(default_factory=dict)
    media_length_mm: dict[str, int] = field(default_factory=dict)
    media_impressions: dict[str, int] = field(default_factory=dict)
    scan_jobs: int = 0
    copy_jobs: int = 0
    scanned_area_mm2: int = 0
    copied_area_mm2: int = 0

    def __post_init__(self) -> None:
        for c in self.colors:
            self.ink_ul.setdefault(c, 0)
            self.insertions.setdefault(c, 1)
        for m in self.media_types:
            self.media_area_mm2.setdefault(m, 0)
            self.media_length_mm.setdefault(m, 0)
            self.media_impressions.setdefault(m, 0)

    @property
    def total_ink_ul(self) -> int:
        return sum(self.ink_ul.values())

    @property
    def total_media_area_mm2(self) -> int:
        return sum(self.media_area_mm2.values())

    @property
    def total_media_length_mm(self) -> int:
        return sum(self.media_length_mm.values())

    def add_job(self, job: SimJob) -> None:
        self.jobs += 1
        self.impressions += job.pages
        if job.mono:
            self.mono_impressions += job.pages
        else:
            self.color_impressions += job.pages
        for c, v in job.ink_ul.items():
            self.ink_ul[c] += v
        if job.media_type is not None:
            self.media_area_mm2[job.media_type] += job.media_area_mm2
            self.media_length_mm[job.media_type] += job.media_length_mm or 0
            self.media_impressions[job.media_type] += job.pages
        if job.kind is JobKind.SCAN:
            self.scan_jobs += 1
            self.scanned_area_mm2 += job.scan_area_mm2
        elif job.kind is JobKind.COPY:
            self.copy_jobs += 1
            self.copied_area_mm2 += job.scan_area_mm2

    def copy(self) -> Counters:
        return Counters(
            colors=self.colors,
            media_types=self.media_types,
            has_scanner=self.has_scanner,
            jobs=self.jobs,
            impressions=self.impressions,
            mono_impressions=self.mono_impressions,
            color_impressions=self.color_impressions,
            ink_ul=dict(self.ink_ul),
            insertions=dict(self.insertions),
            media_area_mm2=dict(self.media_area_mm2),
            media_length_mm=dict(self.media_length_mm),
            media_impressions=dict(self.media_impressions),
            scan_jobs=self.scan_jobs,
            copy_jobs=self.copy_jobs,
            scanned_area_mm2=self.scanned_area_mm2,
            copied_area_mm2=self.copied_area_mm2,
        )

    def to_usage(self) -> LifetimeUsage:
        return LifetimeUsage(
            jobs=self.jobs,
            impressions=self.impressions,
            mono_impressions=self.mono_impressions,
            color_impressions=self.color_impressions,
            total_ink_ul=self.total_ink_ul,
            total_media_area_mm2=self.total_media_area_mm2,
            total_media_length_mm=self.total_media_length_mm,
            by_cartridge_type=[
                CartridgeTypeUsage(
                    color=c,
                    total_ink_ul=self.ink_ul[c],
                    vendor_ink_ul=self.ink_ul[c],
                    non_vendor_ink_ul=0,
                    insertions=self.insertions[c],
                )
                for c in self.colors
            ],
            by_media_type=[
                MediaTypeUsage(
                    media_type=m,
                    area_mm2=self.media_area_mm2[m],
                    length_mm=self.media_length_mm[m],
                    impressions=self.media_impressions[m],
                )
                for m in self.media_types
            ],
            scan=ScanUsage(
                scan_jobs=self.scan_jobs,
                copy_jobs=self.copy_jobs,
                scanned_area_mm2=self.scanned_area_mm2,
                copied_area_mm2=self.copied_area_mm2,
            )
            if self.has_scanner
            else None,
        )

    def meters(self) -> dict[str, int]:
        """Flattened exactly like ``fleetmeter.wire.LifetimeUsage.meters()``."""
        return self.to_usage().meters()


# --------------------------------------------------------------------------- the printer

_ARRIVAL = 0
_COMPLETE = 1
_REPLACE_CARTRIDGE = 2
_REPLACE_ROLL = 3
_REPLACE_PRINTHEAD = 4
_CLEAR_ALERT = 5


class VirtualPrinter:
    """One simulated large-format printer, advanced lazily to a simulated instant."""

    def __init__(
        self,
        *,
        index: int,
        seed: int,
        model: ModelSpec,
        serial_number: str,
        start: datetime,
        job_buffer: int = DEFAULT_JOB_BUFFER,
    ) -> None:
        if job_buffer < 1:
            raise ValueError("job_buffer must be >= 1")
        # A string seed is hashed with SHA-512 by random.Random: stable across runs and
        # platforms, unlike hash() of a tuple.
        self.rng = random.Random(f"fleetmeter-sim:{seed}:{index}")  # noqa: S311 (simulation)
        rng = self.rng
        self.index = index
        self.model = model
        self.serial_number = serial_number
        self.job_buffer = job_buffer
        self.uuid = uuid.UUID(int=rng.getrandbits(128), version=4)
        self.firmware_version = (
            f"{model.firmware_prefix}_{rng.randint(1, 5):02d}_{rng.randint(10, 40):02d}"
            f"_{rng.randint(1, 30):02d}.{rng.randint(1, 9)}"
        )
        start_s = _epoch(start)
        self._now_s = start_s
        age_days = rng.uniform(90, 1100)
        self.manufactured_on = (start - timedelta(days=age_days + rng.uniform(20, 120))).date()
        self.firmware_date = (start - timedelta(days=rng.uniform(10, 200))).date()
        self._busyness = rng.uniform(0.6, 1.6)
        self._peak_rate_per_s = 3.5 * self._busyness / 3600.0
        self._accounts = tuple(f"ACC-{rng.randint(1000, 9999)}" for _ in range(5))

        self.cartridges = [
            InkCartridge(
                slot=i,
                spec=ink,
                serial_number=self._supply_serial(),
                level_ul=round(ink.capacity_ul * rng.uniform(0.15, 1.0)),
                installed_on=(start - timedelta(days=rng.uniform(1, 60))).date(),
                manufactured_on=(start - timedelta(days=rng.uniform(90, 400))).date(),
            )
            for i, ink in enumerate(model.inks)
        ]
        self.printheads = [
            PrintheadState(
                slot=i,
                spec=ph,
                serial_number=self._supply_serial(),
                health=rng.uniform(40, 100),
                installed_on=(start - timedelta(days=rng.uniform(10, 300))).date(),
            )
            for i, ph in enumerate(model.printheads)
        ]
        self.rolls: list[Roll] = []
        for i in range(model.rolls):
            media = model.media[0] if i == 0 else rng.choice(model.media[1:])
            width = model.roll_widths_mm[0] if i == 0 else rng.choice(model.roll_widths_mm)
            length = MEDIA[media].roll_length_mm
            self.rolls.append(
                Roll(f"Roll{i + 1}", media, width, length, round(length * rng.uniform(0.2, 1.0)))
            )

        self.counters = self._initial_counters(age_days)
        self.initial_counters = self.counters.copy()
        self._next_sequence = self.counters.jobs + 1

        self.jobs: list[SimJob] = []
        self.alerts: list[SimAlert] = []
        self.alert_modifications = 0
        self.events: deque[LogEvent] = deque(maxlen=200)
        self._alert_seq = 0
        self._event_seq = 0
        self._queue: deque[SimJob] = deque()
        self._current: SimJob | None = None
        self._current_started = 0
        self._last_activity = start_s - round(rng.uniform(0, 3600))
        self._heap: list[tuple[int, int, int, Any]] = []
        self._heap_seq = 0
        self._schedule(self._next_arrival(start_s), _ARRIVAL, None)

    # ------------------------------------------------------------------ identity helpers

    @property
    def colors(self) -> tuple[str, ...]:
        return tuple(ink.color for ink in self.model.inks)

    @property
    def now(self) -> datetime:
        """The simulated instant the printer has been advanced to."""
        return _dt(self._now_s)

    def _supply_serial(self) -> str:
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
        return "".join(self.rng.choice(alphabet) for _ in range(10))

    def _initial_counters(self, age_days: float) -> Counters:
        rng = self.rng
        model = self.model
        counters = Counters(colors=self.colors, media_types=model.media, has_scanner=model.mfp)
        jobs = round(age_days * rng.uniform(6, 22))
        impressions = round(jobs * rng.uniform(1.8, 3.2))
        counters.jobs = jobs
        counters.impressions = impressions
        counters.mono_impressions = round(impressions * rng.uniform(0.15, 0.5))
        counters.color_impressions = impressions - counters.mono_impressions
        # Split impressions over media types exactly, so the per-type sums match the total.
        weights = [rng.uniform(0.2, 1.0) for _ in model.media]
        weights[0] *= 3
        left = impressions
        for i, m in enumerate(model.media):
            share = (
                left
                if i == len(model.media) - 1
                else round(impressions * weights[i] / sum(weights))
            )
            share = min(share, left)
            left -= share
            length = share * rng.randint(600, 1100)
            counters.media_impressions[m] = share
            counters.media_length_mm[m] = length
            counters.media_area_mm2[m] = length * model.roll_widths_mm[0]
        # Lifetime ink is consistent with the cartridges seen: every earlier cartridge used
        # up, the installed one used down to its current level.
        total_ink = impressions * rng.uniform(1500, 4000)
        ink_weights = [rng.uniform(0.5, 1.5) for _ in self.cartridges]
        for cart, weight in zip(self.cartridges, ink_weights, strict=True):
            cap = cart.spec.capacity_ul
            target = total_ink * weight / sum(ink_weights)
            earlier = max(0, round((target - (cap - cart.level_ul)) / cap))
            counters.insertions[cart.spec.color] = earlier + 1
            counters.ink_ul[cart.spec.color] = earlier * cap + (cap - cart.level_ul)
        if model.mfp:
            counters.scan_jobs = round(jobs * rng.uniform(0.04, 0.1))
            counters.copy_jobs = round(jobs * rng.uniform(0.04, 0.1))
            counters.scanned_area_mm2 = counters.scan_jobs * rng.randint(400_000, 2_500_000)
            counters.copied_area_mm2 = counters.copy_jobs * rng.randint(400_000, 2_500_000)
        return counters

    # ------------------------------------------------------------------ public API

    def advance_to(self, t: datetime) -> None:
        """Run every event up to and including simulated instant ``t`` (never backwards)."""
        target = _epoch(t)
        heap = self._heap
        while heap and heap[0][0] <= target:
            when, _, kind, arg = heapq.heappop(heap)
            self._handle(when, kind, arg)
        self._now_s = max(self._now_s, target)

    def engine_state(self) -> EngineState:
        # Errors (jam, empty roll, cartridge out) stop the engine; warnings do not.
        if any(a.severity == "Error" for a in self.alerts):
            return EngineState.ERROR
        if self._current is not None:
            if self._now_s >= self._current_started:
                return EngineState.PRINTING
            return EngineState.PROCESSING
        if self._now_s - self._last_activity > _SLEEP_AFTER_S:
            return EngineState.SLEEP
        return EngineState.IDLE

    def recent_jobs(self) -> list[SimJob]:
        """The device's job accounting log: the last ``job_buffer`` jobs, oldest first."""
        return self.jobs[-self.job_buffer :]

    def lifetime_usage(self) -> LifetimeUsage:
        return self.counters.to_usage()

    def meters(self) -> dict[str, int]:
        return self.counters.meters()

    def truth(self) -> dict[str, Any]:
        """Ground truth for ``GET /truth``: every job since start, current and initial meters."""
        return {
            "serial_number": self.serial_number,
            "model": self.model.name,
            "sim_time": self.now.isoformat().replace("+00:00", "Z"),
            "jobs": [j.truth() for j in self.jobs],
            "meters": self.meters(),
            "initial_meters": self.initial_counters.meters(),
        }

    # ------------------------------------------------------------------ event machinery

    def _schedule(self, when: int, kind: int, arg: Any) -> None:
        self._heap_seq += 1
        heapq.heappush(self._heap, (when, self._heap_seq, kind, arg))

    def _rate_factor(self, t: int) -> float:
        """Share of the peak job rate at epoch second ``t`` (site time = UTC)."""
        weekday = (t // 86_400 + 3) % 7  # 1970-01-01 was a Thursday (weekday 3)
        hour = (t % 86_400) // 3600
        if weekday >= 5:
            return 0.3 if 9 <= hour < 17 else 0.05
        if 8 <= hour < 18:
            return 1.0
        if 7 <= hour < 8 or 18 <= hour < 21:
            return 0.35
        return 0.05

    def _next_arrival(self, after: int) -> int:
        # Thinning (Lewis & Shedler): candidates at the peak rate, kept with probability
        # rate(t)/peak, gives a Poisson process whose rate follows the working day.
        t = float(after)
        while True:
            t += self.rng.expovariate(self._peak_rate_per_s)
            if self.rng.random() < self._rate_factor(int(t)):
                return max(after + 1, int(t))

    def _handle(self, when: int, kind: int, arg: Any) -> None:
        if kind == _ARRIVAL:
            job = self._draw_job(when)
            if len(self._queue) < _QUEUE_LIMIT:
                self._queue.append(job)
            self._schedule(self._next_arrival(when), _ARRIVAL, None)
            self._try_start(when)
        elif kind == _COMPLETE:
            self._complete(when)
        elif kind == _REPLACE_CARTRIDGE:
            self._replace_cartridge(when, arg)
        elif kind == _REPLACE_ROLL:
            self._replace_roll(when, arg)
        elif kind == _REPLACE_PRINTHEAD:
            self._replace_printhead(when, arg)
        elif kind == _CLEAR_ALERT:
            self._clear_alerts(when, lambda a: a.sequence_number == arg)
            self._try_start(when)

    # ------------------------------------------------------------------ alerts and log

    def _raise(
        self,
        when: int,
        code: str,
        severity: str,
        component: str,
        text: str,
        event: str,
        *,
        blocking: bool,
    ) -> SimAlert:
        self._alert_seq += 1
        self.alert_modifications += 1
        alert = SimAlert(self._alert_seq, code, severity, component, text, when, blocking)
        self.alerts.append(alert)
        self._log(when, event, severity, text)
        return alert

    def _clear_alerts(self, when: int, match: Callable[[SimAlert], bool]) -> None:
        keep = [a for a in self.alerts if not match(a)]
        if len(keep) != len(self.alerts):
            self.alert_modifications += 1
            self.alerts = keep

    def _log(self, when: int, code: str, severity: str, text: str) -> None:
        self._event_seq += 1
        self.events.append(
            LogEvent(self._event_seq, code, severity, when, self.counters.impressions, text)
        )

    # ------------------------------------------------------------------ jobs

    def _draw_job(self, when: int) -> SimJob:
        rng = self.rng
        model = self.model
        mix = list(model.job_mix.items())
        category = rng.choices([k for k, _ in mix], weights=[w for _, w in mix])[0]
        if category == "scan":
            kind = JobKind.SCAN
        elif category == "copy":
            kind = JobKind.COPY
        else:
            kind = JobKind.PRINT
        spec = CATEGORIES["cad_lines" if kind is not JobKind.PRINT else category]
        name = self._job_name(category)
        quality = rng.choice(spec.qualities)
        r = rng.random()
        status = (
            JobStatus.CANCELLED
            if r < 0.035
            else JobStatus.FAILED
            if r < 0.04
            else JobStatus.COMPLETED
        )
        common: dict[str, Any] = {
            "kind": kind,
            "job_uuid": uuid.UUID(int=rng.getrandbits(128), version=4),
            "name": name,
            "project": rng.choice(_PROJECTS),
            "application": rng.choice(_APPLICATIONS[category]),
            "account": rng.choice(self._accounts),
            "user": rng.choice(_USERS),
            "user_defined": None if rng.random() < 0.5 else f"cost centre {rng.randint(100, 999)}",
            "submitted_at": when,
            "application_category": category,
            "print_quality": quality,
            "status": status,
        }
        ready_at = when + rng.randint(5, 90)  # spooling and RIP before the engine starts

        if kind is JobKind.SCAN:
            originals = rng.randint(1, 8)
            width = rng.choice((914, 841, 594, 420))
            length = rng.randint(297, 1500)
            return SimJob(
                **common,
                source="scan",
                coverage_category="none",
                pages=0,
                copies=1,
                media_type=None,
                media_width_mm=None,
                media_length_mm=None,
                media_area_mm2=0,
                printed_area_mm2=0,
                scan_area_mm2=originals * width * length,
                ink_ul={},
                pixel_coverage_ppm={},
                print_time_s=originals * rng.randint(15, 40),
                roll=None,
                ready_at=ready_at,
            )

        roll = self._choose_roll(spec.media)
        doc_pages = rng.randint(*spec.pages)
        copies = 1 if rng.random() < 0.85 else rng.randint(2, 4)
        if kind is JobKind.COPY:
            doc_pages = rng.randint(1, 5)
        if category == "cad_lines" or kind is JobKind.COPY:
            page_len = rng.choice((420, 594, 841, 1189))
        else:
            page_len = rng.randint(*spec.page_lengths_mm)
        # No single job may need more than half a roll, so a fresh roll always fits it.
        limit = roll.length_mm // 2
        if doc_pages * copies * page_len > limit:
            copies = 1
            doc_pages = max(1, min(doc_pages, limit // page_len))
        impressions = doc_pages * copies
        pages = impressions if status is JobStatus.COMPLETED else rng.randint(0, impressions - 1)
        media_length = pages * page_len
        media_area = roll.width_mm * media_length
        printed_area = math.floor(media_area * rng.uniform(0.86, 0.97))
        coverage = rng.uniform(*spec.coverage)
        mono = rng.random() < spec.mono_share
        ink_ul, ppm = self._ink_for(printed_area, coverage, quality, mono)
        seconds = media_area / 1e6 * model.seconds_per_m2 * _QUALITY_TIME[quality] + 8 * pages
        return SimJob(
            **common,
            source="copy"
            if kind is JobKind.COPY
            else ("usb" if rng.random() < 0.04 else "network"),
            coverage_category="low" if coverage < 0.2 else "medium" if coverage < 0.6 else "high",
            pages=pages,
            copies=copies,
            media_type=roll.media_type,
            media_width_mm=roll.width_mm,
            media_length_mm=media_length,
            media_area_mm2=media_area,
            printed_area_mm2=printed_area,
            scan_area_mm2=doc_pages * roll.width_mm * page_len if kind is JobKind.COPY else 0,
            ink_ul=ink_ul,
            pixel_coverage_ppm=ppm,
            print_time_s=math.ceil(seconds) + 5,
            roll=roll.name,
            ready_at=ready_at,
        )

    def _choose_roll(self, preferred: tuple[str, ...]) -> Roll:
        for media in preferred:
            for roll in self.rolls:
                if roll.media_type == media:
                    return roll
        return self.rolls[self.rng.randrange(len(self.rolls))]

    def _ink_for(
        self, printed_area: int, coverage: float, quality: str, mono: bool
    ) -> tuple[dict[str, int], dict[str, int]]:
        rng = self.rng
        colors = self.colors
        if mono:
            weights = {c: (3.0 if c in ("K", "MK") else 0.5) for c in colors if c in NEUTRAL_COLORS}
        else:
            weights = {
                c: rng.uniform(0.4, 1.2) * (1.6 if c in ("K", "MK") else 1.0) for c in colors
            }
        total_w = sum(weights.values())
        total = printed_area / 1e6 * coverage * _INK_UL_PER_M2 * _QUALITY_INK[quality]
        ink = {c: math.floor(total * w / total_w) for c, w in weights.items()}
        # A job never needs more than half a cartridge of any colour, so a fresh cartridge
        # always fits it (HP's large-format printers swap cartridges mid-job; we do not).
        capacity = {ink_spec.color: ink_spec.capacity_ul for ink_spec in self.model.inks}
        scale = min([1.0] + [capacity[c] / 2 / v for c, v in ink.items() if v > 0])
        if scale < 1.0:
            ink = {c: math.floor(v * scale) for c, v in ink.items()}
        ink = {c: v for c, v in ink.items() if v > 0}
        ppm = {c: min(1_000_000, round(coverage * weights[c] / total_w * 1e6)) for c in ink}
        return ink, ppm

    def _job_name(self, category: str) -> str:
        rng = self.rng
        if rng.random() < 0.06:
            return rng.choice(_NASTY_NAMES)
        n = rng.randint(1, 999)
        if category == "cad_lines":
            return rng.choice(
                (
                    f"Floor plan L{n % 12}.pdf",
                    f"A-{n:03d} Section {chr(65 + n % 6)}.dwg",
                    f"Structural grid rev{n % 9}.dwf",
                    f"MEP coordination {n}.pdf",
                )
            )
        if category == "gis_map":
            return rng.choice(
                (f"Flood zones sheet {n}.pdf", f"Cadastre {n}.tif", f"Land use {n}.pdf")
            )
        if category == "poster":
            return rng.choice(
                (f"Spring sale {n}.pdf", f"Exhibition banner {n}.pdf", f"Poster_v{n}.ai")
            )
        if category == "photo":
            return f"IMG_{1000 + n * 7}.jpg"
        if category == "render":
            return f"Render_{rng.choice(_PROJECTS).split()[0]}_v{n}.tif"
        if category == "scan":
            return f"Scan_{n:04d}.pdf"
        return f"Copy {n}"

    def _try_start(self, now: int) -> None:
        if self._current is not None or not self._queue:
            return
        if any(a.blocking for a in self.alerts):
            return
        job = self._queue[0]
        for color, need in job.ink_ul.items():
            cart = self._cartridge(color)
            if cart.out:
                return  # waiting for the replacement already scheduled
            if cart.level_ul < need:
                cart.out = True
                self._raise(
                    now,
                    "cartridgeEmpty",
                    "Error",
                    f"cartridge:{color}",
                    f"{color} cartridge out of ink: replace it",
                    f"61.0{cart.slot}.02",
                    blocking=False,
                )
                delay = self.rng.randint(15 * 60, 6 * 3600)
                self._schedule(now + delay, _REPLACE_CARTRIDGE, color)
                return
        roll = self._roll(job.roll) if job.roll is not None else None
        if roll is not None:
            if not roll.loaded:
                return
            if roll.remaining_mm < (job.media_length_mm or 0):
                roll.loaded = False
                roll.remaining_mm = 0
                self._raise(
                    now,
                    "trayEmpty",
                    "Error",
                    f"roll:{roll.name}",
                    f"{roll.name} is empty: load paper",
                    f"41.0{self.rolls.index(roll) + 1}.01",
                    blocking=False,
                )
                self._schedule(now + self.rng.randint(10 * 60, 3 * 3600), _REPLACE_ROLL, roll.name)
                return
            roll.remaining_mm -= job.media_length_mm or 0
        for color, need in job.ink_ul.items():
            cart = self._cartridge(color)
            cart.level_ul -= need
            if cart.level_ul < cart.spec.capacity_ul * _LOW_INK_FRACTION and not cart.low_alerted:
                cart.low_alerted = True
                self._raise(
                    now,
                    "cartridgeLow",
                    "Warning",
                    f"cartridge:{color}",
                    f"{color} cartridge is low on ink",
                    f"61.0{cart.slot}.01",
                    blocking=False,
                )
        self._queue.popleft()
        self._current = job
        self._current_started = max(now, job.ready_at)
        self._last_activity = now
        self._schedule(self._current_started + job.print_time_s, _COMPLETE, None)

    def _complete(self, when: int) -> None:
        job = self._current
        assert job is not None
        self._current = None
        job.sequence_number = self._next_sequence
        self._next_sequence += 1
        job.completed_at = when
        self.counters.add_job(job)
        self.jobs.append(job)
        if len(self.jobs) > self.job_buffer:
            self.jobs[-self.job_buffer - 1].xml = None  # left the log: free its rendering
        self._last_activity = when
        if job.kind is not JobKind.SCAN:
            self._wear(when, job)
            r = self.rng.random()
            if r < 0.003:
                alert = self._raise(
                    when,
                    "jamInPrinter",
                    "Error",
                    "engine",
                    "Paper jam: open the window and clear it",
                    "31.13.01",
                    blocking=True,
                )
                clear = when + self.rng.randint(10 * 60, 2 * 3600)
                self._schedule(clear, _CLEAR_ALERT, alert.sequence_number)
            elif r < 0.005:
                head = self.rng.choice(self.printheads)
                alert = self._raise(
                    when,
                    "printheadWarning",
                    "Warning",
                    f"printhead:{head.slot}",
                    f"Printhead {head.slot + 1} needs attention: clean it",
                    f"86.0{head.slot}.01",
                    blocking=False,
                )
                clear = when + self.rng.randint(3600, 12 * 3600)
                self._schedule(clear, _CLEAR_ALERT, alert.sequence_number)
        self._try_start(when)

    def _wear(self, when: int, job: SimJob) -> None:
        for head in self.printheads:
            through = sum(job.ink_ul.get(c, 0) for c in head.spec.colors)
            head.health -= through * 100 / head.spec.life_ul
            if head.health < 8 and not head.replacement_due:
                head.replacement_due = True
                self._raise(
                    when,
                    "printheadWarning",
                    "Warning",
                    f"printhead:{head.slot}",
                    f"Printhead {head.slot + 1} is worn out: replace it",
                    f"86.0{head.slot}.02",
                    blocking=False,
                )
                self._schedule(
                    when + self.rng.randint(3600, 24 * 3600), _REPLACE_PRINTHEAD, head.slot
                )

    # ------------------------------------------------------------------ maintenance

    def _cartridge(self, color: str) -> InkCartridge:
        for cart in self.cartridges:
            if cart.spec.color == color:
                return cart
        raise KeyError(color)

    def _roll(self, name: str) -> Roll:
        for roll in self.rolls:
            if roll.name == name:
                return roll
        raise KeyError(name)

    def _replace_cartridge(self, when: int, color: str) -> None:
        old = self._cartridge(color)
        new = InkCartridge(
            slot=old.slot,
            spec=old.spec,
            serial_number=self._supply_serial(),
            level_ul=old.spec.capacity_ul,
            installed_on=_dt(when).date(),
            manufactured_on=(_dt(when) - timedelta(days=self.rng.uniform(60, 300))).date(),
        )
        self.cartridges[old.slot] = new
        self.counters.insertions[color] += 1
        self._clear_alerts(when, lambda a: a.component == f"cartridge:{color}")
        self._log(when, f"61.0{old.slot}.10", "Info", f"{color} cartridge replaced")
        self._try_start(when)

    def _replace_roll(self, when: int, name: str) -> None:
        roll = self._roll(name)
        if self.rng.random() < 0.25:  # the operator sometimes loads another media type
            primary = self.model.media[0]
            roll.media_type = self.rng.choice((primary, primary, *self.model.media))
        roll.length_mm = MEDIA[roll.media_type].roll_length_mm
        roll.remaining_mm = roll.length_mm
        roll.loaded = True
        self._clear_alerts(when, lambda a: a.component == f"roll:{name}")
        self._log(
            when,
            f"41.0{self.rolls.index(roll) + 1}.10",
            "Info",
            f"{name} loaded: {roll.media_type}",
        )
        self._try_start(when)

    def _replace_printhead(self, when: int, slot: int) -> None:
        old = self.printheads[slot]
        self.printheads[slot] = PrintheadState(
            slot=slot,
            spec=old.spec,
            serial_number=self._supply_serial(),
            health=100.0,
            installed_on=_dt(when).date(),
        )
        self._clear_alerts(when, lambda a: a.component == f"printhead:{slot}")
        self._log(when, f"86.0{slot}.10", "Info", f"Printhead {slot + 1} replaced")
        self._try_start(when)


# --------------------------------------------------------------------------- the fleet


@dataclass(frozen=True, slots=True)
class PrinterPlan:
    """Who printer ``index`` of a fleet is, known before (and without) building it."""

    index: int
    model: ModelSpec
    serial_number: str


def plan_fleet(*, seed: int, count: int) -> list[PrinterPlan]:
    """Models and serial numbers of ``count`` printers, drawn from ``seed`` (cheap: no state)."""
    # No printers is a fleet too: a simulator may serve additive printers only.
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rng = random.Random(f"fleetmeter-fleet:{seed}")  # noqa: S311 (simulation, not secrets)
    plans: list[PrinterPlan] = []
    serials: set[str] = set()
    weights = [m.fleet_weight for m in MODELS]
    for index in range(count):
        model = rng.choices(MODELS, weights=weights)[0]
        serial = f"SG{rng.randint(10**7, 10**8 - 1)}"
        while serial in serials:
            serial = f"SG{rng.randint(10**7, 10**8 - 1)}"
        serials.add(serial)
        plans.append(PrinterPlan(index, model, serial))
    return plans


class Fleet(Sequence[VirtualPrinter]):
    """A fleet whose printers are built on first access.

    Building 5,000 printers up front costs seconds and tens of MB before any is polled. A
    printer built late is the same printer: its state depends only on the seed, its index,
    the start time and the instant it is advanced to (see the module docstring).
    """

    def __init__(
        self, *, seed: int, count: int, start: datetime, job_buffer: int = DEFAULT_JOB_BUFFER
    ) -> None:
        self.seed = seed
        self.start = start
        self.job_buffer = job_buffer
        self.plans = plan_fleet(seed=seed, count=count)
        self._built: dict[int, VirtualPrinter] = {}

    def __len__(self) -> int:
        return len(self.plans)

    @overload
    def __getitem__(self, index: int) -> VirtualPrinter: ...

    @overload
    def __getitem__(self, index: slice) -> list[VirtualPrinter]: ...

    def __getitem__(self, index: int | slice) -> VirtualPrinter | list[VirtualPrinter]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        plan = self.plans[index]  # IndexError and negative indices as for a list
        printer = self._built.get(plan.index)
        if printer is None:
            printer = VirtualPrinter(
                index=plan.index,
                seed=self.seed,
                model=plan.model,
                serial_number=plan.serial_number,
                start=self.start,
                job_buffer=self.job_buffer,
            )
            self._built[plan.index] = printer
        return printer

    def built(self) -> list[VirtualPrinter]:
        """The printers built so far (the others have done nothing observable yet)."""
        return list(self._built.values())


def build_fleet(
    *, seed: int, count: int, start: datetime, job_buffer: int = DEFAULT_JOB_BUFFER
) -> list[VirtualPrinter]:
    """``count`` printers with models and serial numbers drawn from ``seed``."""
    return list(Fleet(seed=seed, count=count, start=start, job_buffer=job_buffer))
