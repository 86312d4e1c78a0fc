"""The ``additive`` driver: reads industrial powder-bed 3D printers through the
``fleetmeter-additive`` JSON API and adapts them to the wire model (state, the running build,
finished builds after the job cursor, agents and printheads, build units, the processing
station and its powder, alerts, lifetime counters)."""

from __future__ import annotations

import asyncio
from typing import Any

from fleetmeter.devices.additive.client import DEFAULT_PORT, AdditiveClient
from fleetmeter.devices.additive.parse import (
    DOCUMENTS,
    MAX_RECENT_BUILDS,
    decode,
    is_additive_device,
    parse_identity,
    parse_report,
)
from fleetmeter.devices.base import PinStore, ReadOptions, Target
from fleetmeter.devices.errors import MalformedResponse
from fleetmeter.wire import DeviceIdentity, DeviceReport, ReportKind, now_utc

__all__ = ["HISTORY_PAGE", "MAX_HISTORY_PAGES", "AdditiveDriver"]

HISTORY_PAGE = 200
MAX_HISTORY_PAGES = 50
"""Builds are read after the job cursor, page by page: at most 10 000 per read. A longer
backlog is read on at the next poll (the cursor then stands at the last build read)."""


class AdditiveDriver:
    """Driver id ``additive``: port 443 over https (pinned), 80 over http, unless the target
    names one. No credentials. Stateless: one instance serves every device."""

    id = "additive"
    default_port = DEFAULT_PORT

    async def identify(
        self, target: Target, pins: PinStore, *, timeout_s: float = 5.0
    ) -> DeviceIdentity | None:
        """The printer's identity if it serves the API's device document, else None (404,
        not JSON, another API). Raises ``DeviceUnreachable``, ``CertificateMismatch``, and
        ``MalformedResponse`` for a device that claims the API but answers nonsense."""
        async with AdditiveClient(target, pins, timeout_s=timeout_s) as client:
            answer = await client.fetch("device")
        if answer.status != 200:
            return None
        try:
            doc = decode(answer.body, what="/api/am/v1/device")
        except MalformedResponse:
            return None  # something answers on the port, but not this API
        if not is_additive_device(doc):
            return None
        return parse_identity(doc, host=target.host)

    async def read(self, target: Target, pins: PinStore, options: ReadOptions) -> DeviceReport:
        """Read the documents for ``options.kind`` and parse them into one report. USAGE
        adds the lifetime counters and every finished build after ``options.job_cursor``."""
        collected_at = now_utc()
        usage = options.kind is ReportKind.USAGE
        optional = [*DOCUMENTS[1:], *(("counters",) if usage else ())]
        async with AdditiveClient(target, pins, timeout_s=options.timeout_s) as client:
            required, bodies = await asyncio.gather(
                asyncio.gather(
                    client.get("device"),
                    client.get("builds", params={"last": str(MAX_RECENT_BUILDS)}),
                ),
                asyncio.gather(*(client.get_optional(name) for name in optional)),
            )
            device, recent = required
            # The history is read after the counters: every build the counters include is
            # then in the history too (or older than the cursor), never the other way round.
            history = await _history(client, options.job_cursor) if usage else []
        docs: dict[str, Any] = {"device": decode(device, what="/api/am/v1/device")}
        for name, body in zip(optional, bodies, strict=True):
            if body is not None:
                docs[name] = decode(body, what=f"/api/am/v1/{name}")
        return await asyncio.to_thread(
            parse_report,
            docs,
            host=target.host,
            history=history,
            recent=decode(recent, what="/api/am/v1/builds"),
            collected_at=collected_at,
            kind=options.kind,
            job_cursor=options.job_cursor,
        )


async def _history(client: AdditiveClient, job_cursor: int | None) -> list[Any]:
    """Decoded ``builds`` pages after the cursor, oldest first, until the device says there
    are no more (or ``MAX_HISTORY_PAGES``)."""
    pages: list[Any] = []
    after = job_cursor or 0
    for _ in range(MAX_HISTORY_PAGES):
        params = {"after": str(after), "limit": str(HISTORY_PAGE)}
        page = decode(await client.get("builds", params=params), what="/api/am/v1/builds")
        pages.append(page)
        last = _last_sequence(page)
        if not (isinstance(page, dict) and page.get("more") is True) or last is None:
            break
        if last <= after:
            # A device that pages backwards would keep us here for ever.
            raise MalformedResponse(f"{client.address} /api/am/v1/builds: paging does not advance")
        after = last
    return pages


def _last_sequence(page: Any) -> int | None:
    """The highest sequence number on a page; a malformed page is left to the parser."""
    try:
        numbers = [b["sequenceNumber"] for b in page["builds"]]
    except (KeyError, TypeError):
        return None
    valid = [n for n in numbers if isinstance(n, int) and not isinstance(n, bool)]
    return max(valid) if valid else None
