"""Statements: a contract's period rated from stored job records, reconciled, then closed.

``generate_statement`` (re)builds the open statement of one contract and period:

1. it claims the jobs it bills in ``statement_jobs``, whose key (reseller, job) lets a job be
   billed by one statement only. It claims its own period's jobs (every job of a device on
   the contract completed on an active day of the period, the period cut at local midnights
   of the contract's time zone and turned into UTC instants), and the *late* jobs of earlier
   periods whose statements are closed, when it is the earliest open statement after them;
2. it rates its own period with :func:`fleetmeter.billing.rate` (proration by each device's
   active days) and prices each closed period's late jobs as a dated adjustment
   (:func:`fleetmeter.billing.reconcile.adjust_late_usage`);
3. it reconciles each device (job totals against counter increases, sequence gaps, counter
   drops, swaps in a placement) and stores everything as one JSON document.

``close_statement`` generates one last time and freezes the statement: every job stored by
then is in it, anything later is late usage for the next open statement. Closing a closed
statement changes nothing, and nothing writes a closed statement again.

Both take a write lock on the contract first (a no-op UPDATE of its row), so statements of
one contract are built one at a time on PostgreSQL, and SQLite takes its write lock before
anything is read. The caller commits.

Errors::

    StatementError                 a statement that cannot be made as asked: 422
     ├── StatementNotFoundError    no such statement (or contract) for this reseller: 404
     └── StatementClosedError      the statement is closed and cannot change: 409
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from fractions import Fraction
from typing import Any, cast, get_args
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Uuid, delete, exists, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from fleetmeter.billing import (
    BillingError,
    Period,
    PeriodUsage,
    PricePlan,
    Statement,
    rate,
    usage_from_jobs,
)
from fleetmeter.billing._exact import round_half_up
from fleetmeter.billing.currency import minor_unit
from fleetmeter.billing.reconcile import (
    Adjustment,
    DeviceEvidence,
    DeviceReconciliation,
    Reading,
    Reconciliation,
    Slot,
    add_usage,
    adjust_late_usage,
    assemble,
    reconcile_device,
)
from fleetmeter.billing.usage import DeviceClass, DeviceUsage
from fleetmeter.portal.errors import PortalError
from fleetmeter.portal.services import contracts
from fleetmeter.portal.services.contracts import ContractNotFoundError, PlacedDevice
from fleetmeter.portal.store.models import (
    Contract,
    CounterReading,
    Customer,
    JobRecord,
    Reseller,
    StatementJob,
    StatementRecord,
)
from fleetmeter.wire import JobRecord as WireJob
from fleetmeter.wire import now_utc

DOCUMENT_FORMAT = "fleetmeter-statement/1"
OPEN = "open"
CLOSED = "closed"


class StatementError(PortalError):
    """A statement that cannot be made as asked (one line for a person)."""


class StatementNotFoundError(StatementError):
    """No such statement or contract for this reseller."""


class StatementClosedError(StatementError):
    """The statement is closed: it never changes again."""


@dataclass(frozen=True)
class StatementDevice:
    """A device as a statement names it (``device``: its serial number) and where it stood."""

    device: str
    device_id: uuid.UUID
    vendor: str
    serial_number: str
    model: str | None
    device_class: str
    placement: str
    valid_from: date
    valid_to: date | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "device_id": str(self.device_id),
            "vendor": self.vendor,
            "serial_number": self.serial_number,
            "model": self.model,
            "device_class": self.device_class,
            "placement": self.placement,
            "valid_from": self.valid_from.isoformat(),
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StatementDevice:
        return cls(
            device=data["device"],
            device_id=uuid.UUID(data["device_id"]),
            vendor=data["vendor"],
            serial_number=data["serial_number"],
            model=data.get("model"),
            device_class=data.get("device_class", "printer"),
            placement=data["placement"],
            valid_from=date.fromisoformat(data["valid_from"]),
            valid_to=date.fromisoformat(data["valid_to"]) if data.get("valid_to") else None,
        )


@dataclass(frozen=True)
class StatementDocument:
    """A stored statement as pure billing objects: what exports and the API render.

    ``statement`` rates the period itself; ``adjustments`` carry late usage of earlier,
    closed periods; ``total`` is ``statement.total`` plus every adjustment's amount.
    """

    id: uuid.UUID
    contract_id: uuid.UUID
    customer_id: uuid.UUID
    status: str
    label: str
    generated_at: datetime
    closed_at: datetime | None
    currency: str
    total: Decimal
    statement: Statement
    adjustments: tuple[Adjustment, ...]
    usage: PeriodUsage
    reconciliation: Reconciliation
    devices: tuple[StatementDevice, ...]
    jobs_billed: int
    jobs_late: int

    @property
    def period(self) -> Period:
        return self.statement.period

    def as_json(self) -> dict[str, Any]:
        """The API's JSON shape (docs/billing.md, "Statements API")."""
        return {
            **summary_of(self),
            "statement": self.statement.model_dump(mode="json"),
            "adjustments": [a.model_dump(mode="json") for a in self.adjustments],
            "usage": self.usage.model_dump(mode="json"),
            "reconciliation": self.reconciliation.model_dump(mode="json"),
            "devices": [d.as_dict() for d in self.devices],
        }


def summary_of(doc: StatementDocument) -> dict[str, Any]:
    return {
        "id": str(doc.id),
        "contract_id": str(doc.contract_id),
        "customer_id": str(doc.customer_id),
        "label": doc.label,
        "period": doc.period.model_dump(mode="json"),
        "status": doc.status,
        "currency": doc.currency,
        "total": str(doc.total),
        "generated_at": doc.generated_at.isoformat(),
        "closed_at": doc.closed_at.isoformat() if doc.closed_at else None,
        "jobs_billed": doc.jobs_billed,
        "jobs_late": doc.jobs_late,
        "flags": len(doc.reconciliation.flags),
    }


# --------------------------------------------------------------------------- periods

_MONTH = re.compile(r"(\d{4})-(\d{2})")
_QUARTER = re.compile(r"(\d{4})-[Qq]([1-4])")
_YEAR = re.compile(r"\d{4}")


def parse_period_day(label: str) -> date:
    """A day in the period ``label`` names: ``2026-03``, ``2026-Q1``, ``2026`` or a date."""
    text = label.strip()
    try:
        if m := _MONTH.fullmatch(text):
            return date(int(m[1]), int(m[2]), 1)
        if m := _QUARTER.fullmatch(text):
            return date(int(m[1]), (int(m[2]) - 1) * 3 + 1, 1)
        if _YEAR.fullmatch(text):
            return date(int(text), 1, 1)
        return date.fromisoformat(text)
    except ValueError:
        raise StatementError(
            f"period {label!r}: write a month (2026-03), a quarter (2026-Q1), a year (2026) "
            "or a day (2026-03-15)"
        ) from None


def period_label(period: Period, billing_period: str) -> str:
    if billing_period == "quarterly":
        return f"{period.start.year}-Q{(period.start.month - 1) // 3 + 1}"
    if billing_period == "yearly":
        return f"{period.start.year}"
    return f"{period.start.year}-{period.start.month:02d}"


def contract_period(contract: Contract, period: date | str | Period) -> Period:
    """The contract's billing period meant by ``period`` (a label, any day of it, or itself)."""
    if isinstance(period, Period):
        day = period.start
    elif isinstance(period, str):
        day = parse_period_day(period)
    else:
        day = period
    return contracts.period_of(contract, day)


def local_midnight(day: date, timezone: str) -> datetime:
    """The UTC instant at which ``day`` begins in ``timezone``.

    On a day whose midnight is skipped by a DST change, fold=0 lands on the first instant of
    that day, so ``[local_midnight(a), local_midnight(b))`` holds exactly the instants whose
    local date is in ``[a, b)`` — the rule ``usage_from_jobs`` counts by.
    """
    return datetime.combine(day, time(0), ZoneInfo(timezone)).astimezone(UTC)


# --------------------------------------------------------------------------- reading


def list_statements(
    session: Session,
    *,
    reseller_id: uuid.UUID,
    contract_id: uuid.UUID,
    customer_id: uuid.UUID | None = None,
) -> list[StatementRecord]:
    """The contract's statements, oldest period first."""
    try:
        contracts.get_contract(
            session, reseller_id=reseller_id, contract_id=contract_id, customer_id=customer_id
        )
    except ContractNotFoundError as exc:
        raise StatementNotFoundError(str(exc)) from None
    return list(
        session.scalars(
            select(StatementRecord)
            .where(
                StatementRecord.reseller_id == reseller_id,
                StatementRecord.contract_id == contract_id,
            )
            .order_by(StatementRecord.period_start)
        )
    )


def get_statement(
    session: Session,
    *,
    reseller_id: uuid.UUID,
    statement_id: uuid.UUID,
    customer_id: uuid.UUID | None = None,
) -> StatementRecord:
    query = select(StatementRecord).where(
        StatementRecord.reseller_id == reseller_id, StatementRecord.id == statement_id
    )
    if customer_id is not None:
        query = query.where(StatementRecord.customer_id == customer_id)
    record = session.scalar(query)
    if record is None:
        raise StatementNotFoundError(f"no statement {statement_id}")
    return record


def find_statement(
    session: Session, *, reseller_id: uuid.UUID, contract_id: uuid.UUID, period: date | str
) -> StatementRecord | None:
    """The stored statement of the contract for ``period``, if there is one."""
    try:
        contract = contracts.get_contract(session, reseller_id=reseller_id, contract_id=contract_id)
    except ContractNotFoundError as exc:
        raise StatementNotFoundError(str(exc)) from None
    start = contract_period(contract, period).start
    return session.scalar(
        select(StatementRecord).where(
            StatementRecord.reseller_id == reseller_id,
            StatementRecord.contract_id == contract_id,
            StatementRecord.period_start == start,
        )
    )


def document_of(record: StatementRecord) -> StatementDocument:
    """The stored statement as pure billing objects (no database access)."""
    doc = record.document
    if doc.get("format") != DOCUMENT_FORMAT:
        raise StatementError(f"statement {record.id} has no readable document")
    statement = Statement.model_validate(doc["statement"])
    return StatementDocument(
        id=record.id,
        contract_id=record.contract_id,
        customer_id=record.customer_id,
        status=record.status,
        label=doc["label"],
        generated_at=record.generated_at,
        closed_at=record.closed_at,
        currency=record.currency,
        total=Decimal(record.total),
        statement=statement,
        adjustments=tuple(Adjustment.model_validate(a) for a in doc["adjustments"]),
        usage=PeriodUsage.model_validate(doc["usage"]),
        reconciliation=Reconciliation.model_validate(doc["reconciliation"]),
        devices=tuple(StatementDevice.from_dict(d) for d in doc["devices"]),
        jobs_billed=record.jobs_billed,
        jobs_late=record.jobs_late,
    )


def statement_document(
    session: Session,
    *,
    reseller_id: uuid.UUID,
    statement_id: uuid.UUID,
    customer_id: uuid.UUID | None = None,
) -> StatementDocument:
    """The pure ``Statement``, per-device usage, adjustments and reconciliation of a stored
    statement: what ``fleetmeter.billing.exports`` renders."""
    record = get_statement(
        session, reseller_id=reseller_id, statement_id=statement_id, customer_id=customer_id
    )
    return document_of(record)


def billed_job_ids(
    session: Session, *, reseller_id: uuid.UUID, statement_id: uuid.UUID
) -> list[uuid.UUID]:
    """The job records a statement billed (its own period's and late ones)."""
    return list(
        session.scalars(
            select(StatementJob.job_id).where(
                StatementJob.reseller_id == reseller_id,
                StatementJob.statement_id == statement_id,
            )
        )
    )


# --------------------------------------------------------------------------- writing


def _lock_contract(session: Session, *, reseller_id: uuid.UUID, contract_id: uuid.UUID) -> Contract:
    # A write first: it row-locks the contract on PostgreSQL (statements of one contract
    # are then built one at a time) and takes SQLite's write lock before any read, so the
    # reads below cannot go stale under a concurrent writer.
    locked = session.execute(
        update(Contract)
        .where(Contract.reseller_id == reseller_id, Contract.id == contract_id)
        .values(name=Contract.name)
        .execution_options(synchronize_session=False)
    )
    if getattr(locked, "rowcount", 0) == 0:
        raise StatementNotFoundError(f"no contract {contract_id}")
    return contracts.get_contract(session, reseller_id=reseller_id, contract_id=contract_id)


def generate_statement(
    session: Session,
    *,
    reseller_id: uuid.UUID,
    contract_id: uuid.UUID,
    period: date | str | Period,
) -> StatementRecord:
    """Build (or rebuild) the open statement of a contract's period from stored jobs.

    ``period``: a label (``2026-03``, ``2026-Q1``, ``2026``), any day of the period, or a
    ``Period`` (its start picks the period). A closed statement raises
    ``StatementClosedError``. The caller commits.
    """
    contract = _lock_contract(session, reseller_id=reseller_id, contract_id=contract_id)
    target = contract_period(contract, period)
    if target.end <= contract.start_date or (
        contract.end_date is not None and target.start >= contract.end_date
    ):
        ends = f" to {contract.end_date}" if contract.end_date else ""
        raise StatementError(
            f"{period_label(target, contract.billing_period)} is outside the contract "
            f"({contract.start_date}{ends})"
        )
    record = session.scalar(
        select(StatementRecord).where(
            StatementRecord.reseller_id == reseller_id,
            StatementRecord.contract_id == contract.id,
            StatementRecord.period_start == target.start,
        )
    )
    if record is not None and record.status == CLOSED:
        raise StatementClosedError(
            f"the statement for {period_label(target, contract.billing_period)} is closed"
        )
    if record is None:
        record = StatementRecord(
            reseller_id=reseller_id,
            contract_id=contract.id,
            customer_id=contract.customer_id,
            period_start=target.start,
            period_end=target.end,
            timezone=target.timezone,
            status=OPEN,
            currency=contract.currency,
            total="0",
            plan_text=contract.plan_text,
            document={},
            jobs_billed=0,
            jobs_late=0,
        )
        session.add(record)
        session.flush()
    _build(session, contract=contract, record=record, period=target)
    return record


def close_statement(
    session: Session,
    *,
    reseller_id: uuid.UUID,
    statement_id: uuid.UUID,
) -> StatementRecord:
    """Generate the statement one last time and freeze it. Closing it again changes nothing.

    The caller commits.
    """
    record = get_statement(session, reseller_id=reseller_id, statement_id=statement_id)
    contract = _lock_contract(session, reseller_id=reseller_id, contract_id=record.contract_id)
    # Read again under the lock: another process may have closed it meanwhile.
    session.refresh(record)
    if record.status == CLOSED:
        return record
    period = Period(start=record.period_start, end=record.period_end, timezone=record.timezone)
    _build(session, contract=contract, record=record, period=period)
    record.status = CLOSED
    record.closed_at = now_utc()
    session.flush()
    return record


# --------------------------------------------------------------------------- building


@dataclass(frozen=True)
class _Active:
    """A device's stretch on the contract within one period."""

    placed: PlacedDevice
    added_on: date | None
    removed_on: date | None
    start: datetime  # UTC instants of [max(period start, added_on), min(period end, removed_on))
    stop: datetime

    @property
    def label(self) -> str:
        return self.placed.label


def _active_in(contract: Contract, placed: Sequence[PlacedDevice], period: Period) -> list[_Active]:
    out = []
    for p in placed:
        added = max(p.slot.valid_from, contract.start_date)
        ends = [d for d in (p.slot.valid_to, contract.end_date) if d is not None]
        removed = min(ends) if ends else None
        if period.active_days(added, removed) == 0:
            continue
        first = max(period.start, added)
        stop = min(period.end, removed) if removed is not None else period.end
        out.append(
            _Active(
                placed=p,
                added_on=added,
                removed_on=removed,
                start=local_midnight(first, period.timezone),
                stop=local_midnight(stop, period.timezone),
            )
        )
    return out


def _claim(
    session: Session,
    *,
    record: StatementRecord,
    active: _Active,
    usage_period: date,
) -> None:
    """Record, in the database, that ``record`` bills the device's unbilled jobs of a span.

    INSERT … SELECT: the set is decided by the database in this transaction, and the primary
    key (reseller, job) refuses a job another statement billed meanwhile.
    """
    reseller_id = record.reseller_id
    billed = exists().where(
        StatementJob.reseller_id == reseller_id, StatementJob.job_id == JobRecord.id
    )
    rows = select(
        literal(reseller_id, Uuid()),
        JobRecord.id,
        literal(record.id, Uuid()),
        literal(usage_period, Date()),
    ).where(
        JobRecord.reseller_id == reseller_id,
        JobRecord.device_id == active.placed.device.id,
        JobRecord.completed_at >= active.start,
        JobRecord.completed_at < active.stop,
        ~billed,
    )
    session.execute(
        insert(StatementJob).from_select(
            ["reseller_id", "job_id", "statement_id", "period_start"], rows
        )
    )


_JOB_COLUMNS = (
    JobRecord.job_uuid,
    JobRecord.sequence_number,
    JobRecord.kind,
    JobRecord.status,
    JobRecord.completed_at,
    JobRecord.print_time_s,
    JobRecord.pages,
    JobRecord.copies,
    JobRecord.media_type,
    JobRecord.application_category,
    JobRecord.media_area_mm2,
    JobRecord.scan_area_mm2,
    JobRecord.ink_ul,
    JobRecord.extra,
)


def _wire_job(row: Any) -> WireJob:
    """A stored job as the wire model that rating reads.

    Only the fields usage and reconciliation read are loaded; the extras (3D grams,
    material) go back as extras, where ``usage_from_jobs`` looks for them. Validated, not
    ``model_construct``-ed: pydantic's validator is the faster of the two here, and a
    corrupt row then fails loudly instead of being priced.
    """
    data = {k: v for k, v in (row.extra or {}).items() if k != "submitter"}
    data.update(
        job_uuid=row.job_uuid,
        sequence_number=row.sequence_number,
        kind=row.kind,
        status=row.status,
        completed_at=row.completed_at,
        print_time_s=row.print_time_s,
        pages=row.pages,
        copies=row.copies,
        media_type=row.media_type,
        application_category=row.application_category,
        media_area_mm2=row.media_area_mm2,
        scan_area_mm2=row.scan_area_mm2,
        ink_ul=row.ink_ul or {},
    )
    return WireJob.model_validate(data)


def _claimed_jobs(
    session: Session, *, record: StatementRecord, active: _Active, usage_period: date
) -> list[WireJob]:
    """The device's jobs in its span that ``record`` claimed for ``usage_period``.

    Read one device at a time (through the job index on device and completion time), so a
    statement never holds more than one device's jobs in memory.
    """
    rows = session.execute(
        select(*_JOB_COLUMNS)
        .join(
            StatementJob,
            (StatementJob.reseller_id == JobRecord.reseller_id)
            & (StatementJob.job_id == JobRecord.id),
        )
        .where(
            JobRecord.reseller_id == record.reseller_id,
            JobRecord.device_id == active.placed.device.id,
            JobRecord.completed_at >= active.start,
            JobRecord.completed_at < active.stop,
            StatementJob.statement_id == record.id,
            StatementJob.period_start == usage_period,
        )
    )
    return [_wire_job(row) for row in rows]


def _usage(jobs: Sequence[WireJob], active: _Active, period: Period) -> DeviceUsage:
    usage = usage_from_jobs(
        jobs,
        device=active.label,
        period=period,
        device_class=_device_class(active.placed),
        added_on=active.added_on,
        removed_on=active.removed_on,
    )
    # Every claimed job must be counted: one claimed but left out would be marked billed and
    # never charged. The spans claimed are the days usage_from_jobs counts, so this only
    # fires on a bug.
    if usage.jobs_outside:
        raise StatementError(
            f"{usage.jobs_outside} jobs of {active.label} claimed for {period} fall outside it"
        )
    return usage


def _plan_of(record: StatementRecord) -> PricePlan:
    plan_format = record.document.get("plan_format", "toml")
    return contracts.parse_contract_plan(
        record.plan_text, plan_format=plan_format, source=f"statement {record.id}"
    )


def _build(
    session: Session, *, contract: Contract, record: StatementRecord, period: Period
) -> None:
    if record.status != OPEN:  # the one door every write goes through
        raise StatementClosedError(f"statement {record.id} is closed")
    plan = contracts.contract_plan(contract)
    placed = contracts.devices_of(
        session, reseller_id=contract.reseller_id, contract_id=contract.id
    )
    active = _active_in(contract, placed, period)

    session.execute(
        delete(StatementJob).where(
            StatementJob.reseller_id == record.reseller_id,
            StatementJob.statement_id == record.id,
        )
    )
    for a in active:
        _claim(session, record=record, active=a, usage_period=period.start)
    late_periods = _late_periods(session, contract=contract, record=record)
    for closed in late_periods:
        closed_period = Period(
            start=closed.period_start, end=closed.period_end, timezone=closed.timezone
        )
        for a in _active_in(contract, placed, closed_period):
            _claim(session, record=record, active=a, usage_period=closed.period_start)
    session.flush()

    own: list[DeviceUsage] = []
    checks: list[DeviceReconciliation] = []
    adjustments: list[Adjustment] = []
    billed = late = 0
    try:
        for a in active:
            jobs = _claimed_jobs(session, record=record, active=a, usage_period=period.start)
            billed += len(jobs)
            own.append(_usage(jobs, a, period))
            checks.append(reconcile_device(_evidence(session, a, jobs)))
        usage = PeriodUsage(devices=tuple(own))
        statement = rate(plan, usage, period=period)
        for closed in late_periods:
            found = _adjustment(
                session, contract=contract, record=record, closed=closed, placed=placed
            )
            if found is not None:
                adjustments.append(found[0])
                late += found[1]
    except BillingError as exc:
        raise StatementError(f"cannot rate {period}: {exc}") from exc

    slots = [
        Slot(
            placement=p.slot.placement,
            device=p.label,
            valid_from=p.slot.valid_from,
            valid_to=p.slot.valid_to,
        )
        for p in placed
    ]
    reconciliation = assemble(checks, period=period, slots=slots, adjustments=adjustments)

    places = minor_unit(plan.currency)
    total = round_half_up(
        Fraction(statement.total) + sum((Fraction(a.amount) for a in adjustments), Fraction()),
        places,
    )
    devices = [_statement_device(a.placed) for a in active]
    late_devices = {d.device for adj in adjustments for d in adj.usage.devices} - {
        d.device for d in devices
    }
    devices += [_statement_device(p) for p in placed if p.label in late_devices]
    record.plan_text = contract.plan_text
    record.currency = plan.currency
    record.total = str(total)
    record.jobs_billed = billed + late
    record.jobs_late = late
    record.generated_at = now_utc()
    record.document = {
        "format": DOCUMENT_FORMAT,
        "label": period_label(period, contract.billing_period),
        "plan_format": contract.plan_format,
        "statement": statement.model_dump(mode="json"),
        "adjustments": [a.model_dump(mode="json") for a in adjustments],
        "usage": usage.model_dump(mode="json"),
        "reconciliation": reconciliation.model_dump(mode="json"),
        "devices": [d.as_dict() for d in _unique(devices)],
        "total": str(total),
    }
    session.flush()


def _unique(devices: Iterable[StatementDevice]) -> list[StatementDevice]:
    seen: dict[str, StatementDevice] = {}
    for d in devices:
        seen.setdefault(d.device, d)
    return [seen[k] for k in sorted(seen)]


def _device_class(placed: PlacedDevice) -> DeviceClass:
    value = placed.device.device_class
    for known in get_args(DeviceClass):
        if value == known:
            return cast(DeviceClass, known)
    return "printer"


def _statement_device(placed: PlacedDevice) -> StatementDevice:
    d = placed.device
    return StatementDevice(
        device=placed.label,
        device_id=d.id,
        vendor=d.vendor,
        serial_number=d.serial_number,
        model=d.model,
        device_class=d.device_class,
        placement=placed.slot.placement,
        valid_from=placed.slot.valid_from,
        valid_to=placed.slot.valid_to,
    )


def _late_periods(
    session: Session, *, contract: Contract, record: StatementRecord
) -> list[StatementRecord]:
    """Closed periods before this one whose late jobs this statement carries: those for
    which it is the earliest open statement after them (so the choice does not depend on
    which open statement happens to be generated first)."""
    others = list(
        session.scalars(
            select(StatementRecord)
            .where(
                StatementRecord.reseller_id == contract.reseller_id,
                StatementRecord.contract_id == contract.id,
                StatementRecord.period_start < record.period_start,
            )
            .order_by(StatementRecord.period_start)
        )
    )
    out = []
    for closed in others:
        if closed.status != CLOSED:
            continue
        between = [s for s in others if s.status == OPEN and s.period_start > closed.period_start]
        if not between:
            out.append(closed)
    return out


def _adjustment(
    session: Session,
    *,
    contract: Contract,
    record: StatementRecord,
    closed: StatementRecord,
    placed: Sequence[PlacedDevice],
) -> tuple[Adjustment, int] | None:
    """The adjustment for ``closed``'s late jobs this statement claimed, and their number."""
    period = Period(start=closed.period_start, end=closed.period_end, timezone=closed.timezone)
    devices: list[DeviceUsage] = []
    times: list[datetime] = []
    count = 0
    for a in _active_in(contract, placed, period):
        jobs = _claimed_jobs(session, record=record, active=a, usage_period=period.start)
        if not jobs:
            continue
        count += len(jobs)
        times += [min(j.completed_at for j in jobs), max(j.completed_at for j in jobs)]
        devices.append(_usage(jobs, a, period))
    if not count:
        return None
    # What the period has been charged for so far: its own closed statement's usage and the
    # late usage other *closed* statements carried for it. Open ones are drafts: they are
    # rebuilt, under this rule, when they are generated or closed.
    billed = PeriodUsage.model_validate(closed.document["usage"])
    for other in session.scalars(
        select(StatementRecord).where(
            StatementRecord.reseller_id == contract.reseller_id,
            StatementRecord.contract_id == contract.id,
            StatementRecord.status == CLOSED,
            StatementRecord.id != record.id,
            StatementRecord.period_start > closed.period_start,
        )
    ):
        for adj in other.document.get("adjustments", []):
            if adj["period"]["start"] == period.start.isoformat():
                billed = add_usage(billed, PeriodUsage.model_validate(adj["usage"]))
    adjustment = adjust_late_usage(
        _plan_of(closed),
        period=period,
        billed=billed,
        late=PeriodUsage(devices=tuple(devices)),
        first_completed_at=min(times),
        last_completed_at=max(times),
    )
    return adjustment, count


# --------------------------------------------------------------------------- evidence


def _evidence(session: Session, active: _Active, period_jobs: Sequence[WireJob]) -> DeviceEvidence:
    """Counter readings and jobs of one device for reconciliation.

    ``period_jobs`` are the device's jobs in its active span (this statement billed them
    all: an open statement is the only one that bills its period). Added here: the jobs
    between the counters' baseline reading and the span's start, and the sequence number of
    the last job before the span.
    """
    device = active.placed.device
    reseller_id = device.reseller_id
    baseline = session.scalar(
        select(func.max(CounterReading.read_at)).where(
            CounterReading.reseller_id == reseller_id,
            CounterReading.device_id == device.id,
            CounterReading.read_at <= active.start,
        )
    )
    since = baseline or active.start
    readings = [
        Reading(meter=r.meter, read_at=r.read_at, value=r.value)
        for r in session.execute(
            select(CounterReading.meter, CounterReading.read_at, CounterReading.value)
            .where(
                CounterReading.reseller_id == reseller_id,
                CounterReading.device_id == device.id,
                CounterReading.read_at >= since,
                CounterReading.read_at <= active.stop,
            )
            .order_by(CounterReading.read_at)
        )
    ]
    extra = [
        _wire_job(row)
        for row in session.execute(
            select(*_JOB_COLUMNS).where(
                JobRecord.reseller_id == reseller_id,
                JobRecord.device_id == device.id,
                or_(
                    (JobRecord.completed_at > since) & (JobRecord.completed_at < active.start),
                    JobRecord.completed_at == active.stop,
                ),
            )
        )
    ]
    previous = session.scalar(
        select(JobRecord.sequence_number)
        .where(
            JobRecord.reseller_id == reseller_id,
            JobRecord.device_id == device.id,
            JobRecord.completed_at < active.start,
        )
        .order_by(JobRecord.completed_at.desc(), JobRecord.sequence_number.desc())
        .limit(1)
    )
    return DeviceEvidence(
        device=active.label,
        device_class=_device_class(active.placed),
        active_from=active.start,
        active_to=active.stop,
        jobs=(*period_jobs, *extra),
        readings=tuple(readings),
        previous_sequence=previous,
    )


@dataclass(frozen=True)
class StatementNames:
    """Who a statement is from and for, as exports print it."""

    reseller: str
    customer: str
    contract: str


def names_of(session: Session, *, reseller_id: uuid.UUID, contract: Contract) -> StatementNames:
    reseller = session.get(Reseller, reseller_id)
    customer = session.scalar(
        select(Customer).where(
            Customer.reseller_id == reseller_id, Customer.id == contract.customer_id
        )
    )
    return StatementNames(
        reseller=reseller.name if reseller is not None else "",
        customer=customer.name if customer is not None else "",
        contract=contract.name,
    )
