"""Hostile SNMP: garbage datagrams, malformed varbinds, wrong types, huge values, negative
counters, looping and endless walks; the parser and the ``.snmprec`` reader fuzzed.

The network cases run a small hostile agent on 127.0.0.1 (UDP, port 0): it decodes the
driver's request with pysnmp's own message spec and answers with BER it writes byte by byte
(``ber``), so that a value can have any tag, any length and any content. The driver must
end with a report or its documented error (``DeviceUnreachable``, ``NotSupported``,
``MalformedResponse``) within its timeout; the parser must never raise anything else.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder  # type: ignore[import-untyped]
from pysnmp.proto import api  # type: ignore[import-untyped]

from fleetmeter.devices.base import PinStore, ReadOptions, Target
from fleetmeter.devices.errors import DeviceError, DeviceUnreachable, MalformedResponse
from fleetmeter.devices.snmp import SnmpCommunity, SnmpDriver, load_profile, parse_report
from fleetmeter.devices.snmp.parse import parse_identity
from fleetmeter.devices.snmp.snmprec import parse_snmprec
from fleetmeter.wire import DeviceReport, ReportKind
from tests.devices.hostile_support import FUZZ, SCALE, clean

WHEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
COMMUNITY = "hostile"
TIMEOUT_S = 2.0
OUTER_BOUND_S = 30.0

Oid = tuple[int, ...]


# --------------------------------------------------------------------------- BER by hand


def tlv(tag: int, content: bytes) -> bytes:
    """A BER type-length-value with a definite length (X.690 §8.1)."""
    size = len(content)
    if size < 0x80:
        length = bytes([size])
    else:
        raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def integer(tag: int, value: int) -> bytes:
    """Any integer, two's complement, minimal (X.690 §8.3): as long as it needs to be."""
    size = max(1, (value.bit_length() + 8) // 8)
    return tlv(tag, value.to_bytes(size, "big", signed=True))


def oid_bytes(oid: Oid) -> bytes:
    out = bytearray([40 * oid[0] + oid[1]])
    for arc in oid[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def dotted(text: str) -> Oid:
    return tuple(int(part) for part in text.split("."))


# SNMP value tags (RFC 2578 §7.1, RFC 3416 §3).
INTEGER, OCTETS, NULL, OID = 0x02, 0x04, 0x05, 0x06
IPADDRESS, COUNTER32, GAUGE32, TIMETICKS, OPAQUE, COUNTER64 = 0x40, 0x41, 0x42, 0x43, 0x44, 0x46
NO_SUCH_OBJECT, END_OF_MIB_VIEW = b"\x80\x00", b"\x82\x00"


def octets(text: str | bytes) -> bytes:
    return tlv(OCTETS, text.encode() if isinstance(text, str) else text)


def object_id(text: str) -> bytes:
    return tlv(OID, oid_bytes(dotted(text)))


HR_DEVICE = "1.3.6.1.2.1.25.3.2.1"
GENERAL = "1.3.6.1.2.1.43.5.1.1"
MARKER = "1.3.6.1.2.1.43.10.2.1"
SUPPLIES = "1.3.6.1.2.1.43.11.1.1"
ALERTS = "1.3.6.1.2.1.43.18.1.1"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"

HEALTHY: dict[str, bytes] = {
    "1.3.6.1.2.1.1.1.0": octets("HP ETHERNET MULTI-ENVIRONMENT,SN:VNCRC48198,PID:HP LaserJet"),
    "1.3.6.1.2.1.1.2.0": object_id("1.3.6.1.4.1.11.2.3.9.1"),
    SYS_UPTIME: integer(TIMETICKS, 8_640_000),
    f"{HR_DEVICE}.2.1": object_id("1.3.6.1.2.1.25.3.1.5"),
    f"{HR_DEVICE}.3.1": octets("HP LaserJet MFP M130nw"),
    f"{GENERAL}.17.1": octets("VNCRC48198"),
    f"{MARKER}.3.1.1": integer(INTEGER, 7),
    f"{MARKER}.4.1.1": integer(COUNTER32, 15232),
    f"{SUPPLIES}.6.1.1": octets("Black Toner"),
    f"{SUPPLIES}.8.1.1": integer(INTEGER, 1000),
    f"{SUPPLIES}.9.1.1": integer(INTEGER, 400),
    f"{ALERTS}.2.1.1": integer(INTEGER, 4),
    f"{ALERTS}.7.1.1": integer(INTEGER, 1101),
    f"{ALERTS}.8.1.1": octets("Toner low"),
    f"{ALERTS}.9.1.1": integer(TIMETICKS, 100),
}


class HostileAgent:
    """An SNMP v2c agent on 127.0.0.1 that answers from ``mib`` (dotted OID → value TLV) with
    any BER it is given, or with whatever ``answer`` makes of a request (garbage, loops).

    Served by one thread that waits on its socket with a short timeout and stops on
    ``stop``; every answer is one datagram.
    """

    def __init__(self) -> None:
        self.mib: dict[str, bytes] = dict(HEALTHY)
        self.answer: Callable[[bytes, int, list[Oid], bool], bytes] | None = None
        self.requests = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> HostileAgent:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.requests += 1
            message, _ = decoder.decode(data, asn1Spec=api.v2c.Message())
            pdu = api.v2c.apiMessage.get_pdu(message)
            request_id = int(api.v2c.apiPDU.get_request_id(pdu))
            names = [tuple(int(p) for p in name) for name, _ in api.v2c.apiPDU.get_varbinds(pdu)]
            walk = not pdu.isSameTypeWith(api.v2c.GetRequestPDU())
            answer = self.answer or self.respond
            community = bytes(api.v2c.apiMessage.get_community(message))
            reply = answer(community, request_id, names, walk)
            if reply:
                self._sock.sendto(reply, peer)

    def respond(self, community: bytes, request_id: int, names: list[Oid], walk: bool) -> bytes:
        """The MIB's answer: GET by exact OID, GETBULK/GETNEXT the next 24 objects."""
        ordered = sorted((dotted(k), v) for k, v in self.mib.items())
        binds: list[tuple[Oid, bytes]] = []
        for name in names:
            if not walk:
                binds.append((name, self.mib.get(".".join(map(str, name)), NO_SUCH_OBJECT)))
                continue
            following = [(oid, value) for oid, value in ordered if oid > name][:24]
            binds.extend(following or [(name, END_OF_MIB_VIEW)])
        return response(community, request_id, binds)


def response(community: bytes, request_id: int, binds: list[tuple[Oid, bytes]]) -> bytes:
    varbinds = b"".join(tlv(0x30, tlv(OID, oid_bytes(oid)) + value) for oid, value in binds)
    pdu = integer(INTEGER, request_id) + integer(INTEGER, 0) + integer(INTEGER, 0)
    pdu += tlv(0x30, varbinds)
    return tlv(0x30, integer(INTEGER, 1) + octets(community) + tlv(0xA2, pdu))


@pytest.fixture
def agent() -> Iterator[HostileAgent]:
    with HostileAgent() as running:
        yield running


def _read(
    agent: HostileAgent, kind: ReportKind = ReportKind.USAGE, timeout_s: float = TIMEOUT_S
) -> object:
    driver = SnmpDriver(SnmpCommunity(COMMUNITY))
    target = Target("127.0.0.1", port=agent.port)
    options = ReadOptions(kind=kind, timeout_s=timeout_s)

    async def bounded() -> DeviceReport:
        async with asyncio.timeout(OUTER_BOUND_S):
            return await driver.read(target, PinStore(), options)

    try:
        return asyncio.run(bounded())
    except TimeoutError:
        pytest.fail(f"the SNMP driver did not give up within {OUTER_BOUND_S:g} s")
    except DeviceError as exc:
        return exc


def test_the_healthy_agent_is_read(agent: HostileAgent) -> None:
    """Also a regression: the walk of the last table ends with endOfMibView under the name
    that was asked for (RFC 3416 §4.2.2), which the client took for a looping agent."""
    report = _read(agent)
    assert isinstance(report, DeviceReport), repr(report)
    assert report.device.serial_number == "VNCRC48198"
    assert report.usage is not None and report.usage.impressions == 15232
    assert report.alerts and report.alerts[0].first_seen < WHEN.replace(year=2100)


# --------------------------------------------------------------------------- known abuse

HUGE = 2**64 - 1
VALUE_ABUSE: dict[str, dict[str, bytes]] = {
    # Was: OverflowError (a timedelta of 1.8e17 s) before the TimeTicks range check.
    "uptime-as-counter64-max": {SYS_UPTIME: integer(COUNTER64, HUGE)},
    "uptime-negative": {SYS_UPTIME: integer(INTEGER, -(2**31))},
    "negative-counter": {f"{MARKER}.4.1.1": tlv(COUNTER32, b"\xff\xff\xff\xfe")},
    "counter64-max": {f"{MARKER}.4.1.1": integer(COUNTER64, HUGE)},
    "integer-of-40-bytes": {f"{SUPPLIES}.9.1.1": integer(INTEGER, 2**300)},
    "level-far-above-max": {f"{SUPPLIES}.9.1.1": integer(INTEGER, 2**31 - 1)},
    "max-capacity-zero": {f"{SUPPLIES}.8.1.1": integer(INTEGER, 0)},
    "string-where-integer": {f"{SUPPLIES}.9.1.1": octets("40")},
    "oid-where-string": {f"{GENERAL}.17.1": object_id("1.3.6.1")},
    "null-values": {key: tlv(NULL, b"") for key in HEALTHY},
    "no-such-object-everywhere": {key: NO_SUCH_OBJECT for key in HEALTHY},
    "opaque-and-ipaddress": {
        f"{GENERAL}.17.1": tlv(OPAQUE, b"\x9f\x78\x04\x00\x00\x00\x01"),
        f"{HR_DEVICE}.3.1": tlv(IPADDRESS, b"\x7f\x00\x00\x01"),
    },
    "long-strings": {
        f"{GENERAL}.17.1": octets("S" * 20_000),
        f"{ALERTS}.8.1.1": octets(b"\xff\xfe\x00\x1b[31m" * 2000),
    },
    "binary-serial": {f"{GENERAL}.17.1": octets(b"\x00\x01\x02\xff")},
    "unknown-tag": {f"{SUPPLIES}.9.1.1": tlv(0x5F, b"\x01\x02")},
    "empty-integer": {f"{SUPPLIES}.9.1.1": tlv(INTEGER, b"")},
    "not-a-printer": {f"{HR_DEVICE}.2.1": object_id("1.3.6.1.2.1.25.3.1.3")},
}


@pytest.mark.parametrize("name", sorted(VALUE_ABUSE))
def test_hostile_values_end_in_a_report_or_the_documented_error(
    agent: HostileAgent, name: str
) -> None:
    agent.mib.update(VALUE_ABUSE[name])
    outcome = _read(agent)
    assert isinstance(outcome, DeviceReport | DeviceError), (name, repr(outcome))


@pytest.mark.parametrize("uptime", [2**32, 2**63, 2**64 - 1])
def test_uptime_beyond_timeticks_is_not_a_crash(uptime: int) -> None:
    """Was: OverflowError. sysUpTime sent as a Counter64 made the alert's age a timedelta
    past datetime's range; such an uptime is now not used to date the alert."""
    values: dict[str, object] = {
        SYS_UPTIME: uptime,
        f"{HR_DEVICE}.2.1": dotted("1.3.6.1.2.1.25.3.1.5"),
        f"{GENERAL}.17.1": b"SERIAL1",
        f"{ALERTS}.2.1.1": 4,
        f"{ALERTS}.7.1.1": 1101,
        f"{ALERTS}.9.1.1": 0,
    }
    report = parse_report(values, collected_at=WHEN)  # type: ignore[arg-type]
    assert [a.first_seen for a in report.alerts] == [WHEN]


@pytest.mark.parametrize("level", [10**400, -(10**400)])
def test_integers_no_snmp_type_carries_are_dropped(level: int) -> None:
    """Was: OverflowError (int too large for a float) from a ``.snmprec`` recording."""
    values = parse_snmprec(
        f"1.3.6.1.2.1.25.3.2.1.2.1|6|1.3.6.1.2.1.25.3.1.5\n"
        f"{GENERAL}.17.1|4|SERIAL1\n{SUPPLIES}.8.1.1|2|1\n{SUPPLIES}.9.1.1|2|{level}\n"
    )
    report = parse_report(values, collected_at=WHEN)
    assert report.status is not None and report.status.cartridges[0].level_percent is None


def test_garbage_datagrams_are_unreachable(agent: HostileAgent) -> None:
    agent.answer = lambda community, request_id, names, walk: b"\x30\x82\xff\xff garbage"
    outcome = _read(agent)
    assert isinstance(outcome, DeviceUnreachable), repr(outcome)
    assert agent.requests >= 1


def test_answers_to_another_request_are_ignored(agent: HostileAgent) -> None:
    agent.answer = lambda community, request_id, names, walk: response(
        community, request_id + 1, [(names[0], integer(INTEGER, 1))]
    )
    assert isinstance(_read(agent), DeviceUnreachable)


def test_a_looping_agent_is_malformed(agent: HostileAgent) -> None:
    """A walk answered with the OID that was asked for (GETNEXT must move forward)."""

    def loop(community: bytes, request_id: int, names: list[Oid], walk: bool) -> bytes:
        if not walk:
            return agent.respond(community, request_id, names, walk)
        return response(community, request_id, [((*names[0], 1), integer(INTEGER, 1))] * 2)

    agent.answer = loop
    outcome = _read(agent)
    assert isinstance(outcome, MalformedResponse) and "out of order" in str(outcome)


def test_an_endless_walk_ends(agent: HostileAgent) -> None:
    """A table that never ends: refused at the object limit or at the timeout."""

    def endless(community: bytes, request_id: int, names: list[Oid], walk: bool) -> bytes:
        if not walk:
            return agent.respond(community, request_id, names, walk)
        start = names[0]
        binds = [((*start, i + 1), integer(INTEGER, i)) for i in range(24)]
        return response(community, request_id, binds)

    agent.answer = endless
    outcome = _read(agent)
    assert isinstance(outcome, MalformedResponse | DeviceUnreachable), repr(outcome)


# --------------------------------------------------------------------------- fuzzing

value_tlvs = st.one_of(
    st.builds(
        integer,
        st.sampled_from([INTEGER, COUNTER32, GAUGE32, TIMETICKS, COUNTER64]),
        st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([0, -1, HUGE, 2**31])),
    ),
    st.builds(octets, st.binary(max_size=300)),
    st.builds(
        tlv,
        st.sampled_from([NULL, OID, IPADDRESS, OPAQUE, 0x80, 0x81, 0x82, 0x5F]),
        st.binary(max_size=12),
    ),
    st.just(NO_SUCH_OBJECT),
)


@FUZZ(12)
@given(edits=st.dictionaries(st.sampled_from(sorted(HEALTHY)), value_tlvs, min_size=1))
def test_fuzzed_agent(edits: dict[str, bytes]) -> None:
    """The healthy agent with some values replaced by any tag and content, over UDP."""
    with HostileAgent() as running:
        running.mib.update(edits)
        outcome = _read(running, timeout_s=1.0)
    assert isinstance(outcome, DeviceReport | DeviceError), repr(outcome)


PROFILE = load_profile()
_OIDS = [s.oid for s in PROFILE.scalars.values()] + [
    f"{table.oid}.{column.column}"
    for table in PROFILE.tables.values()
    for column in table.columns.values()
]
snmp_values = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**31), max_value=2**64 - 1),
    st.sampled_from([0, -1, -2, -3, 2**32 - 1, 2**64 - 1, -(2**31)]),
    st.binary(max_size=80),
    st.lists(st.integers(min_value=0, max_value=2**32), max_size=12).map(tuple),
    st.booleans(),
)
indices = st.lists(st.integers(min_value=-2, max_value=2**32), min_size=0, max_size=3)


@st.composite
def varbinds(draw: st.DrawFn) -> dict[str, object]:
    out: dict[str, object] = {}
    # A printer, most of the time: without hrDevicePrinter the parser stops early.
    if draw(st.booleans()):
        out[f"{HR_DEVICE}.2.1"] = dotted("1.3.6.1.2.1.25.3.1.5")
        out[f"{GENERAL}.17.1"] = b"SERIAL1"
    for _ in range(draw(st.integers(min_value=0, max_value=30))):
        base = draw(st.sampled_from(_OIDS))
        suffix = "" if base.endswith(".0") else "." + ".".join(map(str, draw(indices) or [1, 1]))
        out[base + suffix] = draw(snmp_values)
    return out


@FUZZ(250)
@given(values=varbinds(), kind=st.sampled_from(ReportKind))
def test_fuzzed_parser(values: dict[str, object], kind: ReportKind) -> None:
    """Any SnmpValue (and some that are not: booleans) under any profile OID and index."""
    outcome = clean(
        lambda: parse_report(values, collected_at=WHEN, kind=kind)  # type: ignore[arg-type]
    )
    assert isinstance(outcome, DeviceReport | DeviceError)
    identity = clean(lambda: parse_identity(values))  # type: ignore[arg-type]
    assert (
        identity is None or not isinstance(identity, Exception) or isinstance(identity, DeviceError)
    )


@FUZZ(150)
@given(
    lines=st.lists(
        st.tuples(
            st.sampled_from([*_OIDS, "1.3", "", "x.y", "1..2"]),
            st.sampled_from(["2", "4", "4x", "6", "64", "64x", "65", "70", "5", "99", ""]),
            st.one_of(st.text(max_size=40), st.integers().map(str), st.just("9" * 5000)),
        ),
        max_size=20,
    )
)
def test_fuzzed_snmprec(lines: list[tuple[str, str, str]]) -> None:
    """Recordings (``fleetmeter parse --driver snmp``): any line, then the parser on it."""
    text = "\n".join(f"{oid}|{tag}|{value}" for oid, tag, value in lines)
    values = clean(lambda: parse_snmprec(text))
    if isinstance(values, dict):
        outcome = clean(lambda: parse_report(values, collected_at=WHEN))
        assert isinstance(outcome, DeviceReport | DeviceError)


def test_budget_scale_is_sane() -> None:
    assert SCALE >= 1
