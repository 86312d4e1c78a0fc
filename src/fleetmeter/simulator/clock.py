"""The simulated clock: simulated time runs ``speed`` times faster than real time and can pause.

``now() = start + speed * (real seconds elapsed while running)``. The real-time source is
``time.monotonic`` (not the wall clock) so that a wall-clock step (NTP, suspend) cannot make
simulated time jump or run backwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class SimClock:
    """Accelerated, pausable simulated time, always timezone-aware UTC.

    ``speed`` is simulated seconds per real second (1 = real time, 60 = one simulated minute
    per real second). ``monotonic`` can be replaced in tests to drive the clock by hand.
    """

    def __init__(
        self,
        *,
        start: datetime | None = None,
        speed: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed!r}")
        if start is None:
            start = datetime.now(UTC).replace(microsecond=0)
        elif start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._speed = float(speed)
        self._monotonic = monotonic
        # The HTTP servers run on one event loop, but tests and the CLI may read the clock
        # from other threads; a lock keeps (anchor, paused) consistent.
        self._lock = threading.Lock()
        self._anchor_sim = start.astimezone(UTC)
        self._anchor_real = monotonic()
        self._paused = False

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def paused(self) -> bool:
        return self._paused

    def now(self) -> datetime:
        """The current simulated time (aware UTC)."""
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> datetime:
        if self._paused:
            return self._anchor_sim
        elapsed = self._monotonic() - self._anchor_real
        return self._anchor_sim + timedelta(seconds=elapsed * self._speed)

    def pause(self) -> datetime:
        """Freeze simulated time; returns the frozen instant. Pausing twice is harmless."""
        with self._lock:
            if not self._paused:
                self._anchor_sim = self._now_locked()
                self._paused = True
            return self._anchor_sim

    def resume(self) -> datetime:
        """Let simulated time run again from where it was frozen."""
        with self._lock:
            if self._paused:
                self._anchor_real = self._monotonic()
                self._paused = False
            return self._anchor_sim if self._paused else self._now_locked()
