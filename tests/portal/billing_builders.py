"""Builders for the contract and statement tests: a fleet that ingests real wire batches
through the ingest service, contracts on it, and statements read back as billing objects."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fleetmeter import wire
from fleetmeter.portal.services import contracts, ingest, statements
from fleetmeter.portal.services.statements import StatementDocument
from fleetmeter.portal.store.models import Collector, StatementJob
from tests.portal.portal_builders import Tenant, make_tenant

D = Decimal


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def pjob(seq: int, at: datetime, **kw: Any) -> wire.JobRecord:
    """A job with nothing used unless ``kw`` says so (so each test's arithmetic is all there)."""
    kw.setdefault("job_uuid", uuid.uuid4())
    kw.setdefault("pages", 0)
    return wire.JobRecord(sequence_number=seq, completed_at=at, **kw)


def lifetime(jobs: Iterable[wire.JobRecord], *, base: int = 0) -> wire.LifetimeUsage:
    """Lifetime counters that agree with ``jobs`` (plus ``base`` on every counter)."""
    pages = area = ink = count = 0
    by_colour: dict[str, int] = {}
    by_media: dict[str, int] = {}
    for j in jobs:
        count += 1
        if j.kind in (wire.JobKind.PRINT, wire.JobKind.COPY):
            pages += j.pages
        area += j.media_area_mm2
        for colour, ul in j.ink_ul.items():
            ink += ul
            by_colour[colour] = by_colour.get(colour, 0) + ul
        if j.media_type:
            by_media[j.media_type] = by_media.get(j.media_type, 0) + j.media_area_mm2
    return wire.LifetimeUsage(
        jobs=base + count,
        impressions=base + pages,
        total_ink_ul=base + ink,
        total_media_area_mm2=base + area,
        by_cartridge_type=[
            wire.CartridgeTypeUsage(color=c, total_ink_ul=base + v) for c, v in by_colour.items()
        ],
        by_media_type=[
            wire.MediaTypeUsage(media_type=m, area_mm2=base + v) for m, v in by_media.items()
        ],
    )


def device_report(
    serial: str,
    *,
    at: datetime,
    jobs: Sequence[wire.JobRecord] = (),
    usage: wire.LifetimeUsage | None = None,
    device_class: str = "printer",
    address: str | None = None,
) -> wire.DeviceReport:
    return wire.DeviceReport(
        collected_at=at,
        device=wire.DeviceIdentity(
            vendor="HP",
            serial_number=serial,
            product_name="DesignJet T1700" if device_class == "printer" else "Prusa MK4",
            driver="ledm" if device_class == "printer" else "octoprint",
            device_class=device_class,  # type: ignore[arg-type]
            address=address,
        ),
        usage=usage,
        jobs=list(jobs),
    )


def batch_of(*reports: wire.DeviceReport, batch_id: uuid.UUID | None = None) -> wire.Batch:
    return wire.Batch(
        batch_id=batch_id or uuid.uuid4(),
        created_at=max(r.collected_at for r in reports),
        sender="billing-test",
        reports=list(reports),
    )


@dataclass
class Fleet:
    """One tenant's fleet: ingest batches, make a contract, generate and close statements."""

    factory: sessionmaker[Session]
    tenant: Tenant
    contract_id: uuid.UUID | None = None
    seen: list[wire.Batch] = field(default_factory=list)

    @classmethod
    def new(cls, factory: sessionmaker[Session], name: str | None = None) -> Fleet:
        return cls(factory, make_tenant(factory, name or f"R-{uuid.uuid4().hex[:10]}"))

    def ingest(self, *reports: wire.DeviceReport, batch_id: uuid.UUID | None = None) -> wire.Batch:
        b = batch_of(*reports, batch_id=batch_id)
        self.send(b)
        return b

    def send(self, b: wire.Batch) -> wire.BatchReceipt:
        with self.factory() as s:
            collector = s.get(Collector, self.tenant.collector_id)
            assert collector is not None
            return ingest.ingest_batch(s, batch=b, collector=collector)

    def contract(
        self,
        plan_toml: str,
        *,
        timezone: str = "UTC",
        start: date = date(2026, 1, 1),
        end: date | None = None,
    ) -> uuid.UUID:
        with self.factory() as s:
            c = contracts.create_contract(
                s,
                reseller_id=self.tenant.reseller_id,
                customer_id=self.tenant.customer_id,
                plan_text=plan_toml,
                timezone=timezone,
                start_date=start,
                end_date=end,
            )
            s.commit()
            self.contract_id = c.id
            return c.id

    def place(
        self, serial: str, *, on: date = date(2026, 1, 1), placement: str | None = None
    ) -> None:
        assert self.contract_id is not None
        with self.factory() as s:
            device = contracts.find_device(
                s, reseller_id=self.tenant.reseller_id, serial_number=serial
            )
            contracts.add_device(
                s,
                reseller_id=self.tenant.reseller_id,
                contract_id=self.contract_id,
                device_id=device.id,
                valid_from=on,
                placement=placement,
            )
            s.commit()

    def unplace(self, serial: str, *, on: date) -> None:
        assert self.contract_id is not None
        with self.factory() as s:
            device = contracts.find_device(
                s, reseller_id=self.tenant.reseller_id, serial_number=serial
            )
            contracts.remove_device(
                s,
                reseller_id=self.tenant.reseller_id,
                contract_id=self.contract_id,
                device_id=device.id,
                valid_to=on,
            )
            s.commit()

    def generate(self, period: str) -> StatementDocument:
        assert self.contract_id is not None
        with self.factory() as s:
            record = statements.generate_statement(
                s, reseller_id=self.tenant.reseller_id, contract_id=self.contract_id, period=period
            )
            s.commit()
            return statements.document_of(record)

    def close(self, period: str) -> StatementDocument:
        assert self.contract_id is not None
        with self.factory() as s:
            record = statements.find_statement(
                s, reseller_id=self.tenant.reseller_id, contract_id=self.contract_id, period=period
            )
            if record is None:
                record = statements.generate_statement(
                    s,
                    reseller_id=self.tenant.reseller_id,
                    contract_id=self.contract_id,
                    period=period,
                )
            record = statements.close_statement(
                s, reseller_id=self.tenant.reseller_id, statement_id=record.id
            )
            s.commit()
            return statements.document_of(record)

    def billed_jobs(self) -> dict[uuid.UUID, int]:
        """job id → how many statements bill it (the key makes it at most 1)."""
        with self.factory() as s:
            rows = s.execute(
                select(StatementJob.job_id, func.count())
                .where(StatementJob.reseller_id == self.tenant.reseller_id)
                .group_by(StatementJob.job_id)
            )
            return {job_id: n for job_id, n in rows}


def amounts(doc: StatementDocument) -> dict[str, Decimal]:
    """Line amounts of the period's own lines, by device (fixed fees) or label."""
    return {line.device or line.label: line.amount for line in doc.statement.lines}


def adjustment_amounts(doc: StatementDocument) -> list[tuple[str, str, Decimal]]:
    return [
        (str(a.period.start), line.label, line.amount) for a in doc.adjustments for line in a.lines
    ]
