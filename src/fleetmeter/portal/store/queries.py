"""Tenant-scoped reads. Every query that returns tenant data starts from ``tenant_select``.

Keeping the reseller filter in one helper is what makes "reseller B cannot see reseller
A's device" a property of the query layer rather than of each route.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from fleetmeter.portal.store.models import (
    Alert,
    Collector,
    CounterReading,
    Customer,
    Device,
    JobRecord,
    Site,
    User,
)

M = TypeVar("M", Alert, Collector, CounterReading, Customer, Device, JobRecord, Site, User)


def tenant_select(model: type[M], *, reseller_id: uuid.UUID) -> Select[M]:
    """``SELECT model WHERE reseller_id = :reseller_id`` — the one way to read tenant rows."""
    return select(model).where(model.reseller_id == reseller_id)


@dataclass(frozen=True)
class MeterValue:
    value: int
    read_at: datetime


def list_devices(
    session: Session, *, reseller_id: uuid.UUID, limit: int | None = None, offset: int = 0
) -> list[Device]:
    stmt = (
        tenant_select(Device, reseller_id=reseller_id)
        .order_by(Device.vendor, Device.serial_number, Device.id)
        .offset(offset)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def count_devices(session: Session, *, reseller_id: uuid.UUID) -> int:
    stmt = select(func.count()).select_from(Device).where(Device.reseller_id == reseller_id)
    return session.scalar(stmt) or 0


def get_device(session: Session, *, reseller_id: uuid.UUID, device_id: uuid.UUID) -> Device | None:
    return session.scalar(
        tenant_select(Device, reseller_id=reseller_id).where(Device.id == device_id)
    )


def list_jobs(
    session: Session,
    *,
    reseller_id: uuid.UUID,
    device_id: uuid.UUID | None = None,
    since: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[JobRecord]:
    """Newest first; ``since`` filters on completion time (inclusive)."""
    stmt = tenant_select(JobRecord, reseller_id=reseller_id)
    if device_id is not None:
        stmt = stmt.where(JobRecord.device_id == device_id)
    if since is not None:
        stmt = stmt.where(JobRecord.completed_at >= since)
    stmt = stmt.order_by(
        JobRecord.completed_at.desc(), JobRecord.sequence_number.desc(), JobRecord.id
    )
    return list(session.scalars(stmt.offset(offset).limit(limit)))


def job_counts(session: Session, *, reseller_id: uuid.UUID) -> dict[uuid.UUID, int]:
    stmt = (
        select(JobRecord.device_id, func.count())
        .where(JobRecord.reseller_id == reseller_id)
        .group_by(JobRecord.device_id)
    )
    return {device_id: count for device_id, count in session.execute(stmt)}


def latest_counters(
    session: Session,
    *,
    reseller_id: uuid.UUID,
    device_id: uuid.UUID | None = None,
    meters: Collection[str] | None = None,
) -> dict[uuid.UUID, dict[str, MeterValue]]:
    """The newest reading of each meter, per device."""
    latest = select(
        CounterReading.device_id,
        CounterReading.meter,
        func.max(CounterReading.read_at).label("read_at"),
    ).where(CounterReading.reseller_id == reseller_id)
    if device_id is not None:
        latest = latest.where(CounterReading.device_id == device_id)
    if meters is not None:
        latest = latest.where(CounterReading.meter.in_(list(meters)))
    sub = latest.group_by(CounterReading.device_id, CounterReading.meter).subquery()
    stmt = select(
        CounterReading.device_id,
        CounterReading.meter,
        CounterReading.value,
        CounterReading.read_at,
    ).join(
        sub,
        and_(
            CounterReading.reseller_id == reseller_id,
            CounterReading.device_id == sub.c.device_id,
            CounterReading.meter == sub.c.meter,
            CounterReading.read_at == sub.c.read_at,
        ),
    )
    out: dict[uuid.UUID, dict[str, MeterValue]] = {}
    for dev, meter, value, read_at in session.execute(stmt):
        out.setdefault(dev, {})[meter] = MeterValue(value=value, read_at=read_at)
    return out


def open_alerts(
    session: Session, *, reseller_id: uuid.UUID, device_id: uuid.UUID, limit: int = 50
) -> list[Alert]:
    stmt = (
        tenant_select(Alert, reseller_id=reseller_id)
        .where(Alert.device_id == device_id, Alert.cleared_at.is_(None))
        .order_by(Alert.first_seen.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def customer_names(session: Session, *, reseller_id: uuid.UUID) -> dict[uuid.UUID, str]:
    stmt = select(Customer.id, Customer.name).where(Customer.reseller_id == reseller_id)
    return {cid: name for cid, name in session.execute(stmt)}
