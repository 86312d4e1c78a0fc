"""Fleet overview: what the fleet page and the device page show, assembled in three queries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from fleetmeter.portal.store import queries
from fleetmeter.portal.store.models import Alert, Device, JobRecord

# The meters the overview shows (names from wire LifetimeUsage.meters()).
OVERVIEW_METERS = ("impressions", "total_ink_ul", "total_media_area_mm2")


@dataclass(frozen=True)
class Supply:
    label: str  # colour code(s), e.g. "C" or "C/M"
    status: str
    percent: int | None


@dataclass(frozen=True)
class DeviceSummary:
    device: Device
    customer: str
    engine_state: str
    cartridges: list[Supply] = field(default_factory=list)
    printheads: list[Supply] = field(default_factory=list)
    media_sources: list[dict[str, Any]] = field(default_factory=list)
    impressions: int | None = None
    total_ink_ml: float | None = None
    media_area_m2: float | None = None
    jobs: int = 0


@dataclass(frozen=True)
class DeviceDetail:
    summary: DeviceSummary
    recent_jobs: list[JobRecord]
    open_alerts: list[Alert]


def fleet_overview(session: Session, *, reseller_id: uuid.UUID) -> list[DeviceSummary]:
    devices = queries.list_devices(session, reseller_id=reseller_id)
    counters = queries.latest_counters(session, reseller_id=reseller_id, meters=OVERVIEW_METERS)
    jobs = queries.job_counts(session, reseller_id=reseller_id)
    customers = queries.customer_names(session, reseller_id=reseller_id)
    return [
        _summary(
            d,
            customer=customers.get(d.customer_id, ""),
            meters={k: v.value for k, v in counters.get(d.id, {}).items()},
            jobs=jobs.get(d.id, 0),
        )
        for d in devices
    ]


def device_detail(
    session: Session, *, reseller_id: uuid.UUID, device_id: uuid.UUID, recent: int = 50
) -> DeviceDetail | None:
    device = queries.get_device(session, reseller_id=reseller_id, device_id=device_id)
    if device is None:
        return None
    counters = queries.latest_counters(
        session, reseller_id=reseller_id, device_id=device.id, meters=OVERVIEW_METERS
    )
    jobs = queries.job_counts(session, reseller_id=reseller_id).get(device.id, 0)
    customers = queries.customer_names(session, reseller_id=reseller_id)
    summary = _summary(
        device,
        customer=customers.get(device.customer_id, ""),
        meters={k: v.value for k, v in counters.get(device.id, {}).items()},
        jobs=jobs,
    )
    return DeviceDetail(
        summary=summary,
        recent_jobs=queries.list_jobs(
            session, reseller_id=reseller_id, device_id=device.id, limit=recent
        ),
        open_alerts=queries.open_alerts(session, reseller_id=reseller_id, device_id=device.id),
    )


def _summary(device: Device, *, customer: str, meters: dict[str, int], jobs: int) -> DeviceSummary:
    status = device.status or {}
    ink = meters.get("total_ink_ul")
    area = meters.get("total_media_area_mm2")
    return DeviceSummary(
        device=device,
        customer=customer,
        engine_state=device.engine_state or "unknown",
        cartridges=[
            Supply(
                label=str(c.get("color", "?")),
                status=str(c.get("status", "unknown")),
                percent=_percent(c.get("level_percent")),
            )
            for c in status.get("cartridges", [])
        ],
        printheads=[
            Supply(
                label="/".join(str(x) for x in p.get("colors", [])) or f"slot {p.get('slot', '?')}",
                status=str(p.get("status", "unknown")),
                percent=_percent(p.get("health_percent")),
            )
            for p in status.get("printheads", [])
        ],
        media_sources=list(status.get("media_sources", [])),
        impressions=meters.get("impressions"),
        total_ink_ml=ink / 1000 if ink is not None else None,  # µL → mL
        media_area_m2=area / 1_000_000 if area is not None else None,  # mm² → m²
        jobs=jobs,
    )


def _percent(value: object) -> int | None:
    return value if isinstance(value, int) and 0 <= value <= 100 else None
