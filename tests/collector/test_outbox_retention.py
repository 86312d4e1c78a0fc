"""Outbox retention and failures (issue 4): a bounded, visible outbox that never drops billing
data, a full disk that stops nothing but the storing, and a damaged state file that is reported
and left alone."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fleetmeter.collector import agent as agent_module
from fleetmeter.collector.agent import Started, run_async
from fleetmeter.collector.config import ConfigError, load_config
from fleetmeter.collector.poller import OUTBOX_FULL
from fleetmeter.collector.state import (
    DB_NAME,
    OutboxFull,
    OutboxLimits,
    State,
    StateCorrupt,
    StateFull,
)
from fleetmeter.devices.base import PinStore, ReadOptions, Target
from fleetmeter.wire import Alert, AlertSeverity, DeviceIdentity, DeviceReport, ReportKind

from .conftest import T0, FakeDriver, write_config
from .test_poller import poll
from .test_state import usage_report

REPO = Path(__file__).resolve().parents[2]


def health_report(serial: str, *, alerts: int = 8) -> DeviceReport:
    """A HEALTH report of about ``alerts`` × 230 bytes."""
    return DeviceReport(
        kind=ReportKind.HEALTH,
        collected_at=datetime.now(UTC),
        device=DeviceIdentity(vendor="HP", serial_number=serial, driver="fake"),
        alerts=[
            Alert(code=f"a{i}", severity=AlertSeverity.WARNING, text="x" * 200, first_seen=T0)
            for i in range(alerts)
        ],
    )


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def used_bytes(state: State) -> int:
    return state.outbox_depth().used_bytes


# --------------------------------------------------------------------------- config


def test_retention_settings_have_defaults_and_refuse_nonsense(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path / "c.toml"))
    assert config.upload.outbox_alert_rows == 10_000
    assert config.upload.max_outbox_bytes == 2_000_000_000
    path = write_config(tmp_path / "bad.toml")
    text = path.read_text().replace(
        "[upload]\n", "[upload]\noutbox_alert_rows = 0\nmax_outbox_bytes = 1000\n"
    )
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    joined = "\n".join(caught.value.errors)
    assert "upload.outbox_alert_rows" in joined and "upload.max_outbox_bytes" in joined


# --------------------------------------------------------------------------- the size cap


def test_at_the_cap_the_oldest_health_reports_make_room_and_billing_data_stays(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with State(tmp_path) as state:
        state.limits = OutboxLimits(max_bytes=used_bytes(state) + 1_000_000)
        health = [state.enqueue(health_report(f"H{i}"))[0] for i in range(100)]  # ~200 kB
        sending = state.assign_batch(health[:3], created_at=datetime.now(UTC))  # being sent
        state.quarantine_row(health[3], "refused by the portal")  # kept for the operator
        usage: list[int] = []
        first_prune: set[int] | None = None
        with pytest.raises(OutboxFull):
            for i in range(1000):
                usage += state.enqueue(
                    usage_report(f"U{i}", jobs=20), job_cursor=("fake", f"U{i}", 20)
                )
                left = {row.id for row in state.unbatched_rows(10_000)}
                if first_prune is None and not set(health[4:]) <= left:
                    first_prune = left & set(health)
        refused = f"U{len(usage)}"
        left = {row.id for row in state.unbatched_rows(10_000)}
        # Oldest first: the first prune (to 95 % of the cap) kept the newest health reports.
        assert first_prune is not None and 0 < len(first_prune) < 90
        assert sorted(first_prune) == health[-len(first_prune) :]
        # Every usage report is still there; what is left of the health reports that may be
        # dropped (too little to make room for another usage report) is the newest.
        assert set(usage) <= left
        kept = sorted(set(health[4:]) & left)
        assert len(kept) < len(first_prune) and kept == health[len(health) - len(kept) :]
        assert [r.id for r in state.pending_batches()[0].rows] == health[:3]
        assert [q.id for q in state.quarantined()] == [health[3]]
        # The refused report left nothing behind: no row, no cursor.
        assert state.job_cursor("fake", refused) is None
        assert state.job_cursor("fake", f"U{len(usage) - 1}") == 20
        assert state.outbox_full() and state.outbox_full_since is not None
        for _ in range(3):
            with pytest.raises(OutboxFull):
                state.enqueue(usage_report(refused, jobs=20), job_cursor=("fake", refused, 20))
        assert len(messages(caplog, "OUTBOX FULL")) == 1  # once, not once per refusal
        assert messages(caplog, "oldest unsent health reports")

        # The portal takes the billing data: room again, usage polls resume.
        state.confirm_batch(sending)
        state.confirm_batch(state.assign_batch(usage, created_at=datetime.now(UTC)))
        assert not state.outbox_full()
        state.enqueue(usage_report(refused, jobs=20), job_cursor=("fake", refused, 20))
        assert state.job_cursor("fake", refused) == 20
        assert state.outbox_full_since is None
        assert messages(caplog, "usage polls resume")


def test_a_full_outbox_stops_usage_polls_without_reading_the_device(
    tmp_path: Path, fake_driver: FakeDriver, caplog: pytest.LogCaptureFixture
) -> None:
    fake_driver.add("127.0.1.1", "SN-A", jobs=5)
    with State(tmp_path) as state:
        state.limits = OutboxLimits(max_bytes=used_bytes(state) + 60_000)
        with pytest.raises(OutboxFull):
            for i in range(500):
                state.enqueue(usage_report(f"U{i}", jobs=20), job_cursor=("fake", f"U{i}", 20))
        for _ in range(3):
            outcome = poll(state, fake_driver, "127.0.1.1")
            assert outcome.error is not None and outcome.error.reason == OUTBOX_FULL
        assert fake_driver.reads == []  # not read: its jobs wait on the device
        assert state.job_cursor("fake", "SN-A") is None
        status = state.device_status("fake", "SN-A")
        assert status is not None and status.last_error == OUTBOX_FULL  # visible per device
        # Health polls go on (queued while a report fits under the cap, else refused alike).
        poll(state, fake_driver, "127.0.1.1", ReportKind.HEALTH)
        assert [options.kind for _, options in fake_driver.reads] == [ReportKind.HEALTH]
        assert len(messages(caplog, "OUTBOX FULL")) == 1
        # Nothing per device above DEBUG for a condition the collector logged once.
        assert not [r for r in caplog.records if "poll failed" in r.getMessage()]


def test_the_outbox_alert_is_logged_once_per_crossing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with State(tmp_path, limits=OutboxLimits(alert_rows=3)) as state:
        ids = [state.enqueue(health_report(f"H{i}", alerts=1))[0] for i in range(3)]
        assert not state.watch_outbox().above_alert  # 3 is not above 3
        ids += state.enqueue(health_report("H3", alerts=1))
        for _ in range(5):
            depth = state.watch_outbox()
        assert depth.above_alert and depth.pending == 4 and depth.oldest_pending_at is not None
        assert len(messages(caplog, "above outbox_alert_rows (3)")) == 1
        state.confirm_batch(state.assign_batch(ids[:2], created_at=datetime.now(UTC)))
        state.watch_outbox()
        state.watch_outbox()
        assert len(messages(caplog, "back under outbox_alert_rows")) == 1
        state.enqueue([health_report("H4", alerts=1), health_report("H5", alerts=1)])
        state.watch_outbox()
        assert len(messages(caplog, "above outbox_alert_rows (3)")) == 2


def test_an_outbox_from_before_retention_is_migrated_and_its_rows_never_dropped(
    tmp_path: Path,
) -> None:
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, kind TEXT NOT NULL,
            report TEXT NOT NULL, batch_id TEXT, quarantined_at TEXT, quarantine_reason TEXT);
        """
    )
    db.execute(
        "INSERT INTO outbox (created_at, kind, report) VALUES (?, 'health', ?)",
        (datetime.now(UTC).isoformat(), health_report("OLD").model_dump_json()),
    )
    db.commit()
    db.close()
    with State(tmp_path) as state:
        (new_id,) = state.enqueue(health_report("NEW"))
        flags = dict(state._db.execute("SELECT id, droppable FROM outbox").fetchall())
        assert flags == {1: 0, new_id: 1}
        assert state.outbox_depth().pending == 2


# --------------------------------------------------------------------------- a full disk


def fill_the_disk(state: State) -> None:
    """SQLite's own page limit: past it, every write that needs a page fails with SQLITE_FULL
    ("database or disk is full"), exactly as on a full file system."""
    (pages,) = state._db.execute("PRAGMA page_count").fetchone()
    state._db.execute(f"PRAGMA max_page_count = {pages}")


def free_the_disk(state: State) -> None:
    state._db.execute("PRAGMA max_page_count = 1073741823")


def test_a_full_disk_stores_nothing_moves_no_cursor_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with State(tmp_path) as state:
        state.enqueue(usage_report("SN1", jobs=2), job_cursor=("fake", "SN1", 2))
        fill_the_disk(state)
        for _ in range(3):
            with pytest.raises(StateFull, match="disk full"):
                state.enqueue(usage_report("SN1", jobs=40), job_cursor=("fake", "SN1", 40))
        assert state.job_cursor("fake", "SN1") == 2
        assert state.outbox_count() == 1
        assert state.full_since is not None
        assert len(messages(caplog, "the disk is full")) == 1
        free_the_disk(state)
        state.enqueue(usage_report("SN1", jobs=40), job_cursor=("fake", "SN1", 40))
        assert state.job_cursor("fake", "SN1") == 40
        assert state.full_since is None and messages(caplog, "writable again")


def test_a_poll_on_a_full_disk_is_a_failed_poll_not_a_crash(
    tmp_path: Path, fake_driver: FakeDriver, caplog: pytest.LogCaptureFixture
) -> None:
    fake_driver.add("127.0.1.1", "SN-A", jobs=2)
    with State(tmp_path) as state:
        assert poll(state, fake_driver, "127.0.1.1").queued
        fake_driver.printers["127.0.1.1"].job_name_size = 2000  # every new job needs a page
        fake_driver.printers["127.0.1.1"].print_jobs(5)
        fill_the_disk(state)
        for _ in range(2):
            outcome = poll(state, fake_driver, "127.0.1.1")
            assert outcome.error is not None and "disk full" in outcome.error.reason
        assert state.job_cursor("fake", "SN-A") == 2
        assert len(messages(caplog, "the disk is full")) == 1
        free_the_disk(state)
        assert poll(state, fake_driver, "127.0.1.1").jobs == 5
        assert state.job_cursor("fake", "SN-A") == 7


def test_the_agent_keeps_running_on_a_full_disk(
    tmp_path: Path,
    ca_file: Path,
    fake_driver: FakeDriver,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    printer = fake_driver.add("127.0.1.1", "SN-A", jobs=2)
    printer.job_name_size = 2000
    original_read = fake_driver.read

    async def bulky_read(target: Target, pins: PinStore, options: ReadOptions) -> DeviceReport:
        # Reports larger than a page: each needs a new page, so none fits a full disk.
        report = await original_read(target, pins, options)
        report.alerts.extend(health_report("SN-A", alerts=30).alerts)
        return report

    monkeypatch.setattr(fake_driver, "read", bulky_read)
    states: list[State] = []

    class Recorded(State):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            states.append(self)

    monkeypatch.setattr(agent_module, "State", Recorded)
    # The portal is down: uploads fail and back off, so the outbox only grows.
    config = load_config(
        write_config(
            tmp_path / "collector.toml",
            portal_url="https://127.0.0.1:9",
            ca_file=ca_file,
            usage_minutes=30,
            speed=1200.0,  # usage every 1.5 s, health every 0.25 s
        )
    )

    def usage_reads() -> int:
        return sum(1 for _, options in fake_driver.reads if options.kind is ReportKind.USAGE)

    async def until(predicate: Any, what: str) -> None:
        for _ in range(1000):
            if predicate():
                return
            assert not task.done(), task.exception()
            await asyncio.sleep(0.01)
        raise AssertionError(f"never: {what}")

    async def go() -> None:
        nonlocal task
        stop = asyncio.Event()
        started: list[Started] = []
        task = asyncio.create_task(run_async(config, ready=started.append, stop=stop))
        try:
            await until(lambda: states and states[0].job_cursor("fake", "SN-A") == 2, "stored")
            state = states[0]
            fill_the_disk(state)
            printer.print_jobs(3)
            await until(lambda: messages(caplog, "the disk is full"), "disk full logged")
            reads = usage_reads()
            await until(lambda: usage_reads() >= reads + 2, "two more usage polls")
            assert not task.done()  # still running
            assert state.job_cursor("fake", "SN-A") == 2  # nothing stored, nothing skipped
            free_the_disk(state)
            await until(lambda: state.job_cursor("fake", "SN-A") == 5, "stored after")
            assert not task.done()
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    task: asyncio.Task[None]
    asyncio.run(asyncio.wait_for(go(), 30))
    assert len(messages(caplog, "the disk is full")) == 1
    assert messages(caplog, "writable again")


# --------------------------------------------------------------------------- a damaged file


def fleetmeter(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetmeter", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )


def damaged_state(tmp_path: Path, how: str) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    path = data / DB_NAME
    if how == "not a database":
        path.write_bytes(b"collector notes, not SQLite\n" * 200)
    else:
        with State(data) as state:
            for i in range(20):
                state.enqueue(usage_report(f"SN{i}", jobs=20), job_cursor=("fake", f"SN{i}", 20))
        raw = bytearray(path.read_bytes())
        page = 4096
        raw[3 * page : 3 * page + 64] = b"\xff" * 64  # a b-tree page header overwritten
        path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("how", ["not a database", "damaged"])
@pytest.mark.parametrize("command", ["status", "run"])
def test_a_damaged_state_file_is_one_clear_line_and_left_untouched(
    tmp_path: Path, how: str, command: str
) -> None:
    path = damaged_state(tmp_path, how)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    config = write_config(tmp_path / "collector.toml", drivers=["ledm"])
    result = fleetmeter("collector", command, "--config", str(config))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert str(path) in line and "left untouched" in line and "move the file aside" in line
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(DB_NAME)) == [DB_NAME]


def test_opening_a_damaged_state_raises_state_corrupt(tmp_path: Path) -> None:
    damaged_state(tmp_path, "damaged")
    with pytest.raises(StateCorrupt, match="damaged"):
        State(tmp_path / "data")
