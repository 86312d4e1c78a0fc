"""Discovery: drivers in priority order, every driver tried per host, bounded and short probes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from fleetmeter.collector.config import ProbeTarget, expand_ranges, load_config
from fleetmeter.collector.discovery import discover
from fleetmeter.devices.base import PinStore, Target
from fleetmeter.devices.errors import NotSupported

from .conftest import FakeDriver, write_config


def targets(*hosts: str, drivers: tuple[str, ...] | None = None) -> list[ProbeTarget]:
    return [ProbeTarget(Target(host), drivers) for host in hosts]


def test_an_unreachable_driver_does_not_stop_the_others() -> None:
    # The first driver's protocol is closed on this host (e.g. no web server); the second,
    # on another port, reads it.
    first, second = FakeDriver("first"), FakeDriver("second")
    second.add("10.0.0.1", "SN-1")
    result = asyncio.run(
        discover(targets("10.0.0.1"), {"first": first, "second": second}, PinStore())
    )
    assert [(d.driver, d.identity.serial_number) for d in result.found] == [("second", "SN-1")]
    assert result.problems == []
    assert first.probes == ["10.0.0.1"]


def test_the_highest_priority_driver_that_identifies_wins_and_not_mine_is_no_problem() -> None:
    first, second, third = FakeDriver("first"), FakeDriver("second"), FakeDriver("third")
    first.not_mine.add("10.0.0.1")  # answers, but is not one of its devices
    second.add("10.0.0.1", "SN-2")
    third.add("10.0.0.1", "SN-3")
    drivers = {"first": first, "second": second, "third": third}
    result = asyncio.run(discover(targets("10.0.0.1"), drivers, PinStore()))
    assert [d.driver for d in result.found] == ["second"]
    assert result.problems == []


def test_problems_are_reported_only_when_no_driver_identified_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = FakeDriver("first"), FakeDriver("second")
    first.add("10.0.0.1", "SN-1")
    first.add("10.0.0.2", "SN-2")
    second.add("10.0.0.1", "SN-1")

    async def needs_login(target: Target, pins: PinStore, *, timeout_s: float = 5.0) -> None:
        raise NotSupported(f"{target.host}: the device requires authentication (HTTP 401)")

    monkeypatch.setattr(first, "identify", needs_login)
    drivers = {"first": first, "second": second}
    result = asyncio.run(discover(targets("10.0.0.1", "10.0.0.2"), drivers, PinStore()))
    assert [(d.address, d.driver) for d in result.found] == [("10.0.0.1", "second")]
    assert [str(p) for p in result.problems] == [
        "10.0.0.2 (first): 10.0.0.2: the device requires authentication (HTTP 401)"
    ]


def test_a_changed_certificate_is_not_taken_over_by_another_driver() -> None:
    first, second = FakeDriver("first"), FakeDriver("second")
    first.add("10.0.0.1", "SN-1").cert = "b" * 64
    second.add("10.0.0.1", "SN-1")
    pins = PinStore({"10.0.0.1:default": "a" * 64})
    result = asyncio.run(discover(targets("10.0.0.1"), {"first": first, "second": second}, pins))
    assert result.found == []
    (problem,) = result.problems
    assert problem.certificate_changed and problem.driver == "first"


def test_a_range_only_gets_its_drivers_with_their_own_credentials(
    tmp_path: Path, fake_driver: FakeDriver
) -> None:
    fake_driver.add("127.0.1.1", "SN-1")
    config = load_config(write_config(tmp_path / "c.toml", targets=["127.0.1.1"]))
    other = FakeDriver("other")
    other.add("127.0.1.1", "SN-X")
    result = asyncio.run(
        discover(expand_ranges(config), {"other": other, "fake": fake_driver}, PinStore())
    )
    assert [d.driver for d in result.found] == ["fake"]
    assert other.probes == []  # the range names only "fake"


def test_probes_are_bounded_and_a_hung_host_costs_only_its_timeout() -> None:
    driver = FakeDriver("fake")
    hosts = [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(300)]
    for host in hosts[:50]:
        driver.add(host, f"SN-{host}")
    driver.hang_identify.add(hosts[0])  # accepts the connection, never answers
    started = time.monotonic()
    result = asyncio.run(
        discover(targets(*hosts), {"fake": driver}, PinStore(), timeout_s=0.2, concurrency=20)
    )
    elapsed = time.monotonic() - started
    assert len(result.found) == 49
    assert driver.max_in_flight <= 20
    assert len(driver.probes) == 300
    # 300 probes of 10 ms, 20 at a time, plus the hung one's outer bound (2 × 0.2 s).
    assert elapsed < 3.0
