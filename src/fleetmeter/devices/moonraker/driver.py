"""The ``moonraker`` driver: reads Klipper 3D printers through Moonraker's HTTP API and
adapts them to the wire model (state, heaters, the running build, the job history with
filament and durations, lifetime totals)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from fleetmeter.devices.base import PinStore, ReadOptions, Target
from fleetmeter.devices.errors import MalformedResponse, NotSupported
from fleetmeter.devices.moonraker.client import (
    DEFAULT_HTTP_PORT,
    AuthenticationRequired,
    EndpointNotFound,
    MoonrakerClient,
    UnexpectedStatus,
)
from fleetmeter.devices.moonraker.parse import (
    PRINTER_OBJECTS,
    parse_identity,
    parse_instance_id,
    parse_printer_info,
    parse_report,
    parse_server_info,
    unwrap,
)
from fleetmeter.wire import DeviceIdentity, DeviceReport, ReportKind, now_utc

__all__ = ["CREDENTIAL", "HISTORY_PAGE", "MAX_HISTORY_PAGES", "MoonrakerDriver"]

CREDENTIAL = "api_key"
"""The optional ``Target.credentials`` key holding Moonraker's API key (``/access/api_key``);
without one, Moonraker must list the collector among its ``trusted_clients``."""

HISTORY_PAGE = 200
MAX_HISTORY_PAGES = 50
"""History is read newest first, page by page, until the job cursor is reached: at most
10 000 jobs per read (a first read of a longer history takes the newest 10 000)."""

_OBJECTS_PATH = "/printer/objects/query?" + "&".join(PRINTER_OBJECTS)
_INSTANCE_PATH = "/server/database/item"
_INSTANCE_PARAMS = {"namespace": "moonraker", "key": "instance_id"}


def _api_key(target: Target) -> str | None:
    key = target.credentials.get(CREDENTIAL)
    return key.strip() or None if isinstance(key, str) else None


class MoonrakerDriver:
    """Driver id ``moonraker``: port 7125 over http, 7130 over https (pinned) unless the
    target names one. Stateless: one instance serves every device."""

    id = "moonraker"
    default_port = DEFAULT_HTTP_PORT

    async def identify(
        self, target: Target, pins: PinStore, *, timeout_s: float = 5.0
    ) -> DeviceIdentity | None:
        """The instance's identity if Moonraker answers, else None. Raises ``NotSupported``
        when Moonraker answers but refuses us (no or a wrong API key, not a trusted client),
        ``DeviceUnreachable``, ``CertificateMismatch``."""
        key = _api_key(target)
        async with MoonrakerClient(target, pins, api_key=key, timeout_s=timeout_s) as client:
            # Anonymous first: discovery probes every host of a range, and the API key must
            # only ever reach a server that has shown it is Moonraker. A trusted client gets
            # its answer here already.
            answer = await client.fetch("/server/info", anonymous=True)
            if answer.status in (401, 403):
                if not await _is_moonraker(client):
                    return None
                if key is not None:
                    answer = await client.fetch("/server/info")
            if answer.status in (401, 403):  # Moonraker, still refusing
                raise NotSupported(
                    f"{client.address}: Moonraker refuses us (HTTP {answer.status}): "
                    + (
                        "the configured API key is wrong"
                        if key
                        else f"set credentials {CREDENTIAL!r} or make the collector a "
                        "trusted client"
                    )
                )
            if answer.status != 200:
                return None
            try:
                server = parse_server_info(unwrap(answer.body, what="/server/info"))
            except MalformedResponse:
                return None  # something answers on the port, not Moonraker
            instance, printer_info = await asyncio.gather(
                client.get_optional(_INSTANCE_PATH, params=_INSTANCE_PARAMS),
                client.get_optional("/printer/info"),
            )
            resolved = client.target
        assert resolved.port is not None
        return parse_identity(
            server,
            host=target.host,
            port=resolved.port,
            instance_id=(
                parse_instance_id(unwrap(instance, what=_INSTANCE_PATH))
                if instance is not None
                else None
            ),
            printer_info=(
                parse_printer_info(unwrap(printer_info, what="/printer/info"))
                if printer_info is not None
                else None
            ),
        )

    async def read(self, target: Target, pins: PinStore, options: ReadOptions) -> DeviceReport:
        """Read server info, instance id, Klipper's state and objects and the history (USAGE
        reports: every page after the job cursor, and the totals) and parse them into one
        report. Klipper's endpoints may be absent (Klipper down): the report then says so."""
        collected_at = now_utc()
        usage = options.kind is ReportKind.USAGE
        async with MoonrakerClient(
            target, pins, api_key=_api_key(target), timeout_s=options.timeout_s
        ) as client:
            server, instance, printer_info, objects, history, totals = await asyncio.gather(
                client.get("/server/info"),
                client.get_optional(_INSTANCE_PATH, params=_INSTANCE_PARAMS),
                client.get_optional("/printer/info"),
                client.get_optional(_OBJECTS_PATH),
                _history(client, job_cursor=options.job_cursor, usage=usage),
                client.get_optional("/server/history/totals") if usage else _none(),
            )
            resolved = client.target
        assert resolved.port is not None
        return await asyncio.to_thread(
            parse_report,
            server=unwrap(server, what="/server/info"),
            host=target.host,
            port=resolved.port,
            instance=_unwrapped(instance, _INSTANCE_PATH),
            printer_info=_unwrapped(printer_info, "/printer/info"),
            objects=_unwrapped(objects, "/printer/objects/query"),
            history=[unwrap(page, what="/server/history/list") for page in history],
            totals=_unwrapped(totals, "/server/history/totals"),
            collected_at=collected_at,
            kind=options.kind,
            job_cursor=options.job_cursor,
        )


async def _is_moonraker(client: MoonrakerClient) -> bool:
    """``/access/info`` answers without authentication (Moonraker's login page needs it), if
    no wrong key comes with the request: the way to tell Moonraker's 401 from any other
    server's."""
    try:
        body = await client.get("/access/info", anonymous=True)
        result = unwrap(body, what="/access/info")
    except (EndpointNotFound, AuthenticationRequired, UnexpectedStatus, MalformedResponse):
        return False
    return isinstance(result, dict) and "available_sources" in result


async def _history(
    client: MoonrakerClient, *, job_cursor: int | None, usage: bool
) -> Sequence[bytes]:
    """History pages, newest first, until one reaches the cursor (or the end). HEALTH reads
    only the newest entry: it names the running build."""
    pages: list[bytes] = []
    limit = HISTORY_PAGE if usage else 1
    for number in range(MAX_HISTORY_PAGES if usage else 1):
        params = {"limit": str(limit), "start": str(number * limit), "order": "desc"}
        try:
            body = await client.get("/server/history/list", params=params)
        except EndpointNotFound:
            return pages  # no [history] section: Moonraker keeps no job history
        pages.append(body)
        ids = _page_ids(body)
        if len(ids) < limit or (job_cursor is not None and min(ids) <= job_cursor):
            break
    return pages


def _page_ids(body: bytes) -> list[int]:
    """Job ids on a page, as numbers; a malformed page is left to the parser to report."""
    try:
        result = unwrap(body, what="/server/history/list")
        return [int(job["job_id"], 16) for job in result["jobs"]]
    except (MalformedResponse, KeyError, TypeError, ValueError):
        return []


async def _none() -> None:
    return None


def _unwrapped(body: bytes | None, what: str) -> Any:
    return None if body is None else unwrap(body, what=what)
