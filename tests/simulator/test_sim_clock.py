"""SimClock: accelerated, pausable, aware-UTC simulated time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fleetmeter.simulator.clock import SimClock

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_runs_speed_times_faster_than_real_time() -> None:
    real = FakeMonotonic()
    clock = SimClock(start=START, speed=60, monotonic=real)
    assert clock.now() == START
    real.t += 10
    assert clock.now() == START + timedelta(minutes=10)
    assert clock.now().tzinfo is UTC


def test_pause_freezes_and_resume_continues_without_a_jump() -> None:
    real = FakeMonotonic()
    clock = SimClock(start=START, speed=2, monotonic=real)
    real.t += 5
    frozen = clock.pause()
    assert frozen == START + timedelta(seconds=10)
    assert clock.paused
    real.t += 100
    assert clock.now() == frozen
    assert clock.pause() == frozen  # pausing twice changes nothing
    clock.resume()
    assert not clock.paused
    assert clock.now() == frozen
    real.t += 1
    assert clock.now() == frozen + timedelta(seconds=2)


def test_non_utc_start_is_normalised() -> None:
    from datetime import timezone

    start = datetime(2026, 1, 5, 9, 0, tzinfo=timezone(timedelta(hours=1)))
    assert SimClock(start=start).now().utcoffset() == timedelta(0)


@pytest.mark.parametrize("speed", [0, -1])
def test_speed_must_be_positive(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        SimClock(speed=speed)


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        SimClock(start=datetime(2026, 1, 5))
