"""The collector's durable state: one SQLite file holding the outbox, job cursors, pins, devices.

Guarantees the rest of the collector relies on:

* A usage report is enqueued and its device's job cursor advanced in ONE transaction, so a
  crash either keeps both or neither: jobs are never lost and never collected twice.
* Outbox rows are grouped into a batch (with its batch id and creation time) in a transaction
  *before* the batch is sent, so a resend after a crash carries the same batch id and the
  portal answers ``duplicate`` instead of storing it twice.
* Rows are deleted only after the portal confirmed the batch that carried them.

WAL + ``synchronous=FULL``: every commit is on disk when ``commit()`` returns (a power cut
after the portal said "stored" must not resurrect sent rows, nor lose queued ones).
The calls are synchronous and short; the collector makes them from its event loop.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fleetmeter.devices.base import PinStore
from fleetmeter.wire import DeviceReport, now_utc

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
    quarantine_reason TEXT
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
"""


class StateError(RuntimeError):
    """The state database cannot be opened or has an unknown schema."""


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

    def __init__(self, data_dir: Path) -> None:
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            self.path = data_dir / DB_NAME
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so that a transaction is
            # exactly what `transaction()` encloses (the sqlite3 module's implicit transactions
            # would otherwise start and end at points the code does not show).
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open collector state in {data_dir}: {exc}") from exc

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

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> State:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception (which propagates)."""
        # IMMEDIATE takes the write lock up front: a second process (poll-once next to run)
        # waits here instead of failing half-way with "database is locked".
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ----------------------------------------------------------------------- outbox & cursors

    def enqueue(
        self,
        reports: DeviceReport | Sequence[DeviceReport],
        *,
        job_cursor: tuple[str, str, int] | None = None,
    ) -> list[int]:
        """Queue ``reports``; if given, advance the (driver, serial) job cursor in the same
        transaction. Returns the outbox row ids."""
        if isinstance(reports, DeviceReport):
            reports = [reports]
        bodies = [(str(r.kind), r.model_dump_json(exclude_none=True)) for r in reports]
        ids: list[int] = []
        with self.transaction() as db:
            for kind, body in bodies:
                cur = db.execute(
                    "INSERT INTO outbox (created_at, kind, report) VALUES (?, ?, ?)",
                    (_ts(now_utc()), kind, body),
                )
                assert cur.lastrowid is not None
                ids.append(cur.lastrowid)
            if job_cursor is not None:
                self._advance_cursor(db, *job_cursor)
        return ids

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
        return PinStore(
            pins=dict(self._db.execute("SELECT host_port, sha256 FROM cert_pins").fetchall())
        )

    def save_pins(self, pins: PinStore) -> None:
        """Persist the store's pins (new ones after trust-on-first-use)."""
        stamp = _ts(now_utc())
        with self.transaction() as db:
            db.executemany(
                """INSERT INTO cert_pins (host_port, sha256, pinned_at) VALUES (?, ?, ?)
                   ON CONFLICT (host_port) DO UPDATE SET
                     sha256 = excluded.sha256,
                     pinned_at = CASE WHEN cert_pins.sha256 = excluded.sha256
                                      THEN cert_pins.pinned_at ELSE excluded.pinned_at END""",
                [(key, value, stamp) for key, value in pins.pins.items()],
            )

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
    ) -> None:
        with self.transaction() as db:
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

    def device_error(self, *, address: str, reason: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE devices SET last_error = ?, last_error_at = ? WHERE address = ?",
                (reason, _ts(now_utc()), address),
            )

    def known_devices(self) -> list[KnownDevice]:
        return [
            KnownDevice(
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
            for r in self._db.execute(
                "SELECT address, port, scheme, driver, serial_number, vendor, model, last_seen, "
                "last_error FROM devices ORDER BY address"
            )
        ]
