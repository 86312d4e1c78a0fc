"""Batch ingest: one wire ``Batch`` → devices, counters, jobs, alerts, in one transaction.

Idempotency (architecture.md, "Collector ⇄ portal: ingest"): the batch row is inserted
*first*. A concurrent resend of the same batch then blocks on the unique key
(reseller_id, batch_id) until the first transaction commits, fails with an
IntegrityError, rolls back and answers ``duplicate``. Writing first also matters on
SQLite: a transaction that reads before it writes cannot upgrade its snapshot once
another writer committed (SQLITE_BUSY_SNAPSHOT), while one that writes first simply
waits for the lock (busy timeout).

Everything else is insert-or-ignore / upsert on the natural keys, so two *different*
batches carrying the same job or reading (a collector that re-queued data) store it once.

A batch comes from a ``Sender``: a collector (any device of its customer) or a
direct-connected device's credential (only that device: a report about another serial is
refused with ``ForeignDeviceError`` before anything is stored).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fleetmeter import wire
from fleetmeter.portal.errors import PortalError
from fleetmeter.portal.store.dialect import insert_on_conflict
from fleetmeter.portal.store.models import (
    Alert,
    Collector,
    CounterReading,
    Device,
    DeviceCredential,
    IngestedBatch,
    JobRecord,
)
from fleetmeter.wire import now_utc

# Rows per multi-VALUES statement: keeps a job insert (~37 columns) under SQLite's
# 32766 bound-parameter limit with room to spare.
CHUNK = 200

T = TypeVar("T")


class ForeignDeviceError(PortalError):
    """A direct-connected device sent a report about a device other than itself."""


@dataclass(frozen=True)
class Sender:
    """Who uploads a batch, and so where its reports land (and, for a device, what it may say).

    Build one with ``Sender.of_collector`` or ``Sender.of_device``.
    """

    reseller_id: uuid.UUID
    customer_id: uuid.UUID
    collector_id: uuid.UUID | None = None
    device_credential_id: uuid.UUID | None = None
    only_device: tuple[str, str] | None = None
    """(vendor, serial number) a device credential is bound to; None: any (a collector)."""

    @classmethod
    def of_collector(cls, collector: Collector) -> Sender:
        return cls(collector.reseller_id, collector.customer_id, collector_id=collector.id)

    @classmethod
    def of_device(cls, credential: DeviceCredential) -> Sender:
        return cls(
            credential.reseller_id,
            credential.customer_id,
            device_credential_id=credential.id,
            only_device=(credential.vendor, credential.serial_number),
        )

    def check_reports(self, batch: wire.Batch) -> None:
        """Raise ``ForeignDeviceError`` if a device credential reports about another device."""
        if self.only_device is None:
            return
        vendor, serial = self.only_device
        for report in batch.reports:
            # Vendor spelling varies ("HP", "hp"); the serial number is the identity.
            ident = report.device
            if ident.serial_number != serial or ident.vendor.casefold() != vendor.casefold():
                raise ForeignDeviceError(
                    f"this credential may only report device {vendor} {serial}, "
                    f"not {ident.vendor} {ident.serial_number}"
                )


def ingest_batch(
    session: Session,
    *,
    batch: wire.Batch,
    collector: Collector | None = None,
    sender: Sender | None = None,
) -> wire.BatchReceipt:
    """Store ``batch`` for the sender's tenant and commit; a batch seen before stores nothing.

    Give the ``collector`` or a ``sender`` (a device credential's). Returns the receipt only
    after the commit, so a receipt means the data is durable.
    """
    if sender is not None and collector is None:
        tenant = sender
    elif collector is not None and sender is None:
        tenant = Sender.of_collector(collector)
    else:
        raise TypeError("give exactly one of collector= and sender=")
    tenant.check_reports(batch)
    try:
        receipt = _store(session, tenant=tenant, batch=batch)
        session.commit()
    except IntegrityError:
        session.rollback()
        # Only the batch row can conflict (everything else is ON CONFLICT): a concurrent
        # resend won the race. Anything else is a real error and must surface.
        if not _already_ingested(session, tenant=tenant, batch_id=batch.batch_id):
            raise
        return _duplicate_receipt(batch)
    return receipt


def _already_ingested(session: Session, *, tenant: Sender, batch_id: uuid.UUID) -> bool:
    found = session.scalar(
        select(IngestedBatch.id).where(
            IngestedBatch.reseller_id == tenant.reseller_id, IngestedBatch.batch_id == batch_id
        )
    )
    return found is not None


def _duplicate_receipt(batch: wire.Batch) -> wire.BatchReceipt:
    return wire.BatchReceipt(
        batch_id=batch.batch_id,
        status="duplicate",
        reports=len(batch.reports),
        jobs_stored=0,
        jobs_duplicate=sum(len(r.jobs) for r in batch.reports),
    )


def _store(session: Session, *, tenant: Sender, batch: wire.Batch) -> wire.BatchReceipt:
    received_at = now_utc()
    batch_row = IngestedBatch(
        reseller_id=tenant.reseller_id,
        batch_id=batch.batch_id,
        collector_id=tenant.collector_id,
        device_credential_id=tenant.device_credential_id,
        received_at=received_at,
        created_at=batch.created_at,
        reports=len(batch.reports),
    )
    session.add(batch_row)
    session.flush()  # the write that claims the batch id; raises IntegrityError on a resend

    # Oldest first, so that "newest wins" updates of identity and status are simple.
    reports = sorted(batch.reports, key=lambda r: r.collected_at)
    devices = _upsert_devices(session, tenant=tenant, reports=reports)

    readings = _append_counter_readings(session, tenant=tenant, reports=reports, devices=devices)
    stored, duplicate = _insert_jobs(
        session, tenant=tenant, reports=reports, devices=devices, batch_id=batch.batch_id
    )
    alerts = _upsert_alerts(session, tenant=tenant, reports=reports, devices=devices)

    batch_row.jobs_stored = stored
    batch_row.jobs_duplicate = duplicate
    batch_row.counter_readings = readings
    batch_row.alerts = alerts
    session.flush()
    return wire.BatchReceipt(
        batch_id=batch.batch_id,
        status="stored",
        reports=len(batch.reports),
        jobs_stored=stored,
        jobs_duplicate=duplicate,
    )


# --------------------------------------------------------------------------- devices

_DeviceKey = tuple[str, str]  # (vendor, serial_number)


def _key(report: wire.DeviceReport) -> _DeviceKey:
    return (report.device.vendor, report.device.serial_number)


def _upsert_devices(
    session: Session, *, tenant: Sender, reports: Sequence[wire.DeviceReport]
) -> dict[_DeviceKey, Device]:
    # Sorted keys: concurrent batches touching the same devices lock rows in one order
    # and so cannot deadlock each other.
    keys = sorted({_key(r) for r in reports})
    now = now_utc()
    first: dict[_DeviceKey, wire.DeviceReport] = {}
    for report in reports:
        first.setdefault(_key(report), report)
    for chunk in _chunks(keys, CHUNK):
        stmt = insert_on_conflict(session, Device).values(
            [
                {
                    "id": uuid.uuid4(),
                    "reseller_id": tenant.reseller_id,
                    "customer_id": tenant.customer_id,
                    "vendor": vendor,
                    "serial_number": serial,
                    "driver": first[(vendor, serial)].device.driver,
                    "device_class": first[(vendor, serial)].device.device_class,
                    "first_seen_at": now,
                }
                for vendor, serial in chunk
            ]
        )
        session.execute(
            stmt.on_conflict_do_nothing(index_elements=["reseller_id", "vendor", "serial_number"])
        )

    devices: dict[_DeviceKey, Device] = {}
    for chunk in _chunks(keys, CHUNK):
        rows = session.scalars(
            select(Device)
            .where(
                Device.reseller_id == tenant.reseller_id,
                tuple_(Device.vendor, Device.serial_number).in_(chunk),
            )
            .order_by(Device.vendor, Device.serial_number)
            .with_for_update()  # PostgreSQL: serialise snapshot updates per device
        )
        devices.update({(d.vendor, d.serial_number): d for d in rows})

    for report in reports:
        _apply_report(devices[_key(report)], report=report, customer_id=tenant.customer_id)
    session.flush()
    return devices


def _apply_report(device: Device, *, report: wire.DeviceReport, customer_id: uuid.UUID) -> None:
    """Newest report wins for identity and status; older (late, re-queued) ones do not regress."""
    at = report.collected_at
    if device.last_seen_at is None or at >= device.last_seen_at:
        ident = report.device
        device.last_seen_at = at
        # A collector belongs to one customer: a device it now reads has moved there.
        device.customer_id = customer_id
        device.model = ident.product_name or device.model
        device.product_number = ident.product_number or device.product_number
        device.firmware = ident.firmware_version or device.firmware
        device.address = ident.address or device.address
        device.driver = ident.driver
        device.device_class = ident.device_class
    if (report.status is None and report.additive is None) or (
        device.status_at is not None and at <= device.status_at
    ):
        return
    snapshot: dict[str, Any] = {}
    engine_state: str = wire.EngineState.UNKNOWN
    if report.status is not None:
        snapshot = report.status.model_dump(mode="json", exclude_none=True)
        engine_state = report.status.engine_state
    if report.additive is not None:
        snapshot["additive"] = report.additive.model_dump(mode="json", exclude_none=True)
        if report.status is None:
            engine_state = report.additive.state
    device.status = snapshot
    device.engine_state = str(engine_state)
    device.status_at = at


# --------------------------------------------------------------------------- counters


def _append_counter_readings(
    session: Session,
    *,
    tenant: Sender,
    reports: Sequence[wire.DeviceReport],
    devices: dict[_DeviceKey, Device],
) -> int:
    rows: dict[tuple[uuid.UUID, str, datetime], int] = {}
    for report in reports:
        if report.usage is None:
            continue
        device_id = devices[_key(report)].id
        for meter, value in report.usage.meters().items():
            rows[(device_id, meter, report.collected_at)] = value
    for chunk in _chunks(sorted(rows.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])), CHUNK):
        stmt = insert_on_conflict(session, CounterReading).values(
            [
                {
                    "reseller_id": tenant.reseller_id,
                    "device_id": device_id,
                    "meter": meter,
                    "read_at": read_at,
                    "value": value,
                }
                for (device_id, meter, read_at), value in chunk
            ]
        )
        # Append-only: an identical (device, meter, read_at) re-sent is the same reading.
        session.execute(
            stmt.on_conflict_do_nothing(
                index_elements=["reseller_id", "device_id", "meter", "read_at"]
            )
        )
    return len(rows)


# --------------------------------------------------------------------------- jobs


def _insert_jobs(
    session: Session,
    *,
    tenant: Sender,
    reports: Sequence[wire.DeviceReport],
    devices: dict[_DeviceKey, Device],
    batch_id: uuid.UUID,
) -> tuple[int, int]:
    """Insert jobs not stored yet; returns (stored, duplicate)."""
    candidates: dict[tuple[uuid.UUID, uuid.UUID], wire.JobRecord] = {}
    total = 0
    for report in reports:
        device_id = devices[_key(report)].id
        for job in report.jobs:
            total += 1
            candidates.setdefault((device_id, job.job_uuid), job)
    if not candidates:
        return 0, 0

    # One query per chunk of UUIDs for every device of the batch; the (device, uuid) pair
    # check happens here because two devices may, in theory, share a job UUID.
    device_ids = sorted({device_id for device_id, _ in candidates}, key=str)
    existing: set[tuple[uuid.UUID, uuid.UUID]] = set()
    for chunk in _chunks(sorted({u for _, u in candidates}, key=str), 1000):
        existing.update(
            (d, u)
            for d, u in session.execute(
                select(JobRecord.device_id, JobRecord.job_uuid).where(
                    JobRecord.reseller_id == tenant.reseller_id,
                    JobRecord.device_id.in_(device_ids),
                    JobRecord.job_uuid.in_(chunk),
                )
            )
        )

    received_at = now_utc()
    new_rows = [
        _job_row(
            job,
            reseller_id=tenant.reseller_id,
            device_id=device_id,
            batch_id=batch_id,
            received_at=received_at,
        )
        for (device_id, job_uuid), job in candidates.items()
        if (device_id, job_uuid) not in existing
    ]
    stored = 0
    for job_rows in _chunks(new_rows, CHUNK):
        stmt = insert_on_conflict(session, JobRecord).values(job_rows)
        # The pre-load above does the work; ON CONFLICT covers a job that a concurrent
        # *different* batch stored after our pre-load.
        result = session.execute(
            stmt.on_conflict_do_nothing(
                index_elements=["reseller_id", "device_id", "job_uuid"]
            ).returning(JobRecord.id)
        )
        stored += len(result.all())
    return stored, total - stored


def _job_row(
    job: wire.JobRecord,
    *,
    reseller_id: uuid.UUID,
    device_id: uuid.UUID,
    batch_id: uuid.UUID,
    received_at: datetime,
) -> dict[str, Any]:
    sub = job.submitter
    extra: dict[str, Any] = dict(job.model_extra or {})
    if sub.model_extra:
        extra["submitter"] = dict(sub.model_extra)
    return {
        "id": uuid.uuid4(),
        "reseller_id": reseller_id,
        "device_id": device_id,
        "batch_id": batch_id,
        "job_uuid": job.job_uuid,
        "sequence_number": job.sequence_number,
        "kind": str(job.kind),
        "name": job.name,
        "status": str(job.status),
        "source": job.source,
        "submitter_project": sub.project,
        "submitter_application": sub.application,
        "submitter_account": sub.account,
        "submitter_user": sub.user,
        "submitter_user_defined": sub.user_defined,
        "submitted_at": sub.submitted_at,
        "completed_at": job.completed_at,
        "print_time_s": job.print_time_s,
        "duration_s": job.duration_s,
        "coverage_category": job.coverage_category,
        "application_category": job.application_category,
        "print_quality": job.print_quality,
        "pages": job.pages,
        "copies": job.copies,
        "media_type": job.media_type,
        "media_width_mm": job.media_width_mm,
        "media_length_mm": job.media_length_mm,
        "media_area_mm2": job.media_area_mm2,
        "printed_area_mm2": job.printed_area_mm2,
        "scan_area_mm2": job.scan_area_mm2,
        "ink_ul": dict(job.ink_ul),
        "total_ink_ul": job.total_ink_ul,
        "pixel_coverage_ppm": dict(job.pixel_coverage_ppm),
        "category_usage": [c.model_dump(mode="json") for c in job.category_usage],
        "extra": extra or None,
        "received_at": received_at,
    }


# --------------------------------------------------------------------------- alerts


def _upsert_alerts(
    session: Session,
    *,
    tenant: Sender,
    reports: Sequence[wire.DeviceReport],
    devices: dict[_DeviceKey, Device],
) -> int:
    # One row per key per statement: PostgreSQL refuses to update a row twice in one upsert.
    rows: dict[tuple[uuid.UUID, str, datetime], dict[str, Any]] = {}
    for report in reports:  # oldest first: a later report's text and clearing win
        device_id = devices[_key(report)].id
        for alert in report.alerts:
            key = (device_id, alert.code, alert.first_seen)
            previous = rows.get(key)
            rows[key] = {
                "id": uuid.uuid4(),
                "reseller_id": tenant.reseller_id,
                "device_id": device_id,
                "code": alert.code,
                "severity": str(alert.severity),
                "text": alert.text,
                "component": alert.component,
                "first_seen": alert.first_seen,
                "cleared_at": alert.cleared_at
                or (previous["cleared_at"] if previous is not None else None),
            }
    ordered = [rows[k] for k in sorted(rows, key=lambda k: (str(k[0]), k[1], k[2]))]
    for alert_rows in _chunks(ordered, CHUNK):
        stmt = insert_on_conflict(session, Alert).values(alert_rows)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["reseller_id", "device_id", "code", "first_seen"],
                set_={
                    "severity": stmt.excluded.severity,
                    "text": stmt.excluded.text,
                    # A report that no longer says "cleared" does not un-clear an alert.
                    "cleared_at": func.coalesce(stmt.excluded.cleared_at, Alert.cleared_at),
                },
            )
        )
    return len(rows)


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
