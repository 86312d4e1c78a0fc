"""Web pages for collectors: the list with the settings version each runs, the settings form
(ranges, host names, intervals) and one-time enrolment tokens.

Every form carries the session's CSRF token; every lookup is scoped to the user's reseller
(another reseller's collector is "not found"). The settings form posts the version it was
rendered from, so two people editing at once get a conflict instead of a silent overwrite.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pydantic
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from fleetmeter.portal.api.deps import SessionDep, user_from_session
from fleetmeter.portal.api.problems import ProblemError, field_errors
from fleetmeter.portal.errors import TenancyError
from fleetmeter.portal.services import access
from fleetmeter.portal.services import collectors as service
from fleetmeter.portal.store.models import Collector, User
from fleetmeter.portal.web.routes import check_csrf, render
from fleetmeter.wire.collector_config import CollectorSettings

router = APIRouter(include_in_schema=False)

MAX_FORM_RANGES = 32  # the page's limit; the API takes up to wire.MAX_RANGES
_FORM_LIMITS = {"max_files": 0, "max_fields": 8 + 6 * MAX_FORM_RANGES, "max_part_size": 256 * 1024}


def _user(request: Request, session: Session) -> User | None:
    return user_from_session(request, session)


@router.get("/collectors", response_class=HTMLResponse)
def collectors_page(request: Request, session: SessionDep) -> Response:
    user = _user(request, session)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    return _list(request, session, user)


def _list(
    request: Request, session: Session, user: User, *, new_token: Any = None, status: int = 200
) -> Response:
    context = {
        "user": user,
        "collectors": service.list_collectors(session, reseller_id=user.reseller_id),
        "customers": service.customers(session, reseller_id=user.reseller_id),
        "new_token": new_token,
        "portal_url": str(request.base_url).rstrip("/"),
    }
    return render(request, "collectors.html", context, status)


@router.post("/collectors/enrolment-tokens", response_class=HTMLResponse)
async def make_token(request: Request, session: SessionDep) -> Response:
    form = await request.form(max_files=0, max_fields=5, max_part_size=1024)
    check_csrf(request, form.get("csrf"))
    user = _user(request, session)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    if not access.may_write(user.role, "admin"):
        raise ProblemError(403, "only the reseller's admins may change collectors")
    try:
        customer_id = uuid.UUID(str(form.get("customer_id", "")))
        new = service.create_enrolment_token(
            session,
            reseller_id=user.reseller_id,
            customer_id=customer_id,
            valid_for=timedelta(days=7),
        )
    except (ValueError, TenancyError):
        return _list(request, session, user, status=404)
    customer = next(
        c for c in service.customers(session, reseller_id=user.reseller_id) if c.id == customer_id
    )
    session.commit()
    return _list(request, session, user, new_token={"token": new, "customer": customer.name})


@router.get("/collectors/{collector_id}", response_class=HTMLResponse)
def collector_page(collector_id: uuid.UUID, request: Request, session: SessionDep) -> Response:
    user = _user(request, session)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    collector = _owned(session, user, collector_id)
    if collector is None:
        return render(request, "not_found.html", {"user": user}, 404)
    latest = service.latest_settings(session, collector)
    settings = CollectorSettings.model_validate(latest.settings) if latest else CollectorSettings()
    return _detail(request, session, user, collector, _form_values(settings), [], saved=None)


@router.post("/collectors/{collector_id}/settings", response_class=HTMLResponse)
async def save_settings(collector_id: uuid.UUID, request: Request, session: SessionDep) -> Response:
    form = await request.form(**_FORM_LIMITS)
    check_csrf(request, form.get("csrf"))
    user = _user(request, session)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    if not access.may_write(user.role, "admin"):
        raise ProblemError(403, "only the reseller's admins may change collectors")
    collector = _owned(session, user, collector_id)
    if collector is None:
        return render(request, "not_found.html", {"user": user}, 404)
    values = _values_from_form(form)
    try:
        settings = CollectorSettings.model_validate(_settings_from_values(values))
    except pydantic.ValidationError as exc:
        errors = [
            f"{e['field']}: {e['message']}"
            for e in field_errors(exc.errors(include_url=False, include_input=False))
        ]
        return _detail(request, session, user, collector, values, errors, saved=None, status=400)
    try:
        expected = int(str(form.get("expected_version", "")))
    except ValueError:
        expected = None
    try:
        row = service.set_settings(
            session,
            collector=collector,
            settings=settings,
            created_by=user.email,
            expected_version=expected,
        )
    except service.ConfigConflictError as exc:
        return _detail(
            request, session, user, collector, values, [str(exc)], saved=None, status=409
        )
    session.commit()
    return _detail(request, session, user, collector, _form_values(settings), [], saved=row.version)


def _owned(session: Session, user: User, collector_id: uuid.UUID) -> Collector | None:
    try:
        return service.get_collector(
            session, reseller_id=user.reseller_id, collector_id=collector_id
        )
    except TenancyError:
        return None


def _detail(
    request: Request,
    session: Session,
    user: User,
    collector: Collector,
    values: dict[str, Any],
    errors: list[str],
    *,
    saved: int | None,
    status: int = 200,
) -> Response:
    view = service.collector_view(session, collector)
    context = {
        "user": user,
        "collector": view,
        "values": values,
        "errors": errors,
        "saved": saved,
        "expected_version": view.latest_config_version or 0,
    }
    return render(request, "collector.html", context, status)


# --------------------------------------------------------------------------- form <-> settings


def _form_values(settings: CollectorSettings) -> dict[str, Any]:
    """What the form shows: one block per range plus an empty one to add a range."""
    ranges = [
        {
            "targets": "\n".join(r.targets),
            "drivers": ", ".join(r.drivers or []),
            "port": "" if r.port is None else str(r.port),
            "scheme": r.scheme or "",
            "profile": r.profile or "",
        }
        for r in settings.ranges or []
    ]
    ranges.append({"targets": "", "drivers": "", "port": "", "scheme": "", "profile": ""})
    schedule = settings.schedule
    return {
        "ranges": ranges,
        "usage": ""
        if schedule.usage_interval_minutes is None
        else f"{schedule.usage_interval_minutes:g}",
        "health": ""
        if schedule.health_interval_minutes is None
        else f"{schedule.health_interval_minutes:g}",
    }


def _text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def _values_from_form(form: FormData) -> dict[str, Any]:
    ranges = []
    for i in range(MAX_FORM_RANGES):
        if f"targets-{i}" not in form:
            break
        ranges.append(
            {
                key: _text(form, f"{key}-{i}")
                for key in ("targets", "drivers", "port", "scheme", "profile")
            }
        )
    if not ranges or ranges[-1]["targets"]:
        ranges.append({"targets": "", "drivers": "", "port": "", "scheme": "", "profile": ""})
    return {"ranges": ranges, "usage": _text(form, "usage"), "health": _text(form, "health")}


def _settings_from_values(values: dict[str, Any]) -> dict[str, Any]:
    """The form as the API's JSON: empty fields are left out (the collector's own value)."""
    ranges = []
    for block in values["ranges"]:
        targets = [line.strip() for line in block["targets"].splitlines() if line.strip()]
        if not targets:
            continue  # an empty block is "no range here", not an error
        out: dict[str, Any] = {"targets": targets}
        drivers = [d.strip() for d in block["drivers"].split(",") if d.strip()]
        if drivers:
            out["drivers"] = drivers
        for key in ("port", "scheme", "profile"):
            if block[key]:
                out[key] = block[key]
        ranges.append(out)
    settings: dict[str, Any] = {"ranges": ranges or None}
    schedule = {}
    if values["usage"]:
        schedule["usage_interval_minutes"] = values["usage"]
    if values["health"]:
        schedule["health_interval_minutes"] = values["health"]
    settings["schedule"] = schedule
    return settings
