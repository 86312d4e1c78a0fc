"""Web pages of the fleet: the overview (grouped by customer and site, searchable, with a
"needs attention" view) and the device page (supplies, counters, usage chart, jobs,
alerts, 3D builds and materials).

Both are scoped to the logged-in user's reseller, and to one customer for a customer's
user; another tenant's device is "not found", exactly like one that does not exist.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fleetmeter import wire
from fleetmeter.portal.api.deps import SessionDep, user_from_session
from fleetmeter.portal.services import collectors, device_page, fleet
from fleetmeter.portal.services.access import TenantScope
from fleetmeter.portal.store.models import User
from fleetmeter.portal.web.charts import bar_chart
from fleetmeter.portal.web.params import Params, query_string
from fleetmeter.portal.web.routes import REFRESH_SECONDS, render

router = APIRouter(include_in_schema=False)

USAGE_DAYS = (30, 90, 365)


def scope_of(user: User) -> TenantScope:
    """What a user may see: their reseller's fleet, or their customer's part of it."""
    return TenantScope(user.reseller_id, customer_id=user.customer_id)


# Meter names end in their base unit (wire LifetimeUsage.meters()); shown in a readable one.
_UNITS = (("_ul", 1000, "mL", 1), ("_mm2", 1_000_000, "m²", 2), ("_mm", 1000, "m", 1))


def counter_row(counter: device_page.Counter) -> dict[str, Any]:
    for suffix, divisor, unit, digits in _UNITS:
        if counter.meter.endswith(suffix):
            value = f"{counter.value / divisor:,.{digits}f}"
            return {
                "meter": counter.meter,
                "value": value,
                "unit": unit,
                "read_at": counter.read_at,
            }
    return {
        "meter": counter.meter,
        "value": f"{counter.value:,}",
        "unit": "",
        "read_at": counter.read_at,
    }


@router.get("/fleet", response_class=HTMLResponse)
def fleet_page(request: Request, session: SessionDep) -> Response:
    user = user_from_session(request, session)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    params = Params(request.query_params)
    query = fleet.FleetQuery(
        q=params.text("q") or "",
        customer_id=params.uuid("customer"),
        site_id=params.uuid("site"),
        state=params.choice("state", [str(s) for s in wire.EngineState]),
        attention=params.choice("attention", [fleet.ATTENTION_ANY, *fleet.Need]),
        page=params.number("page", default=1, low=1, high=1_000_000),
    )
    scope = scope_of(user)
    page = fleet.fleet_page(session, scope=scope, query=query)
    filters = {
        "q": query.q,
        "customer": query.customer_id,
        "site": query.site_id,
        "state": query.state,
        "attention": query.attention,
    }
    context: dict[str, Any] = {
        "user": user,
        "page": page,
        "need_labels": fleet.NEED_LABELS,
        "filters": filters,
        "errors": params.errors,
        "filtered": any(v for v in filters.values()),
        "qs": lambda **extra: query_string(filters, **extra),
        "collectors": collectors.list_collectors(session, reseller_id=user.reseller_id)
        if user.customer_id is None
        else [],
        # A technician keeps the page open: it refreshes, but not while they page through.
        "refresh": REFRESH_SECONDS if page.page == 1 else None,
    }
    return render(request, "fleet.html", context, 400 if params.errors else 200)


@router.get("/devices/{device_id}", response_class=HTMLResponse)
def device_view(device_id: uuid.UUID, request: Request, session: SessionDep) -> Response:
    user = user_from_session(request, session)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    params = Params(request.query_params)
    days = int(params.choice("days", [str(d) for d in USAGE_DAYS]) or 90)
    detail = device_page.device_detail(
        session, scope=scope_of(user), device_id=device_id, usage_days=days
    )
    if detail is None:
        return render(request, "not_found.html", {"user": user}, 404)
    context = {
        "user": user,
        "detail": detail,
        "charts": [bar_chart(series) for series in detail.usage],
        "counter_rows": [counter_row(c) for c in detail.counters],
        "usage_days": USAGE_DAYS,
        "errors": params.errors,
        "refresh": REFRESH_SECONDS,
    }
    return render(request, "device.html", context, 400 if params.errors else 200)
