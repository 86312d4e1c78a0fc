"""Outbox durability: a report and its job cursor are stored together or not at all."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleetmeter.collector.state import State
from fleetmeter.devices.base import PinStore
from fleetmeter.wire import DeviceIdentity, DeviceReport, ReportKind

from .conftest import FakePrinter


def usage_report(serial: str = "SN1", jobs: int = 3) -> DeviceReport:
    printer = FakePrinter(serial)
    printer.print_jobs(jobs)
    return DeviceReport(
        kind=ReportKind.USAGE,
        collected_at=datetime.now(UTC),
        device=DeviceIdentity(vendor="HP", serial_number=serial, driver="fake"),
        jobs=printer.jobs,
    )


def test_database_is_wal_with_full_sync(tmp_path: Path) -> None:
    with State(tmp_path) as state:
        assert state._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert state._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_enqueue_and_cursor_commit_together_and_survive_reopen(tmp_path: Path) -> None:
    with State(tmp_path) as state:
        state.enqueue(usage_report(jobs=3), job_cursor=("fake", "SN1", 3))
    with State(tmp_path) as state:
        assert state.outbox_count() == 1
        assert state.job_cursor("fake", "SN1") == 3
        assert state.job_cursor("fake", "other") is None


def test_crash_between_enqueue_and_cursor_leaves_nothing_half_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with State(tmp_path) as state:
        state.enqueue(usage_report(jobs=2), job_cursor=("fake", "SN1", 2))

        def crash(*args: object) -> None:
            raise RuntimeError("power cut after the INSERT, before the cursor UPDATE")

        # The outbox INSERT has run when the cursor update "crashes": the transaction must
        # roll the INSERT back, or the same jobs would be queued again on the next poll.
        monkeypatch.setattr(State, "_advance_cursor", crash)
        with pytest.raises(RuntimeError, match="power cut"):
            state.enqueue(usage_report(jobs=5), job_cursor=("fake", "SN1", 5))
    with State(tmp_path) as state:
        assert state.outbox_count() == 1
        assert state.job_cursor("fake", "SN1") == 2


CRASHING_CHILD = """
import os, sys
from pathlib import Path
from fleetmeter.collector.state import State
from tests.collector.test_state import usage_report

state = State(Path(sys.argv[1]))
# Hard process death between the outbox INSERT and the cursor UPDATE: no except, no
# finally, no ROLLBACK runs; only SQLite's journal stands between us and a half-done write.
State._advance_cursor = lambda *a: os._exit(9)
state.enqueue(usage_report(jobs=5), job_cursor=("fake", "SN1", 5))
"""


def test_process_killed_inside_the_transaction_leaves_nothing_half_done(tmp_path: Path) -> None:
    with State(tmp_path) as state:
        state.enqueue(usage_report(jobs=2), job_cursor=("fake", "SN1", 2))
    root = Path(__file__).resolve().parents[2]
    child = subprocess.run(
        [sys.executable, "-c", CRASHING_CHILD, str(tmp_path)], cwd=root, check=False
    )
    assert child.returncode == 9
    with State(tmp_path) as state:
        assert state.outbox_count() == 1
        assert state.job_cursor("fake", "SN1") == 2


def test_cursor_only_moves_forward(tmp_path: Path) -> None:
    with State(tmp_path) as state:
        state.enqueue(usage_report(), job_cursor=("fake", "SN1", 10))
        state.enqueue(usage_report(), job_cursor=("fake", "SN1", 7))
        assert state.job_cursor("fake", "SN1") == 10


def test_batch_assignment_survives_reopen_and_confirm_deletes(tmp_path: Path) -> None:
    created = datetime(2026, 1, 1, tzinfo=UTC)
    with State(tmp_path) as state:
        ids = [state.enqueue(usage_report(f"SN{i}"))[0] for i in range(3)]
        batch_id = state.assign_batch(ids[:2], created_at=created)
    with State(tmp_path) as state:
        (pending,) = state.pending_batches()
        assert pending.batch_id == batch_id
        assert pending.created_at == created
        assert [r.id for r in pending.rows] == ids[:2]
        assert [r.id for r in state.unbatched_rows(10)] == ids[2:]
        assert state.confirm_batch(batch_id) == 2
        assert state.pending_batches() == []
        assert state.outbox_count() == 1


def test_quarantine_keeps_rows_visible_and_out_of_the_queue(tmp_path: Path) -> None:
    with State(tmp_path) as state:
        ids = [state.enqueue(usage_report(f"SN{i}"))[0] for i in range(2)]
        batch_id = state.assign_batch(ids[:1], created_at=datetime.now(UTC))
        state.quarantine_batch(batch_id, "portal answered 422: bad")
        state.quarantine_row(ids[1], "too large")
        assert state.pending_batches() == []
        assert state.unbatched_rows(10) == []
        assert state.outbox_count() == 0
        assert state.outbox_count(include_quarantined=True) == 2
        assert [(q.id, q.reason) for q in state.quarantined()] == [
            (ids[0], "portal answered 422: bad"),
            (ids[1], "too large"),
        ]


def test_pins_and_devices_round_trip(tmp_path: Path) -> None:
    with State(tmp_path) as state:
        state.save_pins(PinStore({"127.0.1.1:443": "ab" * 32}))
        state.device_seen(
            address="127.0.1.1",
            port=443,
            scheme="https",
            driver="fake",
            serial_number="SN1",
            vendor="HP",
            model="T830",
        )
        state.device_error(address="127.0.1.1", reason="connection refused")
    with State(tmp_path) as state:
        assert state.load_pins().pins == {"127.0.1.1:443": "ab" * 32}
        (device,) = state.known_devices()
        assert (device.serial_number, device.last_error) == ("SN1", "connection refused")


def seen(state: State, address: str, serial: str, *, moved: bool = True) -> list[str]:
    return [
        d.address
        for d in state.device_seen(
            address=address,
            port=None,
            scheme="https",
            driver="fake",
            serial_number=serial,
            vendor="HP",
            model="T830",
            moved=moved,
        )
    ]


def test_a_device_seen_at_a_new_address_moves_and_keeps_its_cursor(tmp_path: Path) -> None:
    with State(tmp_path) as state:
        seen(state, "10.0.0.5", "SN1")
        seen(state, "10.0.0.6", "SN2")
        state.enqueue(usage_report("SN1", jobs=4), job_cursor=("fake", "SN1", 4))
        assert seen(state, "10.0.0.9", "SN1") == ["10.0.0.5"]
        assert {d.address: d.serial_number for d in state.known_devices()} == {
            "10.0.0.6": "SN2",
            "10.0.0.9": "SN1",
        }
        assert state.job_cursor("fake", "SN1") == 4
        # Two hosts answering with one serial in the same discovery: both kept.
        assert seen(state, "10.0.0.7", "SN2", moved=False) == []
        assert len(state.known_devices()) == 3


def test_save_pins_never_resurrects_a_forgotten_pin(tmp_path: Path) -> None:
    with State(tmp_path) as agent, State(tmp_path) as operator:
        agent.save_pins(PinStore({"10.0.0.5:443": "a" * 64, "10.0.0.5:631": "b" * 64}))
        pins = agent.load_pins()
        forgotten = operator.forget_pins("10.0.0.5")  # `collector repin` in another process
        assert sorted(p.host_port for p in forgotten) == ["10.0.0.5:443", "10.0.0.5:631"]
        assert operator.forget_pins("10.0.0.50") == []  # a prefix of another host: not it
        pins.pins["10.0.0.6:443"] = "c" * 64  # the agent learns a new pin meanwhile
        agent.save_pins(pins)
        assert operator.load_pins().pins == {"10.0.0.6:443": "c" * 64}
        assert agent.reload_pins_if_forgotten(pins)
        assert pins.pins == {"10.0.0.6:443": "c" * 64}
        assert not agent.reload_pins_if_forgotten(pins)


def test_poll_history_and_snapshot(tmp_path: Path) -> None:
    report = usage_report("SN1")
    with State(tmp_path) as state:
        state.record_poll(driver="fake", serial_number="SN1", report=report)
        state.record_poll(driver="fake", serial_number="SN1", error="connection refused")
    with State(tmp_path) as state:
        row = state.device_status("fake", "SN1")
        assert row is not None
        assert row.last_success_at is not None and row.last_usage_at == row.last_success_at
        assert row.last_error == "connection refused"
        assert row.snapshot["kind"] == "usage" and row.snapshot["alerts"] == []
        assert state.device_status("fake", "other") is None
