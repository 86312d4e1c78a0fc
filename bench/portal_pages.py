"""Time the portal's pages with 10,000 devices and a million jobs in one tenant, against raw SQL.

Run from the repository root (docs/performance.md, "Portal pages (issue 6)", has the results)::

    .venv/bin/python -m bench.portal_pages                             # 10,000 devices, 1M jobs
    .venv/bin/python -m bench.portal_pages --devices 500 --jobs 20000  # quick mode, ~20 s

For each backend (SQLite in a temporary file; PostgreSQL at ``--postgres-url`` when it
answers, in a schema of its own that is dropped afterwards):

1. migrate, create the tenant and its admin through the portal's own services, then bulk
   insert the fleet: customers and sites, devices with realistic status snapshots (~2 KB of
   JSON each), daily counter readings, jobs spread over 90 days with submitter fields, open
   and cleared alerts; plus a second, smaller tenant whose rows interleave with the first's
   (so every query's tenant filter has something to skip);
2. log in through the login form and time each page through the real app in-process (ASGI:
   routing, session, ORM, templates; no network), median of ``--repeat`` runs after a warm-up;
3. time a hand-written SQL baseline for each page on a raw DB-API connection: the queries a
   minimal implementation needs for the rows the page shows (named in the table), fetched,
   not rendered.

Reported per page: median ms of the page, of its baseline, and their ratio; also the fleet
page with a cold supply-verdict cache (the first view after a portal process starts) and,
for contrast, the deep jobs page done with OFFSET. ``--extra-indexes`` adds the indexes
the results suggest (see ``EXTRA_INDEXES``) and runs again. A table goes to stdout, the JSON
to ``bench/results/`` (not kept in git).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine, make_url

from fleetmeter.portal.app import create_app
from fleetmeter.portal.services import fleet, tenancy
from fleetmeter.portal.settings import PortalSettings
from fleetmeter.portal.store.db import make_engine, make_session_factory
from fleetmeter.portal.store.migrate import upgrade
from fleetmeter.portal.store.models import (
    Alert,
    CounterReading,
    Customer,
    Device,
    JobRecord,
    Site,
)

RESULTS_DIR = Path(__file__).parent / "results"
POSTGRES_URL = os.environ.get(
    "FLEETMETER_BENCH_POSTGRES_URL",
    os.environ.get(
        "FLEETMETER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
)
PASSWORD = "bench password 0123"
CHUNK = 5000
DEEP_FRACTION = 0.9  # the deep jobs page starts this far into the tenant's jobs
COLOURS = ("C", "M", "Y", "K", "MK", "PK", "G", "LC", "LM")
STATES = ("idle",) * 17 + ("printing", "printing", "sleep", "error", "offline")
SEVERITIES = ("info", "warning", "warning", "error", "critical")
CATEGORIES = ("cad", "gis", "poster", "office", "photo", "render")
# What the results suggest; created only with --extra-indexes (the schema is the models').
EXTRA_INDEXES = (
    "CREATE INDEX ix_bench_jobs_user ON job_records (reseller_id, submitter_user, completed_at)",
    "CREATE INDEX ix_bench_jobs_account "
    "ON job_records (reseller_id, submitter_account, completed_at)",
    "CREATE INDEX ix_bench_alerts_first_seen ON alerts (reseller_id, first_seen)",
)


@dataclass(frozen=True)
class Shape:
    devices: int
    jobs: int
    customers: int
    sites_per_customer: int
    readings_days: int
    seed: int


@dataclass
class Tenant:
    reseller_id: uuid.UUID
    email: str
    customer_ids: list[uuid.UUID] = field(default_factory=list)
    device_ids: list[uuid.UUID] = field(default_factory=list)
    users: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- data


def _status(rng: random.Random, state: str) -> dict[str, Any]:
    """A status snapshot shaped like a DesignJet's (wire DeviceStatus as JSON), ~2 KB."""
    colours = rng.sample(COLOURS, rng.choice((4, 5, 6)))
    # Mostly full: a real fleet has a few low cartridges, not half of them.
    cartridges = []
    for slot, colour in enumerate(colours):
        level = int(100 * rng.random() ** 0.5)
        status = "ok" if level >= 15 else ("low" if level >= 5 else "very_low")
        cartridges.append(
            {
                "slot": slot,
                "color": colour,
                "status": status,
                "level_percent": level,
                "product_number": f"P2V{60 + slot}A",
                "serial_number": f"CN{rng.randrange(10**8):08d}",
                "manufacturer": "HP",
                "capacity_ul": 130000,
                "ink_consumed_ul": 1300 * (100 - level),
                "non_vendor": rng.random() < 0.01,
                "installed_on": "2026-06-01",
                "expires_on": "2028-01-31",
            }
        )
    heads = []
    for slot in range(rng.choice((2, 3, 4))):
        health = int(100 * rng.random() ** 0.3)
        heads.append(
            {
                "slot": slot,
                "colors": colours[slot % len(colours) : slot % len(colours) + 2],
                "status": "ok" if health >= 30 else "low",
                "health_percent": health,
                "product_number": "3ED58A",
                "serial_number": f"PH{rng.randrange(10**8):08d}",
                "non_vendor_ink": False,
            }
        )
    return {
        "engine_state": state,
        "state_reasons": [] if state != "error" else ["media-jam"],
        "printheads": heads,
        "cartridges": cartridges,
        "media_sources": [
            {"name": "roll1", "state": "ready", "media_type": "bond", "width_mm": 914},
            {"name": "roll2", "state": "ready", "media_type": "coated", "width_mm": 610},
        ],
        "supported_media": [
            {"id": f"media{i}", "names": {"en": f"Media {i}", "de": f"Medium {i}"}}
            for i in range(8)
        ],
        "accessories": [{"name": "stacker", "status": "ok"}],
    }


def _tenant(session_factory: Any, name: str) -> Tenant:
    email = f"admin@{name.lower().replace(' ', '-')}.example"
    with session_factory() as session:
        ids = tenancy.create_tenant(
            session,
            reseller_name=name,
            customer_name=f"{name} customer 000",
            admin_email=email,
            admin_password=PASSWORD,
        )
        session.commit()
    return Tenant(reseller_id=ids.reseller_id, email=email, customer_ids=[ids.customer_id])


def load(engine: Engine, tenant: Tenant, shape: Shape, now: datetime) -> dict[str, float]:
    """Bulk-insert ``shape`` for ``tenant``; returns seconds per table."""
    rng = random.Random(shape.seed)
    timings: dict[str, float] = {}
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        started = time.perf_counter()
        customers = [
            {
                "id": uuid.uuid4(),
                "reseller_id": tenant.reseller_id,
                "name": f"Customer {i:03d} {rng.choice(('GmbH', 'Ltd', 'SA', 'BV'))}",
                "created_at": now,
            }
            for i in range(1, shape.customers)
        ]
        _insert(conn, Customer, customers, pg)
        tenant.customer_ids += [c["id"] for c in customers]
        sites = [
            {
                "id": uuid.uuid4(),
                "reseller_id": tenant.reseller_id,
                "customer_id": customer_id,
                "name": f"Site {j + 1}",
            }
            for customer_id in tenant.customer_ids
            for j in range(shape.sites_per_customer)
        ]
        _insert(conn, Site, sites, pg)
        site_of: dict[uuid.UUID, list[uuid.UUID]] = {}
        for s in sites:
            site_of.setdefault(s["customer_id"], []).append(s["id"])
        devices = []
        for i in range(shape.devices):
            customer_id = tenant.customer_ids[i % len(tenant.customer_ids)]
            state = rng.choice(STATES)
            silent = rng.random() < 0.02
            seen = now - (timedelta(hours=rng.uniform(7, 72)) if silent else timedelta(minutes=5))
            devices.append(
                {
                    "id": uuid.uuid4(),
                    "reseller_id": tenant.reseller_id,
                    "customer_id": customer_id,
                    "site_id": rng.choice(site_of[customer_id]) if rng.random() < 0.9 else None,
                    "vendor": "HP",
                    "serial_number": f"{tenant.reseller_id.hex[:4].upper()}{i:07d}",
                    "model": rng.choice(("DesignJet T830", "DesignJet Z9+", "PageWide XL 5200")),
                    "product_number": "F9A30A",
                    "firmware": "2025.11.1",
                    "driver": "ledm",
                    "device_class": "printer",
                    "address": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
                    "first_seen_at": now - timedelta(days=120),
                    "last_seen_at": seen,
                    "engine_state": state,
                    "status": _status(rng, state),
                    "status_at": seen,
                }
            )
        _insert(conn, Device, devices, pg)
        tenant.device_ids = [d["id"] for d in devices]
        timings["devices"] = time.perf_counter() - started

        started = time.perf_counter()
        _insert_chunks(conn, CounterReading, _readings(tenant, shape, now, rng), pg)
        timings["counter_readings"] = time.perf_counter() - started

        started = time.perf_counter()
        tenant.users = [f"user{u:04d}" for u in range(500)]
        _insert_chunks(conn, JobRecord, _jobs(tenant, shape, now, rng), pg)
        timings["job_records"] = time.perf_counter() - started

        started = time.perf_counter()
        _insert_chunks(conn, Alert, _alerts(tenant, now, rng), pg)
        timings["alerts"] = time.perf_counter() - started
    return timings


def _readings(
    tenant: Tenant, shape: Shape, now: datetime, rng: random.Random
) -> Iterator[dict[str, Any]]:
    for device_id in tenant.device_ids:
        pages, ink, area = rng.randrange(10**5), rng.randrange(10**7), rng.randrange(10**9)
        for day in range(shape.readings_days, 0, -1):
            at = now - timedelta(days=day, minutes=rng.randrange(60))
            pages += rng.randrange(200)
            ink += rng.randrange(20_000)
            area += rng.randrange(30_000_000)
            for meter, value in (
                ("impressions", pages),
                ("total_ink_ul", ink),
                ("total_media_area_mm2", area),
            ):
                yield {
                    "reseller_id": tenant.reseller_id,
                    "device_id": device_id,
                    "meter": meter,
                    "read_at": at,
                    "value": value,
                }


def _jobs(
    tenant: Tenant, shape: Shape, now: datetime, rng: random.Random
) -> Iterator[dict[str, Any]]:
    batch_id = uuid.uuid4()
    sequence = dict.fromkeys(tenant.device_ids, 0)
    span = 90 * 86400
    accounts = [f"ACC-{a:03d}" for a in range(50)]
    projects = [f"P-{p:04d}" for p in range(200)]
    for n in range(shape.jobs):
        device_id = rng.choice(tenant.device_ids)
        sequence[device_id] += 1
        pages = rng.randint(1, 12)
        area = pages * rng.choice((594 * 841, 841 * 1189, 420 * 594, 210 * 297))
        ink = {"C": rng.randrange(2000), "K": rng.randrange(2000)}
        if n % 50_000 == 0:
            batch_id = uuid.uuid4()
        yield {
            "id": uuid.uuid4(),
            "reseller_id": tenant.reseller_id,
            "device_id": device_id,
            "batch_id": batch_id,
            "job_uuid": uuid.uuid4(),
            "sequence_number": sequence[device_id],
            "kind": "print" if rng.random() < 0.95 else "copy",
            "name": f"Drawing {n}.pdf",
            "status": "completed" if rng.random() < 0.97 else "cancelled",
            "source": "network",
            "submitter_project": rng.choice(projects),
            "submitter_application": "AutoCAD",
            "submitter_account": rng.choice(accounts),
            "submitter_user": rng.choice(tenant.users),
            "submitter_user_defined": None,
            "submitted_at": None,
            "completed_at": now - timedelta(seconds=rng.randrange(span)),
            "print_time_s": rng.randrange(30, 900),
            "duration_s": rng.randrange(40, 1200),
            "coverage_category": None,
            "application_category": rng.choice(CATEGORIES),
            "print_quality": "normal",
            "pages": pages,
            "copies": 1,
            "media_type": "bond",
            "media_width_mm": 914,
            "media_length_mm": area // 914,
            "media_area_mm2": area,
            "printed_area_mm2": area * 8 // 10,
            "scan_area_mm2": 0,
            "ink_ul": ink,
            "total_ink_ul": sum(ink.values()),
            "pixel_coverage_ppm": {},
            "category_usage": [],
            "extra": None,
            "received_at": now,
        }


def _alerts(tenant: Tenant, now: datetime, rng: random.Random) -> Iterator[dict[str, Any]]:
    for device_id in tenant.device_ids:
        for _ in range(rng.randrange(9)):  # history: cleared, ~4 per device
            first = now - timedelta(seconds=rng.randrange(90 * 86400))
            yield _alert(tenant, device_id, rng, first, first + timedelta(hours=rng.uniform(0, 9)))
        if rng.random() < 0.04:
            yield _alert(tenant, device_id, rng, now - timedelta(minutes=rng.randrange(600)), None)


def _alert(
    tenant: Tenant,
    device_id: uuid.UUID,
    rng: random.Random,
    first: datetime,
    cleared: datetime | None,
) -> dict[str, Any]:
    code = rng.choice(("paper_jam", "door_open", "ink_low", "printhead_temp", "media_out"))
    return {
        "id": uuid.uuid4(),
        "reseller_id": tenant.reseller_id,
        "device_id": device_id,
        "code": code,
        "severity": rng.choice(SEVERITIES),
        "text": f"{code.replace('_', ' ')} reported by the device",
        "component": None,
        "first_seen": first,
        "cleared_at": cleared,
    }


def _insert_chunks(
    conn: sa.Connection, model: Any, rows: Iterator[dict[str, Any]], pg: bool
) -> None:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            _insert(conn, model, chunk, pg)
            chunk = []
    if chunk:
        _insert(conn, model, chunk, pg)


def _insert(conn: sa.Connection, model: Any, rows: Sequence[dict[str, Any]], pg: bool) -> None:
    if not rows:
        return
    table: sa.Table = model.__table__
    if not pg:
        # executemany of one prepared INSERT: SQLite's fastest path without bypassing the
        # column types (timestamps and UUIDs must be stored exactly as the portal stores them).
        conn.execute(table.insert(), list(rows))
        return
    from psycopg.types.json import Json

    columns = list(rows[0])
    json_columns = {c.name for c in table.columns if isinstance(c.type, sa.JSON)}
    raw = conn.connection.driver_connection
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(
                [
                    Json(row[c]) if c in json_columns and row[c] is not None else row[c]
                    for c in columns
                ]
            )


# --------------------------------------------------------------------------- timing


@dataclass
class Timing:
    page: str
    path: str
    page_ms: float  # median
    baseline: str
    baseline_ms: float  # median
    rows: int
    page_min_ms: float = 0.0  # the fastest run: the least disturbed by other work
    baseline_min_ms: float = 0.0

    @property
    def ratio(self) -> float:
        return self.page_ms / self.baseline_ms if self.baseline_ms else float("nan")


def _runs_ms(action: Callable[[], object], repeat: int) -> list[float]:
    action()  # warm-up: plans, caches, the page's templates
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _median_ms(action: Callable[[], object], repeat: int) -> float:
    return statistics.median(_runs_ms(action, repeat))


class RawSQL:
    """Hand-written SQL on the engine's raw DB-API connection (the baseline)."""

    def __init__(self, engine: Engine) -> None:
        self.pg = engine.dialect.name == "postgresql"
        self.connection = engine.raw_connection()

    def value(self, v: Any) -> Any:
        # Stored forms: SQLite keeps UUIDs as 32 hex digits and times as naive UTC text.
        if isinstance(v, uuid.UUID):
            return v if self.pg else v.hex
        if isinstance(v, datetime):
            return v if self.pg else v.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
        return v

    def run(self, sql: str, **params: Any) -> list[Any]:
        if self.pg:
            sql = re.sub(r":(\w+)", r"%(\1)s", sql)
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, {k: self.value(v) for k, v in params.items()})
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def close(self) -> None:
        self.connection.close()


def _login(client: TestClient, email: str) -> None:
    page = client.get("/login")
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, "no CSRF token on the login page"
    response = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf": match.group(1)},
        follow_redirects=False,
    )
    if response.status_code != 303:
        raise RuntimeError(f"login failed: {response.status_code} {response.text[:200]}")


def time_pages(
    engine: Engine, url: str, tenant: Tenant, data_dir: Path, repeat: int, now: datetime
) -> list[Timing]:
    raw = RawSQL(engine)
    app = create_app(PortalSettings(database_url=url, data_dir=data_dir))
    results: list[Timing] = []
    r = tenant.reseller_id
    with TestClient(app) as client:
        _login(client, tenant.email)

        def page(path: str) -> Callable[[], object]:
            def get() -> object:
                response = client.get(path)
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
                return response

            return get

        def add(
            name: str, path: str, baseline: str, sql: Sequence[tuple[str, dict[str, Any]]]
        ) -> None:
            page_runs = _runs_ms(page(path), repeat)
            rows = 0

            def run_sql() -> None:
                nonlocal rows
                rows = sum(len(raw.run(q, **p)) for q, p in sql)

            sql_runs = _runs_ms(run_sql, repeat)
            results.append(
                Timing(
                    name,
                    path,
                    statistics.median(page_runs),
                    baseline,
                    statistics.median(sql_runs),
                    rows,
                    min(page_runs),
                    min(sql_runs),
                )
            )

        fleet_sql = (
            "SELECT d.*, c.name, s.name FROM devices d JOIN customers c ON c.id = d.customer_id "
            "LEFT JOIN sites s ON s.id = d.site_id WHERE d.reseller_id = :r "
            "ORDER BY c.name, s.name, d.model, d.serial_number LIMIT 100"
        )
        # The cold view first: the verdict cache is empty in a new process.
        fleet.SUPPLY_VERDICTS.clear()
        started = time.perf_counter()
        page("/fleet")()
        cold_ms = (time.perf_counter() - started) * 1000
        add(
            "fleet, first page (100 of all devices)",
            "/fleet",
            "100 devices + customer + site",
            [(fleet_sql, {"r": r})],
        )
        results.append(
            Timing(
                "fleet, first view of a new process (cold cache)",
                "/fleet",
                cold_ms,
                "same",
                results[-1].baseline_ms,
                results[-1].rows,
                cold_ms,
                results[-1].baseline_min_ms,
            )
        )
        add(
            "fleet, needs attention (any)",
            "/fleet?attention=any",
            "open alerts, error/offline state, silent devices",
            [
                (
                    "SELECT d.* FROM devices d WHERE d.reseller_id = :r AND (d.engine_state IN "
                    "('error', 'offline') OR d.last_seen_at < :stale OR d.id IN (SELECT device_id "
                    "FROM alerts WHERE reseller_id = :r AND cleared_at IS NULL)) LIMIT 100",
                    {"r": r, "stale": now - timedelta(hours=6)},
                )
            ],
        )
        serial_part = f"{r.hex[:4].upper()}00012"
        add(
            "fleet, search (serial contains)",
            f"/fleet?q={serial_part}",
            "LIKE on serial/model/address",
            [
                (
                    "SELECT d.* FROM devices d WHERE d.reseller_id = :r AND (d.serial_number LIKE "
                    ":q OR d.model LIKE :q OR d.address LIKE :q) LIMIT 100",
                    {"r": r, "q": f"%{serial_part}%"},
                )
            ],
        )
        device_id = tenant.device_ids[len(tenant.device_ids) // 2]
        since = now - timedelta(days=90)
        add(
            "device page",
            f"/devices/{device_id}",
            "device, 20 jobs, 50 alerts, latest counters, 90 days of 3 meters",
            [
                (
                    "SELECT * FROM devices WHERE reseller_id = :r AND id = :d",
                    {"r": r, "d": device_id},
                ),
                (
                    "SELECT * FROM job_records WHERE reseller_id = :r AND device_id = :d "
                    "ORDER BY completed_at DESC LIMIT 20",
                    {"r": r, "d": device_id},
                ),
                (
                    "SELECT * FROM alerts WHERE reseller_id = :r AND device_id = :d "
                    "ORDER BY first_seen DESC LIMIT 50",
                    {"r": r, "d": device_id},
                ),
                (
                    "SELECT meter, max(read_at) FROM counter_readings WHERE reseller_id = :r "
                    "AND device_id = :d GROUP BY meter",
                    {"r": r, "d": device_id},
                ),
                (
                    "SELECT meter, read_at, value FROM counter_readings WHERE reseller_id = :r "
                    "AND device_id = :d AND meter IN ('impressions', 'total_ink_ul', "
                    "'total_media_area_mm2') AND read_at >= :since ORDER BY meter, read_at",
                    {"r": r, "d": device_id, "since": since},
                ),
            ],
        )
        jobs_sql = (
            "SELECT * FROM job_records WHERE reseller_id = :r {extra} "
            "ORDER BY completed_at DESC, id DESC LIMIT 51"
        )
        add(
            "jobs, first page (50)",
            "/jobs",
            "51 newest jobs",
            [(jobs_sql.format(extra=""), {"r": r})],
        )
        count = len(raw.run("SELECT 1 FROM job_records WHERE reseller_id = :r", r=r))
        deep = raw.run(
            "SELECT completed_at, id FROM job_records WHERE reseller_id = :r "
            "ORDER BY completed_at DESC, id DESC LIMIT 1 OFFSET :n",
            r=r,
            n=int(count * DEEP_FRACTION),
        )[0]
        at = deep[0] if isinstance(deep[0], datetime) else datetime.fromisoformat(deep[0])
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
        ident = deep[1] if isinstance(deep[1], uuid.UUID) else uuid.UUID(hex=deep[1])
        cursor = fleet_cursor(at, ident)
        add(
            f"jobs, deep page (keyset, row {int(count * DEEP_FRACTION):,})",
            f"/jobs?before={cursor}",
            "same query from the cursor",
            [
                (
                    jobs_sql.format(
                        extra="AND completed_at <= :at AND (completed_at < :at OR id < :id)"
                    ),
                    {"r": r, "at": at, "id": ident},
                )
            ],
        )
        offset_runs = _runs_ms(
            lambda: raw.run(
                "SELECT * FROM job_records WHERE reseller_id = :r "
                "ORDER BY completed_at DESC, id DESC LIMIT 51 OFFSET :n",
                r=r,
                n=int(count * DEEP_FRACTION),
            ),
            max(1, repeat // 2),
        )
        results.append(
            Timing(
                "(contrast) the deep page by OFFSET, raw SQL",
                "-",
                statistics.median(offset_runs),
                "keyset raw SQL above",
                results[-1].baseline_ms,
                51,
                min(offset_runs),
                results[-1].baseline_min_ms,
            )
        )
        customer = tenant.customer_ids[len(tenant.customer_ids) // 2]
        add(
            "jobs, one customer",
            f"/jobs?customer={customer}",
            "51 newest jobs of its devices",
            [
                (
                    jobs_sql.format(
                        extra="AND device_id IN (SELECT id FROM devices WHERE reseller_id = :r "
                        "AND customer_id = :c)"
                    ),
                    {"r": r, "c": customer},
                )
            ],
        )
        user = tenant.users[7]
        add(
            "jobs, one user (exact)",
            f"/jobs?user={user}",
            "51 newest jobs of the user",
            [(jobs_sql.format(extra="AND submitter_user = :u"), {"r": r, "u": user})],
        )
        day = (now - timedelta(days=3)).date()
        add(
            "jobs, one day + category",
            f"/jobs?from={day}&to={day}&category=cad",
            "51 newest jobs of the day and category",
            [
                (
                    jobs_sql.format(
                        extra="AND completed_at >= :a AND completed_at < :b "
                        "AND application_category = 'cad'"
                    ),
                    {
                        "r": r,
                        "a": datetime(day.year, day.month, day.day, tzinfo=UTC),
                        "b": datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1),
                    },
                )
            ],
        )
        alerts_sql = (
            "SELECT * FROM alerts WHERE reseller_id = :r {extra} "
            "ORDER BY first_seen DESC, id DESC LIMIT 51"
        )
        add(
            "alerts, open",
            "/alerts",
            "51 newest open alerts + count by severity",
            [
                (alerts_sql.format(extra="AND cleared_at IS NULL"), {"r": r}),
                (
                    "SELECT severity, count(*) FROM alerts WHERE reseller_id = :r "
                    "AND cleared_at IS NULL GROUP BY severity",
                    {"r": r},
                ),
            ],
        )
        add(
            "alerts, all (open and cleared)",
            "/alerts?state=all",
            "51 newest alerts + count by severity",
            [
                (alerts_sql.format(extra=""), {"r": r}),
                (
                    "SELECT severity, count(*) FROM alerts WHERE reseller_id = :r "
                    "AND cleared_at IS NULL GROUP BY severity",
                    {"r": r},
                ),
            ],
        )
        # The export of one day of the whole tenant: rows per second through the stream,
        # after a small export has warmed up its statements.
        client.get(f"/jobs.csv?from={day}&to={day}&category=none")
        started = time.perf_counter()
        response = client.get(f"/jobs.csv?from={day}&to={day}")
        export_s = time.perf_counter() - started
        exported = response.text.count("\n") - 1
        export_sql_ms = _median_ms(
            lambda: raw.run(
                "SELECT * FROM job_records WHERE reseller_id = :r AND completed_at >= :a "
                "AND completed_at < :b ORDER BY completed_at DESC, id DESC",
                r=r,
                a=datetime(day.year, day.month, day.day, tzinfo=UTC),
                b=datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1),
            ),
            1,
        )
        results.append(
            Timing(
                f"jobs CSV export, one day ({exported:,} rows)",
                f"/jobs.csv?from={day}&to={day}",
                export_s * 1000,
                "same rows by raw SQL",
                export_sql_ms,
                exported,
                export_s * 1000,
                export_sql_ms,
            )
        )
    raw.close()
    return results


def fleet_cursor(at: datetime, ident: uuid.UUID) -> str:
    from fleetmeter.portal.services.paging import Cursor

    return Cursor(at, ident).encode()


# --------------------------------------------------------------------------- backends


def _postgres_schema(admin_url: str) -> tuple[str, Callable[[], None]] | None:
    admin = sa.create_engine(admin_url, connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        print(f"PostgreSQL not reachable ({str(exc.orig).strip().splitlines()[0]}): skipped")
        return None
    schema = f"fm_bench_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(admin_url).update_query_dict({"options": f"-csearch_path={schema}"})

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return url.render_as_string(hide_password=False), drop


def run_backend(
    name: str, url: str, shape: Shape, repeat: int, work: Path, extra_indexes: bool
) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    main = _tenant(factory, "Bench Reseller")
    other = _tenant(factory, "Other Reseller")
    other_shape = Shape(
        devices=max(shape.devices // 20, 10),
        jobs=max(shape.jobs // 20, 100),
        customers=5,
        sites_per_customer=2,
        readings_days=shape.readings_days,
        seed=shape.seed + 1,
    )
    load_s = {"other_tenant": 0.0}
    t = time.perf_counter()
    load(engine, other, other_shape, now)
    load_s["other_tenant"] = time.perf_counter() - t
    load_s.update(load(engine, main, shape, now))
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
    print(f"[{name}] loaded in {time.perf_counter() - started:.0f} s: {load_s}", flush=True)
    out: dict[str, Any] = {"backend": name, "load_s": load_s}
    out["timings"] = [
        {**asdict(t), "ratio": t.ratio}
        for t in time_pages(engine, url, main, work / f"{name}-data", repeat, now)
    ]
    if extra_indexes:
        with engine.begin() as conn:
            for ddl in EXTRA_INDEXES:
                conn.execute(sa.text(ddl))
            conn.execute(sa.text("ANALYZE"))
        out["timings_extra_indexes"] = [
            {**asdict(t), "ratio": t.ratio}
            for t in time_pages(engine, url, main, work / f"{name}-data-ix", repeat, now)
        ]
    engine.dispose()
    return out


def _table(result: dict[str, Any], key: str = "timings") -> str:
    lines = [
        f"{result['backend']}{' (with EXTRA_INDEXES)' if key != 'timings' else ''}",
        f"{'page':58} {'page ms':>8} {'min':>7} {'SQL ms':>8} {'min':>7} {'ratio':>6}  baseline",
    ]
    for t in result[key]:
        lines.append(
            f"{t['page'][:58]:58} {t['page_ms']:8.1f} {t['page_min_ms']:7.1f} "
            f"{t['baseline_ms']:8.1f} {t['baseline_min_ms']:7.1f} {t['ratio']:6.1f}  "
            f"{t['baseline']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.portal_pages", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--devices", type=int, default=10_000, help="default %(default)s")
    parser.add_argument("--jobs", type=int, default=1_000_000, help="default %(default)s")
    parser.add_argument("--customers", type=int, default=50, help="default %(default)s")
    parser.add_argument("--sites-per-customer", type=int, default=4, help="default %(default)s")
    parser.add_argument(
        "--readings-days", type=int, default=30, help="daily counter readings per device"
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per page (median)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--extra-indexes", action="store_true", help="also time with EXTRA_INDEXES")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--json", action="store_true", help="print the JSON instead of tables")
    args = parser.parse_args(argv)
    shape = Shape(
        devices=args.devices,
        jobs=args.jobs,
        customers=args.customers,
        sites_per_customer=args.sites_per_customer,
        readings_days=args.readings_days,
        seed=args.seed,
    )
    result: dict[str, Any] = {
        "shape": asdict(shape),
        "started_at": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "backends": [],
    }
    with tempfile.TemporaryDirectory(prefix="fm-portal-bench-") as tmp:
        work = Path(tmp)
        if args.backend in ("sqlite", "both"):
            url = f"sqlite:///{work / 'portal.db'}"
            result["backends"].append(
                run_backend("sqlite", url, shape, args.repeat, work, args.extra_indexes)
            )
        if args.backend in ("postgresql", "both"):
            found = _postgres_schema(args.postgres_url)
            if found is not None:
                url, drop = found
                try:
                    result["backends"].append(
                        run_backend("postgresql", url, shape, args.repeat, work, args.extra_indexes)
                    )
                finally:
                    drop()
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / (
        f"portal_pages-{shape.devices}-{shape.jobs}-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    )
    path.write_text(json.dumps(result, indent=2, default=str))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        for backend in result["backends"]:
            print()
            print(_table(backend))
            if "timings_extra_indexes" in backend:
                print()
                print(_table(backend, "timings_extra_indexes"))
        print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
