"""The ``ipp`` driver: reads any IPP Everywhere printer (and most IPP/1.1 ones) read-only,
with Get-Printer-Attributes and Get-Jobs, and adapts it to the wire model."""

from __future__ import annotations

import asyncio

from fleetmeter.devices.base import PinStore, ReadOptions, Target
from fleetmeter.devices.errors import MalformedResponse
from fleetmeter.devices.ipp.client import DEFAULT_BASE_PATH, DEFAULT_PORT, IppClient
from fleetmeter.devices.ipp.parse import (
    IDENTITY_ATTRIBUTES,
    JOB_ATTRIBUTES,
    PRINTER_ATTRIBUTES,
    NoPrinterHere,
    decode,
    parse_identity,
    parse_report,
    require_success,
)
from fleetmeter.wire import DeviceIdentity, DeviceReport, ReportKind, now_utc

__all__ = ["IppDriver"]


class IppDriver:
    """Driver id ``ipp``, default port 631, printer path ``/ipp/print``. ``Target.scheme``
    "http" reads ``ipp://`` over plain HTTP, "https" ``ipps://`` with the certificate pinned.
    Stateless: one instance serves every device at its path."""

    id = "ipp"
    default_port = DEFAULT_PORT

    def __init__(self, *, base_path: str = DEFAULT_BASE_PATH) -> None:
        self.base_path = base_path

    async def identify(
        self, target: Target, pins: PinStore, *, timeout_s: float = 5.0
    ) -> DeviceIdentity | None:
        """The printer's identity if an IPP printer answers at the path, else None (HTTP 404,
        IPP not-found, or an answer that is not IPP). Raises ``DeviceUnreachable``,
        ``CertificateMismatch``, ``NotSupported`` (an IPP printer that requires
        authentication or refuses us)."""
        what = "Get-Printer-Attributes"
        async with IppClient(target, pins, base_path=self.base_path, timeout_s=timeout_s) as client:
            try:
                body = await client.get_printer_attributes(IDENTITY_ATTRIBUTES)
                printer = require_success(decode(body, what=what), what=what).printer
            except (NoPrinterHere, MalformedResponse):
                # Something answers on the port, but not an IPP printer at this path.
                return None
        if not printer:
            return None
        return parse_identity(printer, address=target.host)

    async def read(self, target: Target, pins: PinStore, options: ReadOptions) -> DeviceReport:
        """Read the printer attributes (state, markers, alerts, counters) and, for USAGE
        reports, the finished and still-active jobs; parse them into one report.

        Get-Jobs is asked twice, ``which-jobs`` completed and not-completed (both RFC 8011,
        unlike "all", which older devices refuse): the active jobs tell which finished jobs
        must wait so that the job cursor never passes an unfinished job.
        """
        collected_at = now_utc()
        completed: bytes | None = None
        active: bytes | None = None
        async with IppClient(
            target, pins, base_path=self.base_path, timeout_s=options.timeout_s
        ) as client:
            printer = await client.get_printer_attributes(PRINTER_ATTRIBUTES)
            if options.kind is ReportKind.USAGE:
                # Active jobs first: a job finishing between the two requests then shows up
                # as still active, is held back and read next time, never skipped.
                active = await client.get_jobs("not-completed", ("job-id", "job-state"))
                completed = await client.get_jobs("completed", JOB_ATTRIBUTES)
        return await asyncio.to_thread(
            parse_report,
            printer,
            completed_jobs=completed,
            active_jobs=active,
            address=target.host,
            collected_at=collected_at,
            kind=options.kind,
            job_cursor=options.job_cursor,
        )
