"""Provisioning API for direct-connected devices, for a reseller's logged-in users.

``POST /api/v1/device-credentials`` registers a device and answers its secret (201, shown
once); ``POST …/{key_id}/rotate`` issues a new secret with an overlap; ``POST
…/{key_id}/revoke`` ends a credential; ``GET`` lists them (never a secret). Every route is
scoped to the caller's reseller: another reseller's key id or customer answers 404,
exactly like one that does not exist.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from fleetmeter.portal.api.deps import AdminDep, PrincipalDep, SessionDep
from fleetmeter.portal.api.problems import ProblemError
from fleetmeter.portal.errors import TenancyError
from fleetmeter.portal.services import devices_direct
from fleetmeter.portal.services.devices_direct import NewDeviceSecret, SecretBox
from fleetmeter.portal.store.models import Customer, DeviceCredential, Reseller

router = APIRouter(prefix="/api/v1/device-credentials", tags=["direct"])


class CredentialIn(BaseModel):
    customer_id: uuid.UUID
    serial_number: str = Field(min_length=1, max_length=256)
    vendor: str = Field(default="HP", min_length=1, max_length=256)


class RotateIn(BaseModel):
    overlap_hours: float = Field(default=24, ge=0, le=24 * 30)


class SecretOut(BaseModel):
    """Shown once: the portal cannot show the secret again (it keeps it encrypted)."""

    credential_id: uuid.UUID
    key_id: str
    secret: str
    vendor: str
    serial_number: str
    customer_id: uuid.UUID
    previous_valid_until: datetime | None = None


class CredentialOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key_id: str
    customer_id: uuid.UUID
    vendor: str
    serial_number: str
    created_at: datetime
    rotated_at: datetime | None
    previous_valid_until: datetime | None
    revoked_at: datetime | None
    last_seen_at: datetime | None


class CredentialList(BaseModel):
    items: list[CredentialOut]


def _box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secret_box
    return box


def _secret_out(new: NewDeviceSecret) -> SecretOut:
    return SecretOut(
        credential_id=new.credential_id,
        key_id=new.key_id,
        secret=new.secret,
        vendor=new.vendor,
        serial_number=new.serial_number,
        customer_id=new.customer_id,
        previous_valid_until=new.previous_valid_until,
    )


def _not_found(key_id: str) -> ProblemError:
    return ProblemError(404, f"no device credential {key_id!r}")


@router.get("", response_model=CredentialList)
def list_credentials(principal: PrincipalDep, session: SessionDep) -> CredentialList:
    rows = devices_direct.list_credentials(session, reseller_id=principal.reseller_id)
    return CredentialList(items=[CredentialOut.model_validate(r) for r in rows])


@router.post("", response_model=SecretOut, status_code=201)
def add_credential(
    body: CredentialIn, request: Request, principal: AdminDep, session: SessionDep
) -> SecretOut:
    customer = session.scalar(
        select(Customer).where(
            Customer.id == body.customer_id, Customer.reseller_id == principal.reseller_id
        )
    )
    reseller = session.get(Reseller, principal.reseller_id)
    if customer is None or reseller is None:
        raise ProblemError(404, f"no customer {body.customer_id}")
    try:
        new = devices_direct.add_device(
            session,
            box=_box(request),
            reseller=reseller,
            customer=customer,
            serial_number=body.serial_number,
            vendor=body.vendor,
        )
    except TenancyError as exc:
        raise ProblemError(409, str(exc)) from None
    session.commit()
    return _secret_out(new)


@router.post("/{key_id}/rotate", response_model=SecretOut)
def rotate_credential(
    key_id: str,
    request: Request,
    principal: AdminDep,
    session: SessionDep,
    body: RotateIn | None = None,
) -> SecretOut:
    overlap = timedelta(hours=(body or RotateIn()).overlap_hours)
    _owned(session, key_id, principal.reseller_id)
    try:
        new = devices_direct.rotate_secret(
            session,
            box=_box(request),
            key_id=key_id,
            reseller_id=principal.reseller_id,
            overlap=overlap,
        )
    except TenancyError as exc:
        raise ProblemError(409, str(exc)) from None
    session.commit()
    return _secret_out(new)


@router.post("/{key_id}/revoke", response_model=CredentialOut)
def revoke_credential(key_id: str, principal: AdminDep, session: SessionDep) -> CredentialOut:
    _owned(session, key_id, principal.reseller_id)
    credential = devices_direct.revoke(session, key_id=key_id, reseller_id=principal.reseller_id)
    session.commit()
    return CredentialOut.model_validate(credential)


def _owned(session: SessionDep, key_id: str, reseller_id: uuid.UUID) -> DeviceCredential:
    try:
        return devices_direct.find_credential(session, key_id=key_id, reseller_id=reseller_id)
    except TenancyError:
        raise _not_found(key_id) from None
