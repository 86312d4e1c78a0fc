"""Shared pieces of the hostile-input suites (``tests/devices/test_hostile_*.py``).

- ``FUZZ``: hypothesis settings with a bounded number of examples, so that the whole hostile
  suite stays within its CI budget. ``FLEETMETER_FUZZ_SCALE=20`` multiplies every budget for
  a longer local run.
- ``clean``: run a parser or a driver call; a result or a ``DeviceError`` is fine, anything
  else (a crash) fails the test with the exception.
- Hostile value strategies (numbers, text, JSON values) shared by the parsers' fuzz tests.
- ``HostileHttpServer``: a misbehaving device on 127.0.0.1 (port 0): drips one byte a
  second, never answers, sends bodies without end, compression bombs, garbage.
"""

from __future__ import annotations

import functools
import os
import socket
import ssl
import threading
import zlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from fleetmeter.devices.errors import DeviceError
from fleetmeter.signing.certs import self_signed

SCALE = max(1, int(os.environ.get("FLEETMETER_FUZZ_SCALE", "1")))


def FUZZ(examples: int) -> settings:
    """Bounded fuzzing: ``examples`` per test (times ``FLEETMETER_FUZZ_SCALE``). The deadline
    is generous (parsers take milliseconds): it is there to turn a hang (a quadratic int(),
    an endless loop) into a failure, not to time anything."""
    return settings(
        max_examples=examples * SCALE,
        deadline=timedelta(seconds=10),
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
        database=None,  # no .hypothesis/ left behind by CI runs
    )


R = TypeVar("R")


def clean(call: Callable[[], R]) -> R | DeviceError:
    """``call()``'s result, or the ``DeviceError`` it raised. Any other exception is a bug
    (the documented contract is: a result or a ``DeviceError``) and propagates."""
    try:
        return call()
    except DeviceError as exc:
        assert str(exc), "a DeviceError must say why"
        return exc


# --------------------------------------------------------------------------- strategies

NUMBER_TEXTS = [
    "0",
    "-0",
    "-1",
    "-5.5",
    "1e999999999",
    "-1e999999999",
    "1e-999999999",
    "9" * 5000,
    "18446744073709551616",
    "9223372036854775808",
    "Infinity",
    "-Infinity",
    "NaN",
    "sNaN",
    "1_000",
    "0x10",
    " 12 ",
    "12abc",
    "١٢٣",  # Arabic-Indic digits: Decimal accepts them
    "1E+18",
    "0.0000000000000000000001",
]
DATE_TEXTS = [
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00",
    "0001-01-01",
    "9999-12-31T23:59:59Z",
    "2026-02-30T00:00:00Z",
    "2026-01-01T25:00:00Z",
    "2026-01-01T00:00:00+24:00",
    "not a date",
    "",
]
MARKUP_TEXTS = [
    "<x/>",
    "</a>",
    "<![CDATA[<]]>",
    "&amp;",
    "&undefined;",
    "&#0;",
    "&#x110000;",
    "<?pi x?>",
    "<!-- -->",
    "<!DOCTYPE x>",
]

hostile_text = st.one_of(
    st.sampled_from(NUMBER_TEXTS + DATE_TEXTS + MARKUP_TEXTS),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=300, max_size=3000),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
"""Text a device could put where a value goes: numbers of every absurd kind, impossible
dates, markup, control characters, long strings."""

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([1e15, 1e16, -1e15, 1e308, 2**63, -(2**63), 10**40, 5e-324, -0.0]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.text(min_size=257, max_size=3000),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.text(max_size=12), children, max_size=6),
    ),
    max_leaves=25,
)
"""JSON values of any type and absurd magnitude (numbers past a double, past a datetime)."""


def json_paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path (keys and indices) to a node of a decoded JSON document, the root too."""
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from json_paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from json_paths(value, (*prefix, index))


def replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of ``doc`` with the node at ``path`` replaced (``path`` from ``json_paths``)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {k: replaced(v, rest, value) if k == head else v for k, v in doc.items()}
    assert isinstance(doc, list)
    return [replaced(v, rest, value) if i == head else v for i, v in enumerate(doc)]


json_numbers = st.one_of(
    st.sampled_from([1e11, 1e14, 1e15, 1e15 + 1, -1.0, -1e15, 2**53 + 1, 2**64, 10**40, 1e308]),
    st.floats(min_value=-1e16, max_value=1e16),
    st.integers(min_value=-(2**65), max_value=2**65),
)
"""Numbers where a device puts numbers: negative, past a datetime (1e11 s is year 5138),
at and past the parsers' 1e15 limit, past 64 bits, past a double."""


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


@st.composite
def json_mutations(draw: st.DrawFn, doc: Any, *, most: int = 3) -> Any:
    """``doc`` with one to ``most`` nodes replaced by hostile JSON values; a number mostly by
    another (absurd) number, since that is where the arithmetic is."""
    for _ in range(draw(st.integers(min_value=1, max_value=most))):
        paths = list(json_paths(doc))
        path = draw(st.sampled_from(paths))
        original = _get(doc, path)
        numeric = isinstance(original, int | float) and not isinstance(original, bool)
        values = st.one_of(json_numbers, json_numbers, json_values) if numeric else json_values
        doc = replaced(doc, path, draw(values))
    return doc


@st.composite
def byte_mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` truncated, with bytes flipped, inserted or deleted, or spliced with noise."""
    out = bytearray(data)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "splice"]))
        position = draw(st.integers(min_value=0, max_value=max(len(out) - 1, 0)))
        if kind == "truncate":
            del out[position:]
        elif kind == "flip" and out:
            out[position] ^= draw(st.integers(min_value=1, max_value=255))
        elif kind == "insert":
            out[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del out[position : position + draw(st.integers(min_value=1, max_value=16))]
        else:
            noise = draw(st.binary(max_size=64))
            out[position : position + len(noise)] = noise
    return bytes(out)


# --------------------------------------------------------------------------- hostile server

DRIP_INTERVAL_S = 1.0
"""The slow-loris pace: one byte a second, faster than any per-read timeout we use."""

_MAX_DRIP_BYTES = 600  # a drip that nobody stops ends by itself after ten minutes
_MAX_STREAM_BYTES = 256 * 1024 * 1024  # an endless body ends by itself too
_BOMB_DECODED_BYTES = 64 * 1024 * 1024  # past every driver's body cap (4 to 16 MB)


@functools.cache
def gzip_bomb() -> bytes:
    """64 MB of zeros, gzip-compressed (about 64 kB), built once."""
    gz = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1024 * 1024)
    parts = [gz.compress(chunk) for _ in range(_BOMB_DECODED_BYTES // len(chunk))]
    return b"".join(parts) + gz.flush()


MODES = (
    "drip-headers",  # the status line, then headers one byte a second
    "drip-body",  # complete headers, then the body one byte a second
    "silent",  # accepts the connection and says nothing
    "oversized-declared",  # Content-Length of 10 GB, bytes without end
    "oversized-chunked",  # chunked, no length, bytes without end
    "gzip-bomb",  # Content-Encoding gzip: 64 kB that decode to 64 MB
    "bad-gzip",  # Content-Encoding gzip, not gzip
    "zstd",  # a Content-Encoding we never asked for
    "garbage",  # not HTTP at all
    "truncated",  # Content-Length 1000, 10 bytes, then the connection closes
    "body",  # ``body`` with status 200: for hostile documents over the wire
)


class HostileHttpServer:
    """A device that misbehaves on purpose, on 127.0.0.1 at a free port, plain or TLS.

    Every request gets the behaviour named by ``mode`` (one of ``MODES``), whatever the path,
    so one server stands for an LEDM, IPP, OctoPrint or Moonraker device. Each connection is
    served by its own thread; ``stop`` ends them all (every wait in here is on the stop
    event, every loop is bounded).
    """

    def __init__(self, tmp_path: Path, *, tls: bool = False, mode: str = "drip-body") -> None:
        self.mode = mode
        self.body = b""
        self.requests = 0
        self._stop = threading.Event()
        self._context: ssl.SSLContext | None = None
        if tls:
            keypair = self_signed("hostile.test", ["127.0.0.1"])
            cert, key = tmp_path / "hostile-cert.pem", tmp_path / "hostile-key.pem"
            keypair.write(cert, key)
            self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._context.load_cert_chain(cert, key)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    def __enter__(self) -> HostileHttpServer:
        gzip_bomb()  # built before any connection: the answer must not wait for it
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._acceptor.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, raw: socket.socket) -> None:
        conn: socket.socket = raw
        try:
            conn.settimeout(1)
            if self.mode == "silent":
                # Not even a TLS handshake: the client must give up on its own.
                self._stop.wait(60)
                return
            if self._context is not None:
                conn = self._context.wrap_socket(raw, server_side=True)
            self._read_request(conn)
            self.requests += 1
            self._respond(conn)
        except (OSError, ssl.SSLError):
            pass  # the client gave up: what this server is for
        finally:
            conn.close()

    def _read_request(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(rest) < length:  # an IPP POST body: read it, so the client sends it all
            chunk = conn.recv(4096)
            if not chunk:
                return
            rest += chunk

    def _drip(self, conn: socket.socket, data: bytes) -> None:
        for index in range(min(len(data), _MAX_DRIP_BYTES)):
            conn.sendall(data[index : index + 1])
            if self._stop.wait(DRIP_INTERVAL_S):
                return

    def _stream(self, conn: socket.socket, chunk: bytes, *, chunked: bool) -> None:
        sent = 0
        while sent < _MAX_STREAM_BYTES and not self._stop.is_set():
            if chunked:
                conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            else:
                conn.sendall(chunk)
            sent += len(chunk)

    def _respond(self, conn: socket.socket) -> None:
        mode = self.mode
        # application/ipp passes the IPP client's content check, so its body is read too.
        kind = b"Content-Type: application/ipp\r\n"
        if mode == "drip-headers":
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            self._drip(conn, b"X-Slow: " + b"z" * _MAX_DRIP_BYTES)
        elif mode == "drip-body":
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + kind + b"Content-Length: 100000\r\n\r\n")
            self._drip(conn, b"<" * _MAX_DRIP_BYTES)
        elif mode == "oversized-declared":
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + kind + b"Content-Length: 10000000000\r\n\r\n")
            self._stream(conn, b"a" * 65536, chunked=False)
        elif mode == "oversized-chunked":
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + kind + b"Transfer-Encoding: chunked\r\n\r\n")
            self._stream(conn, b"a" * 65536, chunked=True)
        elif mode in ("gzip-bomb", "bad-gzip", "zstd"):
            if mode == "gzip-bomb":
                body = gzip_bomb()
            elif mode == "bad-gzip":
                body = b"\x1f\x8b\x08\x00 this is not gzip"
            else:
                body = b"(\xb5/\xfd\x00\x00\x01\x00\x00"
            encoding = b"zstd" if mode == "zstd" else b"gzip"
            head = b"HTTP/1.1 200 OK\r\n" + kind + b"Content-Encoding: " + encoding + b"\r\n"
            conn.sendall(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        elif mode == "garbage":
            conn.sendall(b"\x00\xff\xfe SSH-2.0-OpenSSH\r\n\r\n\x16\x03\x01 <html>")
        elif mode == "truncated":
            conn.sendall(b"HTTP/1.1 200 OK\r\n" + kind + b"Content-Length: 1000\r\n\r\n0123456789")
        elif mode == "body":
            head = b"HTTP/1.1 200 OK\r\n" + kind + f"Content-Length: {len(self.body)}\r\n".encode()
            conn.sendall(head + b"Connection: close\r\n\r\n" + self.body)
        else:
            raise AssertionError(f"unknown mode {mode!r}")
