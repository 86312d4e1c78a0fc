"""Collector enrolment and remote settings.

For collectors (no user involved):

- ``POST /api/v1/enrolment`` spends a one-time enrolment token and answers the collector's
  own token (201, shown once) and the portal's public signing key;
- ``GET /api/v1/collector/settings`` (Bearer collector token) answers the newest settings
  as a signed envelope, or 204 when there are none. The ``FleetMeter-Config-Version``
  header of this and every ingest request tells the portal which version the collector runs.

For a reseller's logged-in users, scoped to their reseller (another reseller's collector or
customer answers 404, exactly like one that does not exist):

- ``POST /api/v1/enrolment-tokens`` makes a one-time token for one customer;
- ``GET /api/v1/collectors`` and ``GET /api/v1/collectors/{id}``: each with the version it
  runs and the newest one;
- ``GET``/``PUT /api/v1/collectors/{id}/settings``: read and change the settings (ranges,
  host names, intervals; usage never below 30 minutes). A change is a new version.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from fleetmeter.portal.api.deps import AdminDep, PrincipalDep, SessionDep, session_factory
from fleetmeter.portal.api.problems import ProblemError
from fleetmeter.portal.errors import TenancyError
from fleetmeter.portal.services import collectors as service
from fleetmeter.portal.services import tenancy
from fleetmeter.portal.store.models import Collector
from fleetmeter.signing.documents import public_key_text
from fleetmeter.wire.collector_config import CollectorSettings

router = APIRouter(prefix="/api/v1", tags=["collectors"])

ENROLMENT_PATH = "/api/v1/enrolment"
_BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="fleetmeter-collector"'}


class EnrolmentIn(BaseModel):
    customer: str = Field(min_length=1, max_length=256, description="The customer's name.")
    token: str = Field(min_length=1, max_length=128, description="The one-time token.")
    name: str | None = Field(default=None, max_length=256, description="Collector name.")


class EnrolmentOut(BaseModel):
    """Shown once: the portal keeps only the token's hash."""

    collector_id: uuid.UUID
    token: str
    reseller: str
    customer: str
    config_signing_key: str = Field(description="ed25519:<base64>: verifies signed settings.")


class EnrolmentTokenIn(BaseModel):
    customer_id: uuid.UUID
    valid_hours: float = Field(default=24 * 7, gt=0, le=24 * 90)


class EnrolmentTokenOut(BaseModel):
    token: str
    customer_id: uuid.UUID
    expires_at: datetime


class SettingsIn(BaseModel):
    settings: CollectorSettings
    expected_version: int | None = Field(
        default=None,
        ge=0,
        description="The version you read (0: none yet); a newer one on the portal is a 409.",
    )


class SettingsOut(BaseModel):
    collector_id: uuid.UUID
    version: int = Field(description="0: none set; the collector runs its own file.")
    settings: CollectorSettings | None
    created_at: datetime | None = None
    created_by: str | None = None


def signing_key(request: Request) -> Ed25519PrivateKey:
    key: Ed25519PrivateKey = request.app.state.config_signing_key
    return key


# --------------------------------------------------------------------------- for collectors


@router.post(
    "/enrolment", response_model=EnrolmentOut, status_code=201, responses={403: {}, 422: {}}
)
def enrol(body: EnrolmentIn, request: Request, session: SessionDep) -> EnrolmentOut:
    try:
        enrolment = service.enrol(session, customer=body.customer, token=body.token, name=body.name)
    except service.EnrolmentError as exc:
        raise ProblemError(403, str(exc)) from None
    session.commit()
    return EnrolmentOut(
        collector_id=enrolment.collector_id,
        token=enrolment.token,
        reseller=enrolment.reseller,
        customer=enrolment.customer,
        config_signing_key=public_key_text(signing_key(request)),
    )


@router.get("/collector/settings", responses={204: {}, 401: {}})
async def collector_settings(request: Request) -> Response:
    token = bearer_token(request)
    header = request.headers.get(service.CONFIG_VERSION_HEADER)
    envelope = await run_in_threadpool(
        _signed_for, session_factory(request), token, header, signing_key(request)
    )
    if envelope is None:
        return Response(status_code=204)
    return JSONResponse(envelope, headers={"Cache-Control": "no-store"})


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ProblemError(401, "missing Bearer collector token", headers=_BEARER_CHALLENGE)
    return token.strip()


def _signed_for(
    factory: sessionmaker[Session], token: str, header: str | None, key: Ed25519PrivateKey
) -> dict[str, str] | None:
    with factory() as session:
        collector = tenancy.authenticate_collector(session, token=token)
        if collector is None:
            raise ProblemError(401, "unknown or missing collector token", headers=_BEARER_CHALLENGE)
        service.record_running_version(collector, header)
        envelope = service.signed_settings(session, collector, key)
        session.commit()
        return envelope


# --------------------------------------------------------------------------- for resellers


@router.post("/enrolment-tokens", response_model=EnrolmentTokenOut, status_code=201)
def create_enrolment_token(
    body: EnrolmentTokenIn, principal: AdminDep, session: SessionDep
) -> EnrolmentTokenOut:
    try:
        new = service.create_enrolment_token(
            session,
            reseller_id=principal.reseller_id,
            customer_id=body.customer_id,
            valid_for=timedelta(hours=body.valid_hours),
        )
    except TenancyError:
        raise ProblemError(404, f"no customer {body.customer_id}") from None
    session.commit()
    return EnrolmentTokenOut(
        token=new.token, customer_id=new.customer_id, expires_at=new.expires_at
    )


@router.get("/collectors")
def list_collectors(principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    views = service.list_collectors(session, reseller_id=principal.reseller_id)
    return {"items": [view.as_dict() for view in views]}


@router.get("/collectors/{collector_id}")
def get_collector(
    collector_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    collector = _owned(session, principal.reseller_id, collector_id)
    return service.collector_view(session, collector).as_dict()


@router.get("/collectors/{collector_id}/settings", response_model=SettingsOut)
def get_settings(
    collector_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> SettingsOut:
    collector = _owned(session, principal.reseller_id, collector_id)
    return _settings_out(session, collector)


@router.put("/collectors/{collector_id}/settings", response_model=SettingsOut)
def put_settings(
    collector_id: uuid.UUID, body: SettingsIn, principal: AdminDep, session: SessionDep
) -> SettingsOut:
    collector = _owned(session, principal.reseller_id, collector_id)
    try:
        service.set_settings(
            session,
            collector=collector,
            settings=body.settings,
            created_by=principal.email,
            expected_version=body.expected_version,
        )
    except service.ConfigConflictError as exc:
        raise ProblemError(409, str(exc)) from None
    session.commit()
    return _settings_out(session, collector)


def _owned(session: Session, reseller_id: uuid.UUID, collector_id: uuid.UUID) -> Collector:
    try:
        return service.get_collector(session, reseller_id=reseller_id, collector_id=collector_id)
    except TenancyError:
        raise ProblemError(404, f"no collector {collector_id}") from None


def _settings_out(session: Session, collector: Collector) -> SettingsOut:
    row = service.latest_settings(session, collector)
    if row is None:
        return SettingsOut(collector_id=collector.id, version=0, settings=None)
    return SettingsOut(
        collector_id=collector.id,
        version=row.version,
        settings=CollectorSettings.model_validate(row.settings),
        created_at=row.created_at,
        created_by=row.created_by,
    )
