"""The ``ledm`` driver: reads HP EWS devices (DesignJet, PageWide, OfficeJet, LaserJet) and
FleetMeter's simulated printers over LEDM, and adapts them to the wire model."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from fleetmeter.devices.base import PinStore, ReadOptions, Target
from fleetmeter.devices.errors import MalformedResponse
from fleetmeter.devices.ledm.client import DEFAULT_PORT, LedmClient
from fleetmeter.devices.ledm.parse import (
    DISCOVERY_TREE,
    DOCUMENTS,
    HEALTH_DOCUMENTS,
    PRODUCT_CONFIG,
    parse_discovery_tree,
    parse_documents,
    parse_product_config,
)
from fleetmeter.wire import DeviceIdentity, DeviceReport, ReportKind, now_utc

__all__ = ["LedmDriver"]


class LedmDriver:
    """Driver id ``ledm``, default port 443. Stateless: one instance serves every device."""

    id = "ledm"
    default_port = DEFAULT_PORT

    async def identify(
        self, target: Target, pins: PinStore, *, timeout_s: float = 5.0
    ) -> DeviceIdentity | None:
        """The device's identity if it speaks LEDM (a DiscoveryTree that lists
        ProductConfigDyn), else None. Raises ``DeviceUnreachable``, ``CertificateMismatch``."""
        async with LedmClient(target, pins, timeout_s=timeout_s) as client:
            tree = await client.get_optional(DISCOVERY_TREE)
            if tree is None:
                return None
            try:
                listed = parse_discovery_tree(tree)
            except MalformedResponse:
                # Something answers on /DevMgmt/ but it is not LEDM (an HTML page, say).
                return None
            if PRODUCT_CONFIG not in listed:
                return None
            config = await client.get_optional(PRODUCT_CONFIG)
            if config is None:
                return None
            return parse_product_config(config, address=target.host)

    async def read(self, target: Target, pins: PinStore, options: ReadOptions) -> DeviceReport:
        """Fetch the documents for ``options.kind`` concurrently and parse them into a report.

        USAGE reads the documents the device's DiscoveryTree lists (of those the parser
        knows); HEALTH skips the tree and asks for the few status documents directly. A
        document the device does not offer (404) is left out of the report.
        """
        collected_at = now_utc()
        async with LedmClient(target, pins, timeout_s=options.timeout_s) as client:
            if options.kind is ReportKind.HEALTH:
                wanted: Iterable[str] = HEALTH_DOCUMENTS
            else:
                tree = await client.get_optional(DISCOVERY_TREE)
                if tree is None:
                    wanted = DOCUMENTS
                else:
                    listed = set(parse_discovery_tree(tree))
                    wanted = [name for name in DOCUMENTS if name in listed]
            names = list(wanted)
            bodies = await asyncio.gather(*(client.get_optional(name) for name in names))
        docs = {name: body for name, body in zip(names, bodies, strict=True) if body is not None}
        return parse_documents(
            docs,
            address=target.host,
            collected_at=collected_at,
            kind=options.kind,
            job_cursor=options.job_cursor,
        )
