"""Request dependencies: the DB session, the settings and who is calling (``Principal``)."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from fleetmeter.portal.api.problems import ProblemError
from fleetmeter.portal.services import access
from fleetmeter.portal.settings import PortalSettings
from fleetmeter.portal.store.models import User

SESSION_USER_KEY = "user_id"
TENANT_HEADER = "FleetMeter-Tenant"


@dataclass(frozen=True)
class Principal:
    """Who is calling; every read is scoped by ``reseller_id`` (and ``customer_id`` when
    set). ``user_id`` is None for a platform operator."""

    reseller_id: uuid.UUID
    user_id: uuid.UUID | None
    email: str
    role: str = access.Role.ADMIN
    customer_id: uuid.UUID | None = None
    # A read token or an operator: refused every method that changes something. What a
    # role may change is checked per route (AdminDep, BillingDep).
    read_only: bool = False

    def may_write(self, area: str) -> bool:
        return not self.read_only and access.may_write(self.role, area)


def session_factory(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.session_factory
    return factory


def get_settings(request: Request) -> PortalSettings:
    settings: PortalSettings = request.app.state.settings
    return settings


def get_db(request: Request) -> Iterator[Session]:
    with session_factory(request)() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]
SettingsDep = Annotated[PortalSettings, Depends(get_settings)]


def user_from_session(request: Request, session: Session) -> User | None:
    """The logged-in user of a browser session (and the session scoped to their tenant)."""
    raw = request.session.get(SESSION_USER_KEY)
    if not isinstance(raw, str):
        return None
    try:
        user_id = uuid.UUID(raw)
    except ValueError:
        return None
    # Looked up on every request, so a deleted user loses access at once.
    user = session.get(User, user_id)
    if user is not None:
        access.set_scope(
            session, access.TenantScope(user.reseller_id, customer_id=user.customer_id)
        )
    return user


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        email, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (email, password) if sep else None


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _unauthorized() -> ProblemError:
    return ProblemError(
        401,
        "log in (POST /api/v1/session), send an API token (Authorization: Bearer fmt_…) or "
        "HTTP Basic email:password",
        headers={"WWW-Authenticate": 'Basic realm="fleetmeter", charset="UTF-8"'},
    )


def _for_user(user: User, *, read_only: bool = False) -> Principal:
    role = user.role
    return Principal(
        reseller_id=user.reseller_id,
        user_id=user.id,
        email=user.email,
        role=role,
        customer_id=user.customer_id,
        read_only=read_only,
    )


def _authenticate(request: Request, session: Session) -> Principal:
    user = user_from_session(request, session)
    if user is not None:
        return _for_user(user)
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip().startswith(access.API_TOKEN_PREFIX):
        found = access.authenticate_api_token(session, value.strip())
        if found is None:
            raise _unauthorized()
        user, token = found
        session.commit()  # last_used_at
        return _for_user(user, read_only=token.scope != access.Scope.WRITE)
    basic = _basic(request)
    if basic is None:
        raise _unauthorized()
    email, password = basic
    tenant = request.headers.get(TENANT_HEADER)
    if tenant is not None:
        return _operator(request, session, email, password, tenant)
    try:
        user = access.login(
            session, email=email, password=password, address=client_address(request)
        )
    except access.LoginThrottled as exc:
        raise ProblemError(
            429, str(exc), headers={"Retry-After": str(int(exc.retry_after_s) + 1)}
        ) from None
    if user is None:
        raise _unauthorized()
    return _for_user(user)


def _operator(
    request: Request, session: Session, email: str, password: str, tenant: str
) -> Principal:
    """A platform operator reading one reseller under an active grant; every request is
    written to that reseller's audit log before it runs."""
    try:
        reseller_id = uuid.UUID(tenant)
    except ValueError:
        raise _unauthorized() from None
    found = access.authenticate_operator(
        session, email=email, password=password, reseller_id=reseller_id
    )
    if found is None:
        raise _unauthorized()
    operator, grant = found
    access.audit(
        session,
        reseller_id,
        f"operator:{operator.email}",
        f"{request.method} {request.url.path}"[:256],
        f"grant: {grant.reason}",
    )
    session.commit()
    return Principal(
        reseller_id=reseller_id,
        user_id=None,
        email=operator.email,
        role=access.Role.SERVICE,
        read_only=True,
    )


def current_principal(request: Request, session: SessionDep) -> Principal:
    """The caller: browser session, API token, HTTP Basic user, or an operator with a grant
    (HTTP Basic + ``FleetMeter-Tenant``). The DB session is then scoped to its tenant, and a
    read-only caller is refused any method that changes something (403)."""
    principal = _authenticate(request, session)
    access.set_scope(
        session, access.TenantScope(principal.reseller_id, customer_id=principal.customer_id)
    )
    if request.method not in ("GET", "HEAD", "OPTIONS") and principal.read_only:
        raise ProblemError(403, "this account or token may only read")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def admin_principal(principal: PrincipalDep) -> Principal:
    if not principal.may_write("admin"):
        raise ProblemError(403, "only the reseller's admins may do this")
    return principal


def billing_principal(principal: PrincipalDep) -> Principal:
    if not principal.may_write("billing"):
        raise ProblemError(403, "only the reseller's admins and billing users may do this")
    return principal


AdminDep = Annotated[Principal, Depends(admin_principal)]
BillingDep = Annotated[Principal, Depends(billing_principal)]
