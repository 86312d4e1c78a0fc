"""The alerts page: open and cleared alerts, counted and filtered by severity, newest first."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fleetmeter.portal.api.deps import SessionDep, user_from_session
from fleetmeter.portal.services import alerts, fleet
from fleetmeter.portal.web.fleet_pages import scope_of
from fleetmeter.portal.web.params import Params, end_of, query_string, start_of
from fleetmeter.portal.web.routes import render

router = APIRouter(include_in_schema=False)


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(request: Request, session: SessionDep) -> Response:
    user = user_from_session(request, session)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    params = Params(request.query_params)
    since, until = params.day("from"), params.day("to")
    filters = alerts.AlertFilter(
        state=params.choice("state", alerts.STATES) or "open",
        severity=params.choice("severity", alerts.SEVERITIES),
        customer_id=params.uuid("customer"),
        device=params.text("device"),
        code=params.text("code"),
        since=start_of(since),
        until=end_of(until),
    )
    before, after = params.cursor("before"), params.cursor("after")
    scope = scope_of(user)
    page = alerts.alerts_page(session, scope=scope, filters=filters, before=before, after=after)
    counts = alerts.open_by_severity(session, scope=scope, filters=filters)
    customers, _sites = fleet.filter_options(session, scope=scope)
    values: dict[str, object] = {
        "state": filters.state if filters.state != "open" else None,
        "severity": filters.severity,
        "customer": filters.customer_id,
        "device": filters.device,
        "code": filters.code,
        "from": since,
        "to": until,
    }
    context: dict[str, Any] = {
        "user": user,
        "page": page,
        "filters": filters,
        "values": values,
        "counts": counts,
        "states": alerts.STATES,
        "severities": alerts.SEVERITIES,
        "customers": customers,
        "errors": params.errors,
        "qs": lambda **extra: query_string(values, **extra),
        "newer_href": "/alerts?" + query_string(values, after=page.newer.encode())
        if page.newer
        else None,
        "older_href": "/alerts?" + query_string(values, before=page.older.encode())
        if page.older
        else None,
    }
    return render(request, "alerts.html", context, 400 if params.errors else 200)
