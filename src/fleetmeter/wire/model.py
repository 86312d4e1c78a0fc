"""Wire model v1: what a device report, a job record, an alert and a batch look like on the wire.

Rules (DESIGN.md, "The wire model"): quantities are integers in base units (µL, mm², mm, g, s);
timestamps are timezone-aware and normalised to UTC; every document carries a schema version;
fields this version does not know are kept (``extra="allow"``) so that an older portal or
collector passes a newer peer's data through instead of silently dropping it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)

SCHEMA_VERSION = "1.0"
"""Major.minor. A reader accepts every minor of its major; unknown fields are kept."""


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware timestamp, normalised to UTC. Naive timestamps are refused."""

MAX_COUNT = 2**63 - 1
"""Every counter and quantity fits a signed 64-bit column: a device that reports more (a
Counter64 sentinel, ``1e30``) is refused at the edge instead of failing a database write."""

NonNegativeInt = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Microlitres = NonNegativeInt
SquareMillimetres = NonNegativeInt
Millimetres = NonNegativeInt
Grams = NonNegativeInt
Seconds = NonNegativeInt
CubicMillimetres = NonNegativeInt
"""Build volumes (3D). One mm³ is one µL; the name says which of the two a field means."""
Percent = Annotated[int, Field(ge=0, le=100)]
ShortText = Annotated[str, Field(max_length=256)]
LongText = Annotated[str, Field(max_length=2048)]
MeterKey = Annotated[str, Field(min_length=1, max_length=200)]
"""A media type, colour or category that becomes part of a meter name (``media.<key>.area_mm2``):
short enough that every meter name fits the portal's 256-character column."""


class WireModel(BaseModel):
    """Base of every wire document: unknown (newer) fields are kept, not dropped."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# --------------------------------------------------------------------------- identity


class DeviceIdentity(WireModel):
    vendor: ShortText
    serial_number: ShortText = Field(min_length=1)
    product_number: ShortText | None = None
    product_name: ShortText | None = None
    firmware_version: ShortText | None = None
    driver: ShortText = Field(description="Driver id that read the device, e.g. 'ledm'.")
    address: ShortText | None = Field(
        default=None, description="Host or IP the device was read at."
    )
    device_class: Literal["printer", "printer3d", "build_unit", "station"] = "printer"


# --------------------------------------------------------------------------- status


class EngineState(StrEnum):
    IDLE = "idle"
    PRINTING = "printing"
    PROCESSING = "processing"
    SLEEP = "sleep"
    WARMING = "warming"
    COOLING = "cooling"
    ERROR = "error"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


class SupplyState(StrEnum):
    OK = "ok"
    LOW = "low"
    VERY_LOW = "very_low"
    EMPTY = "empty"
    MISSING = "missing"
    FAULTY = "faulty"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


class Printhead(WireModel):
    slot: NonNegativeInt | None = None
    colors: list[ShortText] = Field(
        default_factory=list, description="Colour codes, e.g. ['C','M']."
    )
    status: SupplyState = SupplyState.UNKNOWN
    health_percent: Percent | None = Field(default=None, description="Health metric, 100 = new.")
    product_number: ShortText | None = None
    product_name: ShortText | None = None
    serial_number: ShortText | None = None
    non_vendor_ink: bool = False
    installed_on: date | None = None
    expires_on: date | None = None


class Cartridge(WireModel):
    slot: NonNegativeInt | None = None
    color: ShortText = Field(description="Colour code: C, M, Y, K, MK, PK, LC, LM, G ...")
    status: SupplyState = SupplyState.UNKNOWN
    level_percent: Percent | None = None
    product_number: ShortText | None = None
    product_name: ShortText | None = None
    serial_number: ShortText | None = None
    manufacturer: ShortText | None = None
    capacity_ul: Microlitres | None = None
    ink_consumed_ul: Microlitres | None = None
    non_vendor_ink_consumed_ul: Microlitres | None = None
    non_vendor: bool = False
    installed_on: date | None = None
    expires_on: date | None = None


class MediaSource(WireModel):
    name: ShortText = Field(description="Tray or roll id, e.g. 'roll1', 'Tray1'.")
    state: ShortText = Field(default="unknown", description="ready, empty, open, jammed, ...")
    media_type: ShortText | None = None
    width_mm: Millimetres | None = None
    height_mm: Millimetres | None = Field(default=None, description="Sheet height; None on rolls.")
    remaining_length_mm: Millimetres | None = None


class MediaType(WireModel):
    id: ShortText
    names: dict[ShortText, ShortText] = Field(
        default_factory=dict, description="Localised names by BCP-47 language tag."
    )


class JobCategoryThreshold(WireModel):
    """Bounds the device uses to put a job into a coverage category (e.g. 'line drawing')."""

    category: ShortText
    max_coverage_percent: Percent | None = None
    max_area_mm2: SquareMillimetres | None = None


class PrintCategorySetting(WireModel):
    category: ShortText
    enabled: bool = True
    value: ShortText | None = None


class Accessory(WireModel):
    name: ShortText
    product_number: ShortText | None = None
    serial_number: ShortText | None = None
    status: ShortText | None = None


class DeviceStatus(WireModel):
    engine_state: EngineState = EngineState.UNKNOWN
    state_reasons: list[ShortText] = Field(default_factory=list)
    printheads: list[Printhead] = Field(default_factory=list)
    cartridges: list[Cartridge] = Field(default_factory=list)
    media_sources: list[MediaSource] = Field(default_factory=list)
    supported_media: list[MediaType] = Field(default_factory=list)
    job_category_thresholds: list[JobCategoryThreshold] = Field(default_factory=list)
    print_category_settings: list[PrintCategorySetting] = Field(default_factory=list)
    accessories: list[Accessory] = Field(default_factory=list)


# --------------------------------------------------------------------------- lifetime usage


class CartridgeTypeUsage(WireModel):
    """Per colour. None means the device does not say (never read it as zero)."""

    color: MeterKey
    total_ink_ul: Microlitres = 0
    vendor_ink_ul: Microlitres | None = None
    non_vendor_ink_ul: Microlitres | None = None
    insertions: NonNegativeInt | None = None


class MediaTypeUsage(WireModel):
    """Per media type (or, on office devices, per media size). None: the device does not say."""

    media_type: MeterKey
    area_mm2: SquareMillimetres | None = None
    length_mm: Millimetres | None = None
    impressions: NonNegativeInt | None = None


class CategoryUsage(WireModel):
    """Usage per application / coverage category (e.g. 'cad_lines', 'poster', 'photo')."""

    category: MeterKey
    area_mm2: SquareMillimetres = 0
    length_mm: Millimetres = 0
    ink_ul: Microlitres | None = None


class ScanUsage(WireModel):
    scan_jobs: NonNegativeInt = 0
    copy_jobs: NonNegativeInt = 0
    scanned_area_mm2: SquareMillimetres = 0
    copied_area_mm2: SquareMillimetres = 0


class MaterialUsage(WireModel):
    """3D material used over the device's life, per material (powder or filament in grams,
    agents or resin in µL). None: the device does not say."""

    material: MeterKey
    used_g: Grams | None = None
    used_ul: Microlitres | None = None


class LifetimeUsage(WireModel):
    """Lifetime counters as read from the device: monotonic except on reset or device swap."""

    jobs: NonNegativeInt | None = None
    impressions: NonNegativeInt | None = Field(default=None, description="Pages / impressions.")
    mono_impressions: NonNegativeInt | None = None
    color_impressions: NonNegativeInt | None = None
    total_ink_ul: Microlitres | None = None
    total_media_area_mm2: SquareMillimetres | None = None
    total_media_length_mm: Millimetres | None = None
    by_cartridge_type: list[CartridgeTypeUsage] = Field(default_factory=list)
    by_media_type: list[MediaTypeUsage] = Field(default_factory=list)
    by_category: list[CategoryUsage] = Field(default_factory=list)
    scan: ScanUsage | None = None
    # 3D devices. Readers that predate these fields keep them as extras (WireModel).
    build_time_s: Seconds | None = Field(default=None, description="3D: time spent building.")
    build_volume_mm3: CubicMillimetres | None = Field(
        default=None, description="3D: build-chamber volume the builds occupied."
    )
    material_g: Grams | None = Field(default=None, description="3D: material used, by weight.")
    material_ul: Microlitres | None = Field(
        default=None, description="3D: material used by volume (agents, resin)."
    )
    by_material: list[MaterialUsage] = Field(default_factory=list)

    def meters(self) -> dict[str, int]:
        """Flatten to named meters (``impressions``, ``ink.C.total_ul``, ...) for counter readings.

        Names are stable: the portal stores one counter reading per meter and billing
        reconciles job totals against deltas of these.
        """
        out: dict[str, int] = {}
        for name in (
            "jobs",
            "impressions",
            "mono_impressions",
            "color_impressions",
            "total_ink_ul",
            "total_media_area_mm2",
            "total_media_length_mm",
            "build_time_s",
            "build_volume_mm3",
            "material_g",
            "material_ul",
        ):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        for c in self.by_cartridge_type:
            out[f"ink.{c.color}.total_ul"] = c.total_ink_ul
            if c.vendor_ink_ul is not None:
                out[f"ink.{c.color}.vendor_ul"] = c.vendor_ink_ul
            if c.non_vendor_ink_ul is not None:
                out[f"ink.{c.color}.non_vendor_ul"] = c.non_vendor_ink_ul
            if c.insertions is not None:
                out[f"ink.{c.color}.insertions"] = c.insertions
        for m in self.by_media_type:
            if m.area_mm2 is not None:
                out[f"media.{m.media_type}.area_mm2"] = m.area_mm2
            if m.length_mm is not None:
                out[f"media.{m.media_type}.length_mm"] = m.length_mm
            if m.impressions is not None:
                out[f"media.{m.media_type}.impressions"] = m.impressions
        for cat in self.by_category:
            out[f"category.{cat.category}.area_mm2"] = cat.area_mm2
            out[f"category.{cat.category}.length_mm"] = cat.length_mm
        for mat in self.by_material:
            if mat.used_g is not None:
                out[f"material.{mat.material}.g"] = mat.used_g
            if mat.used_ul is not None:
                out[f"material.{mat.material}.total_ul"] = mat.used_ul
        if self.scan is not None:
            out["scan.scan_jobs"] = self.scan.scan_jobs
            out["scan.copy_jobs"] = self.scan.copy_jobs
            out["scan.scanned_area_mm2"] = self.scan.scanned_area_mm2
            out["scan.copied_area_mm2"] = self.scan.copied_area_mm2
        return out


# --------------------------------------------------------------------------- jobs


class JobKind(StrEnum):
    PRINT = "print"
    SCAN = "scan"
    COPY = "copy"


class JobStatus(StrEnum):
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Submitter(WireModel):
    """Who and what sent the job. User fields may be pseudonymised at the collector."""

    project: ShortText | None = None
    application: ShortText | None = None
    account: ShortText | None = None
    user: ShortText | None = None
    user_defined: ShortText | None = None
    submitted_at: UtcDatetime | None = None


class JobRecord(WireModel):
    """One accounted job. Unique by (device, job_uuid); sequence numbers reveal gaps."""

    kind: JobKind = JobKind.PRINT
    job_uuid: uuid.UUID
    sequence_number: NonNegativeInt
    name: LongText | None = Field(default=None, description="Untrusted text: escape when shown.")
    submitter: Submitter = Field(default_factory=Submitter)
    completed_at: UtcDatetime
    print_time_s: Seconds | None = Field(default=None, description="Time spent printing.")
    duration_s: Seconds | None = Field(default=None, description="Submission to completion.")
    status: JobStatus = JobStatus.COMPLETED
    source: ShortText | None = Field(default=None, description="network, usb, copy, scan, ...")
    coverage_category: ShortText | None = None
    application_category: ShortText | None = None
    print_quality: ShortText | None = None
    pages: NonNegativeInt = 0
    copies: NonNegativeInt = 1
    ink_ul: dict[ShortText, Microlitres] = Field(
        default_factory=dict, description="Ink used per colour code, µL."
    )
    media_type: ShortText | None = None
    media_width_mm: Millimetres | None = None
    media_length_mm: Millimetres | None = None
    media_area_mm2: SquareMillimetres = 0
    printed_area_mm2: SquareMillimetres = 0
    category_usage: list[CategoryUsage] = Field(default_factory=list)
    pixel_coverage_ppm: dict[ShortText, Annotated[int, Field(ge=0, le=1_000_000)]] = Field(
        default_factory=dict, description="Pixel coverage per colour, parts per million."
    )
    scan_area_mm2: SquareMillimetres = 0

    @property
    def total_ink_ul(self) -> int:
        return sum(self.ink_ul.values())


# --------------------------------------------------------------------------- alerts


class AlertSeverity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class Alert(WireModel):
    code: ShortText
    severity: AlertSeverity
    text: LongText = ""
    first_seen: UtcDatetime
    cleared_at: UtcDatetime | None = None
    component: ShortText | None = Field(default=None, description="e.g. 'cartridge:C', 'roll1'.")


# --------------------------------------------------------------------------- 3D


class BuildJob(WireModel):
    """A 3D build (the running one, or a finished one in ``recent_builds``). A finished build
    is also a ``JobRecord`` (the billable record), with the same id as its ``job_uuid``
    where the device gives builds UUIDs."""

    id: ShortText
    name: LongText | None = None
    material: ShortText | None = None
    layers_total: NonNegativeInt | None = None
    layers_done: NonNegativeInt | None = None
    progress_percent: Percent | None = None
    started_at: UtcDatetime | None = None
    estimated_end: UtcDatetime | None = None
    duration_s: Seconds | None = None
    build_height_mm: Millimetres | None = None
    outcome: ShortText | None = Field(default=None, description="running, completed, failed, ...")
    material_used_g: Grams | None = None
    agent_used_ul: dict[ShortText, Microlitres] = Field(default_factory=dict)
    sequence_number: NonNegativeInt | None = Field(
        default=None, description="The device's build counter, as JobRecord.sequence_number."
    )
    ended_at: UtcDatetime | None = None
    print_time_s: Seconds | None = Field(
        default=None, description="Time the build occupied the printer (warm-up and layers)."
    )
    build_volume_mm3: CubicMillimetres | None = Field(
        default=None, description="Build-chamber volume used: bed area × build height."
    )
    build_unit: ShortText | None = Field(default=None, description="Serial of its build unit.")


class Material(WireModel):
    name: ShortText
    kind: ShortText = Field(description="powder, filament, agent, resin, ...")
    remaining_g: Grams | None = None
    remaining_ul: Microlitres | None = None
    consumed_g: Grams | None = None
    consumed_ul: Microlitres | None = None
    location: ShortText | None = Field(
        default=None, description="Where it is held, e.g. 'printer', 'station:<serial>'."
    )
    status: SupplyState | None = None
    level_percent: Percent | None = None
    capacity_g: Grams | None = None
    capacity_ul: Microlitres | None = None


class BuildUnit(WireModel):
    serial_number: ShortText
    state: ShortText
    location: ShortText = Field(description="printer, processing_station, cooling, ...")
    build_job_id: ShortText | None = None
    material: ShortText | None = None
    powder_g: Grams | None = Field(default=None, description="Powder it holds now.")
    state_since: UtcDatetime | None = None
    ready_at: UtcDatetime | None = Field(
        default=None, description="When its current step (e.g. cooling) is expected to end."
    )


class ProcessingStation(WireModel):
    serial_number: ShortText
    kind: ShortText = Field(description="unpacking, material_recovery, mixing, cooling, ...")
    state: ShortText
    powder_stored_g: Grams | None = None
    mixing_ratio_percent: Percent | None = Field(
        default=None, description="Share of fresh powder in the mix loaded into build units."
    )
    product_name: ShortText | None = None
    material: ShortText | None = None
    fresh_powder_g: Grams | None = None
    recovered_powder_g: Grams | None = None
    build_unit: ShortText | None = Field(default=None, description="Serial of the unit docked.")


class AdditiveStatus(WireModel):
    state: EngineState = EngineState.UNKNOWN
    build_job: BuildJob | None = None
    recent_builds: list[BuildJob] = Field(default_factory=list)
    materials: list[Material] = Field(default_factory=list)
    build_units: list[BuildUnit] = Field(default_factory=list)
    stations: list[ProcessingStation] = Field(default_factory=list)
    temperatures_c: dict[ShortText, float] = Field(default_factory=dict)


# --------------------------------------------------------------------------- report & batch


class ReportKind(StrEnum):
    HEALTH = "health"
    USAGE = "usage"


def check_schema_version(value: str) -> str:
    """Accept every minor version of our major; refuse another major with a clear message."""
    major = SCHEMA_VERSION.split(".")[0]
    if value.split(".")[0] != major:
        raise ValueError(f"unsupported schema_version {value!r}: this build reads {major}.x")
    return value


class DeviceReport(WireModel):
    """Everything read from one device in one poll. Every part but identity is optional."""

    schema_version: str = SCHEMA_VERSION
    _check_version = field_validator("schema_version")(check_schema_version)
    kind: ReportKind = ReportKind.USAGE
    collected_at: UtcDatetime
    device: DeviceIdentity
    status: DeviceStatus | None = None
    usage: LifetimeUsage | None = None
    jobs: list[JobRecord] = Field(default_factory=list)
    alerts: list[Alert] = Field(default_factory=list)
    additive: AdditiveStatus | None = None


class Batch(WireModel):
    """What a collector (or a direct-connected device) uploads: reports with one idempotency key."""

    schema_version: str = SCHEMA_VERSION
    _check_version = field_validator("schema_version")(check_schema_version)
    batch_id: uuid.UUID = Field(description="Idempotency key: a re-sent batch is not stored twice.")
    created_at: UtcDatetime
    sender: ShortText | None = Field(
        default=None, description="Collector or device id (informative)."
    )
    reports: list[DeviceReport] = Field(max_length=10_000)


class BatchReceipt(WireModel):
    """The portal's answer, sent only after the batch is durably stored."""

    batch_id: uuid.UUID
    status: Literal["stored", "duplicate"]
    reports: NonNegativeInt = 0
    jobs_stored: NonNegativeInt = 0
    jobs_duplicate: NonNegativeInt = 0


def now_utc() -> datetime:
    return datetime.now(UTC)
