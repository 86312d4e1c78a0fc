"""Poll one device: read it with its driver, queue the report, advance its job cursor atomically.

A driver failure becomes one ``PollError`` (host, driver, reason) and the collector carries on
with the other devices (STYLE.md: device error → poll failure with a reason). Each poll has its
own timeout, so a hung device costs one concurrency slot for a bounded time, never the others'.

A certificate that no longer matches its pin is more than a failed poll: a HEALTH report with
an error alert (``tls.certificate_changed``) is queued as well, so that the portal shows it.
The device stays unread until an operator re-pins it (``fleetmeter collector repin``); the
first report read after that carries the alert again, cleared.

Everything a poll writes (outbox rows, job cursor, poll status, device row) is one transaction:
one commit, one fsync per device (docs/performance.md). When the outbox is full of unsent billing
data (``state.OutboxFull``) a usage poll does not read the device, so its jobs stay there and
its cursor where it was; when the disk is full (``state.StateFull``) nothing of the poll is
stored and the cursor does not move. Both are failed polls, logged once by ``State``, not per
device.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from fleetmeter.collector.discovery import FoundDevice
from fleetmeter.collector.state import OutboxFull, State, StateFull
from fleetmeter.devices.base import Driver, PinStore, ReadOptions
from fleetmeter.devices.errors import CertificateMismatch, DeviceError
from fleetmeter.wire import Alert, AlertSeverity, DeviceReport, ReportKind, now_utc

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 16

CERTIFICATE_CHANGED = "tls.certificate_changed"
"""Alert code queued when a device's certificate no longer matches its pin."""

OUTBOX_FULL = "outbox full of unsent billing data: not read (see the log and the site console)"
"""The reason of a usage poll skipped because ``State.outbox_full()``."""

JOBS_PER_REPORT = 250
# Alerts that make a health report leave at once rather than with the next upload round.
SERIOUS_SEVERITIES = frozenset({AlertSeverity.ERROR, AlertSeverity.CRITICAL})
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
    # Codes of the open alerts at error severity or above: a new one is sent at once.
    serious_alerts: frozenset[str] = frozenset()


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
    if usage and state.outbox_full():
        # Nothing read, nothing lost: the jobs wait on the device until there is room.
        return _failed(device, driver, kind, state, OUTBOX_FULL, quiet=True)
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
    except CertificateMismatch as exc:
        return _certificate_changed(device, driver, kind, state, exc)
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
    cert_alert_since = state.cert_alert_since(driver.id, serial)
    if cert_alert_since is not None:
        # Read again (re-pinned): tell the portal the certificate alert is over.
        report.alerts.append(
            _certificate_alert(
                "TLS certificate re-pinned by an operator; the device is read again",
                first_seen=cert_alert_since,
                cleared_at=now_utc(),
            )
        )
    try:
        # One commit for the whole poll: the reading and its cursor (the guarantee), and the
        # poll status and device row with them rather than two more fsyncs.
        with state.transaction():
            state.enqueue(split_jobs(report), job_cursor=job_cursor)
            state.record_poll(
                driver=driver.id,
                serial_number=serial,
                report=report,
                clear_cert_alert=cert_alert_since is not None,
            )
            state.device_seen(
                address=host,
                port=device.target.port,
                scheme=device.target.scheme,
                driver=driver.id,
                serial_number=serial,
                vendor=report.device.vendor,
                model=report.device.product_name,
            )
    except (OutboxFull, StateFull) as exc:
        return _failed(device, driver, kind, state, str(exc), quiet=True)
    log.debug("%s: %s report queued, %d new jobs", host, kind, len(report.jobs))
    serious = frozenset(
        alert.code
        for alert in report.alerts
        if alert.cleared_at is None and alert.severity in SERIOUS_SEVERITIES
    )
    return PollOutcome(
        device=device, kind=kind, jobs=len(report.jobs), queued=True, serious_alerts=serious
    )


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
    device: FoundDevice,
    driver: Driver,
    kind: ReportKind,
    state: State,
    reason: str,
    *,
    quiet: bool = False,
) -> PollOutcome:
    """A failed poll: its reason on the device's row and status. ``quiet``: a condition of the
    collector itself (outbox or disk full) that ``State`` logs once, not once per device."""
    log.log(
        logging.DEBUG if quiet else logging.WARNING,
        "%s: %s %s poll failed: %s",
        device.address,
        driver.id,
        kind,
        reason,
    )
    _record_failure(state, device, driver.id, reason)
    return PollOutcome(device=device, kind=kind, error=PollError(device.address, driver.id, reason))


def _record_failure(
    state: State,
    device: FoundDevice,
    driver_id: str,
    reason: str,
    *,
    cert_alert_since: datetime | None = None,
) -> None:
    try:
        with state.transaction():
            _write_failure(state, device, driver_id, reason, cert_alert_since=cert_alert_since)
    except StateFull:
        pass  # a full disk is logged once by State; the reading was not stored either


def _write_failure(
    state: State,
    device: FoundDevice,
    driver_id: str,
    reason: str,
    *,
    cert_alert_since: datetime | None = None,
) -> None:
    state.device_error(address=device.address, reason=reason)
    state.record_poll(
        driver=driver_id,
        serial_number=device.identity.serial_number,
        error=reason,
        cert_alert_since=cert_alert_since,
    )


def _certificate_alert(
    text: str, *, first_seen: datetime, cleared_at: datetime | None = None
) -> Alert:
    return Alert(
        code=CERTIFICATE_CHANGED,
        severity=AlertSeverity.ERROR,
        text=text,
        first_seen=first_seen,
        cleared_at=cleared_at,
        component="tls",
    )


def _certificate_changed(
    device: FoundDevice, driver: Driver, kind: ReportKind, state: State, exc: CertificateMismatch
) -> PollOutcome:
    """A failed poll that also queues a HEALTH report carrying the certificate-changed alert
    (first seen: the first mismatch, kept across polls so the portal sees one ongoing alert,
    not a new one each time), in one transaction with the failure."""
    now = now_utc()
    key = (device.driver, device.identity.serial_number)
    since = state.cert_alert_since(*key) or now
    text = (
        f"TLS certificate changed: pinned sha256 {exc.expected[:16]}…, the device now presents "
        f"{exc.actual[:16]}…. Not read until an operator checks the device and runs "
        f"`fleetmeter collector repin {device.address}`."
    )
    identity = device.identity.model_copy(update={"address": device.address})
    report = DeviceReport(
        kind=ReportKind.HEALTH,
        collected_at=now,
        device=identity,
        alerts=[_certificate_alert(text, first_seen=since)],
    )
    log.error("%s: %s", device.address, text)
    reason = str(exc)
    log.warning("%s: %s %s poll failed: %s", device.address, driver.id, kind, reason)
    try:
        with state.transaction():
            state.enqueue(report)
            _write_failure(state, device, key[0], reason, cert_alert_since=since)
    except (OutboxFull, StateFull):
        # The alert cannot be queued now (State logged why); the failure is still recorded.
        _record_failure(state, device, key[0], reason, cert_alert_since=since)
    return PollOutcome(
        device=device,
        kind=kind,
        error=PollError(device.address, driver.id, reason),
        serious_alerts=frozenset({CERTIFICATE_CHANGED}),
    )


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
