"""Virtual industrial powder-bed 3D printers: one production cell each (the printer, its build
units and its processing station), seeded, on the accelerated clock, with ground truth.

A cell works like a fusing-agent powder-bed line. Builds are submitted during the working day
and wait in the printer's queue. To start one, the processing station fills an empty build
unit with a mix of fresh and recovered powder (its mixing ratio); the unit goes into the
printer, which warms up, then prints layer by layer (fusing and detailing agent through its
printheads), and cools down. The unit then cools outside the printer for hours, is unpacked at
the station, where the powder that was not used is recovered, and is ready again. Builds can
fail (recoater crash, thermal fault) or be cancelled; a failed build used what it printed.
Alerts: material out (agent cartridge or station powder), material low, door open, recoater
crash, thermal fault, printhead worn.

As with ``printer.VirtualPrinter``, everything comes from the cell's own ``random.Random``
and a queue of timed events processed in (time, insertion) order, so the same seed and start
give the same builds at the same simulated seconds, however often ``advance_to`` is called.
Nothing random is drawn when a document is rendered.

Invariant (checked by the tests): every lifetime counter equals its initial value plus the sum
over the finished builds: ``jobs`` +1 per build; ``build_time_s`` += its print time (warm-up
and layers); ``build_volume_mm3`` += bed area × height reached; ``material.<powder>.g`` and
``material_g`` += powder used; ``material.<agent>.total_ul`` and ``material_ul`` += agent used.
"""

from __future__ import annotations

import heapq
import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, overload

from fleetmeter.wire import JobStatus, LifetimeUsage, MaterialUsage

DEFAULT_BUILD_BUFFER = 500
"""Finished builds a printer keeps in its history (ring buffer)."""

_QUEUE_LIMIT = 6  # builds waiting at the printer; the planners hold the rest back
_LOW_FRACTION = 0.10  # agent cartridge "low" below 10 %
_PRINTHEAD_REPLACE_BELOW = 10.0  # health %
_ALERTS_SHOWN_AFTER_CLEAR_S = 24 * 3600  # cleared alerts stay listed a day (collectors see it)
_AMBIENT_C = 24.0


def _epoch(t: datetime) -> int:
    return math.floor(t.timestamp())


def _dt(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def iso(seconds: int | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with a ``Z``, as the device API writes times."""
    if seconds is None:
        return None
    return _dt(seconds).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class AgentSpec:
    name: str
    product_number: str
    capacity_ul: int


@dataclass(frozen=True)
class PowderSpec:
    name: str
    part_density: float
    """g/cm³ of a fused part."""
    bulk_density: float
    """g/cm³ of loose powder in the build unit."""
    fresh_percent: int
    """The station's mixing ratio: share of fresh powder loaded into a build unit."""
    weight: float


@dataclass(frozen=True)
class AdditiveModel:
    name: str
    product_number: str
    firmware_prefix: str
    bed_x_mm: int
    bed_y_mm: int
    max_height_mm: int
    layer_um: int
    layer_seconds: tuple[float, float]
    printheads: int
    printhead_life_ul: int
    """Agent (µL) through one printhead over which its health falls from 100 % to 0 %."""
    fleet_weight: float


AGENTS = (
    AgentSpec("fusing_agent", "FMA-FA3L", 3_000_000),
    AgentSpec("detailing_agent", "FMA-DA3L", 3_000_000),
)

POWDERS = (
    PowderSpec("PA12", 1.01, 0.45, 20, 5.0),
    PowderSpec("PA11", 1.05, 0.48, 30, 2.0),
    PowderSpec("TPU", 1.12, 0.52, 20, 1.0),
    PowderSpec("PP", 0.89, 0.40, 20, 1.0),
)

# Names and numbers are the simulator's own: the API they serve is FleetMeter's (docs/
# architecture.md, "Additive devices"), so no real vendor is imitated.
MODELS = (
    AdditiveModel(
        name="FM PBF 4200 (simulated)",
        product_number="FMA-4200",
        firmware_prefix="AMF42",
        bed_x_mm=380,
        bed_y_mm=284,
        max_height_mm=380,
        layer_um=80,
        layer_seconds=(9.0, 11.0),
        printheads=6,
        printhead_life_ul=40_000_000,
        fleet_weight=1.0,
    ),
    AdditiveModel(
        name="FM PBF 5200 (simulated)",
        product_number="FMA-5200",
        firmware_prefix="AMF52",
        bed_x_mm=380,
        bed_y_mm=284,
        max_height_mm=380,
        layer_um=80,
        layer_seconds=(7.0, 9.0),
        printheads=6,
        printhead_life_ul=50_000_000,
        fleet_weight=2.0,
    ),
    AdditiveModel(
        name="FM PBF 5210 (simulated)",
        product_number="FMA-5210",
        firmware_prefix="AMF52",
        bed_x_mm=380,
        bed_y_mm=284,
        max_height_mm=380,
        layer_um=80,
        layer_seconds=(6.5, 8.0),
        printheads=6,
        printhead_life_ul=50_000_000,
        fleet_weight=1.0,
    ),
)

STATION_MODEL = "FM Processing Station (simulated)"
STATION_CAPACITY_G = 150_000  # fresh and recovered storage, each
BUILD_UNITS_PER_CELL = 3

_PROJECTS = ("Line 4 retrofit", "Spare parts 2026", "Prototype run", "Customer order")
_USERS = ("a.rossi", "j.smith", "m.müller", "s.tanaka", "l.dubois", "p.o'brien")
_PARTS = ("Brackets", "Housings", "Gripper fingers", "Duct adapters", "Clips", "Impellers")
_NASTY_NAMES = (
    "<script>alert(1)</script> build",
    'Tom & Jerry "final" build',
    "Ünïcödé build – 製作 ✓",
    "]]> <!-- not a comment --> &amp;",
)


# --------------------------------------------------------------------------- state


@dataclass(slots=True)
class SimBuild:
    """One build, from submission to its end on the printer, in base units."""

    uuid: uuid.UUID
    name: str
    user: str
    project: str
    material: str
    submitted_at: int
    height_mm: int
    layers_total: int
    part_count: int
    parts_volume_mm3: int
    powder_load_g: int
    powder_full_g: int
    """Powder a complete build uses up (fused parts and powder too aged to recover)."""
    agents_full_ul: dict[str, int]
    layer_seconds: float
    warm_seconds: int
    fault: str | None
    """What ends it early (``recoater_crash``, ``thermal_fault``, ``cancelled``) or None."""
    fault_layer: int
    status: str = "queued"
    """queued, loading, warming, printing, completed, failed, cancelled."""
    build_unit: str | None = None
    started_at: int | None = None
    """The build unit went into the printer (warm-up starts)."""
    printing_at: int | None = None
    ended_at: int | None = None
    layers_done: int = 0
    sequence_number: int = 0
    powder_used_g: int = 0
    agent_used_ul: dict[str, int] = field(default_factory=dict)
    build_volume_mm3: int = 0

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")

    @property
    def print_time_s(self) -> int:
        assert self.started_at is not None and self.ended_at is not None
        return self.ended_at - self.started_at

    @property
    def duration_s(self) -> int:
        assert self.ended_at is not None
        return self.ended_at - self.submitted_at

    @property
    def job_status(self) -> JobStatus:
        return {"completed": JobStatus.COMPLETED, "cancelled": JobStatus.CANCELLED}.get(
            self.status, JobStatus.FAILED
        )

    def layers_at(self, now: int) -> int:
        if self.finished:
            return self.layers_done
        if self.printing_at is None or now < self.printing_at:
            return 0
        return min(self.layers_total, math.floor((now - self.printing_at) / self.layer_seconds))

    def estimated_end(self) -> int | None:
        """When the printer expects it to end (as planned: faults are not foreseen)."""
        if self.finished:
            return self.ended_at
        if self.started_at is None:
            return None
        printing = self.printing_at or self.started_at + self.warm_seconds
        return printing + math.ceil(self.layers_total * self.layer_seconds)

    def truth(self) -> dict[str, Any]:
        """The build as ``GET /truth`` lists it."""
        return {
            "job_uuid": str(self.uuid),
            "sequence_number": self.sequence_number,
            "name": self.name,
            "status": self.status,
            "material": self.material,
            "material_used_g": self.powder_used_g,
            "agent_used_ul": dict(self.agent_used_ul),
            "print_time_s": self.print_time_s,
            "duration_s": self.duration_s,
            "completed_at": iso(self.ended_at),
            "build_volume_mm3": self.build_volume_mm3,
            "build_height_mm": self.height_mm,
            "layers_total": self.layers_total,
            "layers_done": self.layers_done,
            "build_unit": self.build_unit,
        }


@dataclass(slots=True)
class AgentCartridge:
    slot: int
    spec: AgentSpec
    serial_number: str
    level_ul: int
    installed_on: date
    out: bool = False
    low_alerted: bool = False

    @property
    def level_percent(self) -> int:
        return max(0, min(100, round(self.level_ul * 100 / self.spec.capacity_ul)))

    @property
    def state(self) -> str:
        if self.out:
            return "empty"
        if self.level_ul < self.spec.capacity_ul * _LOW_FRACTION:
            return "low"
        return "ok"


@dataclass(slots=True)
class AmPrinthead:
    slot: int
    serial_number: str
    health: float
    installed_on: date
    replacement_due: bool = False

    @property
    def health_percent(self) -> int:
        return max(0, min(100, math.floor(self.health)))


@dataclass(slots=True)
class BuildUnitSim:
    serial_number: str
    state: str = "ready"
    """ready, loading, printing, cooling, cooled, unpacking."""
    location: str = "storage"
    """storage, processing_station, printer, cooling."""
    build: SimBuild | None = None
    material: str | None = None
    powder_g: int = 0
    recoverable_g: int = 0
    state_since: int = 0
    ready_at: int | None = None


@dataclass(slots=True)
class StationOp:
    start: int
    end: int
    kind: str
    """loading or unpacking."""
    unit: str


@dataclass(slots=True)
class StationSim:
    serial_number: str
    material: str
    fresh_percent: int
    fresh_g: int
    recovered_g: int
    busy_until: int = 0
    ops: list[StationOp] = field(default_factory=list)
    delivery_pending: bool = False

    def op_at(self, now: int) -> StationOp | None:
        for op in self.ops:
            if op.start <= now < op.end:
                return op
        return None


@dataclass(slots=True)
class AmAlert:
    sequence_number: int
    code: str
    severity: str
    """info, warning, error."""
    component: str
    text: str
    raised_at: int
    blocking: bool
    cleared_at: int | None = None


@dataclass
class AmCounters:
    """Lifetime counters of one printer, in base units."""

    builds: int = 0
    completed: int = 0
    failed: int = 0
    build_time_s: int = 0
    build_volume_mm3: int = 0
    layers: int = 0
    material_g: dict[str, int] = field(default_factory=dict)
    agent_ul: dict[str, int] = field(default_factory=dict)

    def add(self, build: SimBuild) -> None:
        self.builds += 1
        if build.status == "completed":
            self.completed += 1
        else:
            self.failed += 1
        self.build_time_s += build.print_time_s
        self.build_volume_mm3 += build.build_volume_mm3
        self.layers += build.layers_done
        self.material_g[build.material] = self.material_g.get(build.material, 0)
        self.material_g[build.material] += build.powder_used_g
        for agent, used in build.agent_used_ul.items():
            self.agent_ul[agent] = self.agent_ul.get(agent, 0) + used

    def copy(self) -> AmCounters:
        return AmCounters(
            builds=self.builds,
            completed=self.completed,
            failed=self.failed,
            build_time_s=self.build_time_s,
            build_volume_mm3=self.build_volume_mm3,
            layers=self.layers,
            material_g=dict(self.material_g),
            agent_ul=dict(self.agent_ul),
        )

    def to_usage(self) -> LifetimeUsage:
        return LifetimeUsage(
            jobs=self.builds,
            build_time_s=self.build_time_s,
            build_volume_mm3=self.build_volume_mm3,
            material_g=sum(self.material_g.values()),
            material_ul=sum(self.agent_ul.values()),
            by_material=[
                *(MaterialUsage(material=m, used_g=g) for m, g in sorted(self.material_g.items())),
                *(MaterialUsage(material=a, used_ul=v) for a, v in sorted(self.agent_ul.items())),
            ],
        )

    def meters(self) -> dict[str, int]:
        """Flattened exactly like ``fleetmeter.wire.LifetimeUsage.meters()``."""
        return self.to_usage().meters()


# --------------------------------------------------------------------------- the printer

_ARRIVAL = 0
_LOADED = 1
_PRINT_START = 2
_PRINT_END = 3
_PRINTER_COOLED = 4
_UNIT_COOLED = 5
_UNPACK_START = 6
_UNPACK_END = 7
_POWDER_DELIVERY = 8
_REPLACE_AGENT = 9
_REPLACE_PRINTHEAD = 10
_CLEAR_ALERT = 11


class AdditivePrinter:
    """One simulated powder-bed printer with its cell, advanced lazily to a simulated instant."""

    def __init__(
        self,
        *,
        index: int,
        seed: int,
        model: AdditiveModel,
        serial_number: str,
        start: datetime,
        build_buffer: int = DEFAULT_BUILD_BUFFER,
    ) -> None:
        if build_buffer < 1:
            raise ValueError("build_buffer must be >= 1")
        # A string seed is hashed with SHA-512 by random.Random: stable across runs.
        self.rng = random.Random(f"fleetmeter-sim-additive:{seed}:{index}")  # noqa: S311
        rng = self.rng
        self.index = index
        self.model = model
        self.serial_number = serial_number
        self.build_buffer = build_buffer
        self.uuid = uuid.UUID(int=rng.getrandbits(128), version=4)
        major, minor, build = rng.randint(3, 6), rng.randint(0, 12), rng.randint(100, 999)
        self.firmware_version = f"{model.firmware_prefix}.{major}.{minor}.{build}"
        start_s = _epoch(start)
        self.start_s = start_s
        self._now_s = start_s
        age_days = rng.uniform(60, 900)
        self.installed_on = (start - timedelta(days=age_days)).date()
        self.powder = rng.choices(POWDERS, weights=[p.weight for p in POWDERS])[0]
        self._rate_per_s = rng.uniform(2.0, 3.5) / (10 * 3600)  # builds per working-day second

        self.cartridges = [
            AgentCartridge(
                slot=i,
                spec=spec,
                serial_number=self._part_serial(),
                level_ul=round(spec.capacity_ul * rng.uniform(0.2, 1.0)),
                installed_on=(start - timedelta(days=rng.uniform(1, 40))).date(),
            )
            for i, spec in enumerate(AGENTS)
        ]
        self.printheads = [
            AmPrinthead(
                slot=i,
                serial_number=self._part_serial(),
                health=rng.uniform(35, 100),
                installed_on=(start - timedelta(days=rng.uniform(5, 200))).date(),
            )
            for i in range(model.printheads)
        ]
        self.station = StationSim(
            serial_number=f"PS{rng.randint(10**7, 10**8 - 1)}",
            material=self.powder.name,
            fresh_percent=self.powder.fresh_percent,
            fresh_g=round(STATION_CAPACITY_G * rng.uniform(0.3, 0.9)),
            recovered_g=round(STATION_CAPACITY_G * rng.uniform(0.2, 0.6)),
        )
        self.units = [
            BuildUnitSim(serial_number=f"BU{rng.randint(10**7, 10**8 - 1)}", state_since=start_s)
            for _ in range(BUILD_UNITS_PER_CELL)
        ]
        self.counters = self._initial_counters(age_days)
        self.initial_counters = self.counters.copy()
        self._next_sequence = self.counters.builds + 1

        self.builds: list[SimBuild] = []
        """Every build finished since the start (ground truth), oldest first."""
        self.queue: list[SimBuild] = []
        self.current: SimBuild | None = None
        self.state = "idle"
        """idle, warming, printing, cooling (errors come from alerts: ``engine_state``)."""
        self.state_since = start_s
        self.door_open = False
        self.alerts: list[AmAlert] = []
        self._alert_seq = 0
        self._heap: list[tuple[int, int, int, Any]] = []
        self._heap_seq = 0

        # The cell was working before the simulation began: one unit still cools from a
        # build that is part of the initial counters, and a build or two wait in the queue.
        cooling = self.units[1]
        cooling.state, cooling.location = "cooling", "cooling"
        cooling.material = self.powder.name
        cooling.powder_g = round(rng.uniform(5_000, 9_000))
        cooling.recoverable_g = round(cooling.powder_g * rng.uniform(0.6, 0.8))
        cooling.ready_at = start_s + round(rng.uniform(1, 6) * 3600)
        self._schedule(cooling.ready_at, _UNIT_COOLED, cooling.serial_number)
        for _ in range(rng.randint(1, 2)):
            self.queue.append(self._draw_build(start_s - round(rng.uniform(600, 7200))))
        self._schedule(start_s, _ARRIVAL, False)  # starts the queued build, draws the next

    # ------------------------------------------------------------------ helpers

    def _part_serial(self) -> str:
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
        return "".join(self.rng.choice(alphabet) for _ in range(10))

    def _initial_counters(self, age_days: float) -> AmCounters:
        rng = self.rng
        builds = round(age_days * rng.uniform(0.8, 2.0))
        bed_mm2 = self.model.bed_x_mm * self.model.bed_y_mm
        counters = AmCounters(builds=builds)
        counters.failed = round(builds * rng.uniform(0.02, 0.06))
        counters.completed = builds - counters.failed
        counters.build_time_s = round(builds * rng.uniform(4.5, 7.5) * 3600)
        mean_height = rng.uniform(120, 220)
        counters.build_volume_mm3 = round(builds * bed_mm2 * mean_height)
        counters.layers = round(builds * mean_height * 1000 / self.model.layer_um)
        counters.material_g[self.powder.name] = round(builds * rng.uniform(2_500, 4_500))
        counters.agent_ul["fusing_agent"] = round(builds * rng.uniform(150_000, 400_000))
        counters.agent_ul["detailing_agent"] = round(builds * rng.uniform(60_000, 150_000))
        return counters

    @property
    def now(self) -> datetime:
        return _dt(self._now_s)

    @property
    def now_s(self) -> int:
        return self._now_s

    def cartridge(self, agent: str) -> AgentCartridge:
        for cart in self.cartridges:
            if cart.spec.name == agent:
                return cart
        raise KeyError(agent)

    def unit(self, serial: str) -> BuildUnitSim:
        for unit in self.units:
            if unit.serial_number == serial:
                return unit
        raise KeyError(serial)

    # ------------------------------------------------------------------ public API

    def advance_to(self, t: datetime) -> None:
        """Run every event up to and including simulated instant ``t`` (never backwards)."""
        target = _epoch(t)
        heap = self._heap
        while heap and heap[0][0] <= target:
            when, _, kind, arg = heapq.heappop(heap)
            self._handle(when, kind, arg)
        self._now_s = max(self._now_s, target)

    def active_alerts(self) -> list[AmAlert]:
        return [a for a in self.alerts if a.cleared_at is None]

    def listed_alerts(self) -> list[AmAlert]:
        """Active alerts and those cleared within the last day, oldest first."""
        horizon = self._now_s - _ALERTS_SHOWN_AFTER_CLEAR_S
        return [a for a in self.alerts if a.cleared_at is None or a.cleared_at >= horizon]

    def engine_state(self) -> str:
        """idle, warming, printing, cooling or error (an active error alert stops the line)."""
        if any(a.severity == "error" for a in self.active_alerts()):
            return "error"
        return self.state

    def recent_builds(self) -> list[SimBuild]:
        """The printer's build history: the last ``build_buffer`` finished builds."""
        return self.builds[-self.build_buffer :]

    def lifetime_usage(self) -> LifetimeUsage:
        return self.counters.to_usage()

    def meters(self) -> dict[str, int]:
        return self.counters.meters()

    def temperatures(self) -> dict[str, float]:
        """Deterministic readings for the printer's state (no randomness at read time)."""
        now = self._now_s
        build = self.current
        target = 175.0
        if self.state == "printing" and build is not None:
            wiggle = ((build.layers_at(now) * 37) % 11 - 5) / 10
            zone = target + wiggle
        elif self.state == "warming" and build is not None and build.started_at is not None:
            share = min(1.0, (now - build.started_at) / max(1, build.warm_seconds))
            zone = _AMBIENT_C + (target - _AMBIENT_C) * share
        elif self.state == "cooling":
            elapsed = now - self.state_since
            zone = _AMBIENT_C + (target - _AMBIENT_C) * math.exp(-elapsed / 900)
        else:
            zone = _AMBIENT_C + 6.0
        return {
            "print_zone": round(zone, 1),
            "build_platform": round(_AMBIENT_C + (zone - _AMBIENT_C) * 0.85, 1),
            "agent_cartridges": 28.0,
        }

    def truth(self) -> dict[str, Any]:
        """Ground truth for ``GET /truth``: every build finished since start, the meters."""
        return {
            "kind": "additive",
            "serial_number": self.serial_number,
            "model": self.model.name,
            "sim_time": iso(self._now_s),
            "jobs": [b.truth() for b in self.builds],
            "meters": self.meters(),
            "initial_meters": self.initial_counters.meters(),
        }

    # ------------------------------------------------------------------ event machinery

    def _schedule(self, when: int, kind: int, arg: Any) -> None:
        self._heap_seq += 1
        heapq.heappush(self._heap, (when, self._heap_seq, kind, arg))

    @staticmethod
    def _rate_factor(t: int) -> float:
        """Share of the peak submission rate at epoch second ``t`` (site time = UTC)."""
        weekday = (t // 86_400 + 3) % 7  # 1970-01-01 was a Thursday
        hour = (t % 86_400) // 3600
        if weekday >= 5:
            return 0.1
        return 1.0 if 7 <= hour < 19 else 0.15

    def _next_arrival(self, after: int) -> int:
        # Thinning (Lewis & Shedler), as for the large-format printers' jobs.
        t = float(after)
        while True:
            t += self.rng.expovariate(self._rate_per_s)
            if self.rng.random() < self._rate_factor(int(t)):
                return max(after + 1, int(t))

    def _handle(self, when: int, kind: int, arg: Any) -> None:
        if kind == _ARRIVAL:
            if arg is not False and len(self.queue) < _QUEUE_LIMIT:
                self.queue.append(self._draw_build(when))
            self._schedule(self._next_arrival(when), _ARRIVAL, None)
        elif kind == _LOADED:
            self._loaded(when)
        elif kind == _PRINT_START:
            self._print_start(when)
        elif kind == _PRINT_END:
            self._print_end(when)
        elif kind == _PRINTER_COOLED:
            self._printer_cooled(when)
        elif kind == _UNIT_COOLED:
            self._unit_cooled(when, arg)
        elif kind == _UNPACK_START:
            unit = self.unit(arg)
            unit.state, unit.location, unit.state_since = "unpacking", "processing_station", when
        elif kind == _UNPACK_END:
            self._unpacked(when, arg)
        elif kind == _POWDER_DELIVERY:
            self.station.fresh_g = STATION_CAPACITY_G
            self.station.delivery_pending = False
            self._clear(when, lambda a: a.component == f"station:{self.station.serial_number}")
        elif kind == _REPLACE_AGENT:
            self._replace_agent(when, arg)
        elif kind == _REPLACE_PRINTHEAD:
            self._replace_printhead(when, arg)
        elif kind == _CLEAR_ALERT:
            self._clear_alert(when, arg)
        self._prune(when)
        self._try_start(when)

    def _printer_cooled(self, when: int) -> None:
        self._set_state(when, "idle")
        if self.rng.random() < 0.25:  # an operator opens the door between builds
            alert = self._raise(
                when, "door_open", "warning", "door", "Printer door is open", blocking=True
            )
            self.door_open = True
            self._schedule(when + self.rng.randint(5 * 60, 40 * 60), _CLEAR_ALERT, alert)

    def _clear_alert(self, when: int, alert: AmAlert) -> None:
        if alert.cleared_at is None:
            alert.cleared_at = when
        if alert.code == "door_open":
            self.door_open = False

    def _set_state(self, when: int, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_since = when

    def _raise(
        self, when: int, code: str, severity: str, component: str, text: str, *, blocking: bool
    ) -> AmAlert:
        self._alert_seq += 1
        alert = AmAlert(self._alert_seq, code, severity, component, text, when, blocking)
        self.alerts.append(alert)
        return alert

    def _clear(self, when: int, match: Any) -> None:
        for alert in self.alerts:
            if alert.cleared_at is None and match(alert):
                alert.cleared_at = when

    def _prune(self, when: int) -> None:
        horizon = when - 7 * 86_400
        if self.alerts and self.alerts[0].cleared_at is not None:
            self.alerts = [a for a in self.alerts if a.cleared_at is None or a.cleared_at > horizon]
        self.station.ops = [op for op in self.station.ops if op.end > when - 86_400]

    # ------------------------------------------------------------------ builds

    def _draw_build(self, when: int) -> SimBuild:
        rng = self.rng
        model = self.model
        height = rng.randint(40, min(300, model.max_height_mm))
        layers = height * 1000 // model.layer_um
        bed_mm2 = model.bed_x_mm * model.bed_y_mm
        volume_cm3 = bed_mm2 * height / 1000
        packing = rng.uniform(0.05, 0.14)
        parts_cm3 = volume_cm3 * packing
        powder = self.powder
        load = math.ceil(volume_cm3 * powder.bulk_density * 1.1)
        # Used up: the fused parts, and powder around them too aged by the heat to recover.
        used = math.ceil(parts_cm3 * powder.part_density + load * rng.uniform(0.08, 0.16))
        fault: str | None = None
        r = rng.random()
        if r < 0.025:
            fault = "recoater_crash"
        elif r < 0.045:
            fault = "thermal_fault"
        elif r < 0.055:
            fault = "cancelled"
        part = rng.choice(_PARTS)
        name = (
            rng.choice(_NASTY_NAMES)
            if rng.random() < 0.05
            else f"{part} batch {rng.randint(1, 400)}"
        )
        return SimBuild(
            uuid=uuid.UUID(int=rng.getrandbits(128), version=4),
            name=name,
            user=rng.choice(_USERS),
            project=rng.choice(_PROJECTS),
            material=powder.name,
            submitted_at=when,
            height_mm=height,
            layers_total=layers,
            part_count=rng.randint(8, 400),
            parts_volume_mm3=round(parts_cm3 * 1000),
            powder_load_g=load,
            powder_full_g=min(used, load),
            agents_full_ul={
                "fusing_agent": round(parts_cm3 * rng.uniform(90, 140) + layers * 20),
                "detailing_agent": round(layers * rng.uniform(30, 50)),
            },
            layer_seconds=rng.uniform(*model.layer_seconds),
            warm_seconds=rng.randint(20 * 60, 40 * 60),
            fault=fault,
            fault_layer=rng.randint(1, max(1, layers - 1)),
        )

    def _try_start(self, now: int) -> None:
        if self.current is not None or self.state != "idle" or not self.queue:
            return
        if any(a.blocking or a.severity == "error" for a in self.active_alerts()):
            return
        unit = next((u for u in self.units if u.state == "ready"), None)
        if unit is None:
            return  # every build unit is busy: the next unpacked one starts the build
        build = self.queue[0]
        for agent, need in build.agents_full_ul.items():
            cart = self.cartridge(agent)
            if cart.level_ul < need:
                if not cart.out:
                    cart.out = True
                    self._raise(
                        now,
                        "material_out",
                        "error",
                        f"agent:{agent}",
                        f"{agent.replace('_', ' ').capitalize()} cartridge is empty: replace it",
                        blocking=True,
                    )
                    self._schedule(now + self.rng.randint(20 * 60, 5 * 3600), _REPLACE_AGENT, agent)
                return
        station = self.station
        fresh = math.ceil(build.powder_load_g * station.fresh_percent / 100)
        recovered = build.powder_load_g - fresh
        if station.recovered_g < recovered:
            # Not enough recovered powder: the station tops the mix up with fresh powder.
            fresh += recovered - station.recovered_g
            recovered = station.recovered_g
        if station.fresh_g < fresh:
            if not station.delivery_pending:
                station.delivery_pending = True
                self._raise(
                    now,
                    "material_out",
                    "error",
                    f"station:{station.serial_number}",
                    f"Not enough fresh {station.material} powder to load a build unit",
                    blocking=True,
                )
                delay = self.rng.randint(3600, 10 * 3600)
                self._schedule(now + delay, _POWDER_DELIVERY, None)
            return
        station.fresh_g -= fresh
        station.recovered_g -= recovered
        self.queue.pop(0)
        self.current = build
        build.status = "loading"
        build.build_unit = unit.serial_number
        begin = max(now, station.busy_until)
        end = begin + self.rng.randint(15 * 60, 30 * 60)
        station.busy_until = end
        station.ops.append(StationOp(begin, end, "loading", unit.serial_number))
        unit.state, unit.location, unit.state_since = "loading", "processing_station", now
        unit.build, unit.material, unit.powder_g = build, build.material, build.powder_load_g
        unit.ready_at = end
        self._schedule(end, _LOADED, None)

    def _loaded(self, when: int) -> None:
        build = self.current
        assert build is not None and build.build_unit is not None
        unit = self.unit(build.build_unit)
        unit.state, unit.location, unit.state_since, unit.ready_at = (
            "printing",
            "printer",
            when,
            None,
        )
        build.status = "warming"
        build.started_at = when
        self._set_state(when, "warming")
        self._schedule(when + build.warm_seconds, _PRINT_START, None)

    def _print_start(self, when: int) -> None:
        build = self.current
        assert build is not None
        build.status = "printing"
        build.printing_at = when
        self._set_state(when, "printing")
        layers = build.fault_layer if build.fault else build.layers_total
        self._schedule(when + math.ceil(layers * build.layer_seconds), _PRINT_END, None)

    def _print_end(self, when: int) -> None:
        build = self.current
        assert build is not None and build.build_unit is not None
        self.current = None
        done = build.fault_layer if build.fault else build.layers_total
        share = done / build.layers_total
        build.layers_done = done
        build.status = (
            "completed"
            if build.fault is None
            else "cancelled"
            if build.fault == "cancelled"
            else "failed"
        )
        build.ended_at = when
        build.powder_used_g = (
            build.powder_full_g if share >= 1 else math.floor(build.powder_full_g * share)
        )
        build.agent_used_ul = {
            a: (v if share >= 1 else math.floor(v * share)) for a, v in build.agents_full_ul.items()
        }
        bed_mm2 = self.model.bed_x_mm * self.model.bed_y_mm
        build.build_volume_mm3 = bed_mm2 * done * self.model.layer_um // 1000
        build.sequence_number = self._next_sequence
        self._next_sequence += 1
        self.counters.add(build)
        self.builds.append(build)
        for agent, used in build.agent_used_ul.items():
            cart = self.cartridge(agent)
            cart.level_ul = max(0, cart.level_ul - used)
            if cart.level_ul < cart.spec.capacity_ul * _LOW_FRACTION and not cart.low_alerted:
                cart.low_alerted = True
                self._raise(
                    when,
                    "material_low",
                    "warning",
                    f"agent:{agent}",
                    f"{agent.replace('_', ' ').capitalize()} cartridge is low",
                    blocking=False,
                )
        self._wear(when, sum(build.agent_used_ul.values()))

        unit = self.unit(build.build_unit)
        unit.state, unit.location, unit.state_since = "cooling", "cooling", when
        unit.recoverable_g = build.powder_load_g - build.powder_used_g
        # Natural cooling takes about as long as the print, at least a few hours.
        unit.ready_at = when + max(3 * 3600, round(build.print_time_s * self.rng.uniform(0.9, 1.4)))
        self._schedule(unit.ready_at, _UNIT_COOLED, unit.serial_number)

        if build.fault in ("recoater_crash", "thermal_fault"):
            text = (
                "Recoater crash: the build was stopped; inspect the recoater"
                if build.fault == "recoater_crash"
                else "Thermal fault in the print zone: the build was stopped"
            )
            component = "recoater" if build.fault == "recoater_crash" else "heating"
            alert = self._raise(when, build.fault, "error", component, text, blocking=True)
            self._schedule(when + self.rng.randint(3600, 5 * 3600), _CLEAR_ALERT, alert)
            self._set_state(when, "idle")
        else:
            self._set_state(when, "cooling")
            self._schedule(when + self.rng.randint(10 * 60, 25 * 60), _PRINTER_COOLED, None)

    def _wear(self, when: int, agent_ul: int) -> None:
        per_head = agent_ul / len(self.printheads)
        for head in self.printheads:
            head.health -= per_head * 100 / self.model.printhead_life_ul
            if head.health < _PRINTHEAD_REPLACE_BELOW and not head.replacement_due:
                head.replacement_due = True
                self._raise(
                    when,
                    "printhead_worn",
                    "warning",
                    f"printhead:{head.slot}",
                    f"Printhead {head.slot + 1} is worn out: replace it",
                    blocking=False,
                )
                delay = self.rng.randint(3600, 24 * 3600)
                self._schedule(when + delay, _REPLACE_PRINTHEAD, head.slot)

    def _unit_cooled(self, when: int, serial: str) -> None:
        unit = self.unit(serial)
        station = self.station
        begin = max(when, station.busy_until)
        end = begin + self.rng.randint(45 * 60, 2 * 3600)
        station.busy_until = end
        station.ops.append(StationOp(begin, end, "unpacking", serial))
        unit.state, unit.state_since, unit.ready_at = "cooled", when, end
        self._schedule(begin, _UNPACK_START, serial)
        self._schedule(end, _UNPACK_END, serial)

    def _unpacked(self, when: int, serial: str) -> None:
        unit = self.unit(serial)
        station = self.station
        # Recovered powder beyond the storage's capacity is bagged and taken away.
        station.recovered_g = min(STATION_CAPACITY_G, station.recovered_g + unit.recoverable_g)
        unit.state, unit.location, unit.state_since = "ready", "storage", when
        unit.build, unit.material, unit.powder_g, unit.recoverable_g = None, None, 0, 0
        unit.ready_at = None

    def _replace_agent(self, when: int, agent: str) -> None:
        old = self.cartridge(agent)
        self.cartridges[old.slot] = AgentCartridge(
            slot=old.slot,
            spec=old.spec,
            serial_number=self._part_serial(),
            level_ul=old.spec.capacity_ul,
            installed_on=_dt(when).date(),
        )
        self._clear(when, lambda a: a.component == f"agent:{agent}")

    def _replace_printhead(self, when: int, slot: int) -> None:
        self.printheads[slot] = AmPrinthead(
            slot=slot,
            serial_number=self._part_serial(),
            health=100.0,
            installed_on=_dt(when).date(),
        )
        self._clear(when, lambda a: a.component == f"printhead:{slot}")


# --------------------------------------------------------------------------- the fleet


@dataclass(frozen=True, slots=True)
class AdditivePlan:
    """Who additive printer ``index`` of a fleet is, known before (and without) building it."""

    index: int
    model: AdditiveModel
    serial_number: str


def plan_additive(*, seed: int, count: int) -> list[AdditivePlan]:
    """Models and serial numbers of ``count`` additive printers, drawn from ``seed``."""
    if count < 0:
        raise ValueError("count must be >= 0")
    rng = random.Random(f"fleetmeter-additive-fleet:{seed}")  # noqa: S311 (simulation)
    plans: list[AdditivePlan] = []
    serials: set[str] = set()
    weights = [m.fleet_weight for m in MODELS]
    for index in range(count):
        model = rng.choices(MODELS, weights=weights)[0]
        serial = f"AM{rng.randint(10**7, 10**8 - 1)}"
        while serial in serials:
            serial = f"AM{rng.randint(10**7, 10**8 - 1)}"
        serials.add(serial)
        plans.append(AdditivePlan(index, model, serial))
    return plans


class AdditiveFleet(Sequence[AdditivePrinter]):
    """Additive printers built on first access (their state depends only on the seed, the
    index, the start time and the instant they are advanced to)."""

    def __init__(
        self,
        *,
        seed: int,
        count: int,
        start: datetime,
        build_buffer: int = DEFAULT_BUILD_BUFFER,
    ) -> None:
        self.seed = seed
        self.start = start
        self.build_buffer = build_buffer
        self.plans = plan_additive(seed=seed, count=count)
        self._built: dict[int, AdditivePrinter] = {}

    def __len__(self) -> int:
        return len(self.plans)

    @overload
    def __getitem__(self, index: int) -> AdditivePrinter: ...

    @overload
    def __getitem__(self, index: slice) -> list[AdditivePrinter]: ...

    def __getitem__(self, index: int | slice) -> AdditivePrinter | list[AdditivePrinter]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        plan = self.plans[index]
        printer = self._built.get(plan.index)
        if printer is None:
            printer = AdditivePrinter(
                index=plan.index,
                seed=self.seed,
                model=plan.model,
                serial_number=plan.serial_number,
                start=self.start,
                build_buffer=self.build_buffer,
            )
            self._built[plan.index] = printer
        return printer

    def built(self) -> list[AdditivePrinter]:
        return list(self._built.values())
