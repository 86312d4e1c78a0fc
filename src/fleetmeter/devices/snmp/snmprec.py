"""Read snmpsim ``.snmprec`` recordings (``OID|type|value`` lines) into SNMP values.

Used by ``fleetmeter parse --driver snmp FILE.snmprec`` and the tests: a recording of a real
printer is the SNMP equivalent of a captured LEDM document.
Types: 2 INTEGER, 4 OCTET STRING, 6 OBJECT IDENTIFIER, 64 IpAddress, 65 Counter32,
66 Gauge32, 67 TimeTicks, 70 Counter64; an ``x`` suffix means the value is hex.
"""

from __future__ import annotations

from pathlib import Path

from fleetmeter.devices.errors import MalformedResponse
from fleetmeter.devices.snmp.client import SnmpValue

_INTEGER_TAGS = {"2", "65", "66", "67", "70"}


def parse_snmprec(text: str, *, source: str = "recording") -> dict[str, SnmpValue]:
    """Parse recording text; a line that is not ``OID|type|value`` raises MalformedResponse."""
    out: dict[str, SnmpValue] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            oid, tag, value = line.split("|", 2)
            oid = oid.strip(".")
            hexed = tag.endswith("x")
            tag = tag.rstrip("x")
            if tag in _INTEGER_TAGS:
                out[oid] = int(value)
            elif tag == "4":
                out[oid] = bytes.fromhex(value) if hexed else value.encode("utf-8")
            elif tag == "6":
                out[oid] = tuple(int(part) for part in value.strip(".").split("."))
            elif tag == "64":
                out[oid] = (
                    bytes.fromhex(value) if hexed else bytes(int(p) for p in value.split("."))
                )
            # 5 (NULL) and anything else carries no value the parser reads.
        except ValueError as exc:
            raise MalformedResponse(f"{source}, line {number}: not OID|type|value ({exc})") from exc
    return out


def read_snmprec(path: Path) -> dict[str, SnmpValue]:
    return parse_snmprec(path.read_text(encoding="utf-8", errors="replace"), source=str(path))
