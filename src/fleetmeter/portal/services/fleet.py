"""Fleet overview: every device of a scope with what needs a technician's attention.

"Needs attention" is decided for every device of the fleet on each view, because the
page's tiles count it fleet-wide. Open alerts, engine state and last contact are decided in
SQL, in one query that returns plain text and integers per device (no per-row objects: at
10,000 devices, building UUIDs and datetimes alone would take most of a second). Low ink
and worn printheads live in each device's status snapshot (JSON), far too costly to parse
for every device on every view, so each process remembers a device's supply verdict under
the snapshot's time (``SupplyVerdicts``) and re-reads only snapshots that changed. Full
rows (status, counters, job counts, alerts) are loaded only for the page shown.

Every read filters by the scope's reseller, and by its customer for a customer's user.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import Select, String, and_, case, cast, func, or_, select, union_all
from sqlalchemy.orm import Session, aliased

from fleetmeter import wire
from fleetmeter.portal.services.access import TenantScope
from fleetmeter.portal.store import queries
from fleetmeter.portal.store.models import Alert, CounterReading, Customer, Device, JobRecord, Site
from fleetmeter.wire import now_utc

# The meters the overview shows (names from wire LifetimeUsage.meters()).
OVERVIEW_METERS = ("impressions", "total_ink_ul", "total_media_area_mm2", "jobs")

# A supply "needs attention" when the device says so, or below the level at which its bar
# turns amber (the <meter low=…> of _supplies.html), for drivers that give levels only.
BAD_SUPPLY_STATES = frozenset({"low", "very_low", "empty", "missing", "faulty", "expired"})
CARTRIDGE_LOW_PERCENT = 15
PRINTHEAD_LOW_PERCENT = 30
# Health is polled every 5 min, but a direct-connected device uploads only every 3 h:
# silence for two of its intervals is worth a technician's look.
NO_CONTACT_AFTER = timedelta(hours=6)
PAGE_SIZE = 100
SEVERITY_RANK = {"info": 1, "warning": 2, "error": 3, "critical": 4}
SEVERITY_NAME = {rank: name for name, rank in SEVERITY_RANK.items()}
ALERT_NEEDS_RANK = SEVERITY_RANK["warning"]  # info alerts alone need nobody


class Need(StrEnum):
    """Why a device needs a technician, most urgent first."""

    ALERTS = "alerts"  # an open alert of severity warning or worse
    ERROR = "error"  # the engine reports an error state
    OFFLINE = "offline"  # the engine is offline, or the device has been silent too long
    PRINTHEAD = "printhead"  # a printhead worn, faulty, missing or expired
    LOW_INK = "low_ink"  # a cartridge low, empty, missing, faulty or expired


NEED_LABELS = {
    Need.ALERTS: "Open alerts",
    Need.ERROR: "Error state",
    Need.OFFLINE: "Offline / no contact",
    Need.PRINTHEAD: "Printheads",
    Need.LOW_INK: "Low ink",
}
# One bit per need, in urgency order: the lowest bit set is a device's most urgent need.
NEED_BIT = {need: 1 << i for i, need in enumerate(Need)}
ATTENTION_ANY = "any"


# --------------------------------------------------------------------------- supplies


@dataclass(frozen=True)
class Supply:
    """A cartridge or printhead as the pages show it."""

    label: str  # colour code(s), e.g. "C" or "C/M"
    status: str
    percent: int | None
    product_number: str | None = None
    serial_number: str | None = None
    non_vendor: bool = False
    expires_on: date | None = None
    installed_on: date | None = None
    capacity_ul: int | None = None
    consumed_ul: int | None = None
    non_vendor_consumed_ul: int | None = None

    @property
    def expired(self) -> bool:
        return self.expires_on is not None and self.expires_on < now_utc().date()


def cartridge_needs_attention(cartridge: Mapping[str, Any], today: date) -> bool:
    return _supply_low(cartridge, "level_percent", CARTRIDGE_LOW_PERCENT, today.isoformat())


def printhead_needs_attention(printhead: Mapping[str, Any], today: date) -> bool:
    return _supply_low(printhead, "health_percent", PRINTHEAD_LOW_PERCENT, today.isoformat())


def _supply_low(supply: Mapping[str, Any], percent_key: str, below: int, today: str) -> bool:
    # Runs for every supply of every device when a process starts: plain comparisons, and
    # ISO dates compared as text (their order is the dates' order).
    if supply.get("status") in BAD_SUPPLY_STATES:
        return True
    percent = supply.get(percent_key)
    if isinstance(percent, int) and 0 <= percent < below:
        return True
    expires = supply.get("expires_on")
    return isinstance(expires, str) and len(expires) == 10 and expires < today


def supply_needs(cartridges: object, printheads: object, today: date) -> tuple[int, str | None]:
    """The supply needs of a snapshot's cartridges and printheads as ``NEED_BIT`` bits (0:
    none), and the last day this answer holds (ISO; None: until the snapshot changes) —
    the earliest expiry date still ahead, after which that supply counts as expired."""
    day = today.isoformat()
    bits = 0
    if any(
        _supply_low(p, "health_percent", PRINTHEAD_LOW_PERCENT, day) for p in _dicts(printheads)
    ):
        bits |= NEED_BIT[Need.PRINTHEAD]
    if any(_supply_low(c, "level_percent", CARTRIDGE_LOW_PERCENT, day) for c in _dicts(cartridges)):
        bits |= NEED_BIT[Need.LOW_INK]
    ahead = [
        expires
        for supply in (*_dicts(cartridges), *_dicts(printheads))
        if isinstance(expires := supply.get("expires_on"), str) and expires >= day
    ]
    return bits, min(ahead, default=None)


class SupplyVerdicts:
    """Per-process memo of each device's supply needs, valid while its ``status_at`` holds.

    The needs depend only on the snapshot (and the day, for expiry dates), and ingest
    replaces snapshot and ``status_at`` together, so a verdict kept under the same
    ``status_at`` is exactly what re-parsing would give: the cache can be stale in no way
    that matters, and another portal process simply keeps its own. Bounded (least recently
    used out) so that a portal serving many tenants stays small.
    """

    def __init__(self, max_devices: int = 200_000) -> None:
        self._max = max_devices
        self._lock = threading.Lock()
        # device id → (status_at, last day the verdict holds or None, NEED_BIT bits)
        self._entries: OrderedDict[str, tuple[str | None, str | None, int]] = OrderedDict()

    def needs(
        self,
        session: Session,
        *,
        reseller_id: uuid.UUID,
        snapshots: Mapping[str, str | None],
        today: date,
    ) -> dict[str, int]:
        """Supply needs of ``{device id text: status_at text}``; stale ones are re-read."""
        out: dict[str, int] = {}
        stale: list[str] = []
        day = today.isoformat()
        with self._lock:
            entries = self._entries
            for device_id, status_at in snapshots.items():
                entry = entries.get(device_id)
                if (
                    entry is not None
                    and entry[0] == status_at
                    and (entry[1] is None or day <= entry[1])
                ):
                    out[device_id] = entry[2]
                else:
                    stale.append(device_id)
        fresh: dict[str, tuple[str | None, tuple[int, str | None]]] = {}
        for start in range(0, len(stale), 500):
            chunk = [uuid.UUID(device_id) for device_id in stale[start : start + 500]]
            # Only the two lists the verdict reads, extracted by the database: the rest of a
            # snapshot (media, accessories, localised media names) is never parsed here.
            rows = session.execute(
                select(
                    _as_text(Device.id),
                    _as_text(Device.status_at),
                    Device.status["cartridges"],
                    Device.status["printheads"],
                ).where(Device.reseller_id == reseller_id, Device.id.in_(chunk))
            )
            for device_id, status_at, cartridges, printheads in rows:
                fresh[device_id] = (status_at, supply_needs(cartridges, printheads, today))
        with self._lock:
            for device_id, (status_at, (bits, valid_through)) in fresh.items():
                out[device_id] = bits
                self._entries[device_id] = (status_at, valid_through, bits)
                self._entries.move_to_end(device_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return out

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


SUPPLY_VERDICTS = SupplyVerdicts()


# --------------------------------------------------------------------------- overview


@dataclass(frozen=True)
class FleetQuery:
    """The overview's search and filters (all optional) and the page wanted."""

    q: str = ""  # part of a serial number, model, product number or address
    customer_id: uuid.UUID | None = None
    site_id: uuid.UUID | None = None
    state: str | None = None  # engine state
    attention: str | None = None  # ATTENTION_ANY or a Need
    page: int = 1


@dataclass(frozen=True)
class Reason:
    """One line of "what is wrong" as a technician reads it."""

    need: Need
    text: str
    level: str  # css: critical, error, warning


@dataclass(frozen=True)
class DeviceSummary:
    device: Device
    customer: str
    engine_state: str
    site: str | None = None
    cartridges: list[Supply] = field(default_factory=list)
    printheads: list[Supply] = field(default_factory=list)
    impressions: int | None = None
    total_ink_ml: float | None = None
    media_area_m2: float | None = None
    jobs: int | None = None  # lifetime jobs (fleet page) or jobs stored (device page)
    open_alerts: int = 0
    reasons: list[Reason] = field(default_factory=list)


@dataclass(frozen=True)
class FleetGroup:
    customer: str
    site: str | None
    total: int  # devices of this group matching the filters, on every page
    devices: list[DeviceSummary]


@dataclass(frozen=True)
class Option:
    id: uuid.UUID
    name: str


@dataclass(frozen=True)
class FleetPage:
    query: FleetQuery
    devices: list[DeviceSummary]  # the page's devices, in display order
    groups: list[FleetGroup]  # the same by customer and site; empty in an attention view
    total: int  # devices matching search and every filter
    fleet_size: int  # devices in the scope, before any filter
    page: int
    pages: int
    tiles: dict[Need, int]  # devices needing each kind of attention (search/filters applied)
    attention_total: int
    customers: list[Option]
    sites: list[Option]
    states: list[str]


class _Row(NamedTuple):
    """One device in the overview query: text and integers only (cheap to fetch by 10,000)."""

    id: str
    status_at: str | None
    needs: int  # NEED_BIT bits decided in SQL: alerts, error, offline
    open_alerts: int
    worst: int  # SEVERITY_RANK of the worst open alert, 0 if none
    customer_id: str
    customer: str
    site_id: str | None
    site: str | None
    model: str | None
    serial: str

    def order(self) -> tuple[str, str, bool, str, str, str, str, str]:
        """Customer, site (devices without one last), model, serial: case-insensitive."""
        return (
            self.customer.casefold(),
            self.customer_id,
            self.site is None,
            (self.site or "").casefold(),
            self.site_id or "",
            (self.model or "").casefold(),
            self.serial,
            self.id,
        )


def fleet_page(
    session: Session,
    *,
    scope: TenantScope,
    query: FleetQuery,
    now: datetime | None = None,
    verdicts: SupplyVerdicts = SUPPLY_VERDICTS,
) -> FleetPage:
    now = now or now_utc()
    rows, needs = device_needs(session, scope=scope, query=query, now=now, verdicts=verdicts)
    tiles = dict.fromkeys(Need, 0)
    bits = list(NEED_BIT.items())
    attention_total = 0
    for mask in needs.values():
        if mask:
            attention_total += 1
            for need, bit in bits:
                if mask & bit:
                    tiles[need] += 1

    if query.attention == ATTENTION_ANY:
        chosen = [r for r in rows if needs[r.id]]
        # Most urgent first: the most urgent need (lowest bit), then the worst alert; the
        # sort is stable, so ties keep the customer/site order.
        chosen.sort(key=lambda r: ((needs[r.id] & -needs[r.id]).bit_length(), -r.worst))
    elif query.attention in NEED_BIT:
        bit = NEED_BIT[Need(query.attention)]
        chosen = [r for r in rows if needs[r.id] & bit]
    else:
        chosen = rows
    pages = max(1, -(-len(chosen) // PAGE_SIZE))
    page = min(max(query.page, 1), pages)
    shown = chosen[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    summaries = _summaries(session, scope=scope, rows=shown, needs=needs, now=now)

    groups: list[FleetGroup] = []
    if query.attention is None:
        # By customer and site in the query's order; a group's total counts its devices on
        # every page, so "12 devices" stays true when this page shows only 3 of them.
        totals: dict[tuple[str, str | None], int] = {}
        for r in chosen:
            key = (r.customer_id, r.site_id)
            totals[key] = totals.get(key, 0) + 1
        previous: tuple[str, str | None] | None = None
        for r, summary in zip(shown, summaries, strict=True):
            key = (r.customer_id, r.site_id)
            if key != previous:
                groups.append(FleetGroup(r.customer, r.site, totals[key], []))
                previous = key
            groups[-1].devices.append(summary)
    customers, sites = filter_options(session, scope=scope, customer_id=query.customer_id)
    return FleetPage(
        query=query,
        devices=summaries,
        groups=groups,
        total=len(chosen),
        fleet_size=_fleet_size(session, scope),
        page=page,
        pages=pages,
        tiles=tiles,
        attention_total=attention_total,
        customers=customers,
        sites=sites,
        states=[str(s) for s in wire.EngineState],
    )


def device_needs(
    session: Session,
    *,
    scope: TenantScope,
    query: FleetQuery,
    now: datetime,
    verdicts: SupplyVerdicts = SUPPLY_VERDICTS,
    device_id: uuid.UUID | None = None,
) -> tuple[list[_Row], dict[str, int]]:
    """Every device matching ``query`` (or just ``device_id``) in display order, and the
    ``NEED_BIT`` bits of each by id text. The one place that decides "needs attention"."""
    rows = _rows(session, scope=scope, query=query, now=now, device_id=device_id)
    supply = verdicts.needs(
        session,
        reseller_id=scope.reseller_id,
        snapshots={r.id: r.status_at for r in rows},
        today=now.date(),
    )
    return rows, {r.id: r.needs | supply.get(r.id, 0) for r in rows}


def _as_text(column: Any) -> Any:
    # Fetched as the database's text: no UUID or datetime object per row, and still an
    # exact key (the same value always prints the same).
    return cast(column, String)


def _rows(
    session: Session,
    *,
    scope: TenantScope,
    query: FleetQuery,
    now: datetime,
    device_id: uuid.UUID | None = None,
) -> list[_Row]:
    """The devices of the overview in display order. The device query has no join: names
    and open-alert counts are small and come from their own queries, and fetching 10,000
    rows costs by the column."""
    state_needs = case((Device.engine_state == "error", NEED_BIT[Need.ERROR]), else_=0) + case(
        (
            or_(
                Device.engine_state == "offline",
                Device.last_seen_at.is_(None),
                Device.last_seen_at < now - NO_CONTACT_AFTER,
            ),
            NEED_BIT[Need.OFFLINE],
        ),
        else_=0,
    )
    stmt = select(
        _as_text(Device.id),
        _as_text(Device.status_at),
        state_needs,
        _as_text(Device.customer_id),
        _as_text(Device.site_id),
        Device.model,
        Device.serial_number,
    ).where(Device.reseller_id == scope.reseller_id)
    if device_id is not None:
        stmt = stmt.where(Device.id == device_id)
    if scope.customer_id is not None:
        stmt = stmt.where(Device.customer_id == scope.customer_id)
    if query.customer_id is not None:
        stmt = stmt.where(Device.customer_id == query.customer_id)
    if query.site_id is not None:
        stmt = stmt.where(Device.site_id == query.site_id)
    if query.state:
        stmt = stmt.where(func.coalesce(Device.engine_state, "unknown") == query.state)
    text = query.q.strip()
    if text:
        stmt = stmt.where(
            or_(
                Device.serial_number.icontains(text, autoescape=True),
                Device.model.icontains(text, autoescape=True),
                Device.product_number.icontains(text, autoescape=True),
                Device.address.icontains(text, autoescape=True),
            )
        )
    # Core execution on the session's own connection and transaction: the ORM's per-row
    # loading would cost more than the query itself at 10,000 rows, and every statement
    # here carries its tenant filter (reseller, and customer when scoped) explicitly.
    connection = session.connection()
    found = connection.execute(stmt).all()
    customers: dict[str, str] = dict(
        connection.execute(
            select(_as_text(Customer.id), Customer.name).where(
                Customer.reseller_id == scope.reseller_id
            )
        ).all()
    )
    sites: dict[str, str] = dict(
        connection.execute(
            select(_as_text(Site.id), Site.name).where(Site.reseller_id == scope.reseller_id)
        ).all()
    )
    alerts = {
        device: (n, worst)
        for device, n, worst in connection.execute(
            select(
                _as_text(Alert.device_id), func.count(), func.max(_severity_rank(Alert.severity))
            )
            .where(Alert.reseller_id == scope.reseller_id, Alert.cleared_at.is_(None))
            .group_by(Alert.device_id)
        )
    }
    alert_bit = NEED_BIT[Need.ALERTS]
    rows = []
    for device, status_at, needs, customer_id, site_id, model, serial in found:
        n, worst = alerts.get(device, (0, 0))
        rows.append(
            _Row(
                device,
                status_at,
                needs | (alert_bit if worst >= ALERT_NEEDS_RANK else 0),
                n,
                worst,
                customer_id,
                customers.get(customer_id, ""),
                site_id,
                sites.get(site_id) if site_id is not None else None,
                model,
                serial,
            )
        )
    # Sorted here, not in SQL: PostgreSQL's locale-aware sort of 10,000 names took twice as
    # long as the rest of the query, and SQLite would order by bytes ("a" after "Z").
    rows.sort(key=_Row.order)
    return rows


def _severity_rank(column: Any) -> Any:
    return case(*((column == name, rank) for name, rank in SEVERITY_RANK.items()), else_=1)


def filter_options(
    session: Session, *, scope: TenantScope, customer_id: uuid.UUID | None = None
) -> tuple[list[Option], list[Option]]:
    """The scope's customers, and the sites of ``customer_id`` (all sites if None)."""
    customers = select(Customer.id, Customer.name).where(Customer.reseller_id == scope.reseller_id)
    sites = select(Site.id, Site.name).where(Site.reseller_id == scope.reseller_id)
    if scope.customer_id is not None:
        customers = customers.where(Customer.id == scope.customer_id)
        sites = sites.where(Site.customer_id == scope.customer_id)
    if customer_id is not None:
        sites = sites.where(Site.customer_id == customer_id)
    return (
        [Option(i, n) for i, n in session.execute(customers.order_by(Customer.name))],
        [Option(i, n) for i, n in session.execute(sites.order_by(Site.name))],
    )


def _fleet_size(session: Session, scope: TenantScope) -> int:
    stmt = select(func.count()).select_from(Device).where(Device.reseller_id == scope.reseller_id)
    if scope.customer_id is not None:
        stmt = stmt.where(Device.customer_id == scope.customer_id)
    return session.scalar(stmt) or 0


def scoped_devices(scope: TenantScope) -> Select[Device]:
    """``SELECT device`` of the scope: the reseller's, or only its customer's."""
    stmt = queries.tenant_select(Device, reseller_id=scope.reseller_id)
    if scope.customer_id is not None:
        stmt = stmt.where(Device.customer_id == scope.customer_id)
    return stmt


def resolve_devices(session: Session, *, scope: TenantScope, device: str) -> list[uuid.UUID]:
    """The scope's devices that ``device`` names: by id, else by exact serial number."""
    stmt = scoped_devices(scope).with_only_columns(Device.id)
    try:
        return list(session.scalars(stmt.where(Device.id == uuid.UUID(device))))
    except ValueError:
        return list(session.scalars(stmt.where(Device.serial_number == device)))


def device_conditions(
    session: Session,
    *,
    scope: TenantScope,
    device_id: Any,
    device: str | None,
    customer_id: uuid.UUID | None,
) -> list[Any] | None:
    """Conditions on a ``device_id`` column for a device and a customer filter, inside the
    scope; None when they can match nothing (so the caller skips the query).

    A customer becomes ``device_id IN (SELECT id FROM devices WHERE customer_id = …)``: the
    caller's query keeps walking its own time index and only checks membership.
    """
    conditions: list[Any] = []
    if device:
        ids = resolve_devices(session, scope=scope, device=device)
        if not ids:
            return None
        conditions.append(device_id.in_(ids))
    if scope.customer_id is not None:
        if customer_id is not None and customer_id != scope.customer_id:
            return None
        customer_id = scope.customer_id
    if customer_id is not None:
        conditions.append(
            device_id.in_(
                select(Device.id)
                .where(Device.reseller_id == scope.reseller_id, Device.customer_id == customer_id)
                .scalar_subquery()
            )
        )
    return conditions


def _summaries(
    session: Session,
    *,
    scope: TenantScope,
    rows: Sequence[_Row],
    needs: Mapping[str, int],
    now: datetime,
) -> list[DeviceSummary]:
    """Full summaries of the devices shown, in the order given: a handful of IN queries."""
    if not rows:
        return []
    ids = [uuid.UUID(r.id) for r in rows]
    devices = {d.id: d for d in session.scalars(scoped_devices(scope).where(Device.id.in_(ids)))}
    counters = latest_counters(
        session, reseller_id=scope.reseller_id, device_ids=ids, meters=OVERVIEW_METERS
    )
    alerts = open_alerts(session, reseller_id=scope.reseller_id, device_ids=ids)
    out = []
    for r, device_id in zip(rows, ids, strict=True):
        device = devices[device_id]
        meters = {k: v.value for k, v in counters.get(device_id, {}).items()}
        summary = summarise(
            device,
            customer=r.customer,
            site=r.site,
            meters=meters,
            # The device's own lifetime count: counting stored jobs would read every job
            # of the page's devices on each view.
            jobs=meters.get("jobs"),
            open_alerts=r.open_alerts,
        )
        summary.reasons.extend(
            reasons(needs[r.id], summary, alerts.get(device_id, []), r.open_alerts, now)
        )
        out.append(summary)
    return out


def reasons(
    mask: int, summary: DeviceSummary, alerts: Sequence[Alert], open_count: int, now: datetime
) -> list[Reason]:
    """What ``mask``'s needs are, in words, with the details the summary holds.

    ``alerts`` are the device's open alerts, worst and newest first.
    """
    out: list[Reason] = []
    device = summary.device
    if mask & NEED_BIT[Need.ALERTS] and alerts:
        worst = alerts[0]
        more = f" (+{open_count - 1} more)" if open_count > 1 else ""
        out.append(Reason(Need.ALERTS, f"{worst.code}: {worst.text}{more}", worst.severity))
    if mask & NEED_BIT[Need.ERROR]:
        out.append(Reason(Need.ERROR, "engine in error state", "error"))
    if mask & NEED_BIT[Need.OFFLINE]:
        if summary.engine_state == "offline":
            text = "offline"
        elif device.last_seen_at is None:
            text = "never reported"
        else:
            text = f"no contact for {_ago(now - device.last_seen_at)}"
        out.append(Reason(Need.OFFLINE, text, "error"))
    today = now.date()
    if mask & NEED_BIT[Need.PRINTHEAD]:
        for head in summary.printheads:
            if printhead_needs_attention(_supply_dict(head, "health_percent"), today):
                out.append(
                    Reason(
                        Need.PRINTHEAD, f"printhead {head.label}: {_supply_state(head)}", "warning"
                    )
                )
    if mask & NEED_BIT[Need.LOW_INK]:
        for cartridge in summary.cartridges:
            if cartridge_needs_attention(_supply_dict(cartridge, "level_percent"), today):
                out.append(
                    Reason(
                        Need.LOW_INK,
                        f"ink {cartridge.label}: {_supply_state(cartridge)}",
                        "warning",
                    )
                )
    return out


def _supply_dict(supply: Supply, percent_key: str) -> dict[str, Any]:
    return {
        "status": supply.status,
        percent_key: supply.percent,
        "expires_on": supply.expires_on.isoformat() if supply.expires_on else None,
    }


def _supply_state(supply: Supply) -> str:
    parts = []
    if supply.percent is not None:
        parts.append(f"{supply.percent} %")
    if supply.expired:
        parts.append(f"expired {supply.expires_on}")
    elif supply.status not in ("ok", "unknown") or not parts:
        parts.append(supply.status.replace("_", " "))
    return ", ".join(parts)


def _ago(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    if hours < 48:
        return f"{hours:.0f} h"
    return f"{hours / 24:.0f} days"


# --------------------------------------------------------------------------- shared reads


def open_alerts(
    session: Session, *, reseller_id: uuid.UUID, device_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Alert]]:
    """Open alerts of the given devices, worst and newest first."""
    stmt = (
        queries.tenant_select(Alert, reseller_id=reseller_id)
        .where(Alert.cleared_at.is_(None), Alert.device_id.in_(list(device_ids)))
        .order_by(_severity_rank(Alert.severity).desc(), Alert.first_seen.desc(), Alert.id)
    )
    out: dict[uuid.UUID, list[Alert]] = {}
    for alert in session.scalars(stmt):
        out.setdefault(alert.device_id, []).append(alert)
    return out


def latest_counters(
    session: Session,
    *,
    reseller_id: uuid.UUID,
    device_ids: Sequence[uuid.UUID],
    meters: Iterable[str],
) -> dict[uuid.UUID, dict[str, queries.MeterValue]]:
    """The newest reading of each of ``meters`` for the given devices.

    Readings pile up (one per meter every 3 h, for years), so this never scans a device's
    history: per device and meter, ``max(read_at)`` is one seek in the primary key
    (reseller_id, device_id, meter, read_at) and the value a second one.
    """
    if not device_ids:
        return {}
    selects = []
    earlier = aliased(CounterReading)
    for meter in meters:
        newest = (
            select(func.max(earlier.read_at))
            .where(
                earlier.reseller_id == reseller_id,
                earlier.device_id == Device.id,
                earlier.meter == meter,
            )
            .correlate(Device)
            .scalar_subquery()
        )
        selects.append(
            select(
                CounterReading.device_id,
                CounterReading.meter,
                CounterReading.value,
                CounterReading.read_at,
            )
            .select_from(Device)
            .join(
                CounterReading,
                and_(
                    CounterReading.reseller_id == reseller_id,
                    CounterReading.device_id == Device.id,
                    CounterReading.meter == meter,
                    CounterReading.read_at == newest,
                ),
            )
            .where(Device.reseller_id == reseller_id, Device.id.in_(list(device_ids)))
        )
    out: dict[uuid.UUID, dict[str, queries.MeterValue]] = {}
    if not selects:
        return out
    for dev, meter, value, read_at in session.execute(union_all(*selects)):
        out.setdefault(dev, {})[meter] = queries.MeterValue(value=value, read_at=read_at)
    return out


def meter_names(session: Session, *, reseller_id: uuid.UUID, device_id: uuid.UUID) -> list[str]:
    """Every meter a device has readings of, by a loose index scan: one seek per name
    (a recursive "next name after this one"), not a pass over all its readings."""
    key = (CounterReading.reseller_id == reseller_id, CounterReading.device_id == device_id)
    names = (
        select(func.min(CounterReading.meter).label("meter"))
        .where(*key)
        .cte("meter_names", recursive=True)
    )
    following = (
        select(func.min(CounterReading.meter))
        .where(*key, CounterReading.meter > names.c.meter)
        .scalar_subquery()
    )
    names = names.union_all(select(following).where(names.c.meter.is_not(None)))
    stmt = select(names.c.meter).where(names.c.meter.is_not(None))
    return [name for name in session.scalars(stmt)]


def job_counts(
    session: Session, *, reseller_id: uuid.UUID, device_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Jobs stored per device, for the devices given only (never the whole fleet's jobs)."""
    if not device_ids:
        return {}
    stmt = (
        select(JobRecord.device_id, func.count())
        .where(JobRecord.reseller_id == reseller_id, JobRecord.device_id.in_(list(device_ids)))
        .group_by(JobRecord.device_id)
    )
    return {device_id: count for device_id, count in session.execute(stmt)}


def summarise(
    device: Device,
    *,
    customer: str,
    meters: Mapping[str, int],
    jobs: int | None,
    site: str | None = None,
    open_alerts: int = 0,
) -> DeviceSummary:
    """A device with its supplies read from its status snapshot and its usage totals."""
    status = device.status or {}
    ink = meters.get("total_ink_ul")
    area = meters.get("total_media_area_mm2")
    return DeviceSummary(
        device=device,
        customer=customer,
        site=site,
        engine_state=device.engine_state or "unknown",
        cartridges=[
            Supply(
                label=str(c.get("color", "?")),
                status=str(c.get("status", "unknown")),
                percent=_percent(c.get("level_percent")),
                product_number=_text(c.get("product_number")),
                serial_number=_text(c.get("serial_number")),
                non_vendor=c.get("non_vendor") is True,
                expires_on=_date(c.get("expires_on")),
                installed_on=_date(c.get("installed_on")),
                capacity_ul=_count(c.get("capacity_ul")),
                consumed_ul=_count(c.get("ink_consumed_ul")),
                non_vendor_consumed_ul=_count(c.get("non_vendor_ink_consumed_ul")),
            )
            for c in _dicts(status.get("cartridges"))
        ],
        printheads=[
            Supply(
                label="/".join(str(x) for x in p.get("colors", [])) or f"slot {p.get('slot', '?')}",
                status=str(p.get("status", "unknown")),
                percent=_percent(p.get("health_percent")),
                product_number=_text(p.get("product_number")),
                serial_number=_text(p.get("serial_number")),
                non_vendor=p.get("non_vendor_ink") is True,
                expires_on=_date(p.get("expires_on")),
                installed_on=_date(p.get("installed_on")),
            )
            for p in _dicts(status.get("printheads"))
        ],
        impressions=meters.get("impressions"),
        total_ink_ml=ink / 1000 if ink is not None else None,  # µL → mL
        media_area_m2=area / 1_000_000 if area is not None else None,  # mm² → m²
        jobs=jobs,
        open_alerts=open_alerts,
    )


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _percent(value: object) -> int | None:
    return value if isinstance(value, int) and 0 <= value <= 100 else None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and value >= 0 else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _date(value: object) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None
