"""The collector's durable state: one SQLite file holding the outbox, job cursors, pins, devices.

Guarantees the rest of the collector relies on:

* A usage report is enqueued and its device's job cursor advanced in ONE transaction, so a
  crash either keeps both or neither: jobs are never lost and never collected twice.
* Outbox rows are grouped into a batch (with its batch id and creation time) in a transaction
  *before* the batch is sent, so a resend after a crash carries the same batch id and the
  portal answers ``duplicate`` instead of storing it twice.
* Rows are deleted only after the portal confirmed the batch that carried them.

* A device is (driver, serial number): seen at a new address, it is the same device (its row
  moves, its job cursor — keyed by driver and serial — is untouched).

WAL + ``synchronous=FULL``: every commit is on disk when ``commit()`` returns (a power cut
after the portal said "stored" must not resurrect sent rows, nor lose queued ones).
The calls are synchronous and short; the collector makes them from its event loop. A
``transaction()`` opened inside another joins it, so that the poller stores everything about one
poll (outbox rows, job cursor, poll status, device row) with one commit, i.e. one fsync.

Retention (docs/collector.md, "Outbox retention"): the database's used size is capped
(``OutboxLimits.max_bytes``). At the cap, the oldest unsent HEALTH reports without jobs are
dropped first (a newer report of the device supersedes them); when only billing data is left,
``enqueue`` refuses with ``OutboxFull`` and nothing else is written. Job records are never
deleted before the portal confirmed them.

Failures: a full disk (SQLite's SQLITE_FULL) rolls the transaction back and raises
``StateFull`` (logged once until a report is stored again); a file that is not an SQLite
database or is damaged raises ``StateCorrupt`` at open, naming the file, which is left as it is.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from fleetmeter.devices.base import PinStore
from fleetmeter.wire import DeviceReport, ReportKind, now_utc

if TYPE_CHECKING:
    from fleetmeter.collector.config import UploadSection

log = logging.getLogger(__name__)

DB_NAME = "collector.sqlite3"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Batches formed but not yet confirmed. created_at is kept so that a resend is the same batch.
CREATE TABLE IF NOT EXISTS batches (
    batch_id          TEXT PRIMARY KEY,
    created_at        TEXT NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    quarantined_at    TEXT,
    quarantine_reason TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at        TEXT NOT NULL,
    kind              TEXT NOT NULL,
    report            TEXT NOT NULL,
    batch_id          TEXT REFERENCES batches(batch_id),
    quarantined_at    TEXT,
    quarantine_reason TEXT,
    -- 1: a HEALTH report without jobs, which a newer report of its device supersedes. Only
    -- such rows are ever dropped unsent (at the size cap). Added after the first release, by
    -- _migrate to older files (their rows keep 0: never dropped). No semicolons in comments
    -- here: _migrate splits this script on them.
    droppable         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_batch ON outbox (batch_id);
CREATE TABLE IF NOT EXISTS job_cursors (
    driver        TEXT NOT NULL,
    serial_number TEXT NOT NULL,
    last_sequence INTEGER NOT NULL,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (driver, serial_number)
);
CREATE TABLE IF NOT EXISTS cert_pins (
    host_port  TEXT PRIMARY KEY,
    sha256     TEXT NOT NULL,
    pinned_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    address       TEXT PRIMARY KEY,
    port          INTEGER,
    scheme        TEXT NOT NULL,
    driver        TEXT NOT NULL,
    serial_number TEXT,
    vendor        TEXT,
    model         TEXT,
    last_seen     TEXT,
    last_error    TEXT,
    last_error_at TEXT
);
-- Discovery looks a device up by identity for every device it finds: without this index
-- that is a scan per device, quadratic in the fleet (docs/performance.md).
CREATE INDEX IF NOT EXISTS devices_identity ON devices (driver, serial_number);
-- The last thing known about each device, for the site console and the schedule (a new table,
-- not new columns: an older collector opening this file just ignores it).
CREATE TABLE IF NOT EXISTS device_status (
    driver           TEXT NOT NULL,
    serial_number    TEXT NOT NULL,
    snapshot         TEXT,
    last_success_at  TEXT,
    last_usage_at    TEXT,
    last_health_at   TEXT,
    last_error       TEXT,
    last_error_at    TEXT,
    cert_alert_since TEXT,
    PRIMARY KEY (driver, serial_number)
);
"""

# Created after the column migration in ``_migrate``: on a file from before, ``droppable`` does
# not exist until then.
_INDEXES = """
-- Outbox depth (pending and quarantined counts) without reading the reports.
CREATE INDEX IF NOT EXISTS outbox_queue ON outbox (quarantined_at);
-- The oldest droppable rows, found without scanning the billing rows ahead of them.
CREATE INDEX IF NOT EXISTS outbox_droppable ON outbox (id) WHERE droppable = 1;
"""

MAX_SNAPSHOT_ALERTS = 20
"""The console shows a device's current alerts; a device reporting hundreds is cut here."""


_DEVICE_COLUMNS = (
    "address, port, scheme, driver, serial_number, vendor, model, last_seen, last_error"
)


def _known_device(r: tuple[Any, ...]) -> KnownDevice:
    return KnownDevice(
        address=r[0],
        port=r[1],
        scheme=r[2],
        driver=r[3],
        serial_number=r[4],
        vendor=r[5],
        model=r[6],
        last_seen=_parse_ts(r[7]),
        last_error=r[8],
    )


class StateError(RuntimeError):
    """The state database cannot be opened or has an unknown schema."""


class StateCorrupt(StateError):
    """The state file is not an SQLite database or is damaged. It is left untouched."""


class StateFull(StateError):
    """The disk (or the database's page limit) is full: SQLITE_FULL. Nothing of the transaction
    was written; the collector keeps running and tries again at the next poll."""


class OutboxFull(StateError):
    """The outbox is at ``OutboxLimits.max_bytes`` and dropping the old health reports it may
    drop would not make room: the report was not queued (and a job cursor not advanced)."""


@dataclass(frozen=True)
class OutboxLimits:
    """``[upload] outbox_alert_rows`` and ``max_outbox_bytes`` (config.UploadSection)."""

    alert_rows: int = 10_000
    max_bytes: int = 2_000_000_000

    @classmethod
    def from_upload(cls, upload: UploadSection) -> OutboxLimits:
        return cls(alert_rows=upload.outbox_alert_rows, max_bytes=upload.max_outbox_bytes)


PRUNE_TO = 0.95
"""At the cap, droppable rows are deleted until the database uses at most this share of it, so
that the next few reports do not each pay for a prune; usage polls stopped at the cap resume
under it."""


@dataclass(frozen=True)
class OutboxDepth:
    """What the console and the outbox alert look at (cheap: indexes and page counts only)."""

    pending: int
    quarantined: int
    used_bytes: int
    oldest_pending_at: datetime | None
    limits: OutboxLimits

    @property
    def above_alert(self) -> bool:
        return self.pending > self.limits.alert_rows

    @property
    def at_cap(self) -> bool:
        """At the cap or within its pruning margin: old health reports are being dropped."""
        return self.used_bytes >= self.limits.max_bytes * PRUNE_TO


def _sqlite_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None  # the primary code of an extended one


_CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


@dataclass(frozen=True)
class OutboxRow:
    id: int
    created_at: datetime
    kind: str
    report_json: str
    batch_id: uuid.UUID | None


@dataclass(frozen=True)
class PendingBatch:
    """A batch formed earlier and not yet confirmed: resend exactly these rows under this id."""

    batch_id: uuid.UUID
    created_at: datetime
    rows: list[OutboxRow]


@dataclass(frozen=True)
class KnownDevice:
    address: str
    port: int | None
    scheme: str
    driver: str
    serial_number: str | None
    vendor: str | None
    model: str | None
    last_seen: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class DeviceStatusRow:
    """``device_status``: the last report's compact snapshot and the poll history."""

    driver: str
    serial_number: str
    snapshot: dict[str, Any] = field(default_factory=dict)
    last_success_at: datetime | None = None
    last_usage_at: datetime | None = None
    last_health_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    cert_alert_since: datetime | None = None


@dataclass(frozen=True)
class ForgottenPin:
    host_port: str
    sha256: str
    pinned_at: datetime | None


_STATUS_SELECT = (
    "SELECT driver, serial_number, snapshot, last_success_at, last_usage_at, last_health_at, "
    "last_error, last_error_at, cert_alert_since FROM device_status "
)


def snapshot_of(report: DeviceReport) -> dict[str, Any]:
    """A compact, console-sized summary of a report: state, supplies, alerts, a few counters."""
    out: dict[str, Any] = {
        "kind": str(report.kind),
        "collected_at": report.collected_at.isoformat(),
        "firmware": report.device.firmware_version,
    }
    status = report.status
    if status is not None:
        out["state"] = str(status.engine_state)
        out["reasons"] = status.state_reasons[:10]
        out["cartridges"] = [
            {"color": c.color, "level_percent": c.level_percent, "status": str(c.status)}
            for c in status.cartridges
        ]
        out["printheads"] = [
            {
                "colors": "".join(h.colors),
                "health_percent": h.health_percent,
                "status": str(h.status),
            }
            for h in status.printheads
        ]
        out["media"] = [
            {"name": m.name, "state": m.state, "media_type": m.media_type}
            for m in status.media_sources
        ]
    if report.additive is not None:
        out.setdefault("state", str(report.additive.state))
        out["materials"] = [
            {"name": m.name, "remaining_g": m.remaining_g} for m in report.additive.materials
        ]
    out["alerts"] = [
        {"code": a.code, "severity": str(a.severity), "text": a.text}
        for a in report.alerts[:MAX_SNAPSHOT_ALERTS]
        if a.cleared_at is None
    ]
    if report.usage is not None:
        out["impressions"] = report.usage.impressions
    return out


@dataclass(frozen=True)
class QuarantinedRow:
    id: int
    batch_id: uuid.UUID | None
    kind: str
    reason: str
    quarantined_at: datetime


def _ts(value: datetime) -> str:
    return value.isoformat()


def _parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class State:
    """The collector's SQLite database in ``data_dir``. Not thread-safe: one per event loop."""

    def __init__(self, data_dir: Path, *, limits: OutboxLimits | None = None) -> None:
        self.limits = limits or OutboxLimits()
        self._pins_saved: dict[str, str] = {}
        self._pins_generation = 0
        self._depth = 0  # nesting of transaction(): only the outermost commits
        self._queued = False  # the current transaction inserted into the outbox
        self.full_since: datetime | None = None  # SQLITE_FULL seen, no report stored since
        self.outbox_full_since: datetime | None = None  # a report was refused at the cap
        self._above_alert = False
        self.path = data_dir / DB_NAME
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so that a transaction is
            # exactly what `transaction()` encloses (the sqlite3 module's implicit transactions
            # would otherwise start and end at points the code does not show).
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open collector state {self.path}: {exc}") from exc
        try:
            # Checked before anything writes (journal_mode=WAL rewrites the header): a damaged
            # file is reported and left exactly as it is.
            self._check_integrity()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
            self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        except StateError:
            self._db.close()
            raise
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if _sqlite_code(exc) in _CORRUPT_CODES:
                raise self._corrupt(str(exc)) from exc
            raise StateError(f"cannot open collector state {self.path}: {exc}") from exc

    def _corrupt(self, detail: str) -> StateCorrupt:
        return StateCorrupt(
            f"{self.path} is not a usable collector state database ({detail}); it was left "
            "untouched. Stop the collector, move the file aside (keep it: its outbox may hold "
            "readings not uploaded yet) and start again with a new one, or restore a backup"
        )

    def _check_integrity(self) -> None:
        """``PRAGMA quick_check``: reads every page once (0.13 s for 300 MB cached), writes none."""
        rows = self._db.execute("PRAGMA quick_check(1)").fetchall()
        if rows != [("ok",)]:
            # e.g. "*** in database main ***\nPage 6: btreeInitPage() returns error code 11"
            lines = [line.strip() for r in rows for line in str(r[0]).splitlines()]
            detail = "; ".join(line for line in lines if line and not line.startswith("***"))
            raise self._corrupt(f"damaged: {detail[:200] or 'integrity check failed'}")

    def _migrate(self) -> None:
        with self.transaction() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            elif int(row[0]) > SCHEMA_VERSION:
                raise StateError(
                    f"{self.path} was written by a newer collector (schema {row[0]}); "
                    "upgrade this one"
                )
            columns = {r[1] for r in db.execute("PRAGMA table_info(outbox)")}
            if "droppable" not in columns:
                # Additive: an older collector's INSERTs name their columns and get the default.
                db.execute("ALTER TABLE outbox ADD COLUMN droppable INTEGER NOT NULL DEFAULT 0")
            for statement in _INDEXES.split(";"):
                if statement.strip():
                    db.execute(statement)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> State:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception (which propagates).

        Inside another ``transaction()`` it joins that one: its writes commit or roll back
        with the outer block. (So an exception must not be caught *inside* the outer block
        and the block carry on: what was written before it would commit.)
        SQLITE_FULL becomes ``StateFull``, a damaged file ``StateCorrupt``."""
        if self._depth:
            self._depth += 1
            try:
                yield self._db
            finally:
                self._depth -= 1
            return
        try:
            # IMMEDIATE takes the write lock up front: a second process (poll-once next to
            # run) waits here instead of failing half-way with "database is locked".
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._raise_translated(exc)
        self._depth = 1
        self._queued = False
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException as exc:
            # Also when COMMIT itself failed (a full disk shows there first, appending to the
            # WAL): the connection must not stay inside a half-done transaction.
            self._rollback()
            if isinstance(exc, sqlite3.Error):
                self._raise_translated(exc)
            raise
        finally:
            self._depth = 0
        if self._queued:
            self._stored()

    def _rollback(self) -> None:
        # SQLite may already have rolled back by itself (it does for some SQLITE_FULL cases).
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error as exc:  # the original error is what matters; say this too
                log.warning("%s: rollback failed: %s", self.path, exc)

    def _raise_translated(self, exc: sqlite3.Error) -> NoReturn:
        """Raise ``StateFull`` or ``StateCorrupt`` for ``exc`` if it is one, else ``exc``."""
        translated = self._translated(exc)
        if translated is exc:
            raise exc
        raise translated from exc

    def _translated(self, exc: sqlite3.Error) -> BaseException:
        code = _sqlite_code(exc)
        if code == sqlite3.SQLITE_FULL:
            if self.full_since is None:
                self.full_since = now_utc()
                log.error(
                    "collector state %s: the disk is full (%s): readings are not stored and "
                    "job cursors do not advance until space is freed; the collector keeps "
                    "running and stores the next readings once it can",
                    self.path,
                    exc,
                )
            return StateFull(f"collector state {self.path}: disk full ({exc})")
        if code in _CORRUPT_CODES:
            return self._corrupt(str(exc))
        return exc

    # ----------------------------------------------------------------------- outbox & cursors

    def enqueue(
        self,
        reports: DeviceReport | Sequence[DeviceReport],
        *,
        job_cursor: tuple[str, str, int] | None = None,
    ) -> list[int]:
        """Queue ``reports``; if given, advance the (driver, serial) job cursor in the same
        transaction. Returns the outbox row ids.

        At the size cap, droppable rows (old HEALTH reports) make room; if they cannot,
        ``OutboxFull`` is raised and nothing is written (the cursor stays where it was)."""
        if isinstance(reports, DeviceReport):
            reports = [reports]
        # Serialised once, here (the uploader parses these bytes back into the batch it sends).
        rows = [
            (
                str(r.kind),
                r.model_dump_json(exclude_none=True),
                int(r.kind is ReportKind.HEALTH and not r.jobs),
            )
            for r in reports
        ]
        size = sum(len(body) for _, body, _ in rows)
        stamp = _ts(now_utc())
        ids: list[int] = []
        with self.transaction() as db:
            if self._used_bytes() + size >= self.limits.max_bytes:
                self._make_room(size)
            for kind, body, droppable in rows:
                cur = db.execute(
                    "INSERT INTO outbox (created_at, kind, report, droppable) VALUES (?, ?, ?, ?)",
                    (stamp, kind, body, droppable),
                )
                assert cur.lastrowid is not None
                ids.append(cur.lastrowid)
            if job_cursor is not None:
                self._advance_cursor(db, *job_cursor)
            self._queued = True  # the outermost transaction's commit ends a "full" condition
        return ids

    def _stored(self) -> None:
        """A report reached the outbox: a full disk or outbox is over."""
        if self.full_since is not None:
            log.warning("collector state %s: writable again, readings are stored", self.path)
            self.full_since = None
        if self.outbox_full_since is not None and not self.outbox_full():
            log.warning("outbox under its cap again: usage polls resume")
            self.outbox_full_since = None

    def _used_bytes(self) -> int:
        """Bytes of the database in use (pages not on the free list): O(1), no scan."""
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * self._page_size)

    def _oldest_droppable(self, excess: float) -> tuple[list[int], int]:
        """The oldest droppable rows whose reports add up to ``excess`` bytes (all of them if
        they do not), and how many bytes they add up to."""
        ids: list[int] = []
        total = 0
        for row_id, row_size in self._db.execute(
            "SELECT id, length(report) FROM outbox WHERE droppable = 1 AND batch_id IS NULL "
            "AND quarantined_at IS NULL ORDER BY id"
        ):
            ids.append(row_id)
            total += row_size
            if total >= excess:
                break
        return ids, total

    def _make_room(self, size: int) -> None:
        """Inside ``enqueue``'s transaction, at the cap: drop the oldest droppable rows until
        ``size`` more bytes fit under ``PRUNE_TO`` of the cap (or at least under the cap);
        ``OutboxFull`` if even dropping every one would not make room (then none is dropped)."""
        cap = self.limits.max_bytes
        dropped = 0
        for _ in range(3):  # deleting N bytes of reports frees about N bytes of pages
            used = self._used_bytes()
            excess = used - (cap * PRUNE_TO - size)
            if excess <= 0:
                break
            ids, freed = self._oldest_droppable(excess)
            if not ids or (freed < excess and used - freed + size >= cap):
                break  # dropping them would not make room: keep them
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
            dropped += len(ids)
        if dropped:
            log.warning(
                "outbox at its cap (max_outbox_bytes %d): dropped the %d oldest unsent health "
                "reports (newer reports of the same devices supersede them)",
                cap,
                dropped,
            )
        if self._used_bytes() + size >= cap:
            if self.outbox_full_since is None:
                self.outbox_full_since = now_utc()
                log.error(
                    "OUTBOX FULL: %s is at max_outbox_bytes (%d) with unsent billing data, "
                    "which is never dropped; usage polls are stopped (jobs stay on the devices) "
                    "until uploads bring it under %d %% of the cap, or the cap is raised",
                    self.path,
                    cap,
                    round(PRUNE_TO * 100),
                )
            raise OutboxFull(
                f"outbox full ({cap} bytes of unsent billing data, max_outbox_bytes): "
                "report not queued"
            )

    def outbox_full(self) -> bool:
        """Are usage polls stopped? Since a report was refused at the cap, until the database
        is under ``PRUNE_TO`` of it again (hysteresis: a poll that could only just fit would
        otherwise flip it every poll). Cheap: the poller asks before every usage read."""
        if self.outbox_full_since is None:
            return False
        return self._used_bytes() >= self.limits.max_bytes * PRUNE_TO

    def outbox_depth(self) -> OutboxDepth:
        """Pending and quarantined rows, bytes in use and the oldest pending row's time."""
        (pending,) = self._db.execute(
            "SELECT COUNT(*) FROM outbox WHERE quarantined_at IS NULL"
        ).fetchone()
        (quarantined,) = self._db.execute(
            "SELECT COUNT(*) FROM outbox WHERE quarantined_at IS NOT NULL"
        ).fetchone()
        oldest = self._db.execute(
            "SELECT created_at FROM outbox WHERE quarantined_at IS NULL ORDER BY id LIMIT 1"
        ).fetchone()
        return OutboxDepth(
            pending=int(pending),
            quarantined=int(quarantined),
            used_bytes=self._used_bytes(),
            oldest_pending_at=_parse_ts(oldest[0]) if oldest else None,
            limits=self.limits,
        )

    def watch_outbox(self) -> OutboxDepth:
        """``outbox_depth()``, logging a warning when the pending rows cross above
        ``alert_rows`` and a note when they are back under it: once per crossing."""
        depth = self.outbox_depth()
        if depth.above_alert and not self._above_alert:
            age = (
                f", oldest from {depth.oldest_pending_at.isoformat(timespec='seconds')}"
                if depth.oldest_pending_at
                else ""
            )
            log.warning(
                "outbox: %d reports waiting for upload, above outbox_alert_rows (%d)%s; "
                "is the portal reachable?",
                depth.pending,
                self.limits.alert_rows,
                age,
            )
        elif self._above_alert and not depth.above_alert:
            log.warning(
                "outbox: %d reports waiting, back under outbox_alert_rows (%d)",
                depth.pending,
                self.limits.alert_rows,
            )
        self._above_alert = depth.above_alert
        return depth

    def _advance_cursor(
        self, db: sqlite3.Connection, driver: str, serial_number: str, sequence: int
    ) -> None:
        # MAX(): a cursor only moves forward, even if a report arrives with older jobs.
        db.execute(
            """INSERT INTO job_cursors (driver, serial_number, last_sequence, updated_at)
               VALUES (?, ?, ?, ?)
               ON CONFLICT (driver, serial_number) DO UPDATE SET
                 last_sequence = MAX(last_sequence, excluded.last_sequence),
                 updated_at = excluded.updated_at""",
            (driver, serial_number, sequence, _ts(now_utc())),
        )

    def job_cursor(self, driver: str, serial_number: str) -> int | None:
        row = self._db.execute(
            "SELECT last_sequence FROM job_cursors WHERE driver = ? AND serial_number = ?",
            (driver, serial_number),
        ).fetchone()
        return int(row[0]) if row else None

    def pending_batches(self) -> list[PendingBatch]:
        """Batches formed earlier (e.g. before a crash) and not confirmed, oldest first."""
        batches = self._db.execute(
            "SELECT batch_id, created_at FROM batches WHERE quarantined_at IS NULL "
            "ORDER BY created_at, rowid"
        ).fetchall()
        out = []
        for batch_id, created_at in batches:
            rows = self._rows("WHERE batch_id = ? AND quarantined_at IS NULL", (batch_id,))
            out.append(PendingBatch(uuid.UUID(batch_id), datetime.fromisoformat(created_at), rows))
        return out

    def unbatched_rows(self, limit: int) -> list[OutboxRow]:
        return self._rows(
            "WHERE batch_id IS NULL AND quarantined_at IS NULL ORDER BY id LIMIT ?", (limit,)
        )

    def _rows(self, where: str, params: Sequence[object]) -> list[OutboxRow]:
        return [
            OutboxRow(
                id=r[0],
                created_at=datetime.fromisoformat(r[1]),
                kind=r[2],
                report_json=r[3],
                batch_id=uuid.UUID(r[4]) if r[4] else None,
            )
            for r in self._db.execute(
                f"SELECT id, created_at, kind, report, batch_id FROM outbox {where}",  # noqa: S608
                params,
            )
        ]

    def assign_batch(self, row_ids: Sequence[int], *, created_at: datetime) -> uuid.UUID:
        """Give ``row_ids`` a new batch id, durably, before anything is sent."""
        batch_id = uuid.uuid4()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO batches (batch_id, created_at) VALUES (?, ?)",
                (str(batch_id), _ts(created_at)),
            )
            db.executemany(
                "UPDATE outbox SET batch_id = ? WHERE id = ? AND batch_id IS NULL",
                [(str(batch_id), row_id) for row_id in row_ids],
            )
        return batch_id

    def confirm_batch(self, batch_id: uuid.UUID) -> int:
        """The portal stored the batch: drop its rows. Returns how many rows were deleted."""
        with self.transaction() as db:
            deleted = db.execute("DELETE FROM outbox WHERE batch_id = ?", (str(batch_id),)).rowcount
            db.execute("DELETE FROM batches WHERE batch_id = ?", (str(batch_id),))
        return deleted

    def record_batch_failure(self, batch_id: uuid.UUID, reason: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE batches SET attempts = attempts + 1, last_error = ? WHERE batch_id = ?",
                (reason, str(batch_id)),
            )

    def quarantine_batch(self, batch_id: uuid.UUID, reason: str) -> None:
        """The portal refused the batch for good: keep its rows, visible, but stop sending."""
        stamp = _ts(now_utc())
        with self.transaction() as db:
            db.execute(
                "UPDATE batches SET quarantined_at = ?, quarantine_reason = ? WHERE batch_id = ?",
                (stamp, reason, str(batch_id)),
            )
            db.execute(
                "UPDATE outbox SET quarantined_at = ?, quarantine_reason = ? WHERE batch_id = ?",
                (stamp, reason, str(batch_id)),
            )

    def quarantine_row(self, row_id: int, reason: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET quarantined_at = ?, quarantine_reason = ? WHERE id = ?",
                (_ts(now_utc()), reason, row_id),
            )

    def requeue_quarantined(self) -> int:
        """Release every quarantined row for a fresh batch (a new batch id: the old one was
        refused, so nothing of it is stored; jobs are deduplicated by UUID in any case)."""
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE outbox SET quarantined_at = NULL, quarantine_reason = NULL, "
                "batch_id = NULL WHERE quarantined_at IS NOT NULL"
            )
        return cur.rowcount

    def quarantined(self) -> list[QuarantinedRow]:
        return [
            QuarantinedRow(
                id=r[0],
                batch_id=uuid.UUID(r[1]) if r[1] else None,
                kind=r[2],
                reason=r[3],
                quarantined_at=datetime.fromisoformat(r[4]),
            )
            for r in self._db.execute(
                "SELECT id, batch_id, kind, quarantine_reason, quarantined_at FROM outbox "
                "WHERE quarantined_at IS NOT NULL ORDER BY id"
            )
        ]

    def outbox_count(self, *, include_quarantined: bool = False) -> int:
        where = "" if include_quarantined else " WHERE quarantined_at IS NULL"
        (count,) = self._db.execute(f"SELECT COUNT(*) FROM outbox{where}").fetchone()  # noqa: S608
        return int(count)

    # ----------------------------------------------------------------------- certificate pins

    def load_pins(self) -> PinStore:
        pins = dict(self._db.execute("SELECT host_port, sha256 FROM cert_pins").fetchall())
        self._pins_saved = dict(pins)
        self._pins_generation = self.pins_generation()
        return PinStore(pins=pins)

    def save_pins(self, pins: PinStore) -> None:
        """Persist the pins learnt (trust on first use) since the last load or save.

        Only those: writing back every pin held in memory would resurrect one that
        ``forget_pins`` (``collector repin``, another process) deleted meanwhile."""
        changed = {k: v for k, v in pins.pins.items() if self._pins_saved.get(k) != v}
        if not changed:
            return
        stamp = _ts(now_utc())
        try:
            with self.transaction() as db:
                db.executemany(
                    """INSERT INTO cert_pins (host_port, sha256, pinned_at) VALUES (?, ?, ?)
                       ON CONFLICT (host_port) DO UPDATE SET
                         sha256 = excluded.sha256,
                         pinned_at = CASE WHEN cert_pins.sha256 = excluded.sha256
                                          THEN cert_pins.pinned_at ELSE excluded.pinned_at END""",
                    [(key, value, stamp) for key, value in changed.items()],
                )
        except StateFull:
            # Disk full (logged once by transaction()): the pins stay in ``pins`` and are in
            # force; not marked saved, so the next save_pins writes them. The agent runs on.
            return
        self._pins_saved.update(changed)

    def drop_pins(self, pins: PinStore, keys: Sequence[str]) -> None:
        """Delete the pins ``keys`` (from ``pins`` and the database) without an operator:
        used when a device's very certificate moved to another address with the device."""
        with self.transaction() as db:
            db.executemany("DELETE FROM cert_pins WHERE host_port = ?", [(k,) for k in keys])
        for key in keys:
            pins.pins.pop(key, None)
            self._pins_saved.pop(key, None)

    def pins_generation(self) -> int:
        """Bumped by every ``forget_pins``: a running agent compares it to know when to reload."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'pins_generation'").fetchone()
        return int(row[0]) if row else 0

    def reload_pins_if_forgotten(self, pins: PinStore) -> bool:
        """If pins were forgotten since ``pins`` was loaded, save what it learnt and reload it
        in place (drivers and tasks hold this very object). True if it was reloaded."""
        if self.pins_generation() == self._pins_generation:
            return False
        self.save_pins(pins)
        fresh = self.load_pins()
        pins.pins.clear()
        pins.pins.update(fresh.pins)
        return True

    def forget_pins(self, host: str) -> list[ForgottenPin]:
        """Delete every pin of ``host`` (all ports): its next connection pins anew. The device's
        certificate alert stays until it is read again (that report carries it cleared)."""
        with self.transaction() as db:
            rows = db.execute(
                "SELECT host_port, sha256, pinned_at FROM cert_pins "
                "WHERE substr(host_port, 1, ?) = ?",
                (len(host) + 1, host + ":"),
            ).fetchall()
            db.executemany("DELETE FROM cert_pins WHERE host_port = ?", [(r[0],) for r in rows])
            db.execute(
                """INSERT INTO meta (key, value) VALUES ('pins_generation', '1')
                   ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"""
            )
        return [ForgottenPin(r[0], r[1], _parse_ts(r[2])) for r in rows]

    # ----------------------------------------------------------------------- known devices

    def device_seen(
        self,
        *,
        address: str,
        port: int | None,
        scheme: str,
        driver: str,
        serial_number: str,
        vendor: str | None,
        model: str | None,
        moved: bool = False,
    ) -> list[KnownDevice]:
        """Record ``serial_number`` (read by ``driver``) at ``address``.

        ``moved``: discovery found this device at this address only, so rows of the same
        device at other addresses are stale (DHCP gave it a new one): they are dropped and
        returned, so that the old address is no longer polled in its name."""
        moved_from = (
            [
                _known_device(r)
                for r in self._db.execute(
                    f"SELECT {_DEVICE_COLUMNS} FROM devices "  # noqa: S608 (constant columns)
                    "WHERE driver = ? AND serial_number = ? AND address != ?",
                    (driver, serial_number, address),
                )
            ]
            if moved
            else []
        )
        with self.transaction() as db:
            db.executemany(
                "DELETE FROM devices WHERE address = ? AND driver = ? AND serial_number = ?",
                [(d.address, driver, serial_number) for d in moved_from],
            )
            db.execute(
                """INSERT INTO devices (address, port, scheme, driver, serial_number, vendor,
                                        model, last_seen, last_error, last_error_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)
                   ON CONFLICT (address) DO UPDATE SET
                     port = excluded.port, scheme = excluded.scheme, driver = excluded.driver,
                     serial_number = excluded.serial_number, vendor = excluded.vendor,
                     model = excluded.model, last_seen = excluded.last_seen,
                     last_error = NULL, last_error_at = NULL""",
                (address, port, scheme, driver, serial_number, vendor, model, _ts(now_utc())),
            )
        return moved_from

    def device_error(self, *, address: str, reason: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE devices SET last_error = ?, last_error_at = ? WHERE address = ?",
                (reason, _ts(now_utc()), address),
            )

    def known_devices(self) -> list[KnownDevice]:
        return [
            _known_device(r)
            for r in self._db.execute(
                f"SELECT {_DEVICE_COLUMNS} FROM devices ORDER BY address"  # noqa: S608
            )
        ]

    # ----------------------------------------------------------------------- device status

    def record_poll(
        self,
        *,
        driver: str,
        serial_number: str,
        report: DeviceReport | None = None,
        error: str | None = None,
        cert_alert_since: datetime | None = None,
        clear_cert_alert: bool = False,
    ) -> None:
        """After a poll: store the report's snapshot and success time, or the error."""
        now = _ts(now_utc())
        snapshot = json.dumps(snapshot_of(report)) if report is not None else None
        usage = report is not None and report.kind is ReportKind.USAGE
        # One UPSERT (was an INSERT OR IGNORE and up to four UPDATEs): this runs for every poll.
        # Each column keeps its value unless this poll has something for it.
        with self.transaction() as db:
            db.execute(
                """INSERT INTO device_status (driver, serial_number, snapshot, last_success_at,
                       last_usage_at, last_health_at, last_error, last_error_at, cert_alert_since)
                   VALUES (:driver, :serial, :snapshot, :ok_at, :usage_at, :ok_at, :error,
                           :error_at, :cert_since)
                   ON CONFLICT (driver, serial_number) DO UPDATE SET
                     snapshot = COALESCE(:snapshot, snapshot),
                     last_success_at = COALESCE(:ok_at, last_success_at),
                     last_health_at = COALESCE(:ok_at, last_health_at),
                     last_usage_at = COALESCE(:usage_at, last_usage_at),
                     last_error = COALESCE(:error, last_error),
                     last_error_at = COALESCE(:error_at, last_error_at),
                     cert_alert_since = CASE WHEN :clear_cert THEN NULL
                                             ELSE COALESCE(cert_alert_since, :cert_since) END""",
                {
                    "driver": driver,
                    "serial": serial_number,
                    "snapshot": snapshot,
                    "ok_at": now if report is not None else None,
                    "usage_at": now if usage else None,
                    "error": error,
                    "error_at": now if error is not None else None,
                    "cert_since": _ts(cert_alert_since) if cert_alert_since else None,
                    "clear_cert": clear_cert_alert,
                },
            )

    def cert_alert_since(self, driver: str, serial_number: str) -> datetime | None:
        """Since when the device's certificate alert lasts (None: no alert). Every poll asks,
        so this reads one column rather than the whole status row and its snapshot."""
        row = self._db.execute(
            "SELECT cert_alert_since FROM device_status WHERE driver = ? AND serial_number = ?",
            (driver, serial_number),
        ).fetchone()
        return _parse_ts(row[0]) if row else None

    def device_status(self, driver: str, serial_number: str) -> DeviceStatusRow | None:
        rows = self._status_rows("WHERE driver = ? AND serial_number = ?", (driver, serial_number))
        return rows[0] if rows else None

    def device_statuses(self) -> dict[tuple[str, str], DeviceStatusRow]:
        return {(r.driver, r.serial_number): r for r in self._status_rows("", ())}

    def _status_rows(self, where: str, params: Sequence[object]) -> list[DeviceStatusRow]:
        return [
            DeviceStatusRow(
                driver=r[0],
                serial_number=r[1],
                snapshot=json.loads(r[2]) if r[2] else {},
                last_success_at=_parse_ts(r[3]),
                last_usage_at=_parse_ts(r[4]),
                last_health_at=_parse_ts(r[5]),
                last_error=r[6],
                last_error_at=_parse_ts(r[7]),
                cert_alert_since=_parse_ts(r[8]),
            )
            for r in self._db.execute(
                # Fixed clauses from this class; values are bound parameters.
                _STATUS_SELECT + where,
                params,
            )
        ]
