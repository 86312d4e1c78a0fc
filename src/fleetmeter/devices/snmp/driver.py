"""The ``snmp`` driver: reads any printer that speaks the standard MIBs (Printer-MIB, Host
Resources MIB) over SNMP v1/v2c/v3, read-only, and adapts it to the wire model."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from fleetmeter.devices.base import PinStore, ReadOptions, Target
from fleetmeter.devices.errors import DeviceUnreachable, NotSupported
from fleetmeter.devices.snmp.client import DEFAULT_PORT, SnmpClient, VarBinds
from fleetmeter.devices.snmp.credentials import (
    SnmpCommunity,
    SnmpCredentials,
    credentials_from_target,
)
from fleetmeter.devices.snmp.parse import parse_identity, parse_report
from fleetmeter.devices.snmp.profile import Profile, ReportPart, load_profile
from fleetmeter.wire import DeviceIdentity, DeviceReport, ReportKind, now_utc

__all__ = ["SnmpDriver"]


def _request_timeout(total_s: float) -> float:
    # Each request gets a share of the budget (a read is a handful of round trips, each
    # tried twice); at least 0.2 s, so that a slow but healthy agent still answers.
    return max(0.2, min(2.0, total_s / 4))


class SnmpDriver:
    """Driver id ``snmp``, default port 161 (UDP).

    SNMP has no certificates: ``pins`` is accepted and ignored. Credentials come from the
    ``Target`` (the collector range's ``[ranges.snmp]``), else per host from
    ``credentials_by_host``, else the driver's (default community "public").
    ``Target.scheme`` is ignored.
    """

    id = "snmp"
    default_port = DEFAULT_PORT

    def __init__(
        self,
        credentials: SnmpCredentials | None = None,
        *,
        credentials_by_host: Mapping[str, SnmpCredentials] | None = None,
        profile: Profile | None = None,
    ) -> None:
        self.credentials: SnmpCredentials = credentials or SnmpCommunity("public")
        self.credentials_by_host = dict(credentials_by_host or {})
        self.profile = profile or load_profile()

    def __repr__(self) -> str:
        return f"SnmpDriver({self.credentials!r}, hosts={sorted(self.credentials_by_host)})"

    def credentials_for(self, target: Target) -> SnmpCredentials:
        # The range's own credentials (collector config) win over the driver's defaults.
        try:
            configured = credentials_from_target(target.credentials)
        except ValueError as exc:
            raise NotSupported(f"{target.host}: {exc}") from exc
        if configured is not None:
            return configured
        return self.credentials_by_host.get(target.host, self.credentials)

    def _client(self, target: Target, timeout_s: float) -> SnmpClient:
        return SnmpClient(
            target.host,
            self.credentials_for(target),
            port=target.port or DEFAULT_PORT,
            timeout_s=_request_timeout(timeout_s),
            retries=1,
        )

    async def _fetch(self, target: Target, part: ReportPart, timeout_s: float) -> VarBinds:
        """GET the scalars, then walk the part's tables concurrently, within ``timeout_s``."""
        client = self._client(target, timeout_s)
        try:
            async with asyncio.timeout(timeout_s), client:
                # The scalars first: one round trip that fails fast on a silent agent or a
                # wrong community, before several walks would each wait for their timeout.
                values = await client.get(s.oid for s in self.profile.scalars.values())
                values.update(await client.walk_many(t.oid for t in self.profile.tables_for(part)))
        except TimeoutError as exc:
            raise DeviceUnreachable(
                f"{client.address}: no SNMP answer within {timeout_s:g}s "
                "(no agent, wrong community or credentials, or a filtered port)"
            ) from exc
        return values

    async def identify(
        self, target: Target, pins: PinStore, *, timeout_s: float = 5.0
    ) -> DeviceIdentity | None:
        """The printer's identity (serial from prtGeneralSerialNumber, vendor from
        sysObjectID), or None when the agent is not a printer. Raises ``DeviceUnreachable``."""
        values = await self._fetch(target, "identify", timeout_s)
        return parse_identity(values, address=target.host, profile=self.profile)

    async def read(self, target: Target, pins: PinStore, options: ReadOptions) -> DeviceReport:
        """Read status, supplies, trays and alerts (HEALTH), plus the marker counters (USAGE).

        ``options.job_cursor`` is ignored: no standard MIB has per-job data, so SNMP reports
        carry no jobs. Raises ``DeviceUnreachable``, ``NotSupported``, ``MalformedResponse``.
        """
        collected_at = now_utc()
        part: ReportPart = "usage" if options.kind is ReportKind.USAGE else "health"
        values = await self._fetch(target, part, options.timeout_s)
        return parse_report(
            values,
            address=target.host,
            collected_at=collected_at,
            kind=options.kind,
            profile=self.profile,
        )
