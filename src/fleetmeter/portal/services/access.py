"""Who may do what: roles, the tenant scope every query runs under, API tokens, platform
operators and their grants, the audit log, login throttling.

Roles (``User.role``):

============  ===================================================================
admin         everything in its reseller: users, collectors, settings, tokens
billing       read everything; contracts and statements
service       read-only: fleet, devices, jobs, alerts (service technicians)
customer      read-only, limited to one customer's devices (``User.customer_id``)
============  ===================================================================

A platform operator belongs to no tenant. It reads one only under an explicit, time-limited
grant with a reason; the grant and every request made under it go to that reseller's audit
log, which the reseller's admins read.

**Tenant scope in one place.** ``install_tenant_scope`` hooks the ORM: once a request's
session carries a ``TenantScope`` (set by ``api.deps`` after authentication), every ORM
SELECT of a tenant table gets ``reseller_id = :scope`` added, and for a customer's user
``customer_id = :customer`` (devices and what hangs off them: jobs, readings, alerts). Routes
still filter by reseller themselves; the hook makes forgetting it harmless.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import event, select
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from fleetmeter.portal.errors import PortalError, TenancyError
from fleetmeter.portal.services import tenancy
from fleetmeter.portal.store import models
from fleetmeter.portal.store.models import (
    ApiToken,
    AuditEvent,
    Customer,
    Device,
    LoginFailure,
    Operator,
    OperatorGrant,
    Reseller,
    User,
)
from fleetmeter.wire import now_utc

API_TOKEN_PREFIX = "fmt_"  # noqa: S105  (a prefix that lets scanners spot leaked tokens)
_hasher = PasswordHasher()

# Login throttling: this many failures for one key within the window locks that key until
# the window ends. Per account it stops guessing one password; per client address it stops
# spraying many accounts (set higher: offices share one address).
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 10
MAX_FAILURES_PER_ADDRESS = 50


class Role(StrEnum):
    ADMIN = "admin"
    BILLING = "billing"
    SERVICE = "service"
    CUSTOMER = "customer"


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"


@dataclass(frozen=True)
class TenantScope:
    """What the current request may see: one reseller, optionally one customer of it."""

    reseller_id: uuid.UUID
    customer_id: uuid.UUID | None = None


SCOPE_KEY = "tenant_scope"


def set_scope(session: Session, scope: TenantScope) -> None:
    session.info[SCOPE_KEY] = scope


def _tenant_models() -> list[type[Any]]:
    return [
        mapper.class_ for mapper in models.Base.registry.mappers if "reseller_id" in mapper.columns
    ]


def install_tenant_scope(session_class: Any) -> None:
    """Add the scope's criteria to every ORM SELECT of sessions made by ``session_class``."""

    @event.listens_for(session_class, "do_orm_execute")
    def _scope(state: ORMExecuteState) -> None:
        scope: TenantScope | None = state.session.info.get(SCOPE_KEY)
        if scope is None or not state.is_select:
            return
        reseller_id = scope.reseller_id
        options = [
            with_loader_criteria(
                model,
                lambda cls: cls.reseller_id == reseller_id,
                include_aliases=True,
                track_closure_variables=True,
            )
            for model in _tenant_models()
        ]
        if scope.customer_id is not None:
            customer_id = scope.customer_id
            options.append(
                with_loader_criteria(
                    Device, lambda cls: cls.customer_id == customer_id, include_aliases=True
                )
            )
            for model in (models.JobRecord, models.Alert, models.CounterReading):
                options.append(
                    with_loader_criteria(
                        model,
                        lambda cls: cls.device_id.in_(
                            select(Device.id).where(Device.customer_id == customer_id)
                        ),
                        include_aliases=True,
                    )
                )
        state.statement = state.statement.options(*options)


# --------------------------------------------------------------------------- roles


def check_role(role: str, *, customer_id: uuid.UUID | None) -> Role:
    try:
        value = Role(role)
    except ValueError:
        raise TenancyError(
            f"unknown role {role!r}; one of {', '.join(r.value for r in Role)}"
        ) from None
    if (value is Role.CUSTOMER) != (customer_id is not None):
        raise TenancyError("a customer user needs --customer, and only a customer user has one")
    return value


def may_write(role: str, area: str) -> bool:
    """``area``: "admin" (users, collectors, tokens, device credentials) or "billing"."""
    if role == Role.ADMIN:
        return True
    return role == Role.BILLING and area == "billing"


# --------------------------------------------------------------------------- API tokens


@dataclass(frozen=True)
class NewApiToken:
    token_id: uuid.UUID
    token: str  # shown once


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(
    session: Session,
    *,
    user: User,
    name: str,
    scope: str,
    valid_for: timedelta | None = None,
) -> NewApiToken:
    try:
        value = Scope(scope)
    except ValueError:
        raise TenancyError("scope must be read or write") from None
    if value is Scope.WRITE and user.role not in (Role.ADMIN, Role.BILLING):
        raise TenancyError(f"a {user.role} user cannot have a write token")
    name = name.strip()
    if not name or len(name) > 256:
        raise TenancyError("a token needs a name of 1–256 characters")
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        reseller_id=user.reseller_id,
        user_id=user.id,
        name=name,
        token_hash=_hash(token),
        scope=value.value,
        expires_at=now_utc() + valid_for if valid_for is not None else None,
    )
    session.add(row)
    session.flush()
    audit(session, user.reseller_id, f"user:{user.email}", "api token created", f"{name} ({scope})")
    return NewApiToken(token_id=row.id, token=token)


def authenticate_api_token(session: Session, token: str) -> tuple[User, ApiToken] | None:
    if not token.startswith(API_TOKEN_PREFIX) or len(token) > 128:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(token)))
    now = now_utc()
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= now:
        return None
    user = session.get(User, row.user_id)
    if user is None:
        return None
    row.last_used_at = now
    return user, row


def list_api_tokens(session: Session, *, reseller_id: uuid.UUID) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.reseller_id == reseller_id)
            .order_by(ApiToken.created_at.desc())
        )
    )


def revoke_api_token(
    session: Session, *, reseller_id: uuid.UUID, token_id: uuid.UUID, actor: str
) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None or row.reseller_id != reseller_id:
        raise TenancyError("no such token")
    if row.revoked_at is None:
        row.revoked_at = now_utc()
        audit(session, reseller_id, actor, "api token revoked", row.name)
    return row


# --------------------------------------------------------------------------- audit


def audit(
    session: Session, reseller_id: uuid.UUID, actor: str, action: str, detail: str | None = None
) -> None:
    session.add(
        AuditEvent(
            reseller_id=reseller_id,
            actor=actor[:256],
            action=action[:256],
            detail=detail[:2048] if detail else None,
        )
    )


def audit_log(
    session: Session, *, reseller_id: uuid.UUID, before: datetime | None, limit: int
) -> list[AuditEvent]:
    stmt = select(AuditEvent).where(AuditEvent.reseller_id == reseller_id)
    if before is not None:
        stmt = stmt.where(AuditEvent.at < before)
    return list(session.scalars(stmt.order_by(AuditEvent.at.desc(), AuditEvent.id).limit(limit)))


# --------------------------------------------------------------------------- operators


def add_operator(session: Session, *, email: str, password: str) -> Operator:
    email = email.strip().lower()
    if "@" not in email or len(password) < 12:
        raise TenancyError("an operator needs an email and a password of at least 12 characters")
    if session.scalar(select(Operator.id).where(Operator.email == email)) is not None:
        raise TenancyError(f"operator {email!r} already exists")
    operator = Operator(email=email, password_hash=_hasher.hash(password))
    session.add(operator)
    session.flush()
    return operator


def grant_operator(
    session: Session, *, operator_email: str, reseller: Reseller, reason: str, hours: float
) -> OperatorGrant:
    operator = session.scalar(
        select(Operator).where(Operator.email == operator_email.strip().lower())
    )
    if operator is None:
        raise TenancyError(f"no operator {operator_email!r}")
    reason = reason.strip()
    if not reason:
        raise TenancyError("a grant needs a reason (a ticket, a request): the reseller reads it")
    if not 0 < hours <= 72:
        raise TenancyError("a grant lasts between a minute and 72 hours")
    grant = OperatorGrant(
        reseller_id=reseller.id,
        operator_id=operator.id,
        reason=reason[:2048],
        expires_at=now_utc() + timedelta(hours=hours),
    )
    session.add(grant)
    audit(
        session,
        reseller.id,
        f"operator:{operator.email}",
        "operator access granted",
        f"for {hours:g} h: {reason}",
    )
    session.flush()
    return grant


def authenticate_operator(
    session: Session, *, email: str, password: str, reseller_id: uuid.UUID
) -> tuple[Operator, OperatorGrant] | None:
    """The operator and its active grant to ``reseller_id``; None without both."""
    operator = session.scalar(select(Operator).where(Operator.email == email.strip().lower()))
    if operator is None or not verify_password(operator.password_hash, password):
        return None
    grant = session.scalar(
        select(OperatorGrant)
        .where(
            OperatorGrant.reseller_id == reseller_id,
            OperatorGrant.operator_id == operator.id,
            OperatorGrant.revoked_at.is_(None),
            OperatorGrant.expires_at > now_utc(),
        )
        .order_by(OperatorGrant.expires_at.desc())
        .limit(1)
    )
    return (operator, grant) if grant is not None else None


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


# --------------------------------------------------------------------------- throttling


class LoginThrottled(PortalError):
    """Too many failed logins for this account or address: try again later."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(
            f"too many failed logins; try again in {max(1, round(retry_after_s / 60))} min"
        )
        self.retry_after_s = retry_after_s


def login(session: Session, *, email: str, password: str, address: str | None) -> User | None:
    """The user if the password is right. A throttled account or address raises
    ``LoginThrottled`` before the password is even checked. Commits the failure count."""
    keys = login_keys(email, address)
    wait = throttled_for(session, keys)
    if wait is not None:
        raise LoginThrottled(wait)
    user = tenancy.authenticate_user(session, email=email, password=password)
    if user is None:
        record_login_failure(session, [key for key, _ in keys])
        session.commit()
        return None
    clear_login_failures(session, keys[0][0])
    session.commit()
    return user


def throttled_for(session: Session, keys: list[tuple[str, int]]) -> float | None:
    """Seconds until a login for these keys may be tried again, or None if it may now.
    ``keys``: (key, maximum failures) pairs."""
    now = now_utc()
    wait = 0.0
    for key, limit in keys:
        row = session.get(LoginFailure, key)
        if row is None or row.window_started_at + THROTTLE_WINDOW <= now:
            continue
        if row.failures >= limit:
            wait = max(wait, (row.window_started_at + THROTTLE_WINDOW - now).total_seconds())
    return wait or None


def record_login_failure(session: Session, keys: list[str]) -> None:
    now = now_utc()
    for key in keys:
        row = session.get(LoginFailure, key)
        if row is None:
            session.add(LoginFailure(key=key, window_started_at=now, failures=1))
        elif row.window_started_at + THROTTLE_WINDOW <= now:
            row.window_started_at, row.failures = now, 1
        else:
            row.failures += 1


def clear_login_failures(session: Session, key: str) -> None:
    row = session.get(LoginFailure, key)
    if row is not None:
        session.delete(row)


def login_keys(email: str, address: str | None) -> list[tuple[str, int]]:
    keys = [(f"email:{email.strip().lower()[:320]}", MAX_FAILURES_PER_ACCOUNT)]
    if address:
        keys.append((f"addr:{address[:64]}", MAX_FAILURES_PER_ADDRESS))
    return keys


def customer_of(session: Session, *, reseller_id: uuid.UUID, name: str) -> Customer:
    customer = session.scalar(
        select(Customer).where(Customer.reseller_id == reseller_id, Customer.name == name.strip())
    )
    if customer is None:
        raise TenancyError(f"no customer named {name!r}")
    return customer
