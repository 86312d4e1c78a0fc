"""Discovery: probe every configured host with each allowed driver's ``identify()``.

Per host, the allowed drivers are probed concurrently (they use different ports and protocols:
443, 631, 161/udp, 80, 7125) and the first in registry priority order that identifies the device
wins; lower-priority probes still running are then cancelled. A driver that finds nothing
(``DeviceUnreachable``, timeout, ``None``) does not stop the others: a printer without an
embedded web server may still answer SNMP. A bounded number of hosts is probed at once, each
probe with a short timeout, so a /16 neither opens 300,000 sockets nor waits on one slow host.

A host where nothing answers is simply absent (logged at debug level: most addresses of a
range are empty). Any other failure is returned, with the host, when no driver could identify
the host, so that a printer that answers but cannot be read is visible rather than silently
missing. A certificate that no longer matches its pin ends the host's probe: a lower-priority
protocol must not quietly take over a device that may be impersonated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleetmeter.collector.config import ProbeTarget
from fleetmeter.devices.base import Driver, PinStore, Target
from fleetmeter.devices.errors import CertificateMismatch, DeviceError, DeviceUnreachable
from fleetmeter.wire import DeviceIdentity

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 64
"""Hosts probed at once. Each has up to one probe per driver in flight, so sockets stay in the
low hundreds (well under the usual 1024 file descriptors)."""


@dataclass(frozen=True)
class FoundDevice:
    """A device discovery identified: where it is, which driver reads it, who it is."""

    target: Target
    driver: str
    identity: DeviceIdentity

    @property
    def address(self) -> str:
        return self.target.host

    @property
    def key(self) -> tuple[str, str]:
        """What makes a device the same device wherever it is: (driver, serial number)."""
        return (self.driver, self.identity.serial_number)

    @property
    def schedule_key(self) -> tuple[str, str, str]:
        """(driver, serial, address): one poll schedule per host a device answers at."""
        return (self.driver, self.identity.serial_number, self.address)


@dataclass(frozen=True)
class ProbeProblem:
    """A host answered but could not be identified (not: nothing answered)."""

    host: str
    driver: str
    reason: str
    certificate_changed: bool = False

    def __str__(self) -> str:
        return f"{self.host} ({self.driver}): {self.reason}"


@dataclass
class DiscoveryResult:
    found: list[FoundDevice]
    problems: list[ProbeProblem]


_Outcome = DeviceIdentity | ProbeProblem | None


async def _probe(driver: Driver, target: Target, pins: PinStore, timeout_s: float) -> _Outcome:
    """One driver's probe of one host, every failure turned into an outcome."""
    host = target.host
    try:
        # The outer timeout guards against a driver that does not honour its own.
        return await asyncio.wait_for(
            driver.identify(target, pins, timeout_s=timeout_s), timeout_s * 2
        )
    except (DeviceUnreachable, TimeoutError) as exc:
        log.debug("%s: %s: nothing answers (%s)", host, driver.id, exc or "timeout")
        return None
    except CertificateMismatch as exc:
        log.warning("%s: %s probe refused: %s", host, driver.id, exc)
        return ProbeProblem(host, driver.id, str(exc), certificate_changed=True)
    except DeviceError as exc:
        log.debug("%s: %s probe failed: %s", host, driver.id, exc)
        return ProbeProblem(host, driver.id, str(exc))
    except Exception as exc:
        # A driver bug must not end discovery of the other hosts.
        log.error(
            "%s: %s probe crashed: %s: %s",
            host,
            driver.id,
            type(exc).__name__,
            exc,
            exc_info=log.isEnabledFor(logging.DEBUG),
        )
        return ProbeProblem(host, driver.id, f"{type(exc).__name__}: {exc}")


async def probe_host(
    item: ProbeTarget, drivers: Mapping[str, Driver], pins: PinStore, *, timeout_s: float
) -> tuple[FoundDevice | None, list[ProbeProblem]]:
    """Identify one host: its allowed drivers probed at once, decided in priority order
    (``drivers``' order). Problems are returned only when no driver identified the host."""
    names = [name for name in drivers if item.allows(name)]
    tasks = {
        name: asyncio.create_task(_probe(drivers[name], item.target_for(name), pins, timeout_s))
        for name in names
    }
    problems: list[ProbeProblem] = []
    try:
        for name in names:
            outcome = await tasks[name]
            if isinstance(outcome, DeviceIdentity):
                log.info(
                    "%s: found %s %s (serial %s)",
                    item.target.host,
                    name,
                    outcome.product_name or outcome.vendor,
                    outcome.serial_number,
                )
                target = item.target_for(name)
                return FoundDevice(target=target, driver=name, identity=outcome), []
            if isinstance(outcome, ProbeProblem):
                problems.append(outcome)
                if outcome.certificate_changed:
                    break
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
    return None, problems


async def discover(
    targets: Sequence[ProbeTarget],
    drivers: Mapping[str, Driver],
    pins: PinStore,
    *,
    timeout_s: float = 3.0,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> DiscoveryResult:
    """Probe every target; return the devices found (in target order) and the problems."""
    found: list[FoundDevice | None] = [None] * len(targets)
    problems: list[list[ProbeProblem]] = [[] for _ in targets]
    # A fixed pool of workers sharing one iterator: as many coroutines as `concurrency`, not
    # one per host (a /16 would otherwise mean 65,534 tasks alive at once).
    queue = iter(enumerate(targets))

    async def worker() -> None:
        for index, item in queue:
            found[index], problems[index] = await probe_host(
                item, drivers, pins, timeout_s=timeout_s
            )

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(targets))))))
    for host_problems in problems:
        for problem in host_problems:
            if not problem.certificate_changed:  # already logged as a warning
                log.warning("%s: %s probe failed: %s", problem.host, problem.driver, problem.reason)
    return DiscoveryResult(
        found=[device for device in found if device is not None],
        problems=[problem for host_problems in problems for problem in host_problems],
    )
