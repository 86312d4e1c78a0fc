"""Tenancy: resellers, customers, users and collectors, and how each proves who it is."""

from __future__ import annotations

import functools
import hashlib
import secrets
import uuid
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleetmeter.portal.errors import TenancyError
from fleetmeter.portal.store.models import Collector, Customer, Reseller, User
from fleetmeter.wire import now_utc

# argon2-cffi's defaults are RFC 9106's low-memory profile of Argon2id.
_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 8
TOKEN_PREFIX = "fmc_"  # noqa: S105  (a prefix, not a secret: lets scanners spot leaked tokens)


@dataclass(frozen=True)
class TenantIds:
    reseller_id: uuid.UUID
    customer_id: uuid.UUID
    user_id: uuid.UUID | None = None


@dataclass(frozen=True)
class NewCollector:
    collector_id: uuid.UUID
    token: str  # shown once; only its hash is stored


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown: both paths then cost one argon2 verify,
    so response time does not tell which emails exist."""
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_email(email: str) -> str:
    return email.strip().lower()


def get_or_create_reseller(session: Session, *, name: str) -> Reseller:
    name = _required_name(name, "reseller")
    reseller = session.scalar(select(Reseller).where(Reseller.name == name))
    if reseller is None:
        reseller = Reseller(name=name)
        session.add(reseller)
        session.flush()
    return reseller


def get_or_create_customer(session: Session, *, reseller: Reseller, name: str) -> Customer:
    name = _required_name(name, "customer")
    customer = session.scalar(
        select(Customer).where(Customer.reseller_id == reseller.id, Customer.name == name)
    )
    if customer is None:
        customer = Customer(reseller_id=reseller.id, name=name)
        session.add(customer)
        session.flush()
    return customer


def find_reseller(session: Session, *, name: str) -> Reseller:
    reseller = session.scalar(select(Reseller).where(Reseller.name == name.strip()))
    if reseller is None:
        raise TenancyError(f"no reseller named {name!r}")
    return reseller


def find_customer(session: Session, *, reseller: Reseller, name: str) -> Customer:
    customer = session.scalar(
        select(Customer).where(Customer.reseller_id == reseller.id, Customer.name == name.strip())
    )
    if customer is None:
        raise TenancyError(f"no customer named {name!r} at reseller {reseller.name!r}")
    return customer


def add_user(session: Session, *, reseller: Reseller, email: str, password: str) -> User:
    email = normalise_email(email)
    if "@" not in email:
        raise TenancyError(f"not an email address: {email!r}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise TenancyError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise TenancyError(f"a user with email {email!r} already exists")
    user = User(reseller_id=reseller.id, email=email, password_hash=_hasher.hash(password))
    session.add(user)
    session.flush()
    return user


def create_tenant(
    session: Session,
    *,
    reseller_name: str,
    customer_name: str,
    admin_email: str | None = None,
    admin_password: str | None = None,
) -> TenantIds:
    """Reseller + customer (+ first user); existing names are reused, so re-running is safe."""
    reseller = get_or_create_reseller(session, name=reseller_name)
    customer = get_or_create_customer(session, reseller=reseller, name=customer_name)
    user_id: uuid.UUID | None = None
    if admin_email is not None:
        if admin_password is None:
            raise TenancyError("--admin-email needs --admin-password")
        existing = session.scalar(select(User).where(User.email == normalise_email(admin_email)))
        if existing is not None:
            if existing.reseller_id != reseller.id:
                raise TenancyError(f"{admin_email!r} already belongs to another reseller")
            user_id = existing.id
        else:
            user_id = add_user(
                session, reseller=reseller, email=admin_email, password=admin_password
            ).id
    return TenantIds(reseller_id=reseller.id, customer_id=customer.id, user_id=user_id)


def add_collector(
    session: Session, *, reseller: Reseller, customer: Customer, name: str | None = None
) -> NewCollector:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    collector = Collector(
        reseller_id=reseller.id,
        customer_id=customer.id,
        name=name or f"collector for {customer.name}",
        token_hash=hash_token(token),
    )
    session.add(collector)
    session.flush()
    return NewCollector(collector_id=collector.id, token=token)


def authenticate_collector(session: Session, *, token: str) -> Collector | None:
    """The collector holding ``token``, or None. Touches ``last_seen_at`` (caller commits)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        return None
    collector = session.scalar(select(Collector).where(Collector.token_hash == hash_token(token)))
    if collector is None:
        return None
    collector.last_seen_at = now_utc()
    return collector


def authenticate_user(session: Session, *, email: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.email == normalise_email(email)))
    stored = user.password_hash if user is not None else _dummy_hash()
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    return user


def _required_name(name: str, what: str) -> str:
    name = name.strip()
    if not name:
        raise TenancyError(f"{what} name must not be empty")
    if len(name) > 256:
        raise TenancyError(f"{what} name longer than 256 characters")
    return name
