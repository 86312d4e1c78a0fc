"""Target specifications (CIDRs, ``a-b`` address ranges, host names) and their expansion to hosts.

Expansion rule: a CIDR yields every usable host address. For IPv4 networks larger than /31 the
network and broadcast addresses are left out (they are not hosts); a /31 (RFC 3021
point-to-point) or /32 yields all of its addresses. On loopback (127.0.0.0/8, ::1) every
address is usable — the simulator binds one device per loopback address — so nothing is left
out there. An ``a-b`` range is taken literally, both ends included. A host name is kept as-is
and resolved when it is probed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass

MAX_HOSTS = 65_536
"""Expanded host count allowed per config: a /16. A typo like ``10.0.0.0/8`` must not start
16 million probes."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*\.?$")


class TargetError(ValueError):
    """A target string is not a CIDR, an ``a-b`` range, an IP address or a host name."""


@dataclass(frozen=True)
class TargetSpec:
    """One parsed entry of ``ranges[].targets``."""

    text: str
    network: IPNetwork | None = None
    first: IPAddress | None = None
    last: IPAddress | None = None
    hostname: str | None = None

    @property
    def count(self) -> int:
        """How many hosts this entry expands to, computed without expanding it."""
        if self.network is not None:
            n = self.network.num_addresses
            if _keeps_all(self.network):
                return n
            # IPv4 drops network + broadcast; IPv6 only the subnet-router anycast address.
            return n - 2 if self.network.version == 4 else n - 1
        if self.first is not None and self.last is not None:
            return int(self.last) - int(self.first) + 1
        return 1

    def hosts(self) -> Iterator[str]:
        if self.network is not None:
            addresses = iter(self.network) if _keeps_all(self.network) else self.network.hosts()
            for address in addresses:
                yield str(address)
        elif self.first is not None and self.last is not None:
            cls = type(self.first)
            for value in range(int(self.first), int(self.last) + 1):
                yield str(cls(value))
        elif self.hostname is not None:
            yield self.hostname


def _keeps_all(network: IPNetwork) -> bool:
    if network.is_loopback:
        return True
    if isinstance(network, ipaddress.IPv4Network):
        return network.prefixlen >= 31
    # IPv6 has no broadcast; hosts() leaves out only the subnet-router anycast address.
    return network.prefixlen >= 127


def parse_target(text: str) -> TargetSpec:
    """Parse one target; raise ``TargetError`` with a one-line reason."""
    value = text.strip()
    if not value:
        raise TargetError("empty target")
    if "/" in value:
        try:
            network = ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            # strict=True refuses host bits set: "10.0.0.5/24" is more likely a typo than intent.
            try:
                loose = ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise TargetError(f"{value!r} is not a valid CIDR: {exc}") from exc
            raise TargetError(f"{value!r} has host bits set; did you mean {loose}?") from exc
        return TargetSpec(text=value, network=network)
    if "-" in value:
        left, _, right = value.partition("-")
        try:
            first: IPAddress | None = ipaddress.ip_address(left.strip())
            last: IPAddress | None = ipaddress.ip_address(right.strip())
        except ValueError:
            first = last = None
        if first is not None and last is not None:
            if first.version != last.version:
                raise TargetError(f"{value!r} mixes IPv4 and IPv6")
            if int(last) < int(first):
                raise TargetError(f"{value!r}: range end is before its start")
            return TargetSpec(text=value, first=first, last=last)
        # Not two addresses: may still be a host name with a hyphen ("plotter-2.local").
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        return TargetSpec(text=value, first=address, last=address)
    if len(value) <= 253 and _HOSTNAME.match(value) and not _looks_numeric(value):
        return TargetSpec(text=value, hostname=value.rstrip(".").lower())
    raise TargetError(
        f"{value!r} is not a CIDR (10.0.0.0/24), a range (10.0.0.5-10.0.0.9), "
        "an IP address or a host name"
    )


def _looks_numeric(value: str) -> bool:
    # "10.0.0.300" matches the host-name grammar but is a mistyped address, not a name.
    return all(part.isdigit() for part in value.rstrip(".").split("."))


def check_targets(values: list[str]) -> list[str]:
    """Every target parsed; one ``ValueError`` naming each bad one (for pydantic validators,
    which turn it into a field error)."""
    problems = []
    for text in values:
        try:
            parse_target(text)
        except TargetError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError("; ".join(problems[:5]))
    return values
