"""The driver interface: what the collector (and `fleetmeter probe`) may ask of any driver."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from fleetmeter.wire import DeviceIdentity, DeviceReport, ReportKind


@dataclass(frozen=True)
class Target:
    """Where a device is and how to reach it (the collector builds these from its ranges)."""

    host: str
    port: int | None = None  # None: the driver's default (443 for ledm)
    scheme: str = "https"  # "https" or "http" (plain HTTP only when a range is configured for it)
    # Verify the device's certificate against this CA bundle instead of pinning it on first use.
    ca_file: str | None = None
    # Per-driver secrets from the range's config, never logged. Keys by driver:
    #   snmp:      community | v3_user, v3_auth_protocol, v3_auth_key, v3_priv_protocol, v3_priv_key
    #   octoprint: api_key            moonraker: api_key (optional)
    credentials: Mapping[str, str] = field(
        default_factory=dict, repr=False, compare=False, hash=False
    )


@dataclass
class PinStore:
    """Certificate pins (sha256 of the DER certificate, hex) by ``host:port``.

    Trust on first use: an unknown device's certificate is recorded; a later different one
    raises ``CertificateMismatch``. The collector persists ``pins`` between runs.
    """

    pins: dict[str, str] = field(default_factory=dict)

    def key(self, target: Target) -> str:
        # The driver's default port when none is configured: one pin per (host, service).
        return f"{target.host}:{target.port if target.port is not None else 'default'}"


@dataclass(frozen=True)
class ReadOptions:
    kind: ReportKind = ReportKind.USAGE
    # Jobs with a sequence number <= this were already collected (None: take every job).
    job_cursor: int | None = None
    timeout_s: float = 10.0


class Driver(Protocol):
    """A device driver. Implementations are registered by a stable id in ``registry``."""

    id: str

    async def identify(
        self, target: Target, pins: PinStore, *, timeout_s: float = 5.0
    ) -> DeviceIdentity | None:
        """Cheap probe: the device's identity if this driver can read it, None if it is not one
        of its devices. Raises ``DeviceUnreachable`` when nothing answers."""
        ...

    async def read(self, target: Target, pins: PinStore, options: ReadOptions) -> DeviceReport:
        """Read the device. HEALTH reports carry status and alerts only; USAGE reports add
        lifetime counters and the jobs after ``options.job_cursor``. Raises ``DeviceError``."""
        ...
