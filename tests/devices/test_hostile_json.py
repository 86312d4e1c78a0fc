"""Hostile JSON from OctoPrint and Moonraker: deep nesting, invalid UTF-8, NaN, numbers past a
double or a datetime, wrong types in every field, fuzzed.

Each case goes the way a driver reads: body bytes → ``decode`` / ``unwrap`` → ``parse_report``.
The contract: a ``DeviceReport`` or a ``DeviceError`` (``MalformedResponse``), never another
exception, never a hang.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetmeter.devices.errors import DeviceError, MalformedResponse
from fleetmeter.devices.moonraker import parse as moonraker
from fleetmeter.devices.octoprint import parse as octoprint
from fleetmeter.wire import DeviceReport, ReportKind
from tests.devices.hostile_support import FUZZ, byte_mutations, clean, json_mutations
from tests.devices.test_octoprint_parse import CONNECTION, FILES, JOB, PRINTING, PROFILES, VERSION

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MOONRAKER = Path(__file__).resolve().parent / "fixtures" / "moonraker"

OCTOPRINT_DOCS: dict[str, Any] = {
    "version": VERSION,
    "connection": CONNECTION,
    "profiles": PROFILES,
    "printer": PRINTING,
    "job": JOB,
    "files": FILES,
}
MOONRAKER_DOCS: dict[str, Any] = {
    name: json.loads((MOONRAKER / f"{file}.json").read_text())
    for name, file in {
        "server": "server-info-klippy-ready-constructed",
        "instance": "database-item-instance-id-moonraker-0.11.0",
        "printer_info": "printer-info-ready-constructed",
        "objects": "printer-objects-query-printing-constructed",
        "history": "history-list-in-progress-constructed",
        "totals": "history-totals-served-moonraker-0.11.0",
    }.items()
}


def _octoprint(bodies: dict[str, bytes], kind: ReportKind = ReportKind.USAGE) -> object:
    """What ``OctoPrintDriver.read`` does with the bodies it fetched."""

    def read() -> DeviceReport:
        docs = {name: octoprint.decode(body, what=name) for name, body in bodies.items()}
        return octoprint.parse_report(
            host="printer.lan", port=80, collected_at=NOW, kind=kind, job_cursor=None, **docs
        )

    return clean(read)


def _moonraker(bodies: dict[str, bytes], kind: ReportKind = ReportKind.USAGE) -> object:
    """What ``MoonrakerDriver.read`` does with the bodies it fetched."""

    def read() -> DeviceReport:
        docs = {name: moonraker.unwrap(body, what=name) for name, body in bodies.items()}
        history = docs.pop("history")
        return moonraker.parse_report(
            host="voron.lan", port=7125, collected_at=NOW, kind=kind, history=[history], **docs
        )

    return clean(read)


READERS = {"octoprint": (_octoprint, OCTOPRINT_DOCS), "moonraker": (_moonraker, MOONRAKER_DOCS)}


def _bodies(docs: dict[str, Any]) -> dict[str, bytes]:
    return {name: json.dumps(doc).encode() for name, doc in docs.items()}


@pytest.mark.parametrize("driver", sorted(READERS))
def test_the_seed_documents_make_a_report(driver: str) -> None:
    read, docs = READERS[driver]
    assert isinstance(read(_bodies(docs)), DeviceReport)


# --------------------------------------------------------------------------- known abuse

BODIES: dict[str, bytes] = {
    "deep-list": b"[" * 100_000 + b"]" * 100_000,
    "deep-object": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "just-under-the-decoder-limit": b"[" * 900 + b"]" * 900,
    "invalid-utf8": b'{"result": "\xff\xfe\xc3\x28"}',
    "lone-surrogate": b'{"result": "\\ud800"}',
    "utf16": '{"result": {}}'.encode("utf-16"),
    "nan": b'{"result": NaN}',
    "infinity": b'{"result": -Infinity}',
    "huge-int": b'{"result": ' + b"9" * 5000 + b"}",
    "huge-float": b'{"result": 1e400}',
    "duplicate-keys": b'{"result": 1, "result": {"state": "ready"}}',
    "truncated": b'{"result": {"state": "rea',
    "empty": b"",
    "whitespace": b"  \n ",
    "html": b"<html><body>Log in</body></html>",
    "nul": b'{"result": "\x00"}',
}


@pytest.mark.parametrize("name", sorted(BODIES))
@pytest.mark.parametrize("driver", sorted(READERS))
def test_hostile_body_in_every_place(driver: str, name: str) -> None:
    read, docs = READERS[driver]
    for place in docs:
        outcome = read({**_bodies(docs), place: BODIES[name]})
        assert isinstance(outcome, DeviceReport | DeviceError), (place, name, repr(outcome))
        if name.startswith("deep") or name in ("invalid-utf8", "nan", "infinity", "truncated"):
            assert isinstance(outcome, MalformedResponse), (place, name, repr(outcome))


# Found while writing these tests: each raised OverflowError (a timedelta or a datetime past
# year 9999) before jsondoc.shifted.
@pytest.mark.parametrize("seconds", [1e11, 1e14, 1e15])
def test_durations_past_a_datetime_are_malformed(seconds: float) -> None:
    job = json.loads(json.dumps(JOB))
    job["progress"]["printTime"] = seconds
    outcome = _octoprint({**_bodies(OCTOPRINT_DOCS), "job": json.dumps(job).encode()})
    assert isinstance(outcome, MalformedResponse) and "out of range" in str(outcome)

    objects = json.loads(json.dumps(MOONRAKER_DOCS["objects"]))
    objects["result"]["status"]["print_stats"]["total_duration"] = seconds
    outcome = _moonraker({**_bodies(MOONRAKER_DOCS), "objects": json.dumps(objects).encode()})
    assert isinstance(outcome, MalformedResponse) and "out of range" in str(outcome)


def test_history_end_past_a_datetime_is_malformed() -> None:
    history = json.loads(json.dumps(MOONRAKER_DOCS["history"]))
    for job in history["result"]["jobs"]:
        job["end_time"] = None
        job["total_duration"] = 1e15
    outcome = _moonraker({**_bodies(MOONRAKER_DOCS), "history": json.dumps(history).encode()})
    assert isinstance(outcome, MalformedResponse), repr(outcome)


def test_file_print_time_past_a_datetime_is_malformed() -> None:
    files = json.loads(json.dumps(FILES))
    files["files"][0]["children"][0]["prints"]["last"]["printTime"] = 1e14
    outcome = _octoprint({**_bodies(OCTOPRINT_DOCS), "files": json.dumps(files).encode()})
    assert isinstance(outcome, MalformedResponse), repr(outcome)


# --------------------------------------------------------------------------- fuzzing


@FUZZ(300)
@given(driver=st.sampled_from(sorted(READERS)), kind=st.sampled_from(ReportKind), data=st.data())
def test_fuzzed_fields(driver: str, kind: ReportKind, data: st.DataObject) -> None:
    """One to three nodes of one document replaced by JSON of any type and magnitude."""
    read, docs = READERS[driver]
    place = data.draw(st.sampled_from(sorted(docs)))
    mutated = data.draw(json_mutations(docs[place]))
    body = json.dumps(mutated).encode()
    outcome = read({**_bodies(docs), place: body}, kind)
    assert isinstance(outcome, DeviceReport | DeviceError)


@FUZZ(150)
@given(driver=st.sampled_from(sorted(READERS)), data=st.data())
def test_fuzzed_bytes(driver: str, data: st.DataObject) -> None:
    read, docs = READERS[driver]
    place = data.draw(st.sampled_from(sorted(docs)))
    body = data.draw(byte_mutations(json.dumps(docs[place]).encode()))
    outcome = read({**_bodies(docs), place: body})
    assert isinstance(outcome, DeviceReport | DeviceError)


@FUZZ(100)
@given(depth=st.integers(min_value=1, max_value=5000), opener=st.sampled_from(["[", '{"a":']))
def test_nesting_of_any_depth(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    body = (opener * depth + "1" + closer * depth).encode()
    for decode in (octoprint.decode, moonraker.decode):
        outcome = clean(lambda decode=decode: decode(body, what="x"))  # type: ignore[misc]
        assert not isinstance(outcome, DeviceError) or "nested" in str(outcome)
