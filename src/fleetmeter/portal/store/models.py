"""The portal's tables (SQLAlchemy 2 typed declarative).

Tenancy rule (DESIGN.md, "Scale"): every tenant-owned table carries ``reseller_id`` and it
leads every composite key, unique constraint and index, so the schema distributes on
Citus by reseller. Three lookups are global on purpose because they happen before the
tenant is known: a user's login email, a collector's token hash and a direct-connected
device's signing key id.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fleetmeter.portal.store.types import UtcDateTime
from fleetmeter.wire import now_utc

# Deterministic constraint names: Alembic can then drop/alter them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SHORT = 256  # wire ShortText
LONG = 2048  # wire LongText


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
        uuid.UUID: Uuid(),
        int: BigInteger(),
    }


def _new_id() -> uuid.UUID:
    return uuid.uuid4()


# --------------------------------------------------------------------------- tenancy


class Reseller(Base):
    """A tenant: owns customers, devices, users and collectors."""

    __tablename__ = "resellers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id)
    name: Mapped[str] = mapped_column(String(SHORT), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=now_utc)


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (UniqueConstraint("reseller_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id)
    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"))
    name: Mapped[str] = mapped_column(String(SHORT))
    created_at: Mapped[datetime] = mapped_column(default=now_utc)


class Site(Base):
    """Where devices stand. Optional for now: devices may have no site."""

    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("reseller_id", "customer_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id)
    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    name: Mapped[str] = mapped_column(String(SHORT))


class User(Base):
    __tablename__ = "users"
    __table_args__ = (Index(None, "reseller_id", "email"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id)
    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"))
    # Global: people log in with their email alone, before the tenant is known.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(SHORT))
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    # admin | billing | service | customer (services/access.py says what each may do).
    role: Mapped[str] = mapped_column(String(16), default="admin", server_default="admin")
    # Set for a customer's read-only user: sees that customer's devices only.
    customer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customers.id"))


class ApiToken(Base):
    """A script's credential: scoped (read or write), revocable, stored as a sha256 hash.

    It acts as its user (same reseller, role and customer limit), never with more rights:
    a read token cannot write even for an admin."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index(None, "reseller_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id)
    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(SHORT))
    # Global: a request presents its token before the tenant is known.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Operator(Base):
    """A platform operator: belongs to no tenant and sees one only through a grant."""

    __tablename__ = "operators"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(SHORT))
    created_at: Mapped[datetime] = mapped_column(default=now_utc)


class OperatorGrant(Base):
    """Explicit, time-limited, read-only access of one operator to one reseller, with why."""

    __tablename__ = "operator_grants"
    __table_args__ = (Index(None, "reseller_id", "operator_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id)
    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"))
    operator_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("operators.id"))
    reason: Mapped[str] = mapped_column(String(LONG))
    granted_at: Mapped[datetime] = mapped_column(default=now_utc)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class AuditEvent(Base):
    """Something done in a tenant that its reseller may want to check: every request of an
    operator, grants, API tokens made and revoked, users added. Append-only."""

    __tablename__ = "audit_events"
    __table_args__ = (Index(None, "reseller_id", "at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id)
    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"))
    at: Mapped[datetime] = mapped_column(default=now_utc)
    actor: Mapped[str] = mapped_column(String(SHORT))
    action: Mapped[str] = mapped_column(String(SHORT))
    detail: Mapped[str | None] = mapped_column(String(LONG))


class LoginFailure(Base):
    """Failed logins per key (an email or a client address) in the current window: after
    too many, logins for that key are refused unverified until the window ends."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    window_started_at: Mapped[datetime]
    failures: Mapped[int] = mapped_column(default=0)


class Collector(Base):
    """An on-prem collector, bound to one reseller and one customer."""

    __tablename__ = "collectors"
    __table_args__ = (Index(None, "reseller_id", "customer_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id)
    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    name: Mapped[str] = mapped_column(String(SHORT))
    # Where the collector stands: devices it reports without a site are placed there.
    site_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sites.id"))
    # sha256 hex of a 32-byte random token: high entropy, so no slow hash is needed.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    last_seen_at: Mapped[datetime | None]
    # The settings version the collector says it runs (FleetMeter-Config-Version), and when.
    running_config_version: Mapped[int | None]
    config_reported_at: Mapped[datetime | None]


class EnrolmentToken(Base):
    """A one-time token that lets a new collector enrol for one customer of one reseller.

    Only its sha256 is stored (32 random bytes: no slow hash needed). ``used_at`` is set in
    the same transaction that creates the collector, by a conditional UPDATE, so two
    collectors racing with one token cannot both enrol.
    """

    __tablename__ = "enrolment_tokens"
    __table_args__ = (Index(None, "reseller_id", "customer_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id)
    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    # Global: a collector presents its token before the tenant is known.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    collector_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("collectors.id"))


class CollectorConfigVersion(Base):
    """One version of a collector's remote settings (wire ``CollectorSettings`` as JSON).

    Append-only: a change is a new row with the next version number, so what a collector ran
    at any time stays answerable. The signature is made when the collector fetches it.
    """

    __tablename__ = "collector_config_versions"

    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"), primary_key=True)
    collector_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("collectors.id"), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    settings: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    created_by: Mapped[str | None] = mapped_column(String(320))


# --------------------------------------------------------------------------- devices


class Device(Base):
    """One device, identified by (vendor, serial number) within a reseller."""

    __tablename__ = "devices"
    __table_args__ = (
        UniqueConstraint("reseller_id", "vendor", "serial_number"),
        Index(None, "reseller_id", "customer_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id)
    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    site_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sites.id"))
    vendor: Mapped[str] = mapped_column(String(SHORT))
    serial_number: Mapped[str] = mapped_column(String(SHORT))
    model: Mapped[str | None] = mapped_column(String(SHORT))
    product_number: Mapped[str | None] = mapped_column(String(SHORT))
    firmware: Mapped[str | None] = mapped_column(String(SHORT))
    driver: Mapped[str] = mapped_column(String(SHORT))
    device_class: Mapped[str] = mapped_column(String(32), default="printer")
    address: Mapped[str | None] = mapped_column(String(SHORT))
    first_seen_at: Mapped[datetime] = mapped_column(default=now_utc)
    last_seen_at: Mapped[datetime | None]
    # Latest status snapshot (wire DeviceStatus as JSON) and when the device reported it.
    engine_state: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[dict[str, Any] | None]
    status_at: Mapped[datetime | None]


class CounterReading(Base):
    """Append-only lifetime counter reading: one row per meter per report."""

    __tablename__ = "counter_readings"

    # The natural key is the primary key: an identical reading re-sent is the same row.
    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"), primary_key=True)
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    meter: Mapped[str] = mapped_column(String(SHORT), primary_key=True)
    read_at: Mapped[datetime] = mapped_column(primary_key=True)
    value: Mapped[int]


class JobRecord(Base):
    """One accounted job; unique by (device, job UUID)."""

    __tablename__ = "job_records"
    __table_args__ = (
        UniqueConstraint("reseller_id", "device_id", "job_uuid"),
        Index(None, "reseller_id", "device_id", "completed_at"),
        Index(None, "reseller_id", "completed_at"),
        # The jobs page filters by user or account over a date range (issue 6).
        Index(None, "reseller_id", "submitter_user", "completed_at"),
        Index(None, "reseller_id", "submitter_account", "completed_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id)
    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"))
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id"))
    batch_id: Mapped[uuid.UUID]  # the batch that brought the job (provenance)
    job_uuid: Mapped[uuid.UUID]
    sequence_number: Mapped[int]
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(LONG))
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(SHORT))
    submitter_project: Mapped[str | None] = mapped_column(String(SHORT))
    submitter_application: Mapped[str | None] = mapped_column(String(SHORT))
    submitter_account: Mapped[str | None] = mapped_column(String(SHORT))
    submitter_user: Mapped[str | None] = mapped_column(String(SHORT))
    submitter_user_defined: Mapped[str | None] = mapped_column(String(SHORT))
    submitted_at: Mapped[datetime | None]
    completed_at: Mapped[datetime]
    print_time_s: Mapped[int | None]
    duration_s: Mapped[int | None]
    coverage_category: Mapped[str | None] = mapped_column(String(SHORT))
    application_category: Mapped[str | None] = mapped_column(String(SHORT))
    print_quality: Mapped[str | None] = mapped_column(String(SHORT))
    pages: Mapped[int]
    copies: Mapped[int]
    media_type: Mapped[str | None] = mapped_column(String(SHORT))
    media_width_mm: Mapped[int | None]
    media_length_mm: Mapped[int | None]
    media_area_mm2: Mapped[int]
    printed_area_mm2: Mapped[int]
    scan_area_mm2: Mapped[int]
    ink_ul: Mapped[dict[str, Any]]
    total_ink_ul: Mapped[int]
    pixel_coverage_ppm: Mapped[dict[str, Any]]
    category_usage: Mapped[list[Any]]
    # Fields a newer wire minor version added that this portal does not know (kept, not lost).
    extra: Mapped[dict[str, Any] | None]
    received_at: Mapped[datetime] = mapped_column(default=now_utc)


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("reseller_id", "device_id", "code", "first_seen"),
        Index(None, "reseller_id", "cleared_at"),
        Index(None, "reseller_id", "first_seen"),  # the alerts page, newest first
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id)
    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"))
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id"))
    code: Mapped[str] = mapped_column(String(SHORT))
    severity: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(String(LONG))
    component: Mapped[str | None] = mapped_column(String(SHORT))
    first_seen: Mapped[datetime]
    cleared_at: Mapped[datetime | None]


class DeviceCredential(Base):
    """A direct-connected device's signing key: bound to one reseller, customer and device.

    The shared secret is stored encrypted (AES-GCM under the portal's secrets key, the key
    id as associated data), never hashed: verifying an HMAC needs the secret itself. During
    a rotation the previous secret stays valid until ``previous_valid_until``.
    """

    __tablename__ = "device_credentials"
    __table_args__ = (
        Index(None, "reseller_id", "vendor", "serial_number"),
        Index(None, "reseller_id", "customer_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id)
    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    # Global: a request names its key before the tenant is known (signature keyid).
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    vendor: Mapped[str] = mapped_column(String(SHORT))
    serial_number: Mapped[str] = mapped_column(String(SHORT))
    secret_encrypted: Mapped[str] = mapped_column(String(SHORT))
    previous_secret_encrypted: Mapped[str | None] = mapped_column(String(SHORT))
    previous_valid_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    rotated_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]


class SeenNonce(Base):
    """A signature nonce already used by a key: a second request with it is a replay.

    Kept in the database, not in a process, so that every portal process refuses a replay
    sent to another. Rows past ``expires_at`` can go: a request that old fails the
    ``created`` window before its nonce is looked at.
    """

    __tablename__ = "seen_nonces"
    __table_args__ = (Index(None, "reseller_id", "expires_at"),)

    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime]


class IngestedBatch(Base):
    """Idempotency record: a batch id seen once per reseller is never stored again."""

    __tablename__ = "ingested_batches"
    # Batch ids are UUIDs, so unique within a reseller is unique in practice, and the
    # tenancy rule (reseller first) holds for the one constraint that decides duplicates.
    __table_args__ = (UniqueConstraint("reseller_id", "batch_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id)
    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"))
    batch_id: Mapped[uuid.UUID]
    # Who sent it: a collector, or a direct-connected device (exactly one of the two).
    collector_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("collectors.id"))
    device_credential_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("device_credentials.id")
    )
    received_at: Mapped[datetime] = mapped_column(default=now_utc)
    created_at: Mapped[datetime | None]
    reports: Mapped[int] = mapped_column(default=0)
    jobs_stored: Mapped[int] = mapped_column(default=0)
    jobs_duplicate: Mapped[int] = mapped_column(default=0)
    counter_readings: Mapped[int] = mapped_column(default=0)
    alerts: Mapped[int] = mapped_column(default=0)


# --------------------------------------------------------------------------- billing


class Contract(Base):
    """A customer's contract: devices (``ContractDevice``) priced by a plan, period by period.

    The plan is kept as the text it was given in (TOML or JSON), validated before it is
    stored, so what the reseller wrote is what statements are rated with. Dates are days of
    the customer's calendar in ``timezone``; ``end_date`` is the first day no longer covered.
    """

    __tablename__ = "contracts"
    __table_args__ = (Index(None, "reseller_id", "customer_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id)
    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    name: Mapped[str] = mapped_column(String(SHORT))
    plan_format: Mapped[str] = mapped_column(String(8))  # toml | json
    plan_text: Mapped[str] = mapped_column(Text)
    plan_name: Mapped[str] = mapped_column(String(SHORT))
    currency: Mapped[str] = mapped_column(String(3))
    billing_period: Mapped[str] = mapped_column(String(16))  # monthly | quarterly | yearly
    timezone: Mapped[str] = mapped_column(String(64))  # IANA name
    start_date: Mapped[date]
    end_date: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    plan_updated_at: Mapped[datetime] = mapped_column(default=now_utc)


class ContractDevice(Base):
    """A device on a contract from ``valid_from`` (first day) to ``valid_to`` (first day off).

    ``placement`` names the slot the device fills (a room, a site address): a different
    device in the same placement later is a device swap, which reconciliation reports.
    """

    __tablename__ = "contract_devices"
    __table_args__ = (
        Index(None, "reseller_id", "contract_id"),
        Index(None, "reseller_id", "device_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id)
    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"))
    contract_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contracts.id"))
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id"))
    placement: Mapped[str] = mapped_column(String(SHORT))
    valid_from: Mapped[date]
    valid_to: Mapped[date | None]
    created_at: Mapped[datetime] = mapped_column(default=now_utc)


class StatementRecord(Base):
    """A contract's statement for one period: open (regenerated at will) or closed (frozen).

    ``document`` holds the rated statement, the late-usage adjustments, the per-device usage
    and the reconciliation as JSON (docs/billing.md, "Stored statements"); money is written
    as decimal strings, never floats. A closed statement is never written again.
    """

    __tablename__ = "statements"
    __table_args__ = (UniqueConstraint("reseller_id", "contract_id", "period_start"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id)
    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"))
    contract_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contracts.id"))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    period_start: Mapped[date]
    period_end: Mapped[date]
    timezone: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # open | closed
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[str] = mapped_column(String(64))  # Decimal as text: exact on every backend
    plan_text: Mapped[str] = mapped_column(Text)  # the plan this statement was rated with
    document: Mapped[dict[str, Any]]
    jobs_billed: Mapped[int] = mapped_column(default=0)
    jobs_late: Mapped[int] = mapped_column(default=0)
    generated_at: Mapped[datetime] = mapped_column(default=now_utc)
    closed_at: Mapped[datetime | None]


class StatementJob(Base):
    """Which statement billed a job. The primary key makes it at most one: exactly-once.

    ``period_start`` is the period the job's usage belongs to: the statement's own, or an
    earlier, closed one whose late usage the statement carries as an adjustment.
    """

    __tablename__ = "statement_jobs"
    __table_args__ = (Index(None, "reseller_id", "statement_id"),)

    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"), primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job_records.id"), primary_key=True)
    statement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("statements.id"))
    period_start: Mapped[date]
