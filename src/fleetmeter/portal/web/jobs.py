"""Web pages of jobs: the filterable, keyset-paginated table and its streamed CSV export.

Filters travel in the query string, so a filtered view is a link one can share or
bookmark, and the export link carries exactly the filters of the table above it.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from fleetmeter import wire
from fleetmeter.portal.api.deps import SessionDep, session_factory, user_from_session
from fleetmeter.portal.services import access, fleet, jobs
from fleetmeter.portal.services.access import TenantScope
from fleetmeter.portal.web.fleet_pages import scope_of
from fleetmeter.portal.web.params import Params, end_of, query_string, start_of
from fleetmeter.portal.web.routes import render
from fleetmeter.wire import now_utc

router = APIRouter(include_in_schema=False)

PAGE_SIZES = (50, 100, 200, 500)
FLUSH_BYTES = 64 * 1024  # send the export in pieces of about this size


def _filters(params: Params) -> tuple[jobs.JobFilter, dict[str, object]]:
    """The table's filters, and the same as query-string values for the page's links."""
    since, until = params.day("from"), params.day("to")
    f = jobs.JobFilter(
        since=start_of(since),
        until=end_of(until),
        device=params.text("device"),
        customer_id=params.uuid("customer"),
        kind=params.choice("kind", [str(k) for k in wire.JobKind]),
        status=params.choice("status", [str(s) for s in wire.JobStatus]),
        category=params.text("category"),
        project=params.text("project"),
        account=params.text("account"),
        user=params.text("user"),
    )
    values: dict[str, object] = {
        "from": since,
        "to": until,
        "device": f.device,
        "customer": f.customer_id,
        "kind": f.kind,
        "status": f.status,
        "category": f.category,
        "project": f.project,
        "account": f.account,
        "user": f.user,
    }
    return f, values


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, session: SessionDep) -> Response:
    user = user_from_session(request, session)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    params = Params(request.query_params)
    filters, values = _filters(params)
    limit = int(params.choice("limit", [str(n) for n in PAGE_SIZES]) or PAGE_SIZES[0])
    before, after = params.cursor("before"), params.cursor("after")
    scope = scope_of(user)
    page = jobs.jobs_page(
        session, scope=scope, filters=filters, before=before, after=after, limit=limit
    )
    customers, _sites = fleet.filter_options(session, scope=scope)
    shown = {**values, "limit": limit if limit != PAGE_SIZES[0] else None}
    context: dict[str, Any] = {
        "user": user,
        "page": page,
        "values": values,
        "limit": limit,
        "page_sizes": PAGE_SIZES,
        "customers": customers,
        "kinds": [str(k) for k in wire.JobKind],
        "statuses": [str(s) for s in wire.JobStatus],
        "errors": params.errors,
        "first_page": before is None and after is None,
        "newer_href": "/jobs?" + query_string(shown, after=page.newer.encode())
        if page.newer
        else None,
        "older_href": "/jobs?" + query_string(shown, before=page.older.encode())
        if page.older
        else None,
        "newest_href": "/jobs?" + query_string(shown),
        "export_href": "/jobs.csv?" + query_string(values),
    }
    return render(request, "jobs.html", context, 400 if params.errors else 200)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(job_id: uuid.UUID, request: Request, session: SessionDep) -> Response:
    user = user_from_session(request, session)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    row = jobs.job_detail(session, scope=scope_of(user), job_id=job_id)
    if row is None:
        return render(request, "not_found.html", {"user": user}, 404)
    return render(request, "job.html", {"user": user, "row": row, "job": row.job})


@router.get("/jobs.csv")
def export_jobs(request: Request, session: SessionDep) -> Response:
    user = user_from_session(request, session)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    params = Params(request.query_params)
    filters, _values = _filters(params)
    if params.errors:
        # An export silently missing a filter would hand out more than was asked for.
        return Response(
            "cannot export: " + "; ".join(params.errors) + "\n",
            status_code=400,
            media_type="text/plain; charset=utf-8",
        )
    name = f"jobs-{now_utc():%Y%m%d-%H%M%S}.csv"
    return StreamingResponse(
        _csv(request, scope_of(user), filters),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


def _csv(request: Request, scope: TenantScope, filters: jobs.JobFilter) -> Iterator[bytes]:
    """The export, a piece at a time, from its own DB session: the response outlives the
    request's session, and a million rows must never sit in memory at once."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    # A byte order mark: without it Excel reads UTF-8 job names (Grundriß.pdf) as Latin-1.
    buffer.write("\ufeff")
    writer.writerow(jobs.CSV_COLUMNS)
    with session_factory(request)() as session:
        access.set_scope(session, scope)
        for cells in jobs.csv_rows(session, scope=scope, filters=filters):
            writer.writerow(cells)
            if buffer.tell() >= FLUSH_BYTES:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue().encode()
