"""Collectors: one-time enrolment, versioned signed settings, the version each one runs.

Enrolment turns a one-time token (made by a reseller for one customer) into a collector
token bound to that reseller and customer, and hands out the portal's public signing key.
Settings are append-only versions; the collector fetches the newest one, signed with the
portal's Ed25519 key, on each contact and refuses anything older than what it runs. The
portal never connects to a collector and nothing here can address a device.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fleetmeter.portal.errors import PortalError, TenancyError
from fleetmeter.portal.services import tenancy
from fleetmeter.portal.store.models import (
    Collector,
    CollectorConfigVersion,
    Customer,
    EnrolmentToken,
    Reseller,
)
from fleetmeter.signing.documents import sign_settings
from fleetmeter.wire import now_utc
from fleetmeter.wire.collector_config import CollectorSettings, new_payload

ENROLMENT_PREFIX = "fme_"
DEFAULT_ENROLMENT_VALIDITY = timedelta(days=7)
MAX_ENROLMENT_VALIDITY = timedelta(days=90)
CONFIG_VERSION_HEADER = "FleetMeter-Config-Version"


class EnrolmentError(PortalError):
    """The token is unknown, expired, used, or for another customer. One message for all:
    the answer must not help anyone guess which."""


class ConfigConflictError(PortalError):
    """The settings changed since the caller read them (``expected_version`` is stale)."""


@dataclass(frozen=True)
class NewEnrolmentToken:
    token: str  # shown once; only its hash is stored
    expires_at: datetime
    customer_id: uuid.UUID


@dataclass(frozen=True)
class Enrolment:
    collector_id: uuid.UUID
    token: str
    reseller: str
    customer: str


@dataclass(frozen=True)
class CollectorView:
    """A collector as a reseller's user sees it (never its token)."""

    id: uuid.UUID
    name: str
    customer_id: uuid.UUID
    customer: str
    created_at: datetime
    last_seen_at: datetime | None
    running_config_version: int | None
    config_reported_at: datetime | None
    latest_config_version: int | None

    @property
    def config_pending(self) -> bool:
        """A newer version exists than the one the collector last said it runs."""
        latest = self.latest_config_version
        return latest is not None and (self.running_config_version or 0) < latest

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "customer_id": str(self.customer_id),
            "customer": self.customer,
            "created_at": self.created_at.isoformat(),
            "last_seen_at": self.last_seen_at.isoformat() if self.last_seen_at else None,
            "running_config_version": self.running_config_version,
            "config_reported_at": (
                self.config_reported_at.isoformat() if self.config_reported_at else None
            ),
            "latest_config_version": self.latest_config_version,
            "config_pending": self.config_pending,
        }


# --------------------------------------------------------------------------- enrolment


def create_enrolment_token(
    session: Session,
    *,
    reseller_id: uuid.UUID,
    customer_id: uuid.UUID,
    valid_for: timedelta = DEFAULT_ENROLMENT_VALIDITY,
) -> NewEnrolmentToken:
    if not timedelta(minutes=1) <= valid_for <= MAX_ENROLMENT_VALIDITY:
        raise TenancyError(
            f"an enrolment token is valid between 1 minute and {MAX_ENROLMENT_VALIDITY.days} days"
        )
    customer = session.get(Customer, customer_id)
    if customer is None or customer.reseller_id != reseller_id:
        raise TenancyError("no such customer")
    token = ENROLMENT_PREFIX + secrets.token_urlsafe(32)
    row = EnrolmentToken(
        reseller_id=reseller_id,
        customer_id=customer_id,
        token_hash=tenancy.hash_token(token),
        expires_at=now_utc() + valid_for,
    )
    session.add(row)
    session.flush()
    return NewEnrolmentToken(token=token, expires_at=row.expires_at, customer_id=customer_id)


def enrol(session: Session, *, customer: str, token: str, name: str | None) -> Enrolment:
    """Spend ``token`` and create the collector (caller commits). ``EnrolmentError`` if the
    token does not enrol a collector for ``customer`` now."""
    refused = EnrolmentError("invalid, expired or already used enrolment token for this customer")
    if not token.startswith(ENROLMENT_PREFIX) or len(token) > 128:
        raise refused
    row = session.scalar(
        select(EnrolmentToken).where(EnrolmentToken.token_hash == tenancy.hash_token(token))
    )
    if row is None or row.used_at is not None or row.expires_at <= now_utc():
        raise refused
    customer_row = session.get(Customer, row.customer_id)
    if customer_row is None or customer_row.name != customer.strip():
        raise refused
    reseller = session.get(Reseller, row.reseller_id)
    assert reseller is not None  # foreign key
    # Conditional: of two enrolments racing with one token, exactly one updates the row.
    spent = session.execute(
        update(EnrolmentToken)
        .where(EnrolmentToken.id == row.id, EnrolmentToken.used_at.is_(None))
        .values(used_at=now_utc())
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise refused
    new = tenancy.add_collector(
        session, reseller=reseller, customer=customer_row, name=(name or "").strip() or None
    )
    session.execute(
        update(EnrolmentToken)
        .where(EnrolmentToken.id == row.id)
        .values(collector_id=new.collector_id)
    )
    return Enrolment(
        collector_id=new.collector_id,
        token=new.token,
        reseller=reseller.name,
        customer=customer_row.name,
    )


# --------------------------------------------------------------------------- settings


def get_collector(
    session: Session, *, reseller_id: uuid.UUID, collector_id: uuid.UUID
) -> Collector:
    """The reseller's collector; another reseller's answers exactly like a missing one."""
    collector = session.get(Collector, collector_id)
    if collector is None or collector.reseller_id != reseller_id:
        raise TenancyError("no such collector")
    return collector


def latest_settings(session: Session, collector: Collector) -> CollectorConfigVersion | None:
    return session.scalar(
        select(CollectorConfigVersion)
        .where(
            CollectorConfigVersion.reseller_id == collector.reseller_id,
            CollectorConfigVersion.collector_id == collector.id,
        )
        .order_by(CollectorConfigVersion.version.desc())
        .limit(1)
    )


def set_settings(
    session: Session,
    *,
    collector: Collector,
    settings: CollectorSettings,
    created_by: str | None,
    expected_version: int | None = None,
) -> CollectorConfigVersion:
    """Store ``settings`` as the collector's next version (caller commits).

    ``expected_version`` (0 for "none yet") guards against overwriting a change made by
    someone else since the caller read the settings."""
    current = latest_settings(session, collector)
    current_version = current.version if current is not None else 0
    if expected_version is not None and expected_version != current_version:
        raise ConfigConflictError(
            f"the settings are at version {current_version}, not {expected_version}: "
            "reload them and apply your change again"
        )
    row = CollectorConfigVersion(
        reseller_id=collector.reseller_id,
        collector_id=collector.id,
        version=current_version + 1,
        settings=settings.model_dump(mode="json", exclude_none=True),
        created_by=created_by,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # Another writer took this version number between our read and our insert.
        raise ConfigConflictError(
            "the settings were changed at the same time by someone else: reload and retry"
        ) from None
    return row


def signed_settings(
    session: Session, collector: Collector, key: Ed25519PrivateKey
) -> dict[str, str] | None:
    """The newest version as a signed envelope, or None if the collector has none."""
    row = latest_settings(session, collector)
    if row is None:
        return None
    document = new_payload(
        collector_id=collector.id,
        version=row.version,
        issued_at=row.created_at,
        settings=CollectorSettings.model_validate(row.settings),
    )
    return sign_settings(document, key)


def record_running_version(collector: Collector, header: str | None) -> None:
    """Note the version a collector says it runs (from ``FleetMeter-Config-Version``);
    anything but a plain non-negative integer is ignored (caller commits)."""
    if header is None:
        return
    text = header.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        return
    collector.running_config_version = int(text)  # 0: the collector's own file only
    collector.config_reported_at = now_utc()


def list_collectors(session: Session, *, reseller_id: uuid.UUID) -> list[CollectorView]:
    latest = (
        select(
            CollectorConfigVersion.collector_id,
            func.max(CollectorConfigVersion.version).label("latest"),
        )
        .where(CollectorConfigVersion.reseller_id == reseller_id)
        .group_by(CollectorConfigVersion.collector_id)
        .subquery()
    )
    rows = session.execute(
        select(Collector, Customer.name, latest.c.latest)
        .join(Customer, Customer.id == Collector.customer_id)
        .outerjoin(latest, latest.c.collector_id == Collector.id)
        .where(Collector.reseller_id == reseller_id)
        .order_by(Customer.name, Collector.name)
    ).all()
    return [
        _view(collector, customer, latest_version) for collector, customer, latest_version in rows
    ]


def customers(session: Session, *, reseller_id: uuid.UUID) -> list[Customer]:
    return list(
        session.scalars(
            select(Customer).where(Customer.reseller_id == reseller_id).order_by(Customer.name)
        )
    )


def collector_view(session: Session, collector: Collector) -> CollectorView:
    customer = session.get(Customer, collector.customer_id)
    latest = latest_settings(session, collector)
    return _view(collector, customer.name if customer else "?", latest.version if latest else None)


def _view(collector: Collector, customer: str, latest: int | None) -> CollectorView:
    return CollectorView(
        id=collector.id,
        name=collector.name,
        customer_id=collector.customer_id,
        customer=customer,
        created_at=collector.created_at,
        last_seen_at=collector.last_seen_at,
        running_config_version=collector.running_config_version,
        config_reported_at=collector.config_reported_at,
        latest_config_version=latest,
    )
