"""Read API for users and scripts: devices, jobs, latest counters, and the login session.

Scripts authenticate either with HTTP Basic (``email:password``) on each request, or once
with ``POST /api/v1/session`` and then send the returned session cookie.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query, Request, Response
from pydantic import AwareDatetime

from fleetmeter.portal.api.deps import SESSION_USER_KEY, PrincipalDep, SessionDep, client_address
from fleetmeter.portal.api.problems import ProblemError
from fleetmeter.portal.api.schemas import (
    CountersOut,
    DeviceOut,
    JobOut,
    LoginIn,
    Page,
    SessionOut,
)
from fleetmeter.portal.services import access
from fleetmeter.portal.store import queries
from fleetmeter.portal.store.models import Device

router = APIRouter(prefix="/api/v1", tags=["read"])

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]


@router.post("/session", response_model=SessionOut)
def login(body: LoginIn, request: Request, session: SessionDep) -> SessionOut:
    """Log in with email and password; the answer sets the session cookie."""
    try:
        user = access.login(
            session, email=body.email, password=body.password, address=client_address(request)
        )
    except access.LoginThrottled as exc:
        raise ProblemError(
            429, str(exc), headers={"Retry-After": str(int(exc.retry_after_s) + 1)}
        ) from None
    if user is None:
        raise ProblemError(401, "wrong email or password")
    request.session.clear()  # a fresh session on login: no fixation
    request.session[SESSION_USER_KEY] = str(user.id)
    request.session["csrf"] = secrets.token_urlsafe(32)
    return SessionOut(user_id=user.id, reseller_id=user.reseller_id, email=user.email)


@router.delete("/session", status_code=204)
def logout(request: Request) -> Response:
    request.session.clear()
    return Response(status_code=204)


@router.get("/devices", response_model=Page[DeviceOut])
def list_devices(
    principal: PrincipalDep, session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> Page[DeviceOut]:
    rows = queries.list_devices(
        session, reseller_id=principal.reseller_id, limit=limit + 1, offset=offset
    )
    return _page([DeviceOut.model_validate(d) for d in rows], limit=limit, offset=offset)


@router.get("/devices/{device_id}", response_model=DeviceOut)
def get_device(device_id: uuid.UUID, principal: PrincipalDep, session: SessionDep) -> DeviceOut:
    return DeviceOut.model_validate(_device_or_404(session, principal.reseller_id, device_id))


@router.get("/devices/{device_id}/jobs", response_model=Page[JobOut])
def list_device_jobs(
    device_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    since: AwareDatetime | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[JobOut]:
    _device_or_404(session, principal.reseller_id, device_id)
    return _jobs_page(session, principal.reseller_id, device_id, since, limit, offset)


@router.get("/devices/{device_id}/counters", response_model=CountersOut)
def device_counters(
    device_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> CountersOut:
    _device_or_404(session, principal.reseller_id, device_id)
    latest = queries.latest_counters(
        session, reseller_id=principal.reseller_id, device_id=device_id
    ).get(device_id, {})
    names = sorted(latest)
    return CountersOut(
        device_id=device_id,
        meters={name: latest[name].value for name in names},
        read_at={name: latest[name].read_at for name in names},
    )


@router.get("/jobs", response_model=Page[JobOut])
def list_jobs(
    principal: PrincipalDep,
    session: SessionDep,
    device_id: uuid.UUID | None = None,
    since: AwareDatetime | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[JobOut]:
    return _jobs_page(session, principal.reseller_id, device_id, since, limit, offset)


def _jobs_page(
    session: SessionDep,
    reseller_id: uuid.UUID,
    device_id: uuid.UUID | None,
    since: datetime | None,
    limit: int,
    offset: int,
) -> Page[JobOut]:
    rows = queries.list_jobs(
        session,
        reseller_id=reseller_id,
        device_id=device_id,
        since=since,
        limit=limit + 1,
        offset=offset,
    )
    return _page([JobOut.model_validate(j) for j in rows], limit=limit, offset=offset)


def _device_or_404(session: SessionDep, reseller_id: uuid.UUID, device_id: uuid.UUID) -> Device:
    device = queries.get_device(session, reseller_id=reseller_id, device_id=device_id)
    if device is None:
        # Same answer for "another tenant's device" and "no such device": ids do not leak.
        raise ProblemError(404, f"no device {device_id}")
    return device


def _page(items: Sequence[T], *, limit: int, offset: int) -> Page[T]:
    # The queries fetch limit + 1 rows: one extra row says whether a next page exists.
    more = len(items) > limit
    return Page(
        items=list(items[:limit]),
        limit=limit,
        offset=offset,
        next_offset=offset + limit if more else None,
    )
