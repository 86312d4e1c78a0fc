"""Poll one device: read it with its driver, queue the report, advance its job cursor atomically.

A driver failure becomes one ``PollError`` (host, driver, reason) and the collector carries on
with the other devices (STYLE.md: device error → poll failure with a reason).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleetmeter.collector.discovery import FoundDevice
from fleetmeter.collector.state import State
from fleetmeter.devices.base import Driver, PinStore, ReadOptions
from fleetmeter.devices.errors import DeviceError
from fleetmeter.wire import DeviceReport, ReportKind

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 16

JOBS_PER_REPORT = 250
"""A device may hand over thousands of jobs at once (the simulator keeps 2000). They are queued
as several reports of at most this many jobs, so that every report fits a 100 KB batch
(250 jobs are ~20 KB compressed) instead of being quarantined as too large."""


@dataclass(frozen=True)
class PollError:
    host: str
    driver: str
    reason: str

    def __str__(self) -> str:
        return f"{self.host} ({self.driver}): {self.reason}"


@dataclass(frozen=True)
class PollOutcome:
    device: FoundDevice
    kind: ReportKind
    jobs: int = 0
    queued: bool = False
    error: PollError | None = None


async def _read(
    driver: Driver,
    device: FoundDevice,
    pins: PinStore,
    kind: ReportKind,
    cursor: int | None,
    timeout_s: float,
) -> DeviceReport:
    options = ReadOptions(kind=kind, job_cursor=cursor, timeout_s=timeout_s)
    # Outer bound in case a driver does not honour its timeout: one stuck device must not
    # stall the whole round.
    return await asyncio.wait_for(driver.read(device.target, pins, options), timeout_s * 3)


async def poll_device(
    device: FoundDevice,
    driver: Driver,
    *,
    kind: ReportKind,
    state: State,
    pins: PinStore,
    timeout_s: float = 10.0,
) -> PollOutcome:
    """Read ``device`` once and queue the report (USAGE: with the jobs after its cursor)."""
    host = device.address
    serial = device.identity.serial_number
    usage = kind is ReportKind.USAGE
    try:
        cursor = state.job_cursor(driver.id, serial) if usage else None
        report = await _read(driver, device, pins, kind, cursor, timeout_s)
        if usage and report.device.serial_number != serial:
            # Another device now answers at this address (a swap since discovery): its jobs
            # must be filtered by its own cursor, not the previous device's.
            log.info("%s: serial changed from %s to %s", host, serial, report.device.serial_number)
            serial = report.device.serial_number
            new_cursor = state.job_cursor(driver.id, serial)
            if new_cursor != cursor:
                cursor = new_cursor
                report = await _read(driver, device, pins, kind, cursor, timeout_s)
    except DeviceError as exc:
        return _failed(device, driver, kind, state, str(exc))
    except TimeoutError:
        return _failed(device, driver, kind, state, f"no answer within {timeout_s * 3:g} s")
    except Exception as exc:
        # A driver bug must not stop the other devices' polls; the reason names it.
        log.debug("%s: driver %s crashed", host, driver.id, exc_info=True)
        return _failed(device, driver, kind, state, f"driver error: {type(exc).__name__}: {exc}")

    report.device.address = host
    if cursor is not None:
        # The driver should already have dropped these; the cursor is the collector's promise.
        report.jobs = [job for job in report.jobs if job.sequence_number > cursor]
    job_cursor = None
    if usage and report.jobs:
        job_cursor = (driver.id, serial, max(job.sequence_number for job in report.jobs))
    state.enqueue(split_jobs(report), job_cursor=job_cursor)
    state.device_seen(
        address=host,
        port=device.target.port,
        scheme=device.target.scheme,
        driver=driver.id,
        serial_number=serial,
        vendor=report.device.vendor,
        model=report.device.product_name,
    )
    log.debug("%s: %s report queued, %d new jobs", host, kind, len(report.jobs))
    return PollOutcome(device=device, kind=kind, jobs=len(report.jobs), queued=True)


def split_jobs(report: DeviceReport, per_report: int = JOBS_PER_REPORT) -> list[DeviceReport]:
    """``report`` with at most ``per_report`` jobs, and further reports carrying the rest
    (identity and jobs only: status, counters and alerts stay in the first)."""
    jobs = report.jobs
    if len(jobs) <= per_report:
        return [report]
    first = report.model_copy(update={"jobs": jobs[:per_report]})
    rest = [
        DeviceReport(
            kind=report.kind,
            collected_at=report.collected_at,
            device=report.device,
            jobs=jobs[start : start + per_report],
        )
        for start in range(per_report, len(jobs), per_report)
    ]
    return [first, *rest]


def _failed(
    device: FoundDevice, driver: Driver, kind: ReportKind, state: State, reason: str
) -> PollOutcome:
    log.warning("%s: %s %s poll failed: %s", device.address, driver.id, kind, reason)
    state.device_error(address=device.address, reason=reason)
    return PollOutcome(device=device, kind=kind, error=PollError(device.address, driver.id, reason))


async def poll_all(
    devices: Sequence[FoundDevice],
    drivers: Mapping[str, Driver],
    *,
    kind: ReportKind,
    state: State,
    pins: PinStore,
    timeout_s: float = 10.0,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[PollOutcome]:
    """Poll every device concurrently (bounded); pins learnt on the way are persisted after."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(device: FoundDevice) -> PollOutcome:
        driver = drivers.get(device.driver)
        if driver is None:
            reason = f"driver {device.driver!r} is not configured"
            return PollOutcome(device, kind, error=PollError(device.address, device.driver, reason))
        async with semaphore:
            return await poll_device(
                device, driver, kind=kind, state=state, pins=pins, timeout_s=timeout_s
            )

    try:
        return list(await asyncio.gather(*(one(d) for d in devices)))
    finally:
        state.save_pins(pins)
