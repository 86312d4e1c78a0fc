"""The device page: identity, supplies, media, 3D builds and materials, lifetime counters,
usage per day from the counters, recent jobs and the alert history, tenant-scoped.

Whether the device needs attention is decided by the same query as the fleet overview
(``fleet.device_needs``), so the two pages can never disagree.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pydantic
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from fleetmeter import wire
from fleetmeter.portal.services import fleet
from fleetmeter.portal.services.access import TenantScope
from fleetmeter.portal.store import queries
from fleetmeter.portal.store.models import Alert, CounterReading, Device, JobRecord
from fleetmeter.wire import now_utc

USAGE_METERS = ("impressions", "total_media_area_mm2", "total_ink_ul")


@dataclass(frozen=True)
class DailyUsage:
    day: date
    value: int | None  # None: the counter went backwards (reset or swap), not a usage


@dataclass(frozen=True)
class UsageSeries:
    meter: str
    days: list[DailyUsage]


@dataclass(frozen=True)
class Counter:
    meter: str
    value: int
    read_at: datetime


@dataclass(frozen=True)
class DeviceDetail:
    summary: fleet.DeviceSummary
    recent_jobs: list[JobRecord]
    alert_history: list[Alert]  # open and cleared, newest first
    counters: list[Counter]
    usage: list[UsageSeries]
    status: wire.DeviceStatus | None
    additive: wire.AdditiveStatus | None
    usage_days: int


def device_detail(
    session: Session,
    *,
    scope: TenantScope,
    device_id: uuid.UUID,
    recent: int = 20,
    alerts: int = 50,
    usage_days: int = 90,
    now: datetime | None = None,
) -> DeviceDetail | None:
    """The page's content; None if the scope has no such device (another tenant's included)."""
    now = now or now_utc()
    rows, needs = fleet.device_needs(
        session, scope=scope, query=fleet.FleetQuery(), now=now, device_id=device_id
    )
    if not rows:
        return None
    row = rows[0]
    device = session.scalar(fleet.scoped_devices(scope).where(Device.id == device_id))
    if device is None:  # removed between the two reads
        return None
    meters = fleet.meter_names(session, reseller_id=scope.reseller_id, device_id=device.id)
    latest = fleet.latest_counters(
        session, reseller_id=scope.reseller_id, device_ids=[device.id], meters=meters
    )
    summary = fleet.summarise(
        device,
        customer=row.customer,
        site=row.site,
        meters={k: v.value for k, v in latest.get(device.id, {}).items()},
        jobs=fleet.job_counts(session, reseller_id=scope.reseller_id, device_ids=[device.id]).get(
            device.id, 0
        ),
        open_alerts=row.open_alerts,
    )
    open_now = fleet.open_alerts(session, reseller_id=scope.reseller_id, device_ids=[device.id])
    summary.reasons.extend(
        fleet.reasons(needs[row.id], summary, open_now.get(device.id, []), row.open_alerts, now)
    )
    history = list(
        session.scalars(
            queries.tenant_select(Alert, reseller_id=scope.reseller_id)
            .where(Alert.device_id == device.id)
            .order_by(Alert.first_seen.desc(), Alert.id.desc())
            .limit(alerts)
        )
    )
    status, additive = _parsed_status(device.status)
    return DeviceDetail(
        summary=summary,
        recent_jobs=queries.list_jobs(
            session, reseller_id=scope.reseller_id, device_id=device.id, limit=recent
        ),
        alert_history=history,
        counters=[
            Counter(meter, value.value, value.read_at)
            for meter, value in sorted(latest.get(device.id, {}).items())
        ],
        usage=[
            usage_series(
                session,
                reseller_id=scope.reseller_id,
                device_id=device.id,
                meter=meter,
                days=usage_days,
                today=now.date(),
            )
            for meter in USAGE_METERS
            if meter in meters  # a 3D printer has no ink or media counter: no empty chart
        ],
        status=status,
        additive=additive,
        usage_days=usage_days,
    )


def _parsed_status(
    snapshot: Mapping[str, Any] | None,
) -> tuple[wire.DeviceStatus | None, wire.AdditiveStatus | None]:
    """The snapshot as wire models (typed for the page); an unreadable part is left out."""
    if not snapshot:
        return None, None
    rest = {k: v for k, v in snapshot.items() if k != "additive"}
    status = additive = None
    try:
        status = wire.DeviceStatus.model_validate(rest) if rest else None
    except pydantic.ValidationError:
        status = None  # an older snapshot shape: the page shows what the summary has
    if "additive" in snapshot:
        try:
            additive = wire.AdditiveStatus.model_validate(snapshot["additive"])
        except pydantic.ValidationError:
            additive = None
    return status, additive


def usage_series(
    session: Session,
    *,
    reseller_id: uuid.UUID,
    device_id: uuid.UUID,
    meter: str,
    days: int,
    today: date,
) -> UsageSeries:
    """Usage per UTC day over the last ``days`` days, from the lifetime counter's readings.

    A day's usage is its last reading minus the last reading before it; usage between two
    readings days apart lands on the later day. A counter that went backwards (a reset or a
    swapped device) gives None for that day, never a negative usage.
    """
    first_day = today - timedelta(days=days - 1)
    since = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    key = and_(
        CounterReading.reseller_id == reseller_id,
        CounterReading.device_id == device_id,
        CounterReading.meter == meter,
    )
    before = session.execute(
        select(CounterReading.value)
        .where(key, CounterReading.read_at < since)
        .order_by(CounterReading.read_at.desc())
        .limit(1)
    ).scalar()
    last_of_day: dict[date, int] = {}
    for read_at, value in session.execute(
        select(CounterReading.read_at, CounterReading.value)
        .where(key, CounterReading.read_at >= since)
        .order_by(CounterReading.read_at)
    ):
        last_of_day[read_at.date()] = value
    out: list[DailyUsage] = []
    previous = before
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        reading = last_of_day.get(day)
        if reading is None:
            out.append(DailyUsage(day, 0))
            continue
        if previous is None:
            out.append(DailyUsage(day, 0))  # the first reading ever: nothing to compare with
        elif reading < previous:
            out.append(DailyUsage(day, None))
        else:
            out.append(DailyUsage(day, reading - previous))
        previous = reading
    return UsageSeries(meter, out)
