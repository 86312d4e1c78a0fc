"""Period usage: meter totals per device in base units, built from job records.

:func:`usage_from_jobs` is what the portal calls per device with that device's job records;
a what-if usage file gives the same totals directly (:mod:`fleetmeter.billing.whatif`).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, field_validator, model_validator

from fleetmeter.billing import meters as mk
from fleetmeter.billing.errors import UsageError
from fleetmeter.billing.period import Period
from fleetmeter.wire import JobKind, JobRecord

DeviceClass = Literal["printer", "printer3d", "build_unit", "station"]
"""As ``DeviceIdentity.device_class`` in the wire model."""

MATERIAL_FIELDS = ("filament_g", "material_used_g")
"""JobRecord extra fields read, first present wins, as the grams of 3D material a job used."""
AGENT_FIELD = "agent_used_ul"
"""JobRecord extra field: µL of each 3D consumable measured by volume (agents, resin)."""
BUILD_VOLUME_FIELD = "build_volume_mm3"
"""JobRecord extra field: the build-chamber volume a 3D build used, mm³."""


class DeviceUsage(BaseModel):
    """One device's meter totals for a period (base units) and when it was on the contract.

    ``added_on`` is the first active day; ``removed_on`` the first day it no longer is
    (``None``: active since before / until after the period).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: Annotated[str, Field(min_length=1, max_length=256)]
    meters: dict[str, NonNegativeInt] = Field(default_factory=dict)
    added_on: date | None = None
    removed_on: date | None = None
    jobs_outside: NonNegativeInt = Field(
        default=0, description="Jobs given but not counted: outside the period or active days."
    )

    @field_validator("meters")
    @classmethod
    def _known_meters(cls, value: dict[str, int]) -> dict[str, int]:
        for key in value:
            if not mk.is_priced_key(key):
                raise ValueError(f"unknown meter {key!r}")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> DeviceUsage:
        if (
            self.added_on is not None
            and self.removed_on is not None
            and self.removed_on <= self.added_on
        ):
            raise ValueError(f"removed_on {self.removed_on} must be after added_on {self.added_on}")
        return self


class PeriodUsage(BaseModel):
    """The usage of every device on a contract for one period."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    devices: tuple[DeviceUsage, ...] = ()

    @field_validator("devices")
    @classmethod
    def _unique(cls, value: tuple[DeviceUsage, ...]) -> tuple[DeviceUsage, ...]:
        seen = Counter(d.device for d in value)
        twice = sorted(name for name, n in seen.items() if n > 1)
        if twice:
            raise ValueError(f"device {twice[0]!r} appears more than once")
        return value

    def total(self, keys: Iterable[str]) -> int:
        """Sum of the meter keys ``keys`` over all devices (base units)."""
        wanted = tuple(keys)
        return sum(d.meters.get(k, 0) for d in self.devices for k in wanted)


def _distinct(jobs: Iterable[JobRecord]) -> list[JobRecord]:
    """Each job once, whatever the order or repetition of the input; conflicts are errors."""
    by_uuid: dict[uuid.UUID, JobRecord] = {}
    for job in jobs:
        seen = by_uuid.setdefault(job.job_uuid, job)
        # The portal stores a job once per (device, job_uuid); two different records under
        # one id mean corrupt input, and picking either would make the statement depend on
        # the order the jobs came in.
        if seen is not job and seen != job:
            raise UsageError(f"job {job.job_uuid} appears twice with different content")
    return list(by_uuid.values())


def _whole(job: JobRecord, field: str, value: object, unit: str) -> int:
    # Quantities on the wire are integers in base units; a fractional or negative value
    # would be priced wrongly whichever way it were rounded, so it is refused.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"job {job.job_uuid}: {field} must be a whole number of {unit}")
    return value


def _grams(job: JobRecord) -> int:
    extra = job.model_extra or {}
    for field in MATERIAL_FIELDS:
        value = extra.get(field)
        if value is None:
            continue
        return _whole(job, field, value, "grams")
    return 0


def _agents(job: JobRecord) -> dict[str, int]:
    value = (job.model_extra or {}).get(AGENT_FIELD)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"job {job.job_uuid}: {AGENT_FIELD} must map names to microlitres")
    out: dict[str, int] = {}
    for name, amount in value.items():
        if not isinstance(name, str) or not name:
            raise UsageError(f"job {job.job_uuid}: {AGENT_FIELD} has an empty name")
        out[name] = _whole(job, f"{AGENT_FIELD}.{name}", amount, "microlitres")
    return out


def _build_volume(job: JobRecord) -> int:
    value = (job.model_extra or {}).get(BUILD_VOLUME_FIELD)
    return 0 if value is None else _whole(job, BUILD_VOLUME_FIELD, value, "mm³")


def _material(job: JobRecord) -> str | None:
    value = (job.model_extra or {}).get("material")
    return value if isinstance(value, str) and value else None


def usage_from_jobs(
    jobs: Iterable[JobRecord],
    *,
    device: str,
    period: Period,
    device_class: DeviceClass = "printer",
    added_on: date | None = None,
    removed_on: date | None = None,
) -> DeviceUsage:
    """Meter totals of one device's jobs completed in ``period`` while it was active.

    Jobs are deduplicated by ``job_uuid``, so a re-sent or re-ordered batch cannot change
    the result. Every job counts whatever its status: a cancelled or failed job used the
    media and ink it reports. Mapping (base units):

    - ``jobs`` and one of ``print_jobs`` / ``scan.scan_jobs`` / ``scan.copy_jobs`` by kind;
    - ``impressions`` += ``pages`` of print and copy jobs (pages include copies);
    - ``total_media_area_mm2``, ``media.<media_type>.area_mm2`` and
      ``category.<application_category>.area_mm2`` += ``media_area_mm2``;
    - ``total_ink_ul`` and ``ink.<colour>.total_ul`` from ``ink_ul``;
    - ``scan.scanned_area_mm2`` (scan jobs) / ``scan.copied_area_mm2`` (copy jobs) +=
      ``scan_area_mm2``;
    - 3D: the wire model has no first-class 3D job fields yet, so grams of material are read
      from the JobRecord *extra* field ``filament_g`` (Moonraker) or else ``material_used_g``
      into ``material_g`` (and ``material.<material>.g`` when the extra ``material`` names
      it); volumes from the extra ``agent_used_ul`` (name → µL) into ``material_ul`` and
      ``material.<name>.total_ul``; the extra ``build_volume_mm3`` into ``build_volume_mm3``;
      build time is ``print_time_s`` into ``build_time_s`` and ``builds`` +1 per job, both
      counted only for a ``device_class`` other than ``"printer"`` because 2D printers report
      print time too and their jobs are not builds.
    """
    totals: Counter[str] = Counter()
    outside = 0
    for job in _distinct(jobs):
        day = period.local_date(job.completed_at)
        if not (
            period.start <= day < period.end
            and (added_on is None or day >= added_on)
            and (removed_on is None or day < removed_on)
        ):
            outside += 1
            continue
        _count(totals, job, device_class)
    return DeviceUsage(
        device=device,
        meters={k: v for k, v in sorted(totals.items()) if v},
        added_on=added_on,
        removed_on=removed_on,
        jobs_outside=outside,
    )


def _count(totals: Counter[str], job: JobRecord, device_class: DeviceClass) -> None:
    totals[mk.JOBS] += 1
    by_kind = {JobKind.PRINT: mk.PRINT_JOBS, JobKind.SCAN: mk.SCAN_JOBS, JobKind.COPY: mk.COPY_JOBS}
    totals[by_kind[job.kind]] += 1
    if job.kind in (JobKind.PRINT, JobKind.COPY):
        totals[mk.IMPRESSIONS] += job.pages
    area = job.media_area_mm2
    totals[mk.TOTAL_MEDIA_AREA] += area
    if job.media_type:
        totals[mk.media_key(job.media_type)] += area
    if job.application_category:
        totals[mk.category_key(job.application_category)] += area
    for color, microlitres in job.ink_ul.items():
        totals[mk.TOTAL_INK] += microlitres
        totals[mk.ink_key(color)] += microlitres
    if job.kind is JobKind.SCAN:
        totals[mk.SCANNED_AREA] += job.scan_area_mm2
    elif job.kind is JobKind.COPY:
        totals[mk.COPIED_AREA] += job.scan_area_mm2
    grams = _grams(job)
    totals[mk.MATERIAL] += grams
    material = _material(job)
    if material is not None:
        totals[mk.material_key(material)] += grams
    for name, microlitres in _agents(job).items():
        totals[mk.MATERIAL_VOLUME] += microlitres
        totals[mk.material_volume_key(name)] += microlitres
    totals[mk.BUILD_VOLUME] += _build_volume(job)
    if device_class != "printer":
        totals[mk.BUILDS] += 1
        if job.print_time_s is not None:
            totals[mk.BUILD_TIME] += job.print_time_s
