"""Accounts API: users and roles, API tokens for scripts, the audit log.

- ``GET``/``POST /api/v1/users`` (admins): the reseller's users; add one with a role
  (admin, billing, service, or customer with ``customer_id``).
- ``POST /api/v1/api-tokens`` (any user, as themselves): a token shown once, ``read`` or
  ``write`` (write only for admin and billing users); ``GET`` lists the caller's tokens (an
  admin's: all of the reseller's), never a secret; ``DELETE …/{id}`` revokes (owner or admin).
- ``GET /api/v1/audit`` (admins): operator access and account changes, newest first.

Every lookup is scoped to the caller's reseller; another reseller's ids answer 404.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import select

from fleetmeter.portal.api.deps import AdminDep, PrincipalDep, SessionDep
from fleetmeter.portal.api.problems import ProblemError
from fleetmeter.portal.errors import TenancyError
from fleetmeter.portal.services import access, tenancy
from fleetmeter.portal.store.models import ApiToken, Customer, Reseller, User

router = APIRouter(prefix="/api/v1", tags=["accounts"])


class UserIn(BaseModel):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=tenancy.MIN_PASSWORD_LENGTH, max_length=1024)
    role: access.Role = access.Role.SERVICE
    customer_id: uuid.UUID | None = None


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    role: str
    customer_id: uuid.UUID | None
    created_at: datetime


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=256)
    scope: access.Scope = access.Scope.READ
    valid_days: float | None = Field(default=None, gt=0, le=3650)


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    scope: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    token: str = Field(description="Shown once: only its hash is kept.")


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor: str
    action: str
    detail: str | None


@router.get("/users", response_model=dict[str, list[UserOut]])
def list_users(principal: AdminDep, session: SessionDep) -> dict[str, list[UserOut]]:
    users = session.scalars(
        select(User).where(User.reseller_id == principal.reseller_id).order_by(User.email)
    )
    return {"items": [UserOut.model_validate(u) for u in users]}


@router.post("/users", response_model=UserOut, status_code=201)
def add_user(body: UserIn, principal: AdminDep, session: SessionDep) -> UserOut:
    reseller = session.get(Reseller, principal.reseller_id)
    assert reseller is not None
    if body.customer_id is not None:
        customer = session.get(Customer, body.customer_id)
        if customer is None or customer.reseller_id != principal.reseller_id:
            raise ProblemError(404, f"no customer {body.customer_id}")
    try:
        access.check_role(body.role, customer_id=body.customer_id)
        user = tenancy.add_user(
            session, reseller=reseller, email=body.email, password=body.password
        )
    except TenancyError as exc:
        raise ProblemError(409, str(exc)) from None
    user.role = body.role.value
    user.customer_id = body.customer_id
    access.audit(
        session,
        principal.reseller_id,
        f"user:{principal.email}",
        "user added",
        f"{user.email} ({user.role})",
    )
    session.commit()
    return UserOut.model_validate(user)


@router.post("/api-tokens", response_model=NewTokenOut, status_code=201)
def create_token(body: TokenIn, principal: PrincipalDep, session: SessionDep) -> NewTokenOut:
    user = session.get(User, principal.user_id) if principal.user_id else None
    if user is None:
        raise ProblemError(403, "only a user can make API tokens")
    try:
        new = access.create_api_token(
            session,
            user=user,
            name=body.name,
            scope=body.scope,
            valid_for=timedelta(days=body.valid_days) if body.valid_days else None,
        )
    except TenancyError as exc:
        raise ProblemError(403, str(exc)) from None
    session.commit()
    row = session.get(ApiToken, new.token_id)
    assert row is not None
    return NewTokenOut(token=new.token, **TokenOut.model_validate(row).model_dump())


@router.get("/api-tokens", response_model=dict[str, list[TokenOut]])
def list_tokens(principal: PrincipalDep, session: SessionDep) -> dict[str, list[TokenOut]]:
    rows = access.list_api_tokens(session, reseller_id=principal.reseller_id)
    if principal.role != access.Role.ADMIN:
        rows = [r for r in rows if r.user_id == principal.user_id]
    return {"items": [TokenOut.model_validate(r) for r in rows]}


@router.delete("/api-tokens/{token_id}", response_model=TokenOut)
def revoke_token(token_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> TokenOut:
    row = session.get(ApiToken, token_id)
    own = row is not None and row.user_id == principal.user_id
    if row is None or row.reseller_id != principal.reseller_id:
        raise ProblemError(404, f"no token {token_id}")
    if not own and not principal.may_write("admin"):
        raise ProblemError(404, f"no token {token_id}")  # others' tokens are not yours to see
    try:
        row = access.revoke_api_token(
            session,
            reseller_id=principal.reseller_id,
            token_id=token_id,
            actor=f"user:{principal.email}",
        )
    except TenancyError:
        raise ProblemError(404, f"no token {token_id}") from None
    session.commit()
    return TokenOut.model_validate(row)


@router.get("/audit", response_model=dict[str, list[AuditOut]])
def audit_log(
    principal: AdminDep,
    session: SessionDep,
    before: AwareDatetime | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> dict[str, list[AuditOut]]:
    rows = access.audit_log(session, reseller_id=principal.reseller_id, before=before, limit=limit)
    return {"items": [AuditOut.model_validate(r) for r in rows]}
