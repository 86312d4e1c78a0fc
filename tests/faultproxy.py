"""A fault-injecting TCP proxy for the fault tests and the traffic benchmark (issue 4).

It sits between the collector and the portal (the collector's ``portal.url`` points at it)
and, per request or per connection, drawn from a seeded ``random.Random``:

* passes bytes through, counting them both ways (``bench.site_traffic`` uses this);
* drops a connection (accepted, then reset before anything is read);
* delays a request or a response (longer than the collector's timeout, a delayed request is
  still delivered afterwards, like a slow middlebox: the portal stores a batch whose sender
  gave up and is already re-sending it);
* resets both sides mid-body: the request head and part of its body reach the portal;
* loses the response: the whole request reaches the portal and the proxy reads the whole
  answer, then resets the client — the case that only a batch id makes exactly-once;
* resets mid-response: part of the answer reaches the client;
* answers ``200`` itself with an HTML page (a captive portal, an inspecting proxy's notice):
  nothing reaches the portal.

``http=True`` parses HTTP/1.1 (``Content-Length`` bodies; anything else is piped raw from
then on) so that faults land at exact places; it reads plain HTTP, or TLS that it terminates
itself (``server_ssl``, with the portal's certificate), and can hand every exchange to an
``observer``. ``http=False`` handles any TCP stream (TLS included) and can only reset after a
number of bytes in one direction. ``idle_close_s`` plays a server's keep-alive timeout.

A reset is a real TCP RST (``SO_LINGER`` 0). The proxy runs its own event loop in a thread,
so it works with blocking tests; every method but the coroutines is thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import random
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class Fault(enum.StrEnum):
    PASS = "pass"
    DROP = "drop"
    DELAY_REQUEST = "delay_request"
    DELAY_RESPONSE = "delay_response"
    RESET_MID_BODY = "reset_mid_body"
    RESPONSE_LOST = "response_lost"
    RESET_MID_RESPONSE = "reset_mid_response"
    RESET_AFTER_BYTES = "reset_after_bytes"  # http=False only: N bytes, one direction
    FAKE_OK = "fake_ok"  # a middlebox answers 200 with its own page; the portal sees nothing


HTTP_ONLY = {
    Fault.FAKE_OK,
    Fault.DELAY_RESPONSE,
    Fault.RESET_MID_BODY,
    Fault.RESPONSE_LOST,
    Fault.RESET_MID_RESPONSE,
}

MAX_HEAD = 64 * 1024

_PAGE = b"<html><body><h1>Welcome</h1><p>Access to this site is logged.</p></body></html>"
FAKE_PAGE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
    + f"Content-Length: {len(_PAGE)}\r\n\r\n".encode()
    + _PAGE
)
"""What a captive portal or a TLS-inspecting proxy's notice page looks like to a client."""


@dataclass
class Plan:
    """Which faults to draw, with what weights (relative; need not sum to 1)."""

    weights: Mapping[Fault, float] = field(default_factory=lambda: {Fault.PASS: 1.0})
    delay_s: tuple[float, float] = (0.05, 0.5)
    reset_after_bytes: tuple[int, int] = (1, 8000)
    batches_only: bool = False
    """http=True: only ingest POSTs (``.../batches``) get faults; other requests pass."""


PASS_THROUGH = Plan()


class _Reset(Exception):
    """Abort both sides of this connection with a TCP reset."""


@dataclass
class ConnStats:
    opened_at: float
    bytes_up: int = 0  # client → upstream, as delivered to the upstream
    bytes_down: int = 0  # upstream → client, as delivered to the client
    requests: int = 0


@dataclass(frozen=True)
class Exchange:
    """One request and its answer as the proxy passed them on (http=True), for ``observer``."""

    at: float  # monotonic, when the answer came back
    request_head: bytes
    request_body: bytes
    answer_head: bytes
    answer_body: bytes
    fault: Fault

    @property
    def status(self) -> int:
        return int(self.answer_head.split(b" ", 2)[1])

    @property
    def is_batch(self) -> bool:
        return _is_batch_post(self.request_head)


class FaultProxy:
    """``with FaultProxy(("127.0.0.1", port), seed=1) as proxy: proxy.port ...``"""

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        seed: int,
        plan: Plan = PASS_THROUGH,
        http: bool = True,
        idle_close_s: float | None = None,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        server_ssl: ssl.SSLContext | None = None,
        observer: Callable[[Exchange], None] | None = None,
    ) -> None:
        """``server_ssl``: terminate TLS from the client with this context (the upstream is
        then spoken to in plain text): with ``http=True``, a TLS client's requests can be read.
        ``observer`` is called (in the proxy's thread) with every whole exchange."""
        for fault in plan.weights:
            if fault in HTTP_ONLY and not http:
                raise ValueError(f"{fault} needs http=True")
        self._upstream = upstream
        self._plan = plan
        self._rng = random.Random(seed)
        self.http = http
        self.idle_close_s = idle_close_s
        self._listen = listen
        self._server_ssl = server_ssl
        self._observer = observer
        self._cond = threading.Condition()
        self._counts: Counter[str] = Counter()
        self.connections: list[ConnStats] = []
        self.request_times: list[float] = []  # monotonic, when each request head arrived
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy")
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    # ----------------------------------------------------------------------- control

    def start(self) -> FaultProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self.port = future.result(10)
        return self

    async def _start(self) -> int:
        self._server = await asyncio.start_server(
            self._serve, self._listen[0], self._listen[1], limit=MAX_HEAD, ssl=self._server_ssl
        )
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_plan(self, plan: Plan) -> None:
        """Faults drawn from now on (connections under way keep theirs)."""
        for fault in plan.weights:
            if fault in HTTP_ONLY and not self.http:
                raise ValueError(f"{fault} needs http=True")
        with self._cond:
            self._plan = plan

    def set_upstream(self, host: str, port: int) -> None:
        with self._cond:
            self._upstream = (host, port)

    def counts(self) -> Counter[str]:
        """Events so far: each fault drawn, ``forwarded`` (a whole request reached the
        upstream), ``answered`` (a whole answer came back), ``receipt.<status>`` (ingest
        receipts passed on to the client), ``receipt_lost.<status>`` (those withheld or cut),
        ``held.<status>`` (those delayed: a client killed meanwhile never gets them), ...
        plus ``bytes_up`` / ``bytes_down`` and ``connections``."""
        with self._cond:
            return Counter(self._counts)

    def wait_for(self, event: str, *, above: int, timeout_s: float) -> bool:
        """Block until ``counts()[event] > above``; False at the deadline."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._counts[event] <= above:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _count(self, event: str, n: int = 1) -> None:
        with self._cond:
            self._counts[event] += n
            self._cond.notify_all()

    def _draw(self) -> tuple[Fault, Plan, float]:
        with self._cond:
            plan = self._plan
            faults = list(plan.weights)
            fault = self._rng.choices(faults, [plan.weights[f] for f in faults])[0]
            # Drawn under the lock with the fault: the sequence depends only on the seed and
            # the order of requests, not on which thread asks.
            r = self._rng.random()
        return fault, plan, r

    # ----------------------------------------------------------------------- serving

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = _Conn(reader, writer, ConnStats(opened_at=time.monotonic()))
        with self._cond:
            self.connections.append(conn.stats)
        self._count("connections")
        try:
            if self.http:
                await self._serve_http(conn)
            else:
                await self._serve_bytes(conn)
        except _Reset:
            conn.abort()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            self._count("broken")
            conn.abort()
        except asyncio.CancelledError:
            # Only close() cancels: end quietly (asyncio's stream callback would log a
            # cancelled connection task as an error).
            conn.abort()
        finally:
            conn.close()
            self._tasks.discard(task)

    async def _connect(self, conn: _Conn) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if conn.up_reader is not None and conn.up_writer is not None:
            return conn.up_reader, conn.up_writer
        with self._cond:
            host, port = self._upstream
        try:
            conn.up_reader, conn.up_writer = await asyncio.open_connection(
                host, port, limit=MAX_HEAD
            )
        except OSError:
            self._count("upstream_refused")  # the portal is down: the client sees a reset
            raise _Reset from None
        return conn.up_reader, conn.up_writer

    # --- bytes mode -----------------------------------------------------------------

    async def _serve_bytes(self, conn: _Conn) -> None:
        fault, plan, r = self._draw()
        self._count(fault)
        if fault is Fault.DROP:
            raise _Reset
        if fault is Fault.DELAY_REQUEST:
            await asyncio.sleep(_between(plan.delay_s, r))
        up_reader, up_writer = await self._connect(conn)
        cut_up = cut_down = None
        if fault is Fault.RESET_AFTER_BYTES:
            lo, hi = plan.reset_after_bytes
            # One draw per connection: its lower half picks "up", its upper half "down", and
            # within each half the number of bytes.
            half = (r * 2) % 1.0
            n = lo + int(half * (hi - lo + 1))
            if r < 0.5:
                cut_up = n
            else:
                cut_down = n
        last = _Activity(time.monotonic(), "down")
        up = asyncio.create_task(self._pipe(conn.reader, up_writer, conn, "up", cut_up, last))
        down = asyncio.create_task(self._pipe(up_reader, conn.writer, conn, "down", cut_down, last))
        pending: set[asyncio.Task[None]] = {up, down}
        try:
            while pending:
                done, pending = await asyncio.wait(
                    pending, timeout=self.idle_close_s, return_when=asyncio.FIRST_COMPLETED
                )
                # Every finished task's exception is retrieved; the first one propagates
                # (a _Reset or a broken socket).
                errors = [t.exception() for t in done if not t.cancelled()]
                for error in errors:
                    if error is not None:
                        raise error
                if (
                    self.idle_close_s is not None
                    and pending
                    and last.direction == "down"
                    and time.monotonic() - last.at >= self.idle_close_s
                ):
                    # A server's keep-alive timeout: the upstream spoke last (an answer, TLS
                    # session tickets) and the client has sent nothing since. A client waiting
                    # for its answer (it spoke last) is never cut this way.
                    self._count("idle_closed")
                    return
                if down in done and pending:
                    return  # the upstream closed: so does the client
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _pipe(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        conn: _Conn,
        direction: str,
        cut: int | None,
        last: _Activity,
    ) -> None:
        sent = 0
        while True:
            chunk = await src.read(65536)
            if not chunk:
                with contextlib.suppress(OSError):
                    if dst.can_write_eof():
                        dst.write_eof()
                return
            if cut is not None and sent + len(chunk) >= cut:
                await self._send(dst, chunk[: cut - sent], conn, direction)
                self._count(f"reset_{direction}")
                raise _Reset
            await self._send(dst, chunk, conn, direction)
            self._count(f"chunks_{direction}")  # ~ TCP segments (bench.site_traffic)
            sent += len(chunk)
            last.at, last.direction = time.monotonic(), direction

    async def _send(
        self, dst: asyncio.StreamWriter, data: bytes, conn: _Conn, direction: str
    ) -> None:
        if not data:
            return
        dst.write(data)
        await dst.drain()
        if direction == "up":
            conn.stats.bytes_up += len(data)
        else:
            conn.stats.bytes_down += len(data)
        self._count(f"bytes_{direction}", len(data))

    # --- HTTP mode ------------------------------------------------------------------

    async def _serve_http(self, conn: _Conn) -> None:
        reader, writer = conn.reader, conn.writer
        while True:
            fault, plan, r = self._draw()
            if fault is Fault.DROP:
                self._count(fault)
                raise _Reset
            try:
                head = await self._read_head(reader)
            except _Idle:
                self._count("idle_closed")
                return
            if head is None:
                return  # the client closed the connection between requests
            if plan.batches_only and not _is_batch_post(head):
                fault = Fault.PASS
            self._count(fault)
            with self._cond:
                self.request_times.append(time.monotonic())
            conn.stats.requests += 1
            length = _content_length(head)
            up_reader, up_writer = await self._connect(conn)
            if length is None:  # chunked or unknown: no faults, pipe the rest raw
                self._count("unparsed")
                await self._send(up_writer, head, conn, "up")
                last = _Activity(time.monotonic(), "down")
                await asyncio.gather(
                    self._pipe(reader, up_writer, conn, "up", None, last),
                    self._pipe(up_reader, writer, conn, "down", None, last),
                )
                return
            if fault is Fault.RESET_MID_BODY and length > 0:
                part = await reader.readexactly(1 + int(r * (length - 1)))
                await self._send(up_writer, head + part, conn, "up")
                await asyncio.sleep(0.01)  # let the portal start reading it
                raise _Reset
            body = await reader.readexactly(length)
            if fault is Fault.FAKE_OK:
                await self._send(writer, FAKE_PAGE, conn, "down")
                continue
            if fault is Fault.DELAY_REQUEST:
                await asyncio.sleep(_between(plan.delay_s, r))
            await self._send(up_writer, head + body, conn, "up")
            self._count("forwarded")
            answer = await _read_answer(up_reader)
            if answer is None:  # the upstream closed without answering (it was killed)
                self._count("upstream_closed")
                raise _Reset
            answer_head, answer_body = answer
            self._count("answered")
            receipt = _receipt_status(head, answer_head, answer_body)
            if fault is Fault.RESPONSE_LOST:
                if receipt:
                    self._count(f"receipt_lost.{receipt}")
                raise _Reset
            if fault is Fault.RESET_MID_RESPONSE:
                whole = answer_head + answer_body
                await self._send(writer, whole[: 1 + int(r * (len(whole) - 1))], conn, "down")
                if receipt:
                    self._count(f"receipt_lost.{receipt}")
                raise _Reset
            if fault is Fault.DELAY_RESPONSE:
                if receipt:
                    self._count(f"held.{receipt}")
                self._count("holding_response")
                await asyncio.sleep(_between(plan.delay_s, r))
            try:
                await self._send(writer, answer_head + answer_body, conn, "down")
            except OSError:
                # The client gave up meanwhile (its timeout, or it was killed).
                if receipt:
                    self._count(f"receipt_lost.{receipt}")
                raise
            if receipt:
                self._count(f"receipt.{receipt}")
            if self._observer is not None:
                self._observer(
                    Exchange(time.monotonic(), head, body, answer_head, answer_body, fault)
                )
            if _closes(answer_head):
                return

    async def _read_head(self, reader: asyncio.StreamReader) -> bytes | None:
        try:
            if self.idle_close_s is None:
                return await reader.readuntil(b"\r\n\r\n")
            return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.idle_close_s)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            return None
        except TimeoutError:
            raise _Idle from None


@dataclass
class _Activity:
    at: float
    direction: str  # who sent the last bytes: "up" (the client) or "down" (the upstream)


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    stats: ConnStats
    up_reader: asyncio.StreamReader | None = None
    up_writer: asyncio.StreamWriter | None = None

    def abort(self) -> None:
        for w in (self.writer, self.up_writer):
            if w is not None:
                _abort(w)

    def close(self) -> None:
        for w in (self.writer, self.up_writer):
            if w is not None and not w.is_closing():
                w.close()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """One whole HTTP answer (head, body), or None if the upstream closed before its end."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        length = _content_length(head)
        if length is None:
            return head, await reader.read()  # close-delimited
        return head, await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


class _Idle(Exception):
    """No request on a kept-alive connection for ``idle_close_s``."""


def _between(bounds: tuple[float, float], r: float) -> float:
    lo, hi = bounds
    return lo + (hi - lo) * r


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST, not a FIN: what a crashed peer or a middlebox sends."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    out = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def _content_length(head: bytes) -> int | None:
    """The body length of a request or answer head; None if it is not a plain length."""
    headers = _headers(head)
    if "transfer-encoding" in headers:
        return None
    if "content-length" not in headers:
        first = head.split(b"\r\n", 1)[0]
        # A request without a length has no body; an answer without one is close-delimited
        # (but 1xx, 204 and 304 never have one).
        if not first.startswith(b"HTTP/"):
            return 0
        status = first.split(b" ", 2)[1]
        return 0 if status.startswith(b"1") or status in (b"204", b"304") else None
    return int(headers["content-length"])


def _closes(head: bytes) -> bool:
    return _headers(head).get("connection", "").lower() == "close"


def _is_batch_post(request_head: bytes) -> bool:
    first = request_head.split(b"\r\n", 1)[0]
    return first.startswith(b"POST ") and b"/batches " in first


def _receipt_status(request_head: bytes, answer_head: bytes, answer_body: bytes) -> str | None:
    """``stored`` / ``duplicate`` for an ingest receipt, ``http_<status>`` for other ingest
    answers, None for any other request."""
    if not _is_batch_post(request_head):
        return None
    status = answer_head.split(b" ", 2)[1].decode()
    if status != "200":
        return f"http_{status}"
    try:
        doc: Any = json.loads(answer_body)
    except ValueError:
        return "unreadable"
    return str(doc.get("status")) if isinstance(doc, dict) else "unreadable"
