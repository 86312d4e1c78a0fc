"""The ``octoprint`` driver: reads 3D printers behind OctoPrint over its REST API and adapts
them to the wire model (state, heaters, the running build, the last print of every file)."""

from __future__ import annotations

import asyncio
from typing import Any

from fleetmeter.devices.base import PinStore, ReadOptions, Target
from fleetmeter.devices.errors import MalformedResponse, NotSupported
from fleetmeter.devices.octoprint.client import (
    DEFAULT_HTTP_PORT,
    AuthenticationRequired,
    OctoPrintClient,
    UnexpectedStatus,
)
from fleetmeter.devices.octoprint.parse import (
    decode,
    is_octoprint_version,
    parse_identity,
    parse_report,
)
from fleetmeter.wire import DeviceIdentity, DeviceReport, ReportKind, now_utc

__all__ = ["CREDENTIAL", "OctoPrintDriver"]

CREDENTIAL = "api_key"
"""The ``Target.credentials`` key holding the OctoPrint API key (a user's or an
application key; read permissions suffice: STATUS, CONNECTION, FILES_LIST, PRINTERPROFILES)."""

# A printer that is not connected makes /api/printer answer 409 CONFLICT.
_NOT_OPERATIONAL = 409


def _api_key(target: Target) -> str | None:
    key = target.credentials.get(CREDENTIAL)
    return key.strip() or None if isinstance(key, str) else None


class OctoPrintDriver:
    """Driver id ``octoprint``: port 80 over http, 443 over https (pinned) unless the target
    names one. Needs ``Target.credentials["api_key"]``. Stateless: one instance serves every
    device."""

    id = "octoprint"
    default_port = DEFAULT_HTTP_PORT

    async def identify(
        self, target: Target, pins: PinStore, *, timeout_s: float = 5.0
    ) -> DeviceIdentity | None:
        """The instance's identity if OctoPrint answers, else None (404, not JSON, not
        OctoPrint's version document). Raises ``NotSupported`` when OctoPrint answers but no
        API key is configured or the key is refused, ``DeviceUnreachable``,
        ``CertificateMismatch``."""
        key = _api_key(target)
        async with OctoPrintClient(target, pins, api_key=key, timeout_s=timeout_s) as client:
            # Anonymous first: discovery probes every host of a range, and the API key must
            # only ever reach a server that has shown it is OctoPrint.
            answer = await client.fetch("/api/version", anonymous=True)
            if answer.status == 200:
                try:
                    version: Any = decode(answer.body, what="/api/version")
                except MalformedResponse:
                    return None  # something answers on the port, not OctoPrint
                if not is_octoprint_version(version):
                    return None
            elif not (answer.status in (401, 403) and answer.from_octoprint):
                return None
            if key is None:
                raise NotSupported(
                    f"{client.address}: OctoPrint answers, but no API key is configured "
                    f"(set credentials {CREDENTIAL!r} for this range)"
                )
            try:
                version = decode(await client.get("/api/version"), what="/api/version")
            except AuthenticationRequired as exc:
                raise NotSupported(
                    f"{client.address}: OctoPrint refuses the configured API key"
                ) from exc
            if not is_octoprint_version(version):
                return None
            connection, profiles = await asyncio.gather(
                client.get_optional("/api/connection"),
                client.get_optional("/api/printerprofiles"),
            )
            resolved = client.target
        assert resolved.port is not None
        return parse_identity(
            version,
            host=target.host,
            port=resolved.port,
            connection=_decoded(connection, "/api/connection"),
            profiles=_decoded(profiles, "/api/printerprofiles"),
        )

    async def read(self, target: Target, pins: PinStore, options: ReadOptions) -> DeviceReport:
        """Read version, connection, profile, printer state and job (and, for USAGE reports,
        the file list with its print history) concurrently, and parse them into one report.
        Raises ``NotSupported`` without an API key, and the client's errors."""
        key = _api_key(target)
        if key is None:
            raise NotSupported(
                f"{target.host}: no OctoPrint API key configured "
                f"(set credentials {CREDENTIAL!r} for this range)"
            )
        collected_at = now_utc()
        async with OctoPrintClient(
            target, pins, api_key=key, timeout_s=options.timeout_s
        ) as client:
            usage = options.kind is ReportKind.USAGE
            version, connection, profiles, printer, job, files = await asyncio.gather(
                client.get("/api/version"),
                client.get_optional("/api/connection"),
                client.get_optional("/api/printerprofiles"),
                _printer(client),
                client.get_optional("/api/job"),
                client.get("/api/files", params={"recursive": "true"}) if usage else _none(),
            )
            resolved = client.target
        assert resolved.port is not None
        return await asyncio.to_thread(
            parse_report,
            version=decode(version, what="/api/version"),
            host=target.host,
            port=resolved.port,
            connection=_decoded(connection, "/api/connection"),
            profiles=_decoded(profiles, "/api/printerprofiles"),
            printer=_decoded(printer, "/api/printer"),
            job=_decoded(job, "/api/job"),
            files=_decoded(files, "/api/files"),
            collected_at=collected_at,
            kind=options.kind,
            job_cursor=options.job_cursor,
        )


async def _printer(client: OctoPrintClient) -> bytes | None:
    """``/api/printer``; None when no printer is connected (OctoPrint answers 409)."""
    try:
        return await client.get("/api/printer")
    except UnexpectedStatus as exc:
        if exc.status == _NOT_OPERATIONAL:
            return None
        raise


async def _none() -> None:
    return None


def _decoded(body: bytes | None, what: str) -> Any:
    return None if body is None else decode(body, what=what)
