"""Hostile devices over HTTP: every HTTP driver (ledm, ipp, octoprint, moonraker) against a
real server on 127.0.0.1 that misbehaves on purpose (``hostile_support.HostileHttpServer``).

Whatever the device does (drips one byte a second, never answers, streams a body without
end, sends a compression bomb, garbage or a truncated answer), ``read`` and ``identify``
must end with the driver's documented error, a ``DeviceError``, within the driver's own
timeout, and the next device must still be read. Each call runs under an outer bound (a
bounded wait, not a timing assertion): a driver that ignores its timeout fails the test
instead of hanging it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetmeter.devices.base import Driver, PinStore, ReadOptions, Target
from fleetmeter.devices.errors import DeviceError, DeviceUnreachable, MalformedResponse
from fleetmeter.devices.ipp import IppDriver
from fleetmeter.devices.ledm import LedmDriver
from fleetmeter.devices.moonraker import MoonrakerDriver
from fleetmeter.devices.octoprint import OctoPrintDriver
from fleetmeter.wire import DeviceReport, ReportKind
from tests.devices.conftest import OWN_FIXTURES, DeviceServer
from tests.devices.hostile_support import HostileHttpServer

pytestmark = pytest.mark.anyio

TIMEOUT_S = 1.5
"""The drivers' timeout in these tests: longer than the drip interval (1 s), so that only a
total deadline (not httpx's per-read timeout) can end a slow-loris answer."""
OUTER_BOUND_S = 30.0
"""How long a call may take before the test gives up on the driver: far above the timeout."""

DRIVERS: dict[str, Driver] = {
    "ledm": LedmDriver(),
    "ipp": IppDriver(),
    "octoprint": OctoPrintDriver(),
    "moonraker": MoonrakerDriver(),
}
CREDENTIALS = {"api_key": "HOSTILETESTKEY"}

# What each misbehaviour must end in. Timeouts and broken connections: the device is
# unreachable; answers we refuse to read: malformed. An endless body is refused at the size
# cap, unless (OctoPrint: six requests on four connections) a request still waiting for a
# connection slot times out first: either way, a clean error for that device.
EXPECTED: dict[str, type[DeviceError] | tuple[type[DeviceError], ...]] = {
    "drip-headers": DeviceUnreachable,
    "drip-body": DeviceUnreachable,
    "silent": DeviceUnreachable,
    "oversized-declared": (MalformedResponse, DeviceUnreachable),
    "oversized-chunked": (MalformedResponse, DeviceUnreachable),
    "gzip-bomb": MalformedResponse,
    "bad-gzip": MalformedResponse,
    "zstd": MalformedResponse,
    "garbage": DeviceUnreachable,
    "truncated": DeviceUnreachable,
}


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[HostileHttpServer]:
    with HostileHttpServer(tmp_path) as server:
        yield server


@pytest.fixture
def hostile_tls(tmp_path: Path) -> Iterator[HostileHttpServer]:
    with HostileHttpServer(tmp_path, tls=True) as server:
        yield server


def _target(server: HostileHttpServer, scheme: str = "http") -> Target:
    return Target("127.0.0.1", port=server.port, scheme=scheme, credentials=CREDENTIALS)


async def _outcome(call: Any) -> object:
    """The call's result or exception, within the outer bound (hitting it fails the test)."""
    try:
        async with asyncio.timeout(OUTER_BOUND_S):
            return await call
    except TimeoutError:
        pytest.fail(f"the driver did not give up within {OUTER_BOUND_S:g} s")
    except Exception as exc:
        return exc


async def _read_all(server: HostileHttpServer, scheme: str = "http") -> dict[str, object]:
    """Every HTTP driver reads the hostile device, concurrently (one wait for all four)."""
    options = ReadOptions(kind=ReportKind.USAGE, timeout_s=TIMEOUT_S)
    calls = [d.read(_target(server, scheme), PinStore(), options) for d in DRIVERS.values()]
    results = await asyncio.gather(*(_outcome(call) for call in calls))
    return dict(zip(DRIVERS, results, strict=True))


@pytest.mark.parametrize("mode", sorted(EXPECTED))
async def test_read_ends_in_the_documented_error(hostile: HostileHttpServer, mode: str) -> None:
    hostile.mode = mode
    outcomes = await _read_all(hostile)
    for driver_id, outcome in outcomes.items():
        assert isinstance(outcome, EXPECTED[mode]), (driver_id, mode, repr(outcome))
        assert str(outcome)
    assert hostile.requests > 0 or mode == "silent"


@pytest.mark.parametrize("mode", ["drip-headers", "drip-body", "silent", "gzip-bomb"])
async def test_identify_gives_up_or_says_no(hostile: HostileHttpServer, mode: str) -> None:
    """Discovery probes every host of a range: a hostile one answers None or an error."""
    hostile.mode = mode
    calls = [
        d.identify(_target(hostile), PinStore(), timeout_s=TIMEOUT_S) for d in DRIVERS.values()
    ]
    outcomes = await asyncio.gather(*map(_outcome, calls))
    for driver_id, outcome in zip(DRIVERS, outcomes, strict=True):
        assert outcome is None or isinstance(outcome, DeviceError), (driver_id, repr(outcome))


@pytest.mark.parametrize("mode", ["silent", "drip-body"])
async def test_tls_slow_loris_ends_unreachable(hostile_tls: HostileHttpServer, mode: str) -> None:
    """Over HTTPS: a device that never finishes the handshake, or drips after it."""
    hostile_tls.mode = mode
    for driver_id, outcome in (await _read_all(hostile_tls, "https")).items():
        assert isinstance(outcome, DeviceUnreachable), (driver_id, repr(outcome))


HOSTILE_BODIES: dict[str, bytes] = {
    "billion-laughs": (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">'.replace(
                "&lol0;", "&lol;"
            ).encode()
            for i in range(1, 10)
        )
        + b"]><DiscoveryTree>&lol9;</DiscoveryTree>"
    ),
    "external-entity": (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<DiscoveryTree>&x;</DiscoveryTree>"
    ),
    "deep-json": b"[" * 200_000 + b"]" * 200_000,
    "deep-object": b'{"result":' * 50_000 + b"1" + b"}" * 50_000,
    "invalid-utf8": b'{"result": {"text": "\xff\xfe\xc3\x28"}}',
    "nan-json": b'{"result": {"api": NaN}, "api": Infinity}',
    "empty": b"",
    "html": b"<html><body>Login</body></html>",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
async def test_hostile_documents_over_the_wire(hostile: HostileHttpServer, name: str) -> None:
    """Hostile bodies with status 200 reach the parsers: a clean error, never a crash."""
    hostile.mode = "body"
    hostile.body = HOSTILE_BODIES[name]
    for driver_id, outcome in (await _read_all(hostile)).items():
        assert isinstance(outcome, DeviceError), (driver_id, name, repr(outcome))


async def test_a_hostile_device_does_not_stop_the_next_one(
    hostile: HostileHttpServer, device_server: DeviceServer
) -> None:
    """One stateless driver reads a slow-loris device and a healthy one at the same time:
    the first fails with its reason, the second is read as if nothing happened."""
    hostile.mode = "drip-body"
    device_server.serve_directory(OWN_FIXTURES / "designjet_synthetic")
    driver = DRIVERS["ledm"]
    options = ReadOptions(kind=ReportKind.USAGE, timeout_s=TIMEOUT_S)
    healthy = Target("127.0.0.1", port=device_server.port)
    bad, good = await asyncio.gather(
        _outcome(driver.read(_target(hostile), PinStore(), options)),
        _outcome(driver.read(healthy, PinStore(), options)),
    )
    assert isinstance(bad, DeviceUnreachable) and "within 1.5 s" in str(bad)
    assert isinstance(good, DeviceReport), repr(good)
    assert good.device.serial_number and good.usage is not None


def test_hostile_bodies_are_what_they_claim() -> None:
    """The fixtures themselves: the laughs expand to 10^9 'lol's, the JSON is valid."""
    assert HOSTILE_BODIES["billion-laughs"].count(b"&lol8;") == 10
    assert json.loads(b"[" * 10 + b"]" * 10) == [[[[[[[[[[]]]]]]]]]]
