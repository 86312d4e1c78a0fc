"""The jobs table: a scope's job records, filtered, keyset-paginated on (completed_at, id),
and as CSV rows for a streamed export.

Filters that narrow by device or customer become ``device_id IN (…)`` of the scope's own
devices, so the database still walks the (reseller_id, completed_at) index newest first and
stops after one page. A job belongs to the customer its device belongs to now (a moved
device takes its history along); billing statements, not this table, keep who owned it when.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, String, cast, select
from sqlalchemy.orm import Session

from fleetmeter.portal.services.access import TenantScope
from fleetmeter.portal.services.fleet import device_conditions
from fleetmeter.portal.services.paging import Cursor, Page, keyset_page
from fleetmeter.portal.store.models import Customer, Device, JobRecord

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
EXPORT_CHUNK = 2000
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV
# injection"): device-supplied text such as a job name must never become one.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class JobFilter:
    """Every field optional; text fields match exactly (user names may be pseudonyms)."""

    since: datetime | None = None  # completed at or after
    until: datetime | None = None  # completed before
    device: str | None = None  # a device id, or a serial number
    customer_id: uuid.UUID | None = None
    kind: str | None = None  # print, scan, copy
    status: str | None = None  # completed, cancelled, failed
    category: str | None = None  # application category
    project: str | None = None
    account: str | None = None
    user: str | None = None


@dataclass(frozen=True)
class DeviceLabel:
    id: uuid.UUID
    vendor: str
    serial_number: str
    model: str | None
    customer: str


@dataclass(frozen=True)
class JobRow:
    job: JobRecord
    device: DeviceLabel


def jobs_page(
    session: Session,
    *,
    scope: TenantScope,
    filters: JobFilter,
    before: Cursor | None = None,
    after: Cursor | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[JobRow]:
    """One page of jobs, newest first (see ``paging.keyset_page`` for the cursors)."""
    limit = min(max(limit, 1), MAX_LIMIT)
    stmt = _filtered(session, scope, filters)
    if stmt is None:
        return Page([], None, None)
    page = keyset_page(
        stmt,
        at=JobRecord.completed_at,
        ident=JobRecord.id,
        before=before,
        after=after,
        limit=limit,
        execute=lambda q: list(session.scalars(q)),
        position=lambda job: Cursor(job.completed_at, job.id),
    )
    labels = device_labels(session, scope=scope, device_ids={j.device_id for j in page.rows})
    return Page([JobRow(job, labels[job.device_id]) for job in page.rows], page.newer, page.older)


def job_detail(session: Session, *, scope: TenantScope, job_id: uuid.UUID) -> JobRow | None:
    """One job of the scope; None for an unknown id and for another tenant's alike."""
    conditions = device_conditions(
        session, scope=scope, device_id=JobRecord.device_id, device=None, customer_id=None
    )
    job = session.scalar(
        select(JobRecord).where(
            JobRecord.reseller_id == scope.reseller_id, JobRecord.id == job_id, *(conditions or ())
        )
    )
    if job is None:
        return None
    labels = device_labels(session, scope=scope, device_ids={job.device_id})
    return JobRow(job, labels[job.device_id])


def csv_rows(
    session: Session, *, scope: TenantScope, filters: JobFilter, chunk: int = EXPORT_CHUNK
) -> Iterator[list[str | int]]:
    """Every matching job as CSV cells (``CSV_COLUMNS``), newest first, read a chunk at a
    time by keyset: memory stays flat however many rows the export has.

    Columns, not ORM objects, and ids as text: an export of a million rows would otherwise
    spend most of its time building objects and UUIDs that are only printed.
    """
    stmt = _filtered(session, scope, filters)
    if stmt is None:
        return
    stmt = stmt.with_only_columns(*_EXPORT_COLUMNS)
    labels: dict[str, DeviceLabel] = {}
    before: Cursor | None = None
    while True:
        page = keyset_page(
            stmt,
            at=JobRecord.completed_at,
            ident=JobRecord.id,
            before=before,
            after=None,
            limit=chunk,
            execute=lambda q: session.execute(q).all(),
            position=lambda row: Cursor(row.completed_at, uuid.UUID(row.id)),
        )
        missing = {row.device_id for row in page.rows} - labels.keys()
        if missing:
            found = device_labels(session, scope=scope, device_ids={uuid.UUID(d) for d in missing})
            # Keyed by the database's text of the id (dashes or not), as the rows carry it.
            labels.update({d: found[uuid.UUID(d)] for d in missing})
        for row in page.rows:
            yield csv_row(row, labels[row.device_id])
        if page.older is None:
            return
        before = page.older


def device_labels(
    session: Session, *, scope: TenantScope, device_ids: set[uuid.UUID]
) -> dict[uuid.UUID, DeviceLabel]:
    if not device_ids:
        return {}
    rows = session.execute(
        select(Device.id, Device.vendor, Device.serial_number, Device.model, Customer.name)
        .join(Customer, Customer.id == Device.customer_id)
        .where(Device.reseller_id == scope.reseller_id, Device.id.in_(sorted(device_ids)))
    )
    return {row[0]: DeviceLabel(*row) for row in rows}


def _filtered(session: Session, scope: TenantScope, f: JobFilter) -> Select[JobRecord] | None:
    """The scope's jobs narrowed by ``f``; None when the filter matches no device at all."""
    conditions = device_conditions(
        session,
        scope=scope,
        device_id=JobRecord.device_id,
        device=f.device,
        customer_id=f.customer_id,
    )
    if conditions is None:
        return None
    stmt = select(JobRecord).where(JobRecord.reseller_id == scope.reseller_id, *conditions)
    if f.since is not None:
        stmt = stmt.where(JobRecord.completed_at >= f.since)
    if f.until is not None:
        stmt = stmt.where(JobRecord.completed_at < f.until)
    exact: Sequence[tuple[Any, str | None]] = (
        (JobRecord.kind, f.kind),
        (JobRecord.status, f.status),
        (JobRecord.application_category, f.category),
        (JobRecord.submitter_project, f.project),
        (JobRecord.submitter_account, f.account),
        (JobRecord.submitter_user, f.user),
    )
    for column, value in exact:
        if value:
            stmt = stmt.where(column == value)
    return stmt


# --------------------------------------------------------------------------- CSV


CSV_COLUMNS = (
    "completed_at",
    "customer",
    "device_vendor",
    "device_serial",
    "device_model",
    "sequence_number",
    "job_uuid",
    "kind",
    "status",
    "name",
    "source",
    "project",
    "application",
    "account",
    "user",
    "user_defined",
    "submitted_at",
    "application_category",
    "coverage_category",
    "print_quality",
    "media_type",
    "media_width_mm",
    "media_length_mm",
    "pages",
    "copies",
    "media_area_mm2",
    "printed_area_mm2",
    "scan_area_mm2",
    "total_ink_ul",
    "ink_ul",
    "print_time_s",
    "duration_s",
)


def _text(column: Any) -> Any:
    return cast(column, String).label(column.key)


_EXPORT_COLUMNS = (
    JobRecord.completed_at,
    _text(JobRecord.id),
    _text(JobRecord.device_id),
    JobRecord.sequence_number,
    _text(JobRecord.job_uuid),
    JobRecord.kind,
    JobRecord.status,
    JobRecord.name,
    JobRecord.source,
    JobRecord.submitter_project,
    JobRecord.submitter_application,
    JobRecord.submitter_account,
    JobRecord.submitter_user,
    JobRecord.submitter_user_defined,
    JobRecord.submitted_at,
    JobRecord.application_category,
    JobRecord.coverage_category,
    JobRecord.print_quality,
    JobRecord.media_type,
    JobRecord.media_width_mm,
    JobRecord.media_length_mm,
    JobRecord.pages,
    JobRecord.copies,
    JobRecord.media_area_mm2,
    JobRecord.printed_area_mm2,
    JobRecord.scan_area_mm2,
    JobRecord.total_ink_ul,
    JobRecord.ink_ul,
    JobRecord.print_time_s,
    JobRecord.duration_s,
)


def csv_safe(value: str) -> str:
    """A text cell a spreadsheet shows as text: a leading apostrophe defuses a formula."""
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


def csv_row(j: Any, d: DeviceLabel) -> list[str | int]:
    """One job (a row of ``_EXPORT_COLUMNS``) as CSV cells: quantities in base units, every
    text cell made formula-safe."""
    ink = ";".join(f"{colour}={volume}" for colour, volume in sorted((j.ink_ul or {}).items()))
    cells: list[str | int | None] = [
        _iso(j.completed_at),
        d.customer,
        d.vendor,
        d.serial_number,
        d.model,
        j.sequence_number,
        _uuid_text(j.job_uuid),
        j.kind,
        j.status,
        j.name,
        j.source,
        j.submitter_project,
        j.submitter_application,
        j.submitter_account,
        j.submitter_user,
        j.submitter_user_defined,
        _iso(j.submitted_at),
        j.application_category,
        j.coverage_category,
        j.print_quality,
        j.media_type,
        j.media_width_mm,
        j.media_length_mm,
        j.pages,
        j.copies,
        j.media_area_mm2,
        j.printed_area_mm2,
        j.scan_area_mm2,
        j.total_ink_ul,
        ink,
        j.print_time_s,
        j.duration_s,
    ]
    return [csv_safe(c) if isinstance(c, str) else ("" if c is None else c) for c in cells]


def _uuid_text(value: str) -> str:
    """The canonical 8-4-4-4-12 form of a UUID the database printed with or without dashes."""
    if len(value) == 32:
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return value.lower()


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
