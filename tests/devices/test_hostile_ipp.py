"""Hostile IPP responses: broken framing, wrong value tags, huge collections, absurd counts
and lengths, impossible dates, fuzzed.

The contract of ``parse.decode`` / ``parse.parse_report``: bytes in, an ``IppMessage`` or a
``DeviceReport`` out, or a ``DeviceError`` (``MalformedResponse``; ``NotSupported`` /
``DeviceError`` for an error status); never a pyipp, struct or unicode error, never a hang.
Messages are built here byte by byte (RFC 8010 §3), so that every field can be wrong.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetmeter.devices.errors import DeviceError, MalformedResponse
from fleetmeter.devices.ipp import parse
from fleetmeter.wire import DeviceReport
from tests.devices.hostile_support import FUZZ, byte_mutations, clean

WHEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# RFC 8010 §3.5.2 value tags.
INTEGER, BOOLEAN, ENUM = 0x21, 0x22, 0x23
OCTET_STRING, DATE_TIME, RESOLUTION, RANGE = 0x30, 0x31, 0x32, 0x33
BEGIN_COLLECTION, TEXT_LANG, NAME_LANG, END_COLLECTION = 0x34, 0x35, 0x36, 0x37
TEXT, NAME, KEYWORD, URI, CHARSET, LANGUAGE, MEMBER_NAME = 0x41, 0x42, 0x44, 0x45, 0x47, 0x48, 0x4A
OUT_OF_BAND = (0x10, 0x12, 0x13)  # unsupported, unknown, no-value
VALUE_TAGS = [INTEGER, BOOLEAN, ENUM, OCTET_STRING, DATE_TIME, RESOLUTION, RANGE]
VALUE_TAGS += [TEXT_LANG, NAME_LANG, TEXT, NAME, KEYWORD, URI, CHARSET, LANGUAGE, *OUT_OF_BAND]


def attr(tag: int, name: str | bytes, value: bytes) -> bytes:
    """One attribute (or, with an empty name, an additional value) as RFC 8010 §3.1.4."""
    raw_name = name.encode() if isinstance(name, str) else name
    return struct.pack(">bH", tag, len(raw_name)) + raw_name + struct.pack(">H", len(value)) + value


def integer(tag: int, name: str, *values: int) -> bytes:
    out = attr(tag, name, struct.pack(">i", values[0]))
    return out + b"".join(attr(tag, "", struct.pack(">i", v)) for v in values[1:])


def text(tag: int, name: str, *values: str) -> bytes:
    out = attr(tag, name, values[0].encode())
    return out + b"".join(attr(tag, "", v.encode()) for v in values[1:])


def date_time(
    year: int, tz_dir: bytes = b"+", tz_hours: int = 0, month: int = 1, day: int = 1, hour: int = 0
) -> bytes:
    """An RFC 2579 DateAndTime value (11 octets)."""
    return struct.pack(">hbbbbbbcbb", year, month, day, hour, 0, 0, 0, tz_dir, tz_hours, 0)


def collection(name: str, members: list[tuple[int, str, bytes]], depth: int = 1) -> bytes:
    """A collection attribute (RFC 8010 §3.1.6), nested ``depth`` deep."""
    inner = b"".join(attr(MEMBER_NAME, "", n.encode()) + attr(t, "", v) for t, n, v in members)
    body = inner
    for level in range(depth - 1):
        body = attr(MEMBER_NAME, "", f"m{level}".encode()) + attr(BEGIN_COLLECTION, "", b"")
        body += inner + attr(END_COLLECTION, "", b"")
        inner = body
    return attr(BEGIN_COLLECTION, name, b"") + body + attr(END_COLLECTION, "", b"")


def message(*groups: tuple[int, bytes], status: int = 0, request_id: int = 1) -> bytes:
    head = struct.pack(">bbhi", 2, 0, status, request_id)
    head += b"\x01" + text(CHARSET, "attributes-charset", "utf-8")
    head += text(LANGUAGE, "attributes-natural-language", "en")
    return head + b"".join(bytes([tag]) + body for tag, body in groups) + b"\x03"


HEALTHY_PRINTER = b"".join(
    [
        text(TEXT, "printer-make-and-model", "HP DesignJet T830"),
        text(TEXT, "printer-serial-number", "SG12345678"),
        text(TEXT, "printer-device-id", "MFG:HP;MDL:DesignJet T830;SN:SG12345678;"),
        text(URI, "printer-uuid", "urn:uuid:6d7a2b6a-1b1c-4d41-9cf6-3f0f8f7d6e10"),
        integer(ENUM, "printer-state", 3),
        text(KEYWORD, "printer-state-reasons", "marker-supply-low-warning"),
        attr(DATE_TIME, "printer-state-change-date-time", date_time(2026)),
        text(NAME, "marker-names", "Cyan", "Black"),
        integer(INTEGER, "marker-levels", 71, 9),
        integer(INTEGER, "marker-low-levels", 15, 15),
        text(KEYWORD, "marker-types", "ink-cartridge", "ink-cartridge"),
        text(NAME, "marker-colors", "#00FFFF", "#000000"),
        text(OCTET_STRING, "printer-supply", "index=1;class=supplyThatIsConsumed;type=ink;"),
        text(OCTET_STRING, "printer-alert", "code=markerSupplyLow;severity=warning;"),
        integer(INTEGER, "printer-impressions-completed", 1234),
        collection(
            "printer-impressions-completed-col",
            [(INTEGER, "monochrome", struct.pack(">i", 1000))],
        ),
    ]
)
HEALTHY_JOB = b"".join(
    [
        integer(INTEGER, "job-id", 7),
        integer(ENUM, "job-state", 9),
        text(NAME, "job-name", "plan.pdf"),
        text(URI, "job-uuid", "urn:uuid:0c5a9e9d-9a59-4b8e-8d5e-2b7f3c1a0d11"),
        integer(INTEGER, "job-impressions-completed", 2),
        integer(INTEGER, "job-media-sheets-completed", 2),
        integer(INTEGER, "time-at-completed", 500),
        integer(INTEGER, "job-printer-up-time", 600),
        collection(
            "media-col",
            [(KEYWORD, "media-type", b"bond")],
        ),
        text(KEYWORD, "media", "iso_a1_594x841mm"),
    ]
)


def _report(printer: bytes, jobs: bytes | None = None, active: bytes | None = None) -> object:
    return clean(
        lambda: parse.parse_report(
            printer, completed_jobs=jobs, active_jobs=active, collected_at=WHEN, job_cursor=None
        )
    )


def test_the_healthy_message_is_read() -> None:
    """The builders make what a device sends: the fuzz tests start from a valid report."""
    report = _report(message((0x04, HEALTHY_PRINTER)), message((0x02, HEALTHY_JOB)))
    assert isinstance(report, DeviceReport), report
    assert report.device.serial_number == "SG12345678" and len(report.jobs) == 1
    assert report.usage is not None and report.usage.impressions == 1234


# --------------------------------------------------------------------------- known abuse

ABUSE: dict[str, bytes] = {
    "negative-name-length": message((0x04, b"\x41\xff\xff")),
    "length-past-the-end": message((0x04, struct.pack(">bH", TEXT, 5) + b"abcde\x7f\xff")),
    "integer-of-3-bytes": message((0x04, attr(INTEGER, "printer-state", b"\x00\x00\x03"))),
    "date-of-5-bytes": message((0x04, attr(DATE_TIME, "printer-current-time", b"\x07\xea\x01"))),
    "boolean-of-2-bytes": message((0x04, attr(BOOLEAN, "x", b"\x01\x01"))),
    "extension-tag": message((0x04, attr(0x7F, "x", b"\x00\x00\x00\x01"))),
    "unknown-group": message((0x09, HEALTHY_PRINTER)),
    "no-end-tag": message((0x04, HEALTHY_PRINTER))[:-1],
    "attribute-before-group": struct.pack(">bbhi", 2, 0, 0, 1) + HEALTHY_PRINTER + b"\x03",
    "unbalanced-collection": message((0x04, attr(BEGIN_COLLECTION, "c", b""))),
    "end-without-begin": message((0x04, attr(END_COLLECTION, "", b""))),
    "nested-too-deep": message(
        (0x04, collection("c", [(INTEGER, "x", b"\x00\x00\x00\x01")], depth=40))
    ),
    "group-inside-collection": message(
        (0x04, attr(BEGIN_COLLECTION, "c", b"") + b"\x04" + attr(END_COLLECTION, "", b""))
    ),
    "bad-text-with-language": message((0x04, attr(TEXT_LANG, "x", b"\x00\x05en"))),
    "invalid-utf8-name": message((0x04, attr(TEXT, b"\xff\xfe", b"x"))),
    "invalid-utf8-value": message((0x04, attr(TEXT_LANG, "x", b"\x00\x02en\x00\x02\xff\xfe"))),
    "undefined-enum": message((0x04, integer(ENUM, "printer-state", 99))),
    "bad-timezone-direction": message(
        (0x04, attr(DATE_TIME, "printer-current-time", date_time(2026, b"?")))
    ),
    "month-13": message((0x04, attr(DATE_TIME, "printer-current-time", date_time(2026, month=13)))),
    "tiny": b"\x02\x00",
    "empty": b"",
    "html": b"<html><body>Sign in</body></html>",
}


@pytest.mark.parametrize("name", sorted(ABUSE))
def test_framing_abuse_is_malformed(name: str) -> None:
    outcome = clean(lambda: parse.decode(ABUSE[name]))
    assert isinstance(outcome, MalformedResponse), (name, repr(outcome))
    assert isinstance(_report(ABUSE[name]), MalformedResponse)


# Semantic abuse inside valid framing: read as a report, or refused; never a crash.
SEMANTIC: dict[str, bytes] = {
    "wrong-value-tags": b"".join(
        [
            text(TEXT, "printer-serial-number", "S1"),
            text(TEXT, "printer-state", "idle"),
            attr(DATE_TIME, "marker-levels", date_time(2026)),
            integer(INTEGER, "marker-names", 5),
            attr(BOOLEAN, "printer-impressions-completed", b"\x05"),
            attr(RANGE, "marker-low-levels", b"\x00" * 8),
            attr(RESOLUTION, "printer-supply", b"\x00" * 9),
            text(KEYWORD, "printer-state-change-date-time", "yesterday"),
            integer(INTEGER, "printer-impressions-completed-col", 1),
        ]
    ),
    "negative-counters": text(TEXT, "printer-serial-number", "S1")
    + integer(INTEGER, "printer-impressions-completed", -5)
    + integer(INTEGER, "marker-levels", -100, -(2**31))
    + text(NAME, "marker-names", "Cyan", "Black"),
    "absurd-counts": text(TEXT, "printer-serial-number", "S1")
    + text(NAME, "marker-names", *(f"ink{i}" for i in range(5000)))
    + integer(INTEGER, "marker-levels", *range(-3, 5000)),
    "huge-collection": text(TEXT, "printer-serial-number", "S1")
    + collection(
        "printer-impressions-completed-col",
        [(INTEGER, f"m{i}", struct.pack(">i", i)) for i in range(20_000)],
    ),
    "deep-collection": text(TEXT, "printer-serial-number", "S1")
    + collection("printer-impressions-completed-col", [(INTEGER, "x", b"\0\0\0\1")], depth=16),
    "out-of-band-everywhere": b"".join(
        attr(tag, name, b"")
        for tag in OUT_OF_BAND
        for name in ("printer-serial-number", "printer-state", "marker-levels", "marker-names")
    )
    + text(URI, "printer-uuid", "urn:uuid:not-a-uuid"),
    "long-strings": text(TEXT, "printer-serial-number", "S" * 30_000)
    + text(TEXT, "printer-device-id", ";".join(f"K{i}:{'v' * 50}" for i in range(500)))
    + text(TEXT, "printer-supply", "=" * 30_000, "index=99999999999999999999;level=-9;"),
    "dates-beyond-utc": text(TEXT, "printer-serial-number", "S1")
    + attr(DATE_TIME, "printer-state-change-date-time", date_time(1, b"+", 13))
    + text(KEYWORD, "printer-state-reasons", "media-jam-error"),
    "dates-beyond-utc-9999": text(TEXT, "printer-serial-number", "S1")
    + attr(DATE_TIME, "printer-state-change-date-time", date_time(9999, b"-", 13, 12, 31, 23))
    + text(KEYWORD, "printer-state-reasons", "media-jam-error"),
}


@pytest.mark.parametrize("name", sorted(SEMANTIC))
def test_attribute_abuse_is_read_or_refused(name: str) -> None:
    printer = message((0x04, SEMANTIC[name]))
    jobs = message((0x02, SEMANTIC[name]), (0x02, HEALTHY_JOB))
    outcome = _report(printer, jobs, jobs)
    assert isinstance(outcome, DeviceReport | DeviceError), (name, repr(outcome))


@pytest.mark.parametrize("year", [1, 9999])
def test_date_beyond_utc_is_not_a_crash(year: int) -> None:
    """Was: OverflowError from astimezone() (a dateTime of year 1 at +13:00 has no UTC
    equivalent); the alert is now stamped with the collection time."""
    stamp = date_time(9999, b"-", 13, 12, 31, 23) if year == 9999 else date_time(1, b"+", 13)
    printer = HEALTHY_PRINTER + attr(DATE_TIME, "printer-state-change-date-time", stamp)
    report = parse.parse_report(message((0x04, printer)), collected_at=WHEN)
    assert report.alerts and all(a.first_seen == WHEN for a in report.alerts)


# --------------------------------------------------------------------------- fuzzing

ATTRIBUTE_NAMES = sorted({*parse.PRINTER_ATTRIBUTES, *parse.JOB_ATTRIBUTES, "", "x-vendor"})


@st.composite
def values(draw: st.DrawFn) -> bytes:
    """A value of a random tag: mostly the right size for its tag, sometimes not."""
    tag = draw(st.sampled_from([*VALUE_TAGS, BEGIN_COLLECTION]))
    name = draw(st.sampled_from(ATTRIBUTE_NAMES))
    if tag == BEGIN_COLLECTION:
        members = draw(
            st.lists(
                st.tuples(
                    st.sampled_from([INTEGER, ENUM, KEYWORD, TEXT]),
                    st.sampled_from(["monochrome", "full-color", "x-dimension", "media-size"]),
                    st.binary(min_size=4, max_size=4),
                ),
                max_size=4,
            )
        )
        return collection(name, members, depth=draw(st.integers(min_value=1, max_value=18)))
    sizes = {INTEGER: 4, ENUM: 4, BOOLEAN: 1, DATE_TIME: 11, RESOLUTION: 9, RANGE: 8}
    if tag == DATE_TIME and draw(st.booleans()):
        # The edges of datetime's range are where the arithmetic breaks: years 1 and 9999.
        small = st.integers(min_value=-128, max_value=127)
        value = date_time(
            draw(st.sampled_from([1, 9999, 0, 10000, 2026]) | st.integers(-32768, 32767)),
            draw(st.sampled_from([b"+", b"-", b"?"])),
            draw(st.sampled_from([0, 13, 14]) | small),
            draw(st.sampled_from([1, 12]) | small),
            draw(st.sampled_from([1, 31]) | small),
            draw(st.sampled_from([0, 23]) | small),
        )
    elif tag in sizes and draw(st.integers(0, 9)):
        value = draw(st.binary(min_size=sizes[tag], max_size=sizes[tag]))
    elif tag in (TEXT_LANG, NAME_LANG) and draw(st.booleans()):
        language, words = draw(st.binary(max_size=8)), draw(st.binary(max_size=40))
        value = struct.pack(">H", len(language)) + language
        value += struct.pack(">H", len(words)) + words
    else:
        value = draw(st.one_of(st.binary(max_size=40), st.text(max_size=60).map(str.encode)))
    additional = draw(st.lists(st.binary(max_size=12), max_size=3))
    return attr(tag, name, value) + b"".join(attr(tag, "", extra) for extra in additional)


@FUZZ(300)
@given(
    printer=st.lists(values(), max_size=20),
    jobs=st.lists(st.lists(values(), max_size=12), max_size=3),
    status=st.sampled_from([0, 0, 0, 1, 0x0400, 0x0406, 0x0503, -1]),
)
def test_fuzzed_attributes(printer: list[bytes], jobs: list[list[bytes]], status: int) -> None:
    """Valid framing, hostile content: every attribute name with any tag and value."""
    printer_msg = message((0x04, HEALTHY_PRINTER + b"".join(printer)), status=status)
    job_msg = message(*((0x02, HEALTHY_JOB + b"".join(job)) for job in jobs))
    outcome = _report(printer_msg, job_msg, job_msg)
    assert isinstance(outcome, DeviceReport | DeviceError)


@FUZZ(300)
@given(data=st.data())
def test_fuzzed_bytes(data: st.DataObject) -> None:
    """Truncated, flipped, spliced messages: the framing check must catch what pyipp cannot."""
    seed = message((0x04, HEALTHY_PRINTER), (0x02, HEALTHY_JOB))
    mutated = data.draw(byte_mutations(seed))
    outcome = _report(mutated, mutated)
    assert isinstance(outcome, DeviceReport | DeviceError)


@FUZZ(100)
@given(st.binary(max_size=600))
def test_fuzzed_noise(body: bytes) -> None:
    outcome = clean(lambda: parse.decode(body))
    assert isinstance(outcome, parse.IppMessage | DeviceError)
