"""Builders of wire batches for the portal tests (real wire models, realistic values)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fleetmeter import wire
from fleetmeter.portal.services import tenancy

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Tenant:
    reseller_id: uuid.UUID
    customer_id: uuid.UUID
    collector_id: uuid.UUID
    token: str
    email: str


def make_tenant(factory: sessionmaker[Session], name: str) -> Tenant:
    with factory() as session:
        ids = tenancy.create_tenant(
            session,
            reseller_name=name,
            customer_name=f"{name} customer",
            admin_email=f"admin@{name.lower()}.example",
            admin_password=PASSWORD,
        )
        reseller = tenancy.find_reseller(session, name=name)
        customer = tenancy.find_customer(session, reseller=reseller, name=f"{name} customer")
        new = tenancy.add_collector(session, reseller=reseller, customer=customer)
        session.commit()
    return Tenant(
        ids.reseller_id,
        ids.customer_id,
        new.collector_id,
        new.token,
        f"admin@{name.lower()}.example",
    )


def job(
    seq: int, *, name: str | None = None, at: datetime | None = None, **kw: Any
) -> wire.JobRecord:
    return wire.JobRecord(
        job_uuid=kw.pop("job_uuid", uuid.uuid4()),
        sequence_number=seq,
        name=name if name is not None else f"Plan {seq}.pdf",
        completed_at=at or T0 + timedelta(minutes=seq),
        pages=2,
        ink_ul={"C": 100 + seq, "K": 50},
        media_type="bond",
        media_area_mm2=1_086_746,
        printed_area_mm2=998_000,
        submitter=wire.Submitter(project="P1", user="u1"),
        **kw,
    )


def report(
    serial: str = "SG12345678",
    *,
    at: datetime = T0,
    jobs: list[wire.JobRecord] | None = None,
    impressions: int = 100,
    engine_state: wire.EngineState = wire.EngineState.IDLE,
    alerts: list[wire.Alert] | None = None,
    status: bool = True,
) -> wire.DeviceReport:
    return wire.DeviceReport(
        collected_at=at,
        device=wire.DeviceIdentity(
            vendor="HP",
            serial_number=serial,
            product_name="DesignJet T830",
            product_number="F9A30A",
            firmware_version="1.0",
            driver="ledm",
            address="192.0.2.10",
        ),
        status=wire.DeviceStatus(
            engine_state=engine_state,
            cartridges=[
                wire.Cartridge(color="C", level_percent=71, status=wire.SupplyState.OK),
                wire.Cartridge(color="K", level_percent=9, status=wire.SupplyState.LOW),
            ],
            printheads=[wire.Printhead(colors=["C", "K"], health_percent=88)],
            media_sources=[wire.MediaSource(name="roll1", state="ready", width_mm=914)],
        )
        if status
        else None,
        usage=wire.LifetimeUsage(
            impressions=impressions,
            total_ink_ul=25_000,
            total_media_area_mm2=3_000_000,
            by_cartridge_type=[wire.CartridgeTypeUsage(color="C", total_ink_ul=15_000)],
        ),
        jobs=jobs or [],
        alerts=alerts or [],
    )


def batch(*reports: wire.DeviceReport, batch_id: uuid.UUID | None = None) -> wire.Batch:
    return wire.Batch(
        batch_id=batch_id or uuid.uuid4(), created_at=T0, sender="test", reports=list(reports)
    )
