"""The portal's tables (SQLAlchemy 2 typed declarative).

Tenancy rule (DESIGN.md, "Scale"): every tenant-owned table carries ``reseller_id`` and it
leads every composite key, unique constraint and index, so the schema distributes on
Citus by reseller. Three lookups are global on purpose because they happen before the
tenant is known: a user's login email, a collector's token hash and a direct-connected
device's signing key id.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    MetaData,
    String,
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


class Collector(Base):
    """An on-prem collector, bound to one reseller and one customer."""

    __tablename__ = "collectors"
    __table_args__ = (Index(None, "reseller_id", "customer_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=_new_id)
    reseller_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resellers.id"))
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    name: Mapped[str] = mapped_column(String(SHORT))
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
