"""A month's statement for a big contract, against a plain SQL aggregate of the same rows.

Run from the repository root (docs/performance.md, "Statement generation (issue 7)", has
the results and what they mean)::

    .venv/bin/python -m bench.statement_month                              # 1,000 devices, 3 M jobs
    .venv/bin/python -m bench.statement_month --devices 100 --jobs 100000  # quick run

For each backend (SQLite, then PostgreSQL at 127.0.0.1:5432, database ``test``, skipped with
a message when unreachable) the benchmark:

1. makes a fresh database — a SQLite file in a temporary directory, or a dedicated
   PostgreSQL schema that is dropped at the end — and migrates it to the portal's schema;
2. bulk-loads one reseller, one customer, ``--devices`` devices and ``--jobs`` job records
   (executemany in one transaction on SQLite, ``COPY`` on PostgreSQL). Jobs are spread over
   March 2026 on the customer's calendar (Europe/Berlin), with ~2 % just outside the month
   so the period filter has work to do; prints, scans and copies on four media types, four
   application categories and four ink colours, from a seeded random generator;
3. runs each measured step in its own process, which reports its own peak RSS (``VmHWM``):

   - **baseline**: the plain SQL aggregate — ``SUM``/``COUNT`` ``GROUP BY`` device, kind,
     media type and application category, and ``GROUP BY`` device and ink colour over the
     JSON ink column — over the month's rows, turned into the same per-device meter totals
     (:class:`~fleetmeter.billing.PeriodUsage`) that rating takes;
   - **rate**: :func:`~fleetmeter.billing.rate` on those totals (what is left once usage is
     summed), and the exports of the resulting statement (CSV, XLSX, PDF);
   - **generate**: the portal's ``generate_statement`` (issue 7), the real code path, when
     that function exists; its total is checked against rating the baseline's totals.

Reported per backend: wall seconds and rows/s of each step, generate ÷ baseline (how many
times slower than the bare aggregate the statement is), peak RSS of each step's process, and
the load time. A table goes to stdout, the JSON to ``bench/results/`` (not kept in git).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from fleetmeter.billing import DeviceUsage, Period, PeriodUsage, PricePlan, parse_plan, rate
from fleetmeter.billing import meters as mk
from fleetmeter.portal.store.migrate import upgrade
from fleetmeter.portal.store.types import UtcDateTime

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
POSTGRES_URL = os.environ.get(
    "FLEETMETER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PERIOD = Period.month(2026, 3, timezone="Europe/Berlin")
OUTSIDE_SHARE = 0.02  # jobs just before or after the month: the period filter must skip them
STEP_TIMEOUT_S = 3600.0
OPTIONAL_STEPS = ("exports", "reference", "generate", "regenerate")
LOAD_CHUNK = 20_000

MEDIA = ("bond", "coated", "photo", "film")
CATEGORIES = ("cad", "gis", "poster", "photo")
COLOURS = ("C", "M", "Y", "K")

PLAN_TOML = """
name = "Bench: CAD studio"
currency = "EUR"
fixed_fee = "49.00"
minimum_commitment = "150.00"

[[components]]
name = "Bond paper"
meter = "media_area"
media_type = "bond"
included = 50
unit_price = "0.85"

[[components]]
name = "Coated paper"
meter = "media_area"
media_type = "coated"
unit_price = "1.40"

[[components]]
name = "Photo paper"
meter = "media_area"
media_type = "photo"
unit_price = "2.10"

[[components]]
name = "Ink"
meter = "ink"
tier_mode = "graduated"
tiers = [{ up_to = 100000, unit_price = "0.12" }, { unit_price = "0.10" }]

[[components]]
name = "Pages"
meter = "pages"
tier_mode = "volume"
tiers = [{ up_to = 1000000, unit_price = "0.05" }, { unit_price = "0.04" }]

[[components]]
name = "Scans"
meter = "scan_area"
job_kind = "scan"
unit_price = "0.50"
"""


class BenchError(RuntimeError):
    """The benchmark could not run (a step failed or its output was not understood)."""


def plan() -> PricePlan:
    return parse_plan(PLAN_TOML, source="bench plan")


def utc_bounds(period: Period) -> tuple[datetime, datetime]:
    """The period's first and end instants (UTC): local midnights in the period's zone."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(period.timezone)
    start = datetime.combine(period.start, datetime.min.time(), tzinfo=zone)
    end = datetime.combine(period.end, datetime.min.time(), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


# --------------------------------------------------------------------------- databases


@dataclass(frozen=True)
class Fixture:
    """What the loader made, for the steps (passed to each child process as JSON)."""

    backend: str
    url: str
    reseller_id: str
    customer_id: str
    devices: dict[str, str]  # device id (hex) → serial number
    contract_id: str | None  # None: the portal has no contracts service (yet)
    jobs: int
    jobs_in_period: int
    load_s: float


@contextlib.contextmanager
def fresh_database(backend: str, workdir: Path) -> Iterator[str]:
    """A migrated, empty database URL; removed afterwards."""
    if backend == "sqlite":
        path = workdir / "statement-bench.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        try:
            yield url
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    admin = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    schema = f"fm_bench_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = (
        make_url(POSTGRES_URL)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )
    try:
        upgrade(url)
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def postgres_unreachable() -> str | None:
    """Why PostgreSQL cannot be used, or None."""
    engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except (sa.exc.OperationalError, ImportError) as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return f"{make_url(POSTGRES_URL).render_as_string()}: {first}"
    finally:
        engine.dispose()
    return None


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Job:
    device: uuid.UUID
    job_uuid: uuid.UUID
    sequence_number: int
    kind: str
    name: str
    completed_at: datetime
    print_time_s: int
    pages: int
    media_type: str | None
    application_category: str | None
    media_area_mm2: int
    scan_area_mm2: int
    ink_ul: dict[str, int]


def generate_jobs(devices: Sequence[uuid.UUID], count: int, seed: int) -> Iterator[Job]:
    """``count`` jobs round the devices, reproducible from ``seed``."""
    rng = random.Random(seed)
    start, end = utc_bounds(PERIOD)
    span = (end - start).total_seconds()
    sequence = dict.fromkeys(devices, 0)
    for i in range(count):
        device = devices[i % len(devices)]
        sequence[device] += 1
        if rng.random() < OUTSIDE_SHARE:
            # Within two days either side of the month, never inside it.
            offset = rng.uniform(1, 2 * 86_400)
            at = start - timedelta(seconds=offset) if i % 2 else end + timedelta(seconds=offset)
        else:
            at = start + timedelta(seconds=rng.random() * span)
        roll = rng.random()
        kind = "print" if roll < 0.9 else ("scan" if roll < 0.95 else "copy")
        area = rng.randint(50_000, 3_000_000)  # 0.05–3 m² (A4 to a large plot)
        printed = kind != "scan"
        yield Job(
            device=device,
            job_uuid=uuid.UUID(int=rng.getrandbits(128), version=4),
            sequence_number=sequence[device],
            kind=kind,
            name=f"drawing-{i:08d}.pdf",
            completed_at=at,
            print_time_s=rng.randint(20, 900),
            pages=rng.randint(1, 12) if printed else 0,
            media_type=rng.choice(MEDIA) if printed else None,
            application_category=rng.choice(CATEGORIES) if printed else None,
            media_area_mm2=area if printed else 0,
            scan_area_mm2=area if kind != "print" else 0,
            ink_ul={c: rng.randint(0, 4_000) for c in COLOURS} if printed else {},
        )


def _in_period(at: datetime, bounds: tuple[datetime, datetime]) -> bool:
    return bounds[0] <= at < bounds[1]


JOB_COLUMNS = [
    *("id", "reseller_id", "device_id", "batch_id", "job_uuid", "sequence_number", "kind"),
    *("name", "status", "completed_at", "print_time_s", "pages", "copies", "media_type"),
    *("application_category", "media_area_mm2", "printed_area_mm2", "scan_area_mm2"),
    *("ink_ul", "total_ink_ul", "pixel_coverage_ppm", "category_usage", "received_at"),
]


def _row(job: Job, reseller: uuid.UUID, batch: uuid.UUID, received: datetime) -> tuple[Any, ...]:
    return (
        uuid.uuid4(),
        reseller,
        job.device,
        batch,
        job.job_uuid,
        job.sequence_number,
        job.kind,
        job.name,
        "completed",
        job.completed_at,
        job.print_time_s,
        job.pages,
        1,
        job.media_type,
        job.application_category,
        job.media_area_mm2,
        job.media_area_mm2,
        job.scan_area_mm2,
        json.dumps(job.ink_ul),
        sum(job.ink_ul.values()),
        "{}",
        "[]",
        received,
    )


def _sqlite_value(value: Any) -> Any:
    # As SQLAlchemy stores them on SQLite (checked by the loader): UUIDs as 32 hex
    # characters, timestamps as naive-UTC text with microseconds.
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def load(url: str, *, backend: str, devices: int, jobs: int, seed: int) -> Fixture:
    """Tenant, devices and job records, loaded in bulk; returns what the steps need."""
    started = time.perf_counter()
    reseller, customer, batch = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    received = datetime(2026, 4, 1, 6, 0, tzinfo=UTC)
    device_ids = [uuid.UUID(int=random.Random(seed + i).getrandbits(128)) for i in range(devices)]
    serials = {d: f"SG{i:06d}" for i, d in enumerate(device_ids)}
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO resellers (id, name, created_at) VALUES (:id, :n, :t)"
                ).bindparams(
                    sa.bindparam("id", type_=sa.Uuid()), sa.bindparam("t", type_=UtcDateTime())
                ),
                {"id": reseller, "n": "Bench reseller", "t": received},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO customers (id, reseller_id, name, created_at) "
                    "VALUES (:id, :r, :n, :t)"
                ).bindparams(
                    sa.bindparam("id", type_=sa.Uuid()),
                    sa.bindparam("r", type_=sa.Uuid()),
                    sa.bindparam("t", type_=UtcDateTime()),
                ),
                {"id": customer, "r": reseller, "n": "Bench customer", "t": received},
            )
            device_table = sa.table(
                "devices",
                sa.column("id", sa.Uuid()),
                sa.column("reseller_id", sa.Uuid()),
                sa.column("customer_id", sa.Uuid()),
                sa.column("vendor", sa.String()),
                sa.column("serial_number", sa.String()),
                sa.column("model", sa.String()),
                sa.column("driver", sa.String()),
                sa.column("device_class", sa.String()),
                sa.column("first_seen_at", UtcDateTime()),
            )
            conn.execute(
                device_table.insert(),
                [
                    {
                        "id": d,
                        "reseller_id": reseller,
                        "customer_id": customer,
                        "vendor": "HP",
                        "serial_number": serials[d],
                        "model": "DesignJet T1700",
                        "driver": "ledm",
                        "device_class": "printer",
                        "first_seen_at": received - timedelta(days=90),
                    }
                    for d in device_ids
                ],
            )
    finally:
        engine.dispose()

    contract_id = make_contract(url, reseller, customer, device_ids)
    bounds = utc_bounds(PERIOD)
    in_period = 0

    def rows() -> Iterator[tuple[Any, ...]]:
        nonlocal in_period
        for job in generate_jobs(device_ids, jobs, seed):
            in_period += _in_period(job.completed_at, bounds)
            yield _row(job, reseller, batch, received)

    if backend == "sqlite":
        _load_sqlite(make_url(url).database or "", rows())
    else:
        _load_postgres(url, rows())
    return Fixture(
        backend=backend,
        url=url,
        reseller_id=reseller.hex,
        customer_id=customer.hex,
        devices={d.hex: serials[d] for d in device_ids},
        contract_id=contract_id.hex if contract_id else None,
        jobs=jobs,
        jobs_in_period=in_period,
        load_s=round(time.perf_counter() - started, 2),
    )


def make_contract(
    url: str, reseller: uuid.UUID, customer: uuid.UUID, devices: Sequence[uuid.UUID]
) -> uuid.UUID | None:
    """The bench contract (the plan above, Europe/Berlin, from 1 January 2026) with every
    device on it, through the portal's contracts service; None if the portal has none."""
    try:
        from fleetmeter.portal.services import contracts
        from fleetmeter.portal.store.models import ContractDevice
    except ImportError:
        return None
    from sqlalchemy.orm import Session

    engine = sa.create_engine(url)
    try:
        with Session(engine) as session:
            contract = contracts.create_contract(
                session,
                reseller_id=reseller,
                customer_id=customer,
                plan_text=PLAN_TOML,
                timezone=PERIOD.timezone,
                start_date=date(2026, 1, 1),
                name="Bench contract",
            )
            # Slots written in bulk: contracts.add_device checks every placed device per
            # call, which is right for a person adding one and slow for a thousand.
            session.execute(
                sa.insert(ContractDevice),
                [
                    {
                        "id": uuid.uuid4(),
                        "reseller_id": reseller,
                        "contract_id": contract.id,
                        "device_id": d,
                        "placement": f"room-{i:06d}",
                        "valid_from": date(2026, 1, 1),
                        "valid_to": None,
                    }
                    for i, d in enumerate(devices)
                ],
            )
            session.commit()
            return contract.id
    finally:
        engine.dispose()


def _chunks(rows: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _load_sqlite(path: str, rows: Iterator[tuple[Any, ...]]) -> None:
    conn = sqlite3.connect(path)
    try:
        # A bulk load, not the ingest path: one transaction, no rollback journal, no fsync,
        # and a 1 GB page cache (random UUID keys in four indexes thrash the default 2 MB).
        # The portal's WAL mode is put back afterwards.
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-1000000")
        sql = (
            f"INSERT INTO job_records ({', '.join(JOB_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(JOB_COLUMNS))})"
        )
        with conn:
            for chunk in _chunks(rows, LOAD_CHUNK):
                conn.executemany(sql, [tuple(_sqlite_value(v) for v in row) for row in chunk])
        conn.execute("ANALYZE")
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


def _load_postgres(url: str, rows: Iterator[tuple[Any, ...]]) -> None:
    import psycopg

    u = make_url(url)
    conninfo = u.set(drivername="postgresql").render_as_string(hide_password=False)
    copy_sql = f"COPY job_records ({', '.join(JOB_COLUMNS)}) FROM STDIN"
    with psycopg.connect(conninfo) as conn:
        with conn.cursor() as cur, cur.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        conn.execute("ANALYZE job_records")
        conn.commit()


def check_stored_like_the_orm(url: str) -> None:
    """The raw loader wrote what the portal's models read back (one row through the ORM)."""
    from sqlalchemy.orm import Session

    from fleetmeter.portal.store.models import JobRecord

    engine = sa.create_engine(url)
    try:
        with Session(engine) as session:
            job = session.scalars(sa.select(JobRecord).limit(1)).one()
            assert job.completed_at.tzinfo is not None, "completed_at came back naive"
            assert isinstance(job.job_uuid, uuid.UUID)
            assert isinstance(job.ink_ul, dict)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- the steps


def aggregate_usage(fixture: Fixture) -> tuple[PeriodUsage, int]:
    """The plain SQL aggregate: per device and meter totals over the period's rows."""
    start, end = utc_bounds(PERIOD)
    sqlite = fixture.backend == "sqlite"
    params = {"r": uuid.UUID(fixture.reseller_id), "start": start, "end": end}
    binds = (
        sa.bindparam("r", type_=sa.Uuid()),
        sa.bindparam("start", type_=UtcDateTime()),
        sa.bindparam("end", type_=UtcDateTime()),
    )
    where = "j.reseller_id = :r AND j.completed_at >= :start AND j.completed_at < :end"
    by_kind = sa.text(
        "SELECT j.device_id, j.kind, j.media_type, j.application_category, COUNT(*), "
        "SUM(j.pages), SUM(j.media_area_mm2), SUM(j.scan_area_mm2), SUM(j.total_ink_ul) "
        f"FROM job_records j WHERE {where} "
        "GROUP BY j.device_id, j.kind, j.media_type, j.application_category"
    ).bindparams(*binds)
    each = "json_each(j.ink_ul) e" if sqlite else "json_each_text(j.ink_ul) e"
    value = "e.value" if sqlite else "CAST(e.value AS BIGINT)"
    by_colour = sa.text(
        f"SELECT j.device_id, e.key, SUM({value}) FROM job_records j, {each} "
        f"WHERE {where} GROUP BY j.device_id, e.key"
    ).bindparams(*binds)
    meters: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rows = 0
    engine = sa.create_engine(fixture.url)
    try:
        with engine.connect() as conn:
            for device, kind, media, category, n, pages, area, scan, ink in conn.execute(
                by_kind, params
            ):
                m = meters[_hex(device)]
                rows += n
                m[mk.JOBS] += n
                m[{"print": mk.PRINT_JOBS, "scan": mk.SCAN_JOBS, "copy": mk.COPY_JOBS}[kind]] += n
                if kind in ("print", "copy"):
                    m[mk.IMPRESSIONS] += int(pages)
                m[mk.TOTAL_MEDIA_AREA] += int(area)
                if media:
                    m[mk.media_key(media)] += int(area)
                if category:
                    m[mk.category_key(category)] += int(area)
                m[mk.TOTAL_INK] += int(ink)
                if kind == "scan":
                    m[mk.SCANNED_AREA] += int(scan)
                elif kind == "copy":
                    m[mk.COPIED_AREA] += int(scan)
            for device, colour, total in conn.execute(by_colour, params):
                meters[_hex(device)][mk.ink_key(colour)] += int(total)
    finally:
        engine.dispose()
    usage = PeriodUsage(
        devices=tuple(
            DeviceUsage(
                device=serial,
                meters={k: v for k, v in sorted(meters.get(device, {}).items()) if v},
            )
            for device, serial in sorted(fixture.devices.items(), key=lambda kv: kv[1])
        )
    )
    return usage, rows


def reference_usage(fixture: Fixture) -> tuple[PeriodUsage, int]:
    """The Python path: every row of the period as a wire ``JobRecord``, then billing's own
    :func:`~fleetmeter.billing.usage_from_jobs` per device (streamed, one device at a time).

    Not the portal's generator: a reference for it, and a cross-check of the SQL aggregate
    (the two must give the same statement).
    """
    from fleetmeter.billing import usage_from_jobs
    from fleetmeter.wire import JobRecord

    start, end = utc_bounds(PERIOD)
    # Typed where the stored form differs from the Python value (UUIDs, UTC text, JSON).
    types: dict[str, Any] = {
        "device_id": sa.Uuid(),
        "job_uuid": sa.Uuid(),
        "completed_at": UtcDateTime(),
        "ink_ul": sa.JSON(),
        "pixel_coverage_ppm": sa.JSON(),
        "category_usage": sa.JSON(),
    }
    names = [
        *("device_id", "job_uuid", "sequence_number", "kind", "name", "status"),
        *("completed_at", "print_time_s", "pages", "copies", "media_type"),
        *("application_category", "media_area_mm2", "printed_area_mm2", "scan_area_mm2"),
        *("ink_ul", "pixel_coverage_ppm", "category_usage"),
    ]
    table = sa.table(
        "job_records",
        sa.column("reseller_id", sa.Uuid()),
        *(sa.column(name, types.get(name)) for name in names),
    )
    select = (
        sa.select(*(table.c[name] for name in names))
        .where(
            table.c.reseller_id == uuid.UUID(fixture.reseller_id),
            table.c.completed_at >= start,
            table.c.completed_at < end,
        )
        .order_by(table.c.device_id)
    )
    per_device: dict[str, DeviceUsage] = {}
    rows = 0
    engine = sa.create_engine(fixture.url)

    def flush(device: str | None, jobs: list[JobRecord]) -> None:
        if device is not None:
            serial = fixture.devices[device]
            per_device[serial] = usage_from_jobs(jobs, device=serial, period=PERIOD)

    try:
        with engine.connect() as conn:
            current: str | None = None
            jobs: list[JobRecord] = []
            result = conn.execution_options(stream_results=True, yield_per=10_000).execute(select)
            for row in result.mappings():
                device = _hex(row["device_id"])
                if device != current:
                    flush(current, jobs)
                    current, jobs = device, []
                fields = {k: v for k, v in row.items() if k != "device_id" and v is not None}
                jobs.append(JobRecord.model_validate(fields))
                rows += 1
            flush(current, jobs)
    finally:
        engine.dispose()
    usage = PeriodUsage(
        devices=tuple(
            per_device.get(serial, DeviceUsage(device=serial))
            for serial in sorted(fixture.devices.values())
        )
    )
    return usage, rows


def _hex(value: Any) -> str:
    return value.hex if isinstance(value, uuid.UUID) else uuid.UUID(str(value)).hex


def find_generate_statement() -> Callable[..., Any] | None:
    """The portal's ``generate_statement``, once the statements service has it."""
    try:
        module = importlib.import_module("fleetmeter.portal.services.statements")
    except ImportError:
        return None
    function = getattr(module, "generate_statement", None)
    return function if callable(function) else None


def run_generate(fixture: Fixture, function: Callable[..., Any]) -> dict[str, Any]:
    """Generate (or regenerate) the bench contract's March statement and commit it."""
    from sqlalchemy.orm import Session

    from fleetmeter.portal.services.statements import document_of

    if fixture.contract_id is None:
        raise BenchError("no bench contract: the portal has no contracts service")
    engine = sa.create_engine(fixture.url)
    try:
        with Session(engine) as session:
            started = time.perf_counter()
            record = function(
                session,
                reseller_id=uuid.UUID(fixture.reseller_id),
                contract_id=uuid.UUID(fixture.contract_id),
                period="2026-03",
            )
            session.commit()
            seconds = time.perf_counter() - started
            doc = document_of(record)
            return {
                "seconds": seconds,
                "total": str(doc.statement.total),
                "jobs_billed": doc.jobs_billed,
                "flags": len(doc.reconciliation.flags),
            }
    finally:
        engine.dispose()


def step(name: str, fixture: Fixture, workdir: Path) -> dict[str, Any]:
    """One measured step, in this (child) process; returns its figures."""
    if name == "baseline":
        started = time.perf_counter()
        usage, rows = aggregate_usage(fixture)
        seconds = time.perf_counter() - started
        (workdir / f"usage-{fixture.backend}.json").write_text(usage.model_dump_json())
        return {"seconds": seconds, "rows": rows}
    if name == "rate":
        usage = PeriodUsage.model_validate_json(
            (workdir / f"usage-{fixture.backend}.json").read_text()
        )
        p = plan()
        started = time.perf_counter()
        statement = rate(p, usage, period=PERIOD)
        rate_s = time.perf_counter() - started
        (workdir / f"statement-{fixture.backend}.json").write_text(statement.model_dump_json())
        return {"seconds": rate_s, "total": str(statement.total), "lines": len(statement.lines)}
    if name == "exports":
        return exports_step(fixture, workdir)
    if name == "reference":
        started = time.perf_counter()
        usage, rows = reference_usage(fixture)
        statement = rate(plan(), usage, period=PERIOD)
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "rows": rows, "total": str(statement.total)}
    if name in ("generate", "regenerate"):
        function = find_generate_statement()
        if function is None:
            raise BenchError("fleetmeter.portal.services.statements.generate_statement is missing")
        return run_generate(fixture, function)
    raise BenchError(f"unknown step {name!r}")


def exports_step(fixture: Fixture, workdir: Path) -> dict[str, Any]:
    from fleetmeter.billing import Statement
    from fleetmeter.billing.exports import (
        StatementHeader,
        device_usage_csv,
        statement_lines_csv,
        statement_pdf,
        statement_xlsx,
    )

    usage = PeriodUsage.model_validate_json((workdir / f"usage-{fixture.backend}.json").read_text())
    statement = Statement.model_validate_json(
        (workdir / f"statement-{fixture.backend}.json").read_text()
    )
    header = StatementHeader(reseller="Bench reseller", customer="Bench customer", contract="B-1")
    out: dict[str, Any] = {}
    for label, render in (
        ("csv", lambda: (statement_lines_csv(statement) + device_usage_csv(usage)).encode()),
        ("xlsx", lambda: statement_xlsx(statement, usage, header=header)),
        ("pdf", lambda: statement_pdf(statement, usage, header=header)),
    ):
        started = time.perf_counter()
        data = render()
        out[f"{label}_s"] = round(time.perf_counter() - started, 3)
        out[f"{label}_bytes"] = len(data)
    out["seconds"] = sum(v for k, v in out.items() if k.endswith("_s"))
    return out


# --------------------------------------------------------------------------- the parent


@dataclass(frozen=True)
class StepRun:
    seconds: float
    wall_s: float
    peak_rss_mb: float
    figures: dict[str, Any]


def own_peak_rss_mb() -> float:
    """This process's peak RSS since it started (``VmHWM``).

    Not ``ru_maxrss`` from ``os.wait4``: Linux carries the parent's peak over into a forked
    child, so every step would report at least what the loader held in the parent.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_step(name: str, fixture_path: Path, workdir: Path) -> StepRun:
    """Run ``step(name)`` in a child process, which reports its own peak RSS."""
    args = [
        sys.executable,
        "-m",
        "bench.statement_month",
        "--step",
        name,
        "--fixture",
        str(fixture_path),
        "--workdir",
        str(workdir),
    ]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=REPO)
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while True:
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise BenchError(f"step {name} timed out after {STEP_TIMEOUT_S:g} s")
            time.sleep(0.02)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        last = [line for line in stderr.splitlines() if line.strip()][-1:] or [f"exit {code}"]
        raise BenchError(f"step {name} failed: {last[0]}")
    figures = json.loads(stdout.strip().splitlines()[-1])
    return StepRun(
        seconds=figures["seconds"],
        wall_s=wall,
        peak_rss_mb=figures.pop("peak_rss_mb"),
        figures=figures,
    )


def run_backend(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    with fresh_database(backend, workdir) as url:
        print(f"{backend}: loading {args.devices} devices, {args.jobs} jobs ...", file=sys.stderr)
        fixture = load(url, backend=backend, devices=args.devices, jobs=args.jobs, seed=args.seed)
        check_stored_like_the_orm(url)
        fixture_path = workdir / f"fixture-{backend}.json"
        fixture_path.write_text(json.dumps(asdict(fixture)))
        print(f"{backend}: loaded in {fixture.load_s} s", file=sys.stderr)
        result: dict[str, Any] = {
            "load_s": fixture.load_s,
            "jobs": fixture.jobs,
            "jobs_in_period": fixture.jobs_in_period,
            "problems": [],
        }
        steps = ["baseline", "rate", "exports", "reference"]
        if find_generate_statement() is not None:
            steps += ["generate", "regenerate"]
        else:
            result["problems"].append(
                "generate_statement not found in fleetmeter.portal.services.statements: "
                "only the baseline and rating were measured"
            )
        for name in steps:
            if name in args.skip:
                continue
            try:
                run = run_step(name, fixture_path, workdir)
            except BenchError as exc:
                result["problems"].append(str(exc).splitlines()[-1])
                continue
            rows = fixture.jobs_in_period
            result[name] = {
                "seconds": round(run.seconds, 3),
                "wall_s_with_startup": round(run.wall_s, 3),
                "rows_per_s": round(rows / run.seconds) if run.seconds else None,
                "peak_rss_mb": round(run.peak_rss_mb, 1),
                **{k: v for k, v in run.figures.items() if k != "seconds"},
            }
            print(f"{backend}: {name} {run.seconds:.2f} s", file=sys.stderr)
        baseline = result.get("baseline")
        if baseline and baseline.get("rows") != fixture.jobs_in_period:
            result["problems"].append(
                f"baseline counted {baseline.get('rows')} rows in the period, "
                f"the loader {fixture.jobs_in_period}"
            )
        reference = result.get("reference")
        if baseline and reference:
            result["reference_over_baseline"] = round(reference["seconds"] / baseline["seconds"], 2)
            if reference.get("total") != result.get("rate", {}).get("total"):
                result["problems"].append(
                    f"the Python path's total {reference.get('total')} != rating the SQL "
                    f"aggregate {result.get('rate', {}).get('total')}"
                )
        for name in ("generate", "regenerate"):
            generate = result.get(name)
            if not (baseline and generate):
                continue
            result[f"{name}_over_baseline"] = round(generate["seconds"] / baseline["seconds"], 2)
            expected = result.get("rate", {}).get("total")
            if expected is not None and generate.get("total") != expected:
                result["problems"].append(
                    f"{name}: generate_statement total {generate.get('total')} != rating the "
                    f"SQL aggregate {expected}"
                )
            if generate.get("jobs_billed") != fixture.jobs_in_period:
                result["problems"].append(
                    f"{name}: {generate.get('jobs_billed')} jobs billed, "
                    f"{fixture.jobs_in_period} in the period"
                )
        return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    backends: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="fm-statement-bench-") as tmp:
        workdir = Path(tmp)
        for backend in args.backends:
            if backend == "postgresql":
                why = postgres_unreachable()
                if why is not None:
                    skipped[backend] = f"PostgreSQL unreachable at {why}"
                    print(f"postgresql: skipped: {why}", file=sys.stderr)
                    continue
            backends[backend] = run_backend(backend, args, workdir)
    return {
        "benchmark": "statement_month",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average": os.getloadavg(),
        },
        "config": {
            "devices": args.devices,
            "jobs": args.jobs,
            "seed": args.seed,
            "period": str(PERIOD),
            "outside_share": OUTSIDE_SHARE,
            "skipped_steps": sorted(args.skip),
        },
        "backends": backends,
        "skipped": skipped,
        "problems": [f"{b}: {p}" for b, r in backends.items() for p in r["problems"]],
    }


def format_table(result: dict[str, Any]) -> str:
    c = result["config"]
    lines = [
        f"{c['devices']} devices, {c['jobs']} jobs, {c['period']}",
        "",
    ]
    header = ("backend", "step", "seconds", "rows/s", "peak RSS MB", "note")
    rows: list[tuple[str, ...]] = [header]
    for backend, r in result["backends"].items():
        rows.append(
            (backend, "load", f"{r['load_s']:.1f}", "", "", f"{r['jobs_in_period']} in period")
        )
        for name in ("baseline", "generate", "regenerate", "reference", "rate", "exports"):
            s = r.get(name)
            if not s:
                continue
            note = ""
            if name in ("generate", "regenerate") and f"{name}_over_baseline" in r:
                note = f"ratio {r[f'{name}_over_baseline']} x baseline, total EUR {s['total']}"
            elif name == "reference" and "reference_over_baseline" in r:
                note = f"ratio {r['reference_over_baseline']} x baseline, total EUR {s['total']}"
            elif name == "rate":
                note = f"total EUR {s['total']}, {s['lines']} lines"
            elif name == "exports":
                note = f"csv {s['csv_s']} s, xlsx {s['xlsx_s']} s, pdf {s['pdf_s']} s"
            rows.append(
                (
                    backend,
                    name,
                    f"{s['seconds']:.3f}",
                    f"{s['rows_per_s']:,}" if name not in ("rate", "exports") else "",
                    f"{s['peak_rss_mb']:.0f}",
                    note,
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines += [f"skipped {b}: {why}" for b, why in result["skipped"].items()]
    lines += [f"PROBLEM: {p}" for p in result["problems"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.statement_month", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--devices", type=int, default=1000, help="default %(default)s")
    parser.add_argument("--jobs", type=int, default=3_000_000, help="default %(default)s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--backends",
        default="sqlite,postgresql",
        type=lambda v: [b.strip() for b in v.split(",") if b.strip()],
        help="comma-separated: sqlite, postgresql (default %(default)s)",
    )
    parser.add_argument(
        "--skip",
        default="",
        type=lambda v: {s.strip() for s in v.split(",") if s.strip()},
        help="comma-separated steps not to run: " + ", ".join(OPTIONAL_STEPS),
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--json", action="store_true", help="print the JSON instead of a table")
    # Internal: one measured step in a child process.
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--fixture", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        fixture = Fixture(**json.loads(args.fixture.read_text()))
        figures = step(args.step, fixture, args.workdir)
        print(json.dumps({**figures, "peak_rss_mb": own_peak_rss_mb()}))
        return 0
    if args.devices < 1 or args.jobs < 1:
        parser.error("--devices and --jobs must be >= 1")
    if args.skip - set(OPTIONAL_STEPS):
        parser.error(f"--skip: steps are {', '.join(OPTIONAL_STEPS)}")
    unknown = set(args.backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        result = run(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.results_dir / f"statement_month-{args.devices}-{args.jobs}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    print(f"results: {path}", file=sys.stderr)
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
