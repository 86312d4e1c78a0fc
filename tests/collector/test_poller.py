"""One poll, one transaction: the reading, its cursor, the poll status and the device row are
committed together (one fsync per device, docs/performance.md) or not at all."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fleetmeter.collector.discovery import FoundDevice
from fleetmeter.collector.poller import PollOutcome, poll_device
from fleetmeter.collector.state import State
from fleetmeter.devices.base import PinStore, Target
from fleetmeter.wire import ReportKind

from .conftest import FakeDriver


def found(driver: FakeDriver, host: str) -> FoundDevice:
    return FoundDevice(
        target=Target(host=host), driver=driver.id, identity=driver.identity(driver.printers[host])
    )


def poll(
    state: State, driver: FakeDriver, host: str, kind: ReportKind = ReportKind.USAGE
) -> PollOutcome:
    return asyncio.run(
        poll_device(found(driver, host), driver, kind=kind, state=state, pins=PinStore())
    )


def count_commits(state: State) -> list[str]:
    statements: list[str] = []
    state._db.set_trace_callback(statements.append)
    return statements


def commits(statements: list[str]) -> int:
    return sum(1 for s in statements if s.strip().upper() == "COMMIT")


def test_a_usage_poll_is_one_commit(tmp_path: Path, fake_driver: FakeDriver) -> None:
    fake_driver.add("127.0.1.1", "SN-A", jobs=3)
    with State(tmp_path) as state:
        statements = count_commits(state)
        outcome = poll(state, fake_driver, "127.0.1.1")
        assert outcome.queued and outcome.jobs == 3
        assert commits(statements) == 1, statements
        # ... and that one commit holds everything the poll writes.
        assert state.outbox_count() == 1
        assert state.job_cursor("fake", "SN-A") == 3
        status = state.device_status("fake", "SN-A")
        assert status is not None and status.last_usage_at is not None
        (device,) = state.known_devices()
        assert (device.address, device.serial_number) == ("127.0.1.1", "SN-A")


def test_a_failed_poll_is_one_commit(tmp_path: Path, fake_driver: FakeDriver) -> None:
    fake_driver.add("127.0.1.1", "SN-A").fail_read = "garbled XML"
    with State(tmp_path) as state:
        statements = count_commits(state)
        outcome = poll(state, fake_driver, "127.0.1.1")
        assert outcome.error is not None and "garbled XML" in outcome.error.reason
        assert commits(statements) == 1, statements
        status = state.device_status("fake", "SN-A")
        assert status is not None and status.last_error == "garbled XML"


def test_a_poll_that_breaks_half_way_stores_nothing(
    tmp_path: Path, fake_driver: FakeDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_driver.add("127.0.1.1", "SN-A", jobs=3)
    with State(tmp_path) as state:

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("the device row cannot be written")

        # The outbox rows and the cursor are written before the device row: with separate
        # commits they would stay, here they must roll back with it.
        monkeypatch.setattr(State, "device_seen", broken)
        with pytest.raises(RuntimeError, match="device row"):
            poll(state, fake_driver, "127.0.1.1")
        assert state.outbox_count() == 0
        assert state.job_cursor("fake", "SN-A") is None
        assert state.device_status("fake", "SN-A") is None
        monkeypatch.undo()
        # The connection is usable afterwards: the next poll stores everything.
        assert poll(state, fake_driver, "127.0.1.1").queued
        assert state.job_cursor("fake", "SN-A") == 3


def test_nested_transactions_commit_once_and_roll_back_together(tmp_path: Path) -> None:
    with State(tmp_path) as state:
        statements = count_commits(state)
        with pytest.raises(ZeroDivisionError), state.transaction():
            state.device_error(address="x", reason="a")
            with state.transaction():
                state.record_poll(driver="fake", serial_number="SN1", error="b")
            1 / 0  # noqa: B018
        assert state.device_status("fake", "SN1") is None
        assert commits(statements) == 0
        with state.transaction(), state.transaction():
            state.record_poll(driver="fake", serial_number="SN1", error="b")
        assert commits(statements) == 1
        row = state.device_status("fake", "SN1")
        assert row is not None and row.last_error == "b"
