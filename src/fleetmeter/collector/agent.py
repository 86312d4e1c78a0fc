"""The collector agent: discovery, health and usage schedules, and the upload loop.

``run(config)`` is the long-running service; ``poll_once(config)`` does one round (discover,
one usage poll of every device, upload everything) and reports what happened.

Scheduling: the first usage poll happens right at start and counts as the first health poll
too (a usage report carries status and alerts as well); after that health runs every
``health_interval_minutes`` and usage every ``usage_interval_minutes``; discovery runs at start
and before every ``discovery_every_usage_intervals``-th usage poll. Every interval (upload and
backoff included) is divided by ``collector.speed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetmeter.collector.config import (
    CollectorConfig,
    ProbeTarget,
    expand_ranges,
    resolve_drivers,
)
from fleetmeter.collector.discovery import DiscoveryResult, FoundDevice, discover
from fleetmeter.collector.poller import PollOutcome, poll_all
from fleetmeter.collector.state import State
from fleetmeter.collector.uploader import Uploader, UploadResult
from fleetmeter.devices.base import Driver
from fleetmeter.wire import DeviceIdentity, ReportKind

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 5.0
"""On SIGINT/SIGTERM the current step gets this long to finish before it is abandoned; either
is safe (state.py), finishing just avoids re-reading or re-sending."""

MIN_WAIT_S = 0.05


class CollectorError(RuntimeError):
    """The collector cannot start or run (portal unreachable, data_dir in use, ...)."""


@contextlib.contextmanager
def _data_dir_lock(data_dir: Path) -> Iterator[None]:
    """One running collector per data_dir: two would race for the same outbox rows."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "collector.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise CollectorError(
                f"another collector (pid {holder}) is using data_dir {data_dir}"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@dataclass
class PollOnceResult:
    """What ``poll_once`` did. ``ok`` is False if a poll or the upload failed or nothing was
    found."""

    devices_found: int = 0
    devices: list[dict[str, Any]] = field(default_factory=list)
    reports_queued: int = 0
    jobs_collected: int = 0
    batches_sent: int = 0
    reports_uploaded: int = 0
    outbox_remaining: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    upload_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.devices_found > 0 and not self.errors and self.upload_error is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "devices_found": self.devices_found,
            "devices": self.devices,
            "reports_queued": self.reports_queued,
            "jobs_collected": self.jobs_collected,
            "batches_sent": self.batches_sent,
            "reports_uploaded": self.reports_uploaded,
            "outbox_remaining": self.outbox_remaining,
            "errors": self.errors,
            "warnings": self.warnings,
            "upload_error": self.upload_error,
        }


def describe_device(device: FoundDevice) -> dict[str, Any]:
    return {
        "address": device.address,
        "port": device.target.port,
        "scheme": device.target.scheme,
        "driver": device.driver,
        "vendor": device.identity.vendor,
        "model": device.identity.product_name,
        "serial_number": device.identity.serial_number,
    }


class Agent:
    """The collector's moving parts around one open ``State``."""

    def __init__(self, config: CollectorConfig, state: State, drivers: dict[str, Driver]) -> None:
        self.config = config
        self.state = state
        self.drivers = drivers
        self.targets: list[ProbeTarget] = expand_ranges(config)
        self.pins = state.load_pins()
        self.devices: list[FoundDevice] = []
        self.uploader = Uploader(config, state)

    async def aclose(self) -> None:
        await self.uploader.aclose()

    async def discover(self) -> DiscoveryResult:
        """Probe the ranges; poll what was found plus known devices that did not answer now
        (so an offline printer shows up as a failed poll rather than vanishing)."""
        started = time.monotonic()
        result = await discover(
            self.targets,
            self.drivers,
            self.pins,
            timeout_s=self.config.schedule.probe_timeout_seconds,
        )
        self.state.save_pins(self.pins)
        for device in result.found:
            self.state.device_seen(
                address=device.address,
                port=device.target.port,
                scheme=device.target.scheme,
                driver=device.driver,
                serial_number=device.identity.serial_number,
                vendor=device.identity.vendor,
                model=device.identity.product_name,
            )
        self.devices = list(result.found) + self._known_but_silent(result.found)
        log.info(
            "discovery: %d hosts probed, %d devices found in %.1f s",
            len(self.targets),
            len(result.found),
            time.monotonic() - started,
        )
        return result

    def _known_but_silent(self, found: list[FoundDevice]) -> list[FoundDevice]:
        by_host = {item.target.host: item for item in self.targets}
        seen = {device.address for device in found}
        out = []
        for known in self.state.known_devices():
            item = by_host.get(known.address)
            if item is None or known.address in seen or known.serial_number is None:
                continue  # no longer in the configured ranges, or answered this time
            if known.driver not in self.drivers or (
                item.drivers is not None and known.driver not in item.drivers
            ):
                continue
            identity = DeviceIdentity(
                vendor=known.vendor or "unknown",
                serial_number=known.serial_number,
                product_name=known.model,
                driver=known.driver,
                address=known.address,
            )
            out.append(FoundDevice(target=item.target, driver=known.driver, identity=identity))
        return out

    async def poll(self, kind: ReportKind) -> list[PollOutcome]:
        outcomes = await poll_all(
            self.devices,
            self.drivers,
            kind=kind,
            state=self.state,
            pins=self.pins,
            timeout_s=self.config.schedule.poll_timeout_seconds,
        )
        failed = sum(1 for o in outcomes if o.error)
        jobs = sum(o.jobs for o in outcomes)
        log.info("%s poll: %d devices, %d failed, %d new jobs", kind, len(outcomes), failed, jobs)
        return outcomes

    async def upload(self) -> UploadResult:
        result = await self.uploader.upload_all()
        if result.error:
            log.warning("upload: %s", result.error)
        return result


# --------------------------------------------------------------------------- poll once


async def poll_once_async(config: CollectorConfig) -> PollOnceResult:
    drivers = resolve_drivers(config)
    with _data_dir_lock(config.data_dir), State(config.data_dir) as state:
        agent = Agent(config, state, drivers)
        try:
            return await _poll_once(agent)
        finally:
            await agent.aclose()


async def _poll_once(agent: Agent) -> PollOnceResult:
    result = PollOnceResult()
    discovery = await agent.discover()
    result.devices_found = len(discovery.found)
    result.devices = [describe_device(d) for d in discovery.found]
    result.warnings = [f"probe {p}" for p in discovery.problems]
    if not discovery.found:
        result.errors.append("no devices found in the configured ranges")
    for outcome in await agent.poll(ReportKind.USAGE):
        if outcome.error is not None:
            result.errors.append(f"poll {outcome.error}")
        elif outcome.queued:
            result.reports_queued += 1
            result.jobs_collected += outcome.jobs
    upload = await agent.upload()
    result.batches_sent = upload.batches_sent
    result.reports_uploaded = upload.reports_sent
    result.errors.extend(f"upload quarantined {q}" for q in upload.quarantined)
    result.upload_error = upload.error
    result.outbox_remaining = agent.state.outbox_count()
    return result


def poll_once(config: CollectorConfig) -> PollOnceResult:
    """Discover, poll every device once (usage), upload the whole outbox, report."""
    return asyncio.run(poll_once_async(config))


async def discover_once_async(config: CollectorConfig) -> DiscoveryResult:
    drivers = resolve_drivers(config)
    with State(config.data_dir) as state:
        agent = Agent(config, state, drivers)
        try:
            return await agent.discover()
        finally:
            await agent.aclose()


def discover_once(config: CollectorConfig) -> DiscoveryResult:
    """Probe the configured ranges once (records pins and devices; queues nothing)."""
    return asyncio.run(discover_once_async(config))


# --------------------------------------------------------------------------- run


async def _sleep_until(event: asyncio.Event, timeout_s: float) -> None:
    """Wait ``timeout_s`` or until ``event`` is set, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), max(timeout_s, MIN_WAIT_S))


class _Loops:
    def __init__(self, agent: Agent, stop: asyncio.Event) -> None:
        self.agent = agent
        self.stop = stop
        self.kick = asyncio.Event()  # set after a poll round so its reports go up promptly
        config = agent.config
        speed = config.collector.speed
        self.speed = speed
        self.usage_s = config.schedule.usage_interval_minutes * 60 / speed
        self.health_s = config.schedule.health_interval_minutes * 60 / speed
        self.upload_s = config.upload.interval_seconds / speed
        self.discovery_every = config.schedule.discovery_every_usage_intervals

    async def schedule(self) -> None:
        next_usage = next_health = time.monotonic()
        usage_rounds = 0
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= next_usage:
                if usage_rounds % self.discovery_every == 0:
                    await self.agent.discover()
                usage_rounds += 1
                await self.agent.poll(ReportKind.USAGE)
                self.kick.set()
                # Never catch up in a burst after a slow round: the next round is one full
                # interval later, or now if the round took longer than the interval.
                next_usage = max(next_usage + self.usage_s, time.monotonic())
                next_health = time.monotonic() + self.health_s
            elif now >= next_health:
                await self.agent.poll(ReportKind.HEALTH)
                self.kick.set()
                next_health = max(next_health + self.health_s, time.monotonic())
            await _sleep_until(self.stop, min(next_usage, next_health) - time.monotonic())

    async def upload(self) -> None:
        backoff = self.agent.uploader.backoff
        while not self.stop.is_set():
            self.kick.clear()
            result = await self.agent.upload()
            if result.error:
                # Back off on failure and ignore kicks meanwhile: new reports wait in the outbox.
                delay = backoff.next_delay(result.retry_after) / self.speed
                log.info("upload: retrying in %.1f s", delay)
                await _sleep_until(self.stop, delay)
            else:
                await _sleep_until(self.kick, self.upload_s)


async def run_async(
    config: CollectorConfig,
    *,
    ready: Callable[[], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until ``stop`` is set or SIGINT/SIGTERM arrives. Raises ``CollectorError`` (or
    ``ConfigError``) if it cannot start, e.g. when its data directory is in use.

    An unreachable portal does not stop the agent: a site PC often boots before its network
    or proxy is up, and the portal may be down for days. Readings go to the durable outbox
    and are uploaded once the portal answers."""
    drivers = resolve_drivers(config)
    stop = stop or asyncio.Event()
    with _data_dir_lock(config.data_dir), State(config.data_dir) as state:
        agent = Agent(config, state, drivers)
        try:
            problem = await agent.uploader.check_portal()
            if problem is not None:
                log.warning("portal not reachable now (%s); collecting into the outbox", problem)
            await _serve(agent, stop, ready)
        finally:
            await agent.aclose()


async def _serve(agent: Agent, stop: asyncio.Event, ready: Callable[[], None] | None) -> None:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            # ValueError/RuntimeError: not the main thread (tests run the agent in a thread).
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    loops = _Loops(agent, stop)
    tasks = [
        asyncio.create_task(loops.schedule(), name="collector-schedule"),
        asyncio.create_task(loops.upload(), name="collector-upload"),
    ]
    log.info(
        "collector running: %d hosts in range, drivers %s, speed %g",
        len(agent.targets),
        ", ".join(sorted(agent.drivers)),
        agent.config.collector.speed,
    )
    if ready is not None:
        ready()
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        loops.kick.set()  # wakes the upload loop so that it sees `stop`
        # Let the current step finish (the loops check `stop` between steps), then abandon it.
        _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                raise CollectorError(
                    f"{task.get_name()} failed: {type(exc).__name__}: {exc}"
                ) from exc
        log.info("collector stopped")
    finally:
        stopper.cancel()
        for sig in installed:
            loop.remove_signal_handler(sig)


def run(config: CollectorConfig, *, ready: Callable[[], None] | None = None) -> None:
    """Run the collector until SIGINT/SIGTERM. ``ready`` is called once it has started."""
    asyncio.run(run_async(config, ready=ready))
