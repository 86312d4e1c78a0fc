"""Hostile LEDM XML: entity expansion, external entities and DTDs, malformed, truncated,
huge and deeply nested documents, bad encodings, absurd numbers and dates, fuzzed.

The contract of the LEDM parser: bytes in, a ``DeviceReport`` or ``MalformedResponse`` out;
never another exception, never a hang. Seeds are the synthetic DesignJet documents in
``tests/devices/fixtures`` (always present) and the real captures when they are found.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetmeter.devices.errors import DeviceError, MalformedResponse
from fleetmeter.devices.ledm import parse
from fleetmeter.wire import DeviceReport, ReportKind
from tests.devices.conftest import OWN_FIXTURES, read_docs
from tests.devices.hostile_support import (
    DATE_TEXTS,
    FUZZ,
    NUMBER_TEXTS,
    byte_mutations,
    clean,
    hostile_text,
)

SEED = read_docs(OWN_FIXTURES / "designjet_synthetic")
_TEXT_NODE = re.compile(rb">([^<>]*)<")


def _report(docs: dict[str, bytes], kind: ReportKind = ReportKind.USAGE) -> object:
    return clean(lambda: parse.parse_documents(docs, address="192.0.2.1", kind=kind))


_NUMBER = re.compile(rb"\s*-?[0-9][0-9.]*\s*")
_DATE = re.compile(rb"\s*[0-9]{4}-[0-9]{2}-[0-9]{2}")

numbers = st.one_of(
    st.sampled_from(NUMBER_TEXTS),
    st.integers().map(str),
    st.floats().map(repr),
    st.decimals().map(str),
)
dates = st.one_of(
    st.sampled_from(DATE_TEXTS),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
)


def _like(original: bytes) -> st.SearchStrategy[str]:
    """Hostile values, mostly of the original's kind: a number where a number was (that is
    where the arithmetic is), a date where a date was; any hostile text too."""
    if _NUMBER.fullmatch(original):
        return st.one_of(numbers, numbers, hostile_text)
    if _DATE.match(original):
        return st.one_of(dates, dates, hostile_text)
    return hostile_text


@st.composite
def edited(draw: st.DrawFn, document: bytes, *, most: int = 6) -> bytes:
    """``document`` with one to ``most`` non-blank text nodes replaced (``_like``)."""
    for _ in range(draw(st.integers(min_value=1, max_value=most))):
        nodes = [m for m in _TEXT_NODE.finditer(document) if m.group(1).strip()]
        if not nodes:
            break
        match = draw(st.sampled_from(nodes))
        value = draw(_like(match.group(1))).encode("utf-8", "surrogatepass")
        document = document[: match.start(1)] + value + document[match.end(1) :]
    return document


# --------------------------------------------------------------------------- known attacks

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">'.replace("&lol0;", "&lol;").encode()
        for i in range(1, 10)
    )
    + b"]><ProductConfigDyn>&lol9;</ProductConfigDyn>"
)
QUADRATIC_BLOWUP = (
    b'<?xml version="1.0"?><!DOCTYPE q [<!ENTITY a "'
    + b"a" * 50_000
    + b'">]><ProductConfigDyn>'
    + b"&a;" * 50_000
    + b"</ProductConfigDyn>"
)
ATTACKS: dict[str, bytes] = {
    "billion-laughs": BILLION_LAUGHS,
    "quadratic-blowup": QUADRATIC_BLOWUP,
    "external-entity-file": (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<ProductConfigDyn>&x;</ProductConfigDyn>"
    ),
    "external-entity-http": (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]>'
        b"<ProductConfigDyn>&x;</ProductConfigDyn>"
    ),
    "external-dtd": (
        b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd"><ProductConfigDyn/>'
    ),
    "parameter-entity": (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
        b"<ProductConfigDyn/>"
    ),
    "internal-dtd-only": b"<!DOCTYPE ProductConfigDyn [<!ELEMENT a ANY>]><ProductConfigDyn/>",
    "xinclude": (
        b'<ProductConfigDyn xmlns:xi="http://www.w3.org/2001/XInclude">'
        b'<xi:include href="file:///etc/passwd" parse="text"/></ProductConfigDyn>'
    ),
    "deep-nesting": b"<a>" * 20_000 + b"</a>" * 20_000,
    "wide": b"<ProductConfigDyn>" + b"<ProductInformation/>" * 30_000 + b"</ProductConfigDyn>",
    "many-attributes": b"<ProductConfigDyn "
    + b" ".join(f'a{i}="{i}"'.encode() for i in range(20_000))
    + b"/>",
    "huge-text": b"<ProductConfigDyn><ProductInformation><SerialNumber>"
    + b"S" * 6_000_000
    + b"</SerialNumber></ProductInformation></ProductConfigDyn>",
    "invalid-utf8": b"<ProductConfigDyn><SerialNumber>\xff\xfe\xc3\x28</SerialNumber>",
    "encoding-bogus": b'<?xml version="1.0" encoding="bogus"?><ProductConfigDyn/>',
    "encoding-utf7": b'<?xml version="1.0" encoding="utf-7"?><ProductConfigDyn/>',
    "encoding-shift-jis": b'<?xml version="1.0" encoding="shift_jis"?><ProductConfigDyn/>',
    "encoding-utf16-lie": b'<?xml version="1.0" encoding="utf-16"?><ProductConfigDyn/>',
    "utf16-bom": "<ProductConfigDyn/>".encode("utf-16"),
    "utf32": "<ProductConfigDyn/>".encode("utf-32"),
    "nul-bytes": b"<ProductConfigDyn>\x00\x00</ProductConfigDyn>",
    "truncated": SEED["ProductConfigDyn.xml"][: len(SEED["ProductConfigDyn.xml"]) // 2],
    "empty": b"",
    "html": b"<!DOCTYPE html><html><body>Sign in</body></html>",
    "json": b'{"ProductConfigDyn": {}}',
    "processing-instructions": b"<?xml-stylesheet href='x'?><?a b?><ProductConfigDyn/>",
}


# Well-formed XML without DTD or entities: harmless to parse, but not what the device
# should have sent; a document of another shape may read as an empty part of the report.
WELL_FORMED = {"xinclude", "deep-nesting", "wide", "many-attributes", "huge-text"}
WELL_FORMED |= {"processing-instructions", "utf16-bom", "utf32"}


@pytest.mark.parametrize("name", sorted(ATTACKS))
@pytest.mark.parametrize("document", sorted(parse.DOCUMENTS))
def test_hostile_document_is_refused(name: str, document: str) -> None:
    """Each attack in the place of each document (the others stay healthy): refused, or
    (harmless well-formed XML of the wrong shape) read as a report without that part."""
    outcome = _report({**SEED, document: ATTACKS[name]})
    if name in WELL_FORMED:
        assert isinstance(outcome, DeviceReport | MalformedResponse), (name, repr(outcome))
    else:
        assert isinstance(outcome, MalformedResponse), (name, document, repr(outcome))


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_hostile_discovery_tree_is_malformed(name: str) -> None:
    outcome = clean(lambda: parse.parse_discovery_tree(ATTACKS[name]))
    assert isinstance(outcome, MalformedResponse), (name, repr(outcome))
    if name not in WELL_FORMED:
        assert "DiscoveryTree" not in str(outcome) or "XML" in str(outcome), str(outcome)


def test_huge_text_is_cut_to_the_wire_limit() -> None:
    identity = parse.parse_product_config(ATTACKS["huge-text"])
    assert identity.serial_number == "S" * 256


def test_entities_are_refused_not_expanded() -> None:
    with pytest.raises(MalformedResponse, match="unsafe XML"):
        parse.parse_xml(BILLION_LAUGHS)
    with pytest.raises(MalformedResponse, match="unsafe XML"):
        parse.parse_xml(ATTACKS["external-entity-file"])


# --------------------------------------------------------------------------- regressions

# Found by the fuzz tests below: each crashed the parser (or took minutes) before the fix.
_STATION = (
    b"<ConsumableConfigDyn><ConsumableInfo><ConsumableTypeEnum>ink</ConsumableTypeEnum>"
    b"<ConsumableLabelCode>C</ConsumableLabelCode>"
    b"<ConsumableStation>%s</ConsumableStation>"
    b"<ConsumablePercentageLevelRemaining>%s</ConsumablePercentageLevelRemaining>"
    b"</ConsumableInfo></ConsumableConfigDyn>"
)


@pytest.mark.parametrize("value", [b"Infinity", b"-Infinity", b"1e999999999", b"9" * 5000])
def test_descriptive_numbers_out_of_range_are_dropped(value: bytes) -> None:
    """Was: OverflowError (Infinity) or minutes of CPU in int() (1e999999999)."""
    cartridges, _ = parse.parse_consumable_config(_STATION % (value, value))
    assert cartridges[0].slot is None and cartridges[0].level_percent is None


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_timestamps_beyond_utc_range_are_malformed(stamp: str) -> None:
    """Was: OverflowError from astimezone()."""
    body = (
        "<ProductStatusDyn><AlertTable><Alert><ProductStatusAlertID>a</ProductStatusAlertID>"
        f"<TimeStamp>{stamp}</TimeStamp></Alert></AlertTable></ProductStatusDyn>"
    ).encode()
    with pytest.raises(MalformedResponse, match="bad timestamp"):
        parse.parse_product_status(body)


@pytest.mark.parametrize("encoding", ["bogus", "utf-7", "shift_jis", "cp932", "big5"])
def test_unreadable_encodings_are_malformed(encoding: str) -> None:
    """Was: LookupError (unknown codec) or ValueError (multi-byte codec) from expat."""
    with pytest.raises(MalformedResponse):
        parse.parse_product_config(
            f'<?xml version="1.0" encoding="{encoding}"?><ProductConfigDyn/>'.encode()
        )


# --------------------------------------------------------------------------- fuzzing


@FUZZ(300)
@given(document=st.sampled_from(sorted(SEED)), kind=st.sampled_from(ReportKind), data=st.data())
def test_fuzzed_values(document: str, kind: ReportKind, data: st.DataObject) -> None:
    """Text nodes of a healthy document replaced by hostile values (markup included, so
    elements appear and vanish too)."""
    mutated = data.draw(edited(SEED[document]))
    outcome = _report({**SEED, document: mutated}, kind)
    assert isinstance(outcome, DeviceReport | DeviceError)


@FUZZ(200)
@given(document=st.sampled_from(sorted(SEED)), data=st.data())
def test_fuzzed_bytes(document: str, data: st.DataObject) -> None:
    """Truncated, flipped, spliced bytes: malformed XML, broken UTF-8, cut tags."""
    mutated = data.draw(byte_mutations(SEED[document]))
    outcome = _report({**SEED, document: mutated})
    assert isinstance(outcome, DeviceReport | DeviceError)


@FUZZ(100)
@given(st.binary(max_size=2000))
def test_fuzzed_discovery_tree(body: bytes) -> None:
    outcome = clean(lambda: parse.parse_discovery_tree(body))
    assert isinstance(outcome, list | DeviceError)


def _real_captures() -> list[Path]:
    from tests.devices.conftest import shared_fixtures

    try:
        return sorted(p for p in (shared_fixtures() / "ledm").iterdir() if p.is_dir())
    except pytest.skip.Exception:
        return []


@FUZZ(100)
@given(data=st.data())
def test_fuzzed_real_captures(data: st.DataObject) -> None:
    """The same mutations on the real HP captures, when they are there."""
    captures = _real_captures()
    if not captures:
        return
    docs = read_docs(data.draw(st.sampled_from(captures)))
    name = data.draw(st.sampled_from(sorted(docs)))
    if data.draw(st.booleans()):
        mutated = data.draw(byte_mutations(docs[name]))
    else:
        mutated = data.draw(edited(docs[name]))
    outcome = _report({**docs, name: mutated})
    assert isinstance(outcome, DeviceReport | DeviceError)
