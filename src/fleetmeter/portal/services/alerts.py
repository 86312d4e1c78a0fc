"""The alerts table: a scope's alerts, open or cleared, by severity, keyset-paginated on
(first_seen, id) newest first, with the count of open alerts per severity.

Open alerts are few and found through the (reseller_id, cleared_at) index; the cleared
history grows with the fleet's age, hence keyset pages rather than OFFSET.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from fleetmeter import wire
from fleetmeter.portal.services.access import TenantScope
from fleetmeter.portal.services.fleet import device_conditions
from fleetmeter.portal.services.jobs import DeviceLabel, device_labels
from fleetmeter.portal.services.paging import Cursor, Page, keyset_page
from fleetmeter.portal.store.models import Alert

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
STATES = ("open", "cleared", "all")
SEVERITIES = tuple(str(s) for s in reversed(wire.AlertSeverity))  # critical first


@dataclass(frozen=True)
class AlertFilter:
    state: str = "open"  # open, cleared or all
    severity: str | None = None
    customer_id: uuid.UUID | None = None
    device: str | None = None  # a device id, or a serial number
    code: str | None = None
    since: datetime | None = None  # first seen at or after
    until: datetime | None = None  # first seen before


@dataclass(frozen=True)
class AlertRow:
    alert: Alert
    device: DeviceLabel


def alerts_page(
    session: Session,
    *,
    scope: TenantScope,
    filters: AlertFilter,
    before: Cursor | None = None,
    after: Cursor | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[AlertRow]:
    limit = min(max(limit, 1), MAX_LIMIT)
    stmt = _filtered(session, scope, filters, with_state=True, with_severity=True)
    if stmt is None:
        return Page([], None, None)
    page = keyset_page(
        stmt,
        at=Alert.first_seen,
        ident=Alert.id,
        before=before,
        after=after,
        limit=limit,
        execute=lambda q: list(session.scalars(q)),
        position=lambda alert: Cursor(alert.first_seen, alert.id),
    )
    labels = device_labels(session, scope=scope, device_ids={a.device_id for a in page.rows})
    return Page(
        [AlertRow(alert, labels[alert.device_id]) for alert in page.rows], page.newer, page.older
    )


def open_by_severity(
    session: Session, *, scope: TenantScope, filters: AlertFilter
) -> dict[str, int]:
    """Open alerts per severity under the filters other than state and severity."""
    stmt = _filtered(session, scope, filters, with_state=False, with_severity=False)
    counts = dict.fromkeys(SEVERITIES, 0)
    if stmt is None:
        return counts
    grouped = (
        stmt.where(Alert.cleared_at.is_(None))
        .with_only_columns(Alert.severity, func.count())
        .group_by(Alert.severity)
    )
    for severity, n in session.execute(grouped):
        counts[severity] = counts.get(severity, 0) + n
    return counts


def _filtered(
    session: Session, scope: TenantScope, f: AlertFilter, *, with_state: bool, with_severity: bool
) -> Select[Alert] | None:
    conditions = device_conditions(
        session, scope=scope, device_id=Alert.device_id, device=f.device, customer_id=f.customer_id
    )
    if conditions is None:
        return None
    stmt = select(Alert).where(Alert.reseller_id == scope.reseller_id, *conditions)
    if with_state and f.state == "open":
        stmt = stmt.where(Alert.cleared_at.is_(None))
    elif with_state and f.state == "cleared":
        stmt = stmt.where(Alert.cleared_at.is_not(None))
    if with_severity and f.severity:
        stmt = stmt.where(Alert.severity == f.severity)
    if f.code:
        stmt = stmt.where(Alert.code == f.code)
    if f.since is not None:
        stmt = stmt.where(Alert.first_seen >= f.since)
    if f.until is not None:
        stmt = stmt.where(Alert.first_seen < f.until)
    return stmt
