"""Ingest service against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fleetmeter import wire
from fleetmeter.portal.services.ingest import ingest_batch
from fleetmeter.portal.store.models import (
    Alert,
    Collector,
    CounterReading,
    Device,
    IngestedBatch,
    JobRecord,
)
from tests.portal.portal_builders import T0, Tenant, batch, job, report


def _ingest(factory: sessionmaker[Session], tenant: Tenant, b: wire.Batch) -> wire.BatchReceipt:
    with factory() as session:
        collector = session.get(Collector, tenant.collector_id)
        assert collector is not None
        return ingest_batch(session, collector=collector, batch=b)


def _count(factory: sessionmaker[Session], model: type[object]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_stores_devices_jobs_counters_and_alerts(
    session_factory: sessionmaker[Session], tenant: Tenant
) -> None:
    jobs = [job(1), job(2, name="<script>alert(1)</script>", extra_field={"x": 1})]
    alert = wire.Alert(code="inkLow", severity=wire.AlertSeverity.WARNING, first_seen=T0)
    receipt = _ingest(session_factory, tenant, batch(report(jobs=jobs, alerts=[alert])))

    assert receipt.status == "stored"
    assert (receipt.reports, receipt.jobs_stored, receipt.jobs_duplicate) == (1, 2, 0)
    with session_factory() as session:
        device = session.scalars(select(Device)).one()
        assert (device.reseller_id, device.customer_id) == (tenant.reseller_id, tenant.customer_id)
        assert (device.vendor, device.serial_number, device.model) == (
            "HP",
            "SG12345678",
            "DesignJet T830",
        )
        assert device.engine_state == "idle"
        assert device.status is not None and device.status["cartridges"][1]["level_percent"] == 9
        assert device.last_seen_at == T0 and device.status_at == T0

        stored = {j.sequence_number: j for j in session.scalars(select(JobRecord))}
        assert set(stored) == {1, 2}
        assert stored[2].name == "<script>alert(1)</script>"
        assert stored[2].ink_ul == {"C": 102, "K": 50} and stored[2].total_ink_ul == 152
        assert stored[2].extra == {"extra_field": {"x": 1}}  # unknown wire fields are kept
        assert stored[1].completed_at == T0 + timedelta(minutes=1)
        assert stored[1].submitter_project == "P1"

        meters = {c.meter: c.value for c in session.scalars(select(CounterReading))}
        assert meters == report().usage.meters()  # type: ignore[union-attr]
        assert session.scalars(select(Alert)).one().code == "inkLow"
        assert session.scalars(select(IngestedBatch)).one().jobs_stored == 2


def test_resent_batch_is_duplicate_and_stores_nothing(
    session_factory: sessionmaker[Session], tenant: Tenant
) -> None:
    b = batch(report(jobs=[job(1), job(2)]))
    assert _ingest(session_factory, tenant, b).status == "stored"
    counts = [_count(session_factory, m) for m in (JobRecord, CounterReading, Device, Alert)]

    again = _ingest(session_factory, tenant, b)

    assert again.status == "duplicate"
    assert (again.jobs_stored, again.jobs_duplicate) == (0, 2)
    assert [
        _count(session_factory, m) for m in (JobRecord, CounterReading, Device, Alert)
    ] == counts
    assert _count(session_factory, IngestedBatch) == 1


def test_same_job_in_two_batches_is_stored_once(
    session_factory: sessionmaker[Session], tenant: Tenant
) -> None:
    shared = job(5)
    first = _ingest(session_factory, tenant, batch(report(jobs=[job(4), shared])))
    later = report(at=T0 + timedelta(hours=3), jobs=[shared, job(6)], impressions=120)
    second = _ingest(session_factory, tenant, batch(later))

    assert (first.jobs_stored, first.jobs_duplicate) == (2, 0)
    assert (second.status, second.jobs_stored, second.jobs_duplicate) == ("stored", 1, 1)
    assert _count(session_factory, JobRecord) == 3
    # Counter readings append: one set per report time.
    with session_factory() as session:
        values = session.scalars(
            select(CounterReading.value)
            .where(CounterReading.meter == "impressions")
            .order_by(CounterReading.read_at)
        ).all()
    assert values == [100, 120]


def test_same_job_twice_in_one_batch_counts_one_duplicate(
    session_factory: sessionmaker[Session], tenant: Tenant
) -> None:
    j = job(1)
    b = batch(report(jobs=[j]), report(at=T0 + timedelta(minutes=5), jobs=[j]))
    receipt = _ingest(session_factory, tenant, b)
    assert (receipt.jobs_stored, receipt.jobs_duplicate) == (1, 1)


def test_status_snapshot_only_moves_forward(
    session_factory: sessionmaker[Session], tenant: Tenant
) -> None:
    newer = report(at=T0 + timedelta(hours=1), engine_state=wire.EngineState.PRINTING)
    _ingest(session_factory, tenant, batch(newer))
    # A late, re-queued older report must not overwrite the newer status.
    _ingest(session_factory, tenant, batch(report(at=T0, engine_state=wire.EngineState.ERROR)))
    # A usage-only report (no status) leaves the snapshot alone but counts as contact.
    _ingest(session_factory, tenant, batch(report(at=T0 + timedelta(hours=2), status=False)))

    with session_factory() as session:
        device = session.scalars(select(Device)).one()
    assert device.engine_state == "printing"
    assert device.status_at == T0 + timedelta(hours=1)
    assert device.last_seen_at == T0 + timedelta(hours=2)


def test_later_report_clears_an_alert(
    session_factory: sessionmaker[Session], tenant: Tenant
) -> None:
    raised = wire.Alert(code="jam", severity=wire.AlertSeverity.ERROR, first_seen=T0, text="Jam")
    _ingest(session_factory, tenant, batch(report(alerts=[raised])))
    cleared = raised.model_copy(update={"cleared_at": T0 + timedelta(minutes=9)})
    _ingest(session_factory, tenant, batch(report(at=T0 + timedelta(minutes=10), alerts=[cleared])))
    # A still-older report repeating the alert uncleared does not reopen it.
    _ingest(session_factory, tenant, batch(report(at=T0 + timedelta(minutes=11), alerts=[raised])))

    with session_factory() as session:
        alert = session.scalars(select(Alert)).one()
    assert alert.cleared_at == T0 + timedelta(minutes=9)


def test_devices_are_per_reseller(
    session_factory: sessionmaker[Session], tenant: Tenant, other_tenant: Tenant
) -> None:
    _ingest(session_factory, tenant, batch(report(jobs=[job(1)])))
    _ingest(session_factory, other_tenant, batch(report(jobs=[job(1)])))
    with session_factory() as session:
        owners = session.scalars(select(Device.reseller_id)).all()
    assert sorted(owners, key=str) == sorted(
        [tenant.reseller_id, other_tenant.reseller_id], key=str
    )


def test_many_jobs_are_chunked(session_factory: sessionmaker[Session], tenant: Tenant) -> None:
    jobs = [job(i) for i in range(1, 1201)]  # > several chunks of 200 rows
    receipt = _ingest(session_factory, tenant, batch(report(jobs=jobs)))
    assert receipt.jobs_stored == 1200
    assert _count(session_factory, JobRecord) == 1200


@pytest.mark.parametrize("rounds", [3])
def test_concurrent_resend_stores_once(
    session_factory: sessionmaker[Session], tenant: Tenant, rounds: int
) -> None:
    """Two sessions ingest the same batch at the same moment: one stored, one duplicate."""
    for _ in range(rounds):
        b = batch(report(serial=f"SN-{uuid.uuid4().hex[:8]}", jobs=[job(1), job(2), job(3)]))
        barrier = threading.Barrier(2)
        receipts: list[wire.BatchReceipt] = []
        errors: list[BaseException] = []

        def worker(
            b: wire.Batch = b,
            barrier: threading.Barrier = barrier,
            receipts: list[wire.BatchReceipt] = receipts,
            errors: list[BaseException] = errors,
        ) -> None:
            try:
                with session_factory() as session:
                    collector = session.get(Collector, tenant.collector_id)
                    assert collector is not None
                    barrier.wait(timeout=10)
                    receipts.append(ingest_batch(session, collector=collector, batch=b))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)

        assert not errors, errors
        assert sorted(r.status for r in receipts) == ["duplicate", "stored"]
    assert _count(session_factory, IngestedBatch) == rounds
    assert _count(session_factory, JobRecord) == 3 * rounds
    assert _count(session_factory, Device) == rounds
