"""The collector agent: discovery, health and usage schedules, and the upload loop.

``run(config)`` is the long-running service; ``poll_once(config)`` does one round (discover,
one usage poll of every device, upload everything) and reports what happened.

Scheduling (``scheduler``): every device runs on its own clock. A device never read before is
read for usage at once; after that each device is read at its own stable offset within the
usage and health intervals (a usage poll counts as a health poll too), so a site does not poll
in lockstep. Polls run as separate tasks, at most ``poll_concurrency`` at once, each bounded
by its timeout: a hung device never delays another. Discovery runs at start and every
``discovery_every_usage_intervals`` usage intervals. Every interval (upload and backoff
included) is divided by ``collector.speed``.

Uploading: the outbox is sent every ``upload.interval_seconds`` (5 minutes by default, one
request per round whatever the number of printers), and at once after a usage poll or a poll
that raised a new error or critical alert. A request per health poll would cost a site more in
HTTP heads and TLS handshakes than its data (docs/performance.md, "Site traffic").

With ``[console] enabled``, the read-only site console (``console``) is served from the same
event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetmeter.collector import remote_settings
from fleetmeter.collector.config import (
    CollectorConfig,
    ProbeTarget,
    expand_ranges,
    resolve_drivers,
)
from fleetmeter.collector.console import ConsoleError, SiteConsole
from fleetmeter.collector.discovery import DiscoveryResult, FoundDevice, discover
from fleetmeter.collector.poller import PollOutcome, poll_all, poll_device
from fleetmeter.collector.privacy import (
    Privacy,
    PrivacyError,
    load_or_create_key,
    private_drivers,
)
from fleetmeter.collector.scheduler import Scheduler
from fleetmeter.collector.state import OutboxLimits, State, StateFull
from fleetmeter.collector.uploader import Uploader, UploadResult
from fleetmeter.devices.base import Driver
from fleetmeter.wire import DeviceIdentity, ReportKind, now_utc

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
        state.limits = OutboxLimits.from_upload(config.upload)
        # Job names and submitters leave the drivers as the customer set them (privacy.py).
        try:
            key = load_or_create_key(config.privacy_key_file)
        except PrivacyError as exc:
            raise CollectorError(str(exc)) from exc
        self.privacy = Privacy(policies=config.privacy.policies(), key=key)
        self.drivers = private_drivers(drivers, self.privacy)
        self.targets: list[ProbeTarget] = expand_ranges(config)
        self.pins = state.load_pins()
        self.devices: list[FoundDevice] = []
        self.uploader = Uploader(config, state)
        self.started_at = now_utc()
        self.scheduler: Scheduler | None = None  # set by the run loop (the console reads it)

    async def aclose(self) -> None:
        await self.uploader.aclose()

    def reconfigure(self, config: CollectorConfig) -> None:
        """Run with ``config`` from now on (new portal settings). Devices already found keep
        their place until the next discovery, which the restarted loops run at once."""
        self.drivers = resolve_drivers(config)
        self.config = config
        self.targets = expand_ranges(config)
        self.uploader.config = config
        self.state.limits = OutboxLimits.from_upload(config.upload)

    async def refresh_settings(self) -> CollectorConfig | None:
        """Fetch the portal's settings; the new config if newer valid ones were accepted."""
        return await remote_settings.refresh(self.uploader.client, self.config)

    async def discover(self) -> DiscoveryResult:
        """Probe the ranges; poll what was found plus known devices that did not answer now
        (so an offline printer shows up as a failed poll rather than vanishing)."""
        started = time.monotonic()
        result = await discover(
            self.targets,
            self.drivers,
            self.pins,
            timeout_s=self.config.schedule.probe_timeout_seconds,
            concurrency=self.config.schedule.probe_concurrency,
        )
        self.state.save_pins(self.pins)
        found = result.found
        addresses = Counter(device.key for device in found)
        # One commit for every device found, not one fsync each (docs/performance.md).
        with self.state.transaction():
            self._record_found(found, addresses)
        self.devices = found + self._known_but_silent(found)
        log.info(
            "discovery: %d hosts probed, %d devices found in %.1f s",
            len(self.targets),
            len(found),
            time.monotonic() - started,
        )
        return result

    def _record_found(self, found: list[FoundDevice], addresses: Counter[tuple[str, str]]) -> None:
        for device in found:
            if addresses[device.key] > 1:
                # Two hosts answer with one (driver, serial): a dual-homed printer (wired and
                # Wi-Fi) or devices with a placeholder serial. Both are read; they share a job
                # cursor, and the portal drops job records it already holds.
                log.warning(
                    "%s: %s serial %s answers at %d addresses",
                    device.address,
                    device.driver,
                    device.identity.serial_number,
                    addresses[device.key],
                )
            moved = self.state.device_seen(
                address=device.address,
                port=device.target.port,
                scheme=device.target.scheme,
                driver=device.driver,
                serial_number=device.identity.serial_number,
                vendor=device.identity.vendor,
                model=device.identity.product_name,
                moved=addresses[device.key] == 1,
            )
            for old in moved:
                log.info(
                    "%s: %s %s moved here from %s (same device: cursor kept)",
                    device.address,
                    device.driver,
                    device.identity.serial_number,
                    old.address,
                )
                self._move_pins(old.address, device.address)

    def _move_pins(self, old_host: str, new_host: str) -> None:
        """A device moved: drop its old address's pins when the certificate pinned there is the
        one it now presents here. Another certificate stays pinned at the old address, so that
        whatever answers there now still has to match it (or raise the alert)."""
        pins = self.pins.pins
        stale = [
            key
            for key, value in pins.items()
            if key.startswith(old_host + ":") and pins.get(new_host + key[len(old_host) :]) == value
        ]
        if stale:
            self.state.drop_pins(self.pins, stale)

    def _known_but_silent(self, found: list[FoundDevice]) -> list[FoundDevice]:
        by_host = {item.target.host: item for item in self.targets}
        seen = {device.address for device in found}
        out = []
        for known in self.state.known_devices():
            item = by_host.get(known.address)
            if item is None or known.address in seen or known.serial_number is None:
                continue  # no longer in the configured ranges, or answered this time
            if known.driver not in self.drivers or not item.allows(known.driver):
                continue
            identity = DeviceIdentity(
                vendor=known.vendor or "unknown",
                serial_number=known.serial_number,
                product_name=known.model,
                driver=known.driver,
                address=known.address,
            )
            target = item.target_for(known.driver)
            out.append(FoundDevice(target=target, driver=known.driver, identity=identity))
        return out

    async def poll(self, kind: ReportKind) -> list[PollOutcome]:
        """Poll every device once (``poll-once``); the run loop polls device by device."""
        outcomes = await poll_all(
            self.devices,
            self.drivers,
            kind=kind,
            state=self.state,
            pins=self.pins,
            timeout_s=self.config.schedule.poll_timeout_seconds,
            concurrency=self.config.schedule.poll_concurrency,
        )
        failed = sum(1 for o in outcomes if o.error)
        jobs = sum(o.jobs for o in outcomes)
        log.info("%s poll: %d devices, %d failed, %d new jobs", kind, len(outcomes), failed, jobs)
        return outcomes

    async def poll_one(self, device: FoundDevice, kind: ReportKind) -> PollOutcome:
        driver = self.drivers.get(device.driver)
        if driver is None:  # _known_but_silent and discovery only use configured drivers
            raise CollectorError(f"driver {device.driver!r} is not configured")
        try:
            return await poll_device(
                device,
                driver,
                kind=kind,
                state=self.state,
                pins=self.pins,
                timeout_s=self.config.schedule.poll_timeout_seconds,
            )
        finally:
            self.state.save_pins(self.pins)

    async def upload(self) -> UploadResult:
        try:
            result = await self.uploader.upload_all()
        except StateFull as exc:
            # A full disk (logged once by State) fails batch bookkeeping: back off and retry.
            return UploadResult(error=str(exc))
        if result.error:
            log.warning("upload: %s", result.error)
        self.state.watch_outbox()  # warns once when the outbox grows past outbox_alert_rows
        return result


# --------------------------------------------------------------------------- poll once


async def poll_once_async(config: CollectorConfig) -> PollOnceResult:
    config = remote_settings.load(config)
    drivers = resolve_drivers(config)
    with _data_dir_lock(config.data_dir), State(config.data_dir) as state:
        agent = Agent(config, state, drivers)
        try:
            # Settings first: a collector just enrolled learns its ranges here.
            applied = await agent.refresh_settings()
            if applied is not None:
                agent.reconfigure(applied)
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
    config = remote_settings.load(config)
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
        self.kick = asyncio.Event()  # set after an urgent poll so that its report goes up now
        self.wake = asyncio.Event()  # set when a poll ends (its next due time may be sooner)
        config = agent.config
        speed = config.collector.speed
        self.speed = speed
        self.usage_s = config.schedule.usage_interval_minutes * 60 / speed
        self.health_s = config.schedule.health_interval_minutes * 60 / speed
        self.upload_s = config.upload.interval_seconds / speed
        self.discovery_s = config.schedule.discovery_every_usage_intervals * self.usage_s
        self.scheduler = Scheduler(usage_s=self.usage_s, health_s=self.health_s)
        agent.scheduler = self.scheduler
        self.polls = asyncio.Semaphore(config.schedule.poll_concurrency)
        self.in_flight: set[asyncio.Task[None]] = set()
        self.crashed: BaseException | None = None
        self.new_config: CollectorConfig | None = None  # set by `settings`: restart with it
        # Per device, the serious alerts its last report carried: only a new one is urgent.
        self.serious_alerts: dict[tuple[str, str, str], frozenset[str]] = {}

    def _sync_schedule(self) -> None:
        """Schedule every device discovery returned, from its persisted poll history (so a
        restart neither re-reads usage early nor forgets a device's phase)."""
        history = self.agent.state.device_statuses()
        now = time.time()
        for device in self.agent.devices:
            row = history.get(device.key)
            self.scheduler.add(
                device.schedule_key,
                now=now,
                last_usage=_epoch(row.last_usage_at) if row else None,
                last_health=_epoch(row.last_health_at) if row else None,
            )
        self.scheduler.keep_only(device.schedule_key for device in self.agent.devices)

    async def schedule(self) -> None:
        agent = self.agent
        next_discovery = time.time()
        discovery: asyncio.Task[DiscoveryResult] | None = None
        try:
            while not self.stop.is_set():
                if self.crashed is not None:
                    raise self.crashed
                if discovery is not None and discovery.done():
                    try:
                        discovery.result()  # re-raises what broke it (the state database, a bug)
                        next_discovery = time.time() + self.discovery_s
                    except StateFull:  # logged once by State: known devices keep their polls
                        next_discovery = time.time() + self.health_s
                    discovery = None
                    self._sync_schedule()
                if discovery is None and time.time() >= next_discovery:
                    # In the background: probing a /16 takes long, and the devices already
                    # known must keep their health and usage schedules meanwhile.
                    discovery = asyncio.create_task(agent.discover(), name="collector-discovery")
                    discovery.add_done_callback(lambda _: self.wake.set())
                # `collector repin` (another process) may have forgotten pins meanwhile.
                agent.state.reload_pins_if_forgotten(agent.pins)
                by_key = {device.schedule_key: device for device in agent.devices}
                for key, kind in self.scheduler.due(time.time()):
                    device = by_key.get(key)
                    if device is None:  # left the ranges while its last poll was running
                        self.scheduler.remove(key)
                        continue
                    task = asyncio.create_task(
                        self._poll(device, kind), name=f"poll {key[0]} {key[1]}"
                    )
                    self.in_flight.add(task)
                    task.add_done_callback(self.in_flight.discard)
                self.wake.clear()
                wake_at = [t for t in (self.scheduler.next_due(),) if t is not None]
                if discovery is None:
                    wake_at.append(next_discovery)
                await _sleep_until(self.wake, min(wake_at, default=time.time() + 60) - time.time())
            if self.in_flight:
                # Stopping: let the polls under way finish (bounded by their own timeouts and
                # the agent's shutdown grace, after which this task is cancelled).
                await asyncio.wait(set(self.in_flight))
        finally:
            unfinished: list[asyncio.Task[Any]] = [*self.in_flight]
            if discovery is not None:
                unfinished.append(discovery)
            for each in unfinished:
                each.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)

    async def _poll(self, device: FoundDevice, kind: ReportKind) -> None:
        async with self.polls:
            started = time.time()
            urgent = False
            try:
                outcome = await self.agent.poll_one(device, kind)
                urgent = self._urgent(outcome)
            except Exception as exc:
                # Device errors are outcomes, not exceptions; this is the state database or a
                # bug. The schedule loop re-raises it: the agent stops rather than lose data.
                self.crashed = exc
                urgent = True  # the upload loop must see that the loops are ending
            finally:
                self.scheduler.done(device.schedule_key, kind, started=started)
                if urgent:
                    self.kick.set()
                self.wake.set()

    def _urgent(self, outcome: PollOutcome) -> bool:
        """Whether the report just queued should leave now rather than with the next upload
        round: usage (billing data) and a newly raised error or critical alert do; routine
        health reports wait, so that a site sends one request per round, not one per poll
        (docs/performance.md, "Site traffic")."""
        key = outcome.device.schedule_key
        before = self.serious_alerts.get(key, frozenset())
        if outcome.queued or outcome.serious_alerts:
            self.serious_alerts[key] = outcome.serious_alerts
        if outcome.serious_alerts - before:
            return True
        return outcome.queued and outcome.kind is ReportKind.USAGE

    async def upload(self) -> None:
        backoff = self.agent.uploader.backoff
        status = self.agent.uploader.status
        while not self.stop.is_set():
            self.kick.clear()
            result = await self.agent.upload()
            if result.error:
                # Back off on failure and ignore kicks meanwhile: new reports wait in the outbox.
                delay = backoff.next_delay(result.retry_after) / self.speed
                status.next_retry_at = datetime.fromtimestamp(time.time() + delay, UTC)
                log.info("upload: retrying in %.1f s", delay)
                await _sleep_until(self.stop, delay)
            else:
                await _sleep_until(self.kick, self.upload_s)

    async def settings(self) -> None:
        """Ask the portal for newer settings on each contact; on accepting some, end (the
        caller restarts the loops with them)."""
        if self.agent.config.portal.signing_key is None:
            await self.stop.wait()  # not enrolled: the file alone rules
            return
        # Checked with the upload cadence: "the change reaches the collector on its next
        # contact". Floored so that an accelerated demo does not ask many times a second.
        interval = max(self.upload_s, 1.0)
        while not self.stop.is_set():
            await _sleep_until(self.stop, interval)
            if self.stop.is_set():
                return
            applied = await self.agent.refresh_settings()
            if applied is not None:
                self.new_config = applied
                return


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


@dataclass(frozen=True)
class Started:
    """Handed to ``run``'s ``ready`` callback once the agent runs."""

    data_dir: Path
    console_url: str | None = None


async def run_async(
    config: CollectorConfig,
    *,
    ready: Callable[[Started], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until ``stop`` is set or SIGINT/SIGTERM arrives. Raises ``CollectorError`` (or
    ``ConfigError``) if it cannot start, e.g. when its data directory is in use.

    An unreachable portal does not stop the agent: a site PC often boots before its network
    or proxy is up, and the portal may be down for days. Readings go to the durable outbox
    and are uploaded once the portal answers.

    When the portal changes this collector's settings, the schedule and upload loops stop
    (letting polls under way finish) and start again with the new config; the outbox, the
    device history and the site console carry on."""
    config = remote_settings.load(config)
    drivers = resolve_drivers(config)
    stop = stop or asyncio.Event()
    with _data_dir_lock(config.data_dir), State(config.data_dir) as state:
        agent = Agent(config, state, drivers)
        # Bound before anything runs: a port in use is a start-up error, not a log line.
        try:
            site_console = SiteConsole.bind(agent) if config.console.enabled else None
        except ConsoleError as exc:
            raise CollectorError(str(exc)) from exc
        try:
            problem = await agent.uploader.check_portal()
            if problem is not None:
                log.warning("portal not reachable now (%s); collecting into the outbox", problem)
            else:
                applied = await agent.refresh_settings()
                if applied is not None:
                    agent.reconfigure(applied)
            await _serve(agent, stop, ready, site_console)
        finally:
            if site_console is not None:
                site_console.close()
            await agent.aclose()


async def _serve(
    agent: Agent,
    stop: asyncio.Event,
    ready: Callable[[Started], None] | None,
    site_console: SiteConsole | None,
) -> None:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            # ValueError/RuntimeError: not the main thread (tests run the agent in a thread).
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    console_task = None
    if site_console is not None:
        console_task = asyncio.create_task(site_console.serve(), name="collector-console")
        await site_console.wait_started()
    log.info(
        "collector running: %d hosts in range, drivers %s, speed %g%s",
        len(agent.targets),
        ", ".join(agent.drivers),
        agent.config.collector.speed,
        f", site console at {site_console.url}" if site_console is not None else "",
    )
    if ready is not None:
        ready(Started(agent.config.data_dir, site_console.url if site_console else None))
    try:
        while (new_config := await _run_loops(agent, stop, console_task)) is not None:
            agent.reconfigure(new_config)
            log.info("collector restarted its loops: %d hosts in range", len(agent.targets))
        log.info("collector stopped")
    finally:
        if site_console is not None:
            site_console.shutdown()
        if console_task is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(console_task), SHUTDOWN_GRACE_S)
            console_task.cancel()
            await asyncio.gather(console_task, return_exceptions=True)
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _run_loops(
    agent: Agent, stop: asyncio.Event, console_task: asyncio.Task[None] | None
) -> CollectorConfig | None:
    """Run the schedule, upload and settings loops until ``stop`` (None) or new settings
    (the new config: the caller restarts the loops with it)."""
    halt = asyncio.Event()  # ends this run of the loops; `stop` ends the collector
    loops = _Loops(agent, halt)
    tasks = [
        asyncio.create_task(loops.schedule(), name="collector-schedule"),
        asyncio.create_task(loops.upload(), name="collector-upload"),
        asyncio.create_task(loops.settings(), name="collector-settings"),
    ]
    watched: list[asyncio.Task[Any]] = [*tasks, asyncio.create_task(stop.wait())]
    if console_task is not None:
        watched.append(console_task)
    try:
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        halt.set()
        loops.kick.set()  # wakes the upload loop so that it sees `halt`
        loops.wake.set()  # and the schedule loop
        # Let the current step finish (the loops check `halt` between steps), then abandon it.
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
        if console_task is not None and console_task.done():
            exc = console_task.exception() if not console_task.cancelled() else None
            if exc is not None:
                raise CollectorError(f"site console failed: {type(exc).__name__}: {exc}") from exc
            return None
    finally:
        watched[len(tasks)].cancel()  # the stop waiter
    return None if stop.is_set() else loops.new_config


def run(config: CollectorConfig, *, ready: Callable[[Started], None] | None = None) -> None:
    """Run the collector until SIGINT/SIGTERM. ``ready`` is called once it has started."""
    asyncio.run(run_async(config, ready=ready))
