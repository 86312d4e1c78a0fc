"""Discovery: probe every configured host with each allowed driver's ``identify()``, concurrently.

A host where nothing answers is simply absent (logged at debug level: most addresses of a
range are empty). Any other failure is logged with the host and returned, so that a printer
that answers but cannot be read is visible rather than silently missing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleetmeter.collector.config import ProbeTarget
from fleetmeter.devices.base import Driver, PinStore, Target
from fleetmeter.devices.errors import DeviceError, DeviceUnreachable
from fleetmeter.wire import DeviceIdentity

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 64


@dataclass(frozen=True)
class FoundDevice:
    """A device discovery identified: where it is, which driver reads it, who it is."""

    target: Target
    driver: str
    identity: DeviceIdentity

    @property
    def address(self) -> str:
        return self.target.host


@dataclass(frozen=True)
class ProbeProblem:
    """A host answered but could not be identified (not: nothing answered)."""

    host: str
    driver: str
    reason: str

    def __str__(self) -> str:
        return f"{self.host} ({self.driver}): {self.reason}"


@dataclass
class DiscoveryResult:
    found: list[FoundDevice]
    problems: list[ProbeProblem]


async def discover(
    targets: Sequence[ProbeTarget],
    drivers: Mapping[str, Driver],
    pins: PinStore,
    *,
    timeout_s: float = 3.0,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> DiscoveryResult:
    """Probe every target; return the devices found (in target order) and the problems."""
    semaphore = asyncio.Semaphore(concurrency)
    problems: list[ProbeProblem] = []

    async def probe(item: ProbeTarget) -> FoundDevice | None:
        names = item.drivers if item.drivers is not None else tuple(drivers)
        async with semaphore:
            for name in names:
                driver = drivers.get(name)
                if driver is None:  # resolve_drivers() refuses unknown names; defensive only
                    continue
                try:
                    # The outer timeout guards against a driver that does not honour its own.
                    identity = await asyncio.wait_for(
                        driver.identify(item.target, pins, timeout_s=timeout_s), timeout_s * 2
                    )
                except (DeviceUnreachable, TimeoutError) as exc:
                    log.debug("%s: unreachable (%s)", item.target.host, exc or "timeout")
                    return None  # nothing answers: no other driver will do better
                except DeviceError as exc:
                    log.warning("%s: %s probe failed: %s", item.target.host, name, exc)
                    problems.append(ProbeProblem(item.target.host, name, str(exc)))
                    continue
                except Exception as exc:
                    # A driver bug must not end discovery of the other hosts.
                    log.error(
                        "%s: %s probe crashed: %s: %s",
                        item.target.host,
                        name,
                        type(exc).__name__,
                        exc,
                        exc_info=log.isEnabledFor(logging.DEBUG),
                    )
                    problems.append(
                        ProbeProblem(item.target.host, name, f"{type(exc).__name__}: {exc}")
                    )
                    continue
                if identity is not None:
                    log.info(
                        "%s: found %s %s (serial %s)",
                        item.target.host,
                        name,
                        identity.product_name or identity.vendor,
                        identity.serial_number,
                    )
                    return FoundDevice(target=item.target, driver=name, identity=identity)
        return None

    results = await asyncio.gather(*(probe(item) for item in targets))
    return DiscoveryResult(found=[r for r in results if r is not None], problems=problems)
