"""Serve a fleet of virtual printers over HTTPS (one loopback address each) plus a control API.

Each large-format printer answers ``GET /DevMgmt/<document>.xml`` on its own address (``subnet
base + i + 1``), all on the same TCP port, like a LAN of real EWS; the additive (powder-bed 3D)
printers come after them on the subnet and answer FleetMeter's JSON API ``GET /api/am/v1/…``
(``additive_api``). A plain-HTTP control API on ``control_host`` exposes ground truth and the
clock (docs/architecture.md, "Simulator control API").

Everything runs on one asyncio loop and scales to thousands of devices in one process: every
device socket is served by ``loop.create_server`` with a small h11 protocol (no per-device
server task, no per-request framework), printers are built on first use (``printer.Fleet``),
and TLS contexts are made once. Each device has its own self-signed certificate up to
``SHARED_CERTIFICATE_ABOVE`` devices; above that, all devices present one shared certificate
(an OpenSSL context with its own key costs ~3 ms and ~20 kB, i.e. 15 s at 5,000 devices,
and collectors pin certificates rather than check names, so nothing they do changes).
The control API is a single uvicorn server.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import logging
import resource
import socket
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Generator, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import formatdate
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

import h11
import uvicorn

from fleetmeter.signing.certs import self_signed
from fleetmeter.simulator import additive_api, ledm_docs
from fleetmeter.simulator.additive import (
    DEFAULT_BUILD_BUFFER,
    AdditiveFleet,
    AdditivePlan,
    AdditivePrinter,
)
from fleetmeter.simulator.clock import SimClock
from fleetmeter.simulator.printer import DEFAULT_JOB_BUFFER, Fleet, PrinterPlan, VirtualPrinter

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_TICK_S = 1.0  # real seconds between background advances (keeps request-time work small)
_IDLE_TIMEOUT_S = 30.0  # an idle device connection is closed, as embedded servers do
_BACKLOG = 128

SHARED_CERTIFICATE_ABOVE = 256
"""With ``certificates="auto"``, fleets larger than this share one certificate."""

CertificateMode = Literal["auto", "per-device", "shared"]


class SimulatorError(Exception):
    """The simulator cannot start as configured (bad subnet, unbindable address, ...)."""


@dataclass(frozen=True)
class SimulatorConfig:
    devices: int = 10
    seed: int = 1
    speed: float = 60.0
    """Simulated seconds per real second."""
    subnet: str = "127.0.1.0/24"
    """Device i listens on the subnet's base address + i + 1."""
    port: int = 0
    """Device port (the same on every device address); 0 picks a free one."""
    control_host: str = "127.0.0.1"
    control_port: int = 0
    start: datetime | None = None
    """Simulated start time (aware); None = now."""
    job_buffer: int = DEFAULT_JOB_BUFFER
    certificates: CertificateMode = "auto"
    """``per-device`` (each device its own self-signed certificate, like real printers),
    ``shared`` (one for all: cheap for large fleets) or ``auto`` (per-device up to
    ``SHARED_CERTIFICATE_ABOVE`` devices)."""
    additive: int = 0
    """Industrial powder-bed 3D printers, on the addresses after the ``devices`` printers."""
    build_buffer: int = DEFAULT_BUILD_BUFFER
    """Finished builds each additive printer keeps in its history."""

    @property
    def total_devices(self) -> int:
        return self.devices + self.additive

    @property
    def shared_certificate(self) -> bool:
        if self.certificates == "auto":
            return self.total_devices > SHARED_CERTIFICATE_ABOVE
        return self.certificates == "shared"


@dataclass(frozen=True)
class DeviceEndpoint:
    address: str
    port: int
    plan: PrinterPlan
    fleet: Fleet
    certificate_sha256: str

    @property
    def printer(self) -> VirtualPrinter:
        """The device's printer (built on first access)."""
        return self.fleet[self.plan.index]

    @property
    def serial_number(self) -> str:
        return self.plan.serial_number

    def info(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "port": self.port,
            "kind": "lfp",
            "serial_number": self.plan.serial_number,
            "model": self.plan.model.name,
            "product_number": self.plan.model.product_number,
            "certificate_sha256": self.certificate_sha256,
        }


@dataclass(frozen=True)
class AdditiveEndpoint:
    """An additive printer's address; its cell (build units, station) answers there too."""

    address: str
    port: int
    plan: AdditivePlan
    fleet: AdditiveFleet
    certificate_sha256: str

    @property
    def printer(self) -> AdditivePrinter:
        """The device's printer (built on first access)."""
        return self.fleet[self.plan.index]

    @property
    def serial_number(self) -> str:
        return self.plan.serial_number

    def info(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "port": self.port,
            "kind": "additive",
            "serial_number": self.plan.serial_number,
            "model": self.plan.model.name,
            "product_number": self.plan.model.product_number,
            "certificate_sha256": self.certificate_sha256,
        }


def device_addresses(subnet: str, count: int) -> list[str]:
    """``count`` host addresses of ``subnet``: base + 1, base + 2, ..."""
    try:
        net = ipaddress.ip_network(subnet, strict=False)
    except ValueError as exc:
        raise SimulatorError(f"invalid subnet {subnet!r}: {exc}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise SimulatorError(f"subnet {subnet} is not IPv4")
    usable = net.num_addresses - 2 if net.prefixlen <= 30 else 0
    if count > usable:
        raise SimulatorError(f"subnet {subnet} has room for {usable} devices, {count} requested")
    return [str(net.network_address + i + 1) for i in range(count)]


def ensure_open_files(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards the hard limit so ``needed`` descriptors fit;
    return the new soft limit. ``SimulatorError`` if even the hard limit is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if needed <= soft:
        return soft
    if hard != resource.RLIM_INFINITY and needed > hard:
        raise SimulatorError(
            f"{needed} open files needed (one listening socket per device plus connections), "
            f"but the hard limit is {hard}: raise it (ulimit -Hn) or simulate fewer devices"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed


def _bind(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def bind_same_port(addresses: list[str], port: int) -> tuple[int, list[socket.socket]]:
    """Listening sockets on every address, all on one port (``port`` or a free one if 0)."""
    for _attempt in range(20):
        socks: list[socket.socket] = []
        try:
            for address in addresses:
                socks.append(_bind(address, port or (socks[0].getsockname()[1] if socks else 0)))
            return socks[0].getsockname()[1], socks
        except OSError as exc:
            for s in socks:
                s.close()
            failed = addresses[len(socks)]
            # A port picked for the first address may be taken on another one: try another
            # port. Anything else (address not local, port given and taken) is final.
            if port == 0 and socks and exc.errno == errno.EADDRINUSE:
                continue
            where = f"{failed}:{port}" if port else failed
            raise SimulatorError(f"cannot bind {where}: {exc.strerror or exc}") from None
    raise SimulatorError("no port is free on every device address")


def _ssl_context(cert_pem: bytes, key_pem: bytes, tmp: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # load_cert_chain reads files only; the key lives on disk just long enough to load it.
    path = tmp / "device.pem"
    path.touch(mode=0o600)
    path.write_bytes(key_pem + cert_pem)
    try:
        ctx.load_cert_chain(path)
    finally:
        path.unlink()
    return ctx


class _Server(uvicorn.Server):
    """A uvicorn server that leaves SIGINT/SIGTERM alone: the simulator stops all servers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-cache"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Device:
    """What one device's connections share: its printer, its Server header."""

    __slots__ = ("_server_header", "clock", "endpoint")

    def __init__(self, endpoint: DeviceEndpoint, clock: SimClock) -> None:
        self.endpoint = endpoint
        self.clock = clock
        self._server_header: bytes | None = None

    @property
    def server_header(self) -> bytes:
        if self._server_header is None:
            printer = self.endpoint.printer
            model = printer.model
            self._server_header = (
                f"HP HTTP Server; {model.name} - {model.product_number}; "
                f"Serial Number: {printer.serial_number}; {printer.firmware_version}"
            ).encode()
        return self._server_header

    def respond(self, method: bytes, target: bytes) -> tuple[int, bytes, bytes, list[bytes]]:
        """Status, body, content type and extra header names/values for one request."""
        if method not in (b"GET", b"HEAD"):
            return 405, b"", b"text/plain", [b"allow", b"GET, HEAD"]
        path = target.split(b"?", 1)[0].decode("ascii", "replace")
        name = path.removeprefix("/DevMgmt/")
        if name == path or name not in ledm_docs.RENDERERS:
            return 404, b"Not Found", b"text/plain", []
        printer = self.endpoint.printer
        # Documents are consistent with ground truth at the instant they are served.
        printer.advance_to(self.clock.now())
        return 200, ledm_docs.render(printer, name), b"text/xml; charset=utf-8", []


class _AdditiveDevice:
    """What one additive printer's connections share (the same interface as ``_Device``)."""

    __slots__ = ("clock", "endpoint")

    server_header = additive_api.SERVER_HEADER

    def __init__(self, endpoint: AdditiveEndpoint, clock: SimClock) -> None:
        self.endpoint = endpoint
        self.clock = clock

    def respond(self, method: bytes, target: bytes) -> tuple[int, bytes, bytes, list[bytes]]:
        printer = self.endpoint.printer
        # Documents are consistent with ground truth at the instant they are served.
        printer.advance_to(self.clock.now())
        return additive_api.respond(printer, method, target)


class _HttpDate:
    """The Date header value, formatted at most once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def value(self, loop: asyncio.AbstractEventLoop) -> bytes:
        second = int(loop.time())
        if second != self._second:
            self._second = second
            self._value = formatdate(usegmt=True).encode()
        return self._value


class _DeviceConnection(asyncio.Protocol):
    """One HTTP/1.1 connection to a device's EWS (keep-alive, pipelining via h11).

    Requests are answered synchronously as they arrive: rendering is CPU work with nothing
    to await, and a protocol with no task per request keeps thousands of devices cheap.
    """

    def __init__(
        self,
        device: _Device | _AdditiveDevice,
        tracker: set[asyncio.Transport],
        date: _HttpDate,
    ) -> None:
        self.device = device
        self.tracker = tracker
        self.date = date
        self.conn = h11.Connection(h11.SERVER)
        self.transport: asyncio.Transport | None = None
        self.request: h11.Request | None = None
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.tracker.add(transport)
        self._arm_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.tracker.discard(self.transport)
        if self.idle is not None:
            self.idle.cancel()

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self._arm_idle_timer()
        self._process()

    def eof_received(self) -> bool | None:
        self.conn.receive_data(b"")
        self._process()
        return None  # close the transport

    def _arm_idle_timer(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        loop = asyncio.get_running_loop()
        self.idle = loop.call_later(_IDLE_TIMEOUT_S, self._close)

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _process(self) -> None:
        transport = self.transport
        if transport is None:
            return
        while not transport.is_closing():
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError:
                self._reply_error(400)
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self.request = event
            elif isinstance(event, h11.EndOfMessage):
                self._reply()
                if self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is h11.MUST_CLOSE:
                    self._close()
                    return
                try:
                    self.conn.start_next_cycle()
                except h11.LocalProtocolError:
                    self._close()
                    return
            elif isinstance(event, h11.ConnectionClosed):
                self._close()
                return
            # h11.Data (a request body): ignored; only GET and HEAD are served.

    def _headers(self, content_type: bytes, length: int, extra: list[bytes]) -> list[Any]:
        loop = asyncio.get_running_loop()
        headers = [
            (b"date", self.date.value(loop)),
            (b"server", self.device.server_header),
            (b"content-type", content_type),
            (b"content-length", str(length).encode()),
            (b"cache-control", b"no-cache"),
        ]
        headers.extend(zip(extra[::2], extra[1::2], strict=True))
        return headers

    def _reply(self) -> None:
        assert self.transport is not None and self.request is not None
        method, target = self.request.method, self.request.target
        status, body, content_type, extra = self.device.respond(method, target)
        response = h11.Response(
            status_code=status,
            headers=self._headers(content_type, len(body), extra),
            reason=HTTPStatus(status).phrase.encode(),
        )
        out = self.conn.send(response) or b""
        if method != b"HEAD" and body:
            out += self.conn.send(h11.Data(data=body)) or b""
        out += self.conn.send(h11.EndOfMessage()) or b""
        self.transport.write(out)

    def _reply_error(self, status: int) -> None:
        assert self.transport is not None
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            with contextlib.suppress(h11.LocalProtocolError):
                body = b"Bad Request"
                response = h11.Response(
                    status_code=status,
                    reason=HTTPStatus(status).phrase.encode(),
                    headers=[
                        *self._headers(b"text/plain", len(body), []),
                        (b"connection", b"close"),
                    ],
                )
                self.transport.write(
                    (self.conn.send(response) or b"")
                    + (self.conn.send(h11.Data(data=body)) or b"")
                    + (self.conn.send(h11.EndOfMessage()) or b"")
                )
        self._close()


class _ControlApp:
    """ASGI app of the control API (docs/architecture.md, "Simulator control API")."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        route = (scope["method"], scope["path"])
        handlers: dict[tuple[str, str], Callable[[], Any]] = {
            ("GET", "/devices"): self.sim.devices_info,
            ("GET", "/truth"): self.sim.truth,
            ("GET", "/clock"): self.sim.clock_info,
            ("POST", "/pause"): self.sim.pause,
            ("POST", "/resume"): self.sim.resume,
        }
        handler = handlers.get(route)
        if handler is None:
            known = {path for _, path in handlers}
            status = 405 if scope["path"] in known else 404
            await _respond(
                send, status, json.dumps({"error": "not found"}).encode(), "application/json"
            )
            return
        body = json.dumps(handler(), separators=(",", ":"), ensure_ascii=False).encode()
        await _respond(send, 200, body, "application/json")


class Simulator:
    """A fleet of virtual printers, its clock and the servers that expose them.

    Use ``async with Simulator(config) as sim:`` or ``await sim.start()`` / ``await sim.stop()``.
    """

    def __init__(self, config: SimulatorConfig) -> None:
        if config.devices < 0 or config.additive < 0:
            raise SimulatorError(
                f"devices and additive must be >= 0, got {config.devices} and {config.additive}"
            )
        if config.total_devices < 1:
            raise SimulatorError("devices must be >= 1 (or give additive printers)")
        if not config.speed > 0:
            raise SimulatorError(f"speed must be > 0, got {config.speed}")
        if config.job_buffer < 1:
            raise SimulatorError(f"job buffer must be >= 1, got {config.job_buffer}")
        if config.build_buffer < 1:
            raise SimulatorError(f"build buffer must be >= 1, got {config.build_buffer}")
        for name, port in (("port", config.port), ("control port", config.control_port)):
            if not 0 <= port <= 65535:
                raise SimulatorError(f"{name} must be in 0..65535, got {port}")
        if config.start is not None and config.start.tzinfo is None:
            raise SimulatorError("start time must carry a time zone (e.g. 2026-01-05T08:00:00Z)")
        if config.certificates not in ("auto", "per-device", "shared"):
            raise SimulatorError(
                f"certificates must be auto, per-device or shared, got {config.certificates!r}"
            )
        self.config = config
        self.addresses = device_addresses(config.subnet, config.total_devices)
        self.clock = SimClock(start=config.start, speed=config.speed)
        self.printers = Fleet(
            seed=config.seed,
            count=config.devices,
            start=self.clock.now(),
            job_buffer=config.job_buffer,
        )
        # Its own random streams: adding 3D printers leaves the large-format fleet unchanged.
        self.additive = AdditiveFleet(
            seed=config.seed,
            count=config.additive,
            start=self.clock.now(),
            build_buffer=config.build_buffer,
        )
        self.endpoints: list[DeviceEndpoint] = []
        """The large-format printers (LEDM)."""
        self.additive_endpoints: list[AdditiveEndpoint] = []
        self.port = 0
        self.control_port = 0
        self._device_servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Transport] = set()
        self._servers: list[_Server] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._ticker: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ control API data

    @property
    def control_url(self) -> str:
        return f"http://{self.config.control_host}:{self.control_port}"

    def advance(self, *, everyone: bool = False) -> datetime:
        """Bring the printers built so far (``everyone``: all of them) to the clock's instant.

        A printer not built yet has done nothing observable; it catches up when first used."""
        now = self.clock.now()
        for printer in self.printers if everyone else self.printers.built():
            printer.advance_to(now)
        for cell in self.additive if everyone else self.additive.built():
            cell.advance_to(now)
        return now

    @property
    def all_endpoints(self) -> list[DeviceEndpoint | AdditiveEndpoint]:
        """Every device, in address order: the large-format printers, then the additive."""
        return [*self.endpoints, *self.additive_endpoints]

    def devices_info(self) -> list[dict[str, Any]]:
        return [e.info() for e in self.all_endpoints]

    def truth(self) -> list[dict[str, Any]]:
        self.advance(everyone=True)
        return [
            {"address": e.address, "port": e.port, "kind": e.info()["kind"], **e.printer.truth()}
            for e in self.all_endpoints
        ]

    def clock_info(self) -> dict[str, Any]:
        return {
            "sim_time": self.clock.now().isoformat().replace("+00:00", "Z"),
            "speed": self.clock.speed,
            "paused": self.clock.paused,
        }

    def pause(self) -> dict[str, Any]:
        self.clock.pause()
        # Truth read after a pause is the truth at the frozen instant, and every document
        # served while paused is cheap (no catching up at request time).
        self.advance(everyone=True)
        return self.clock_info()

    def resume(self) -> dict[str, Any]:
        self.clock.resume()
        return self.clock_info()

    def ready_info(self) -> dict[str, Any]:
        """The line ``fleetmeter sim`` prints on stdout once everything listens."""
        return {
            "ready": True,
            "control_url": self.control_url,
            "port": self.port,
            "devices": [
                {
                    "address": e.address,
                    "kind": "lfp" if isinstance(e, DeviceEndpoint) else "additive",
                    "serial_number": e.plan.serial_number,
                    "model": e.plan.model.name,
                }
                for e in self.all_endpoints
            ],
        }

    # ------------------------------------------------------------------ lifecycle

    def _certificates(self) -> list[tuple[ssl.SSLContext, str]]:
        """One (context, fingerprint) per device: their own, or one shared by all."""
        with tempfile.TemporaryDirectory(prefix="fleetmeter-sim-") as tmp:
            if self.config.shared_certificate:
                # Real EWS certificates name one host; a SAN listing thousands of addresses
                # would make every handshake tens of kB. Collectors pin, they do not match names.
                pair = self_signed("FleetMeter simulated printer", [self.addresses[0]])
                shared = (_ssl_context(pair.cert_pem, pair.key_pem, Path(tmp)), pair.fingerprint)
                return [shared] * len(self.addresses)
            out = []
            serials = [p.serial_number for p in self.printers.plans]
            serials += [p.serial_number for p in self.additive.plans]
            for address, serial in zip(self.addresses, serials, strict=True):
                pair = self_signed(serial, [address])
                out.append((_ssl_context(pair.cert_pem, pair.key_pem, Path(tmp)), pair.fingerprint))
            return out

    async def start(self) -> None:
        # Listening sockets, the control API, and headroom for connections and files.
        ensure_open_files(len(self.addresses) + 1024)
        port, device_socks = bind_same_port(self.addresses, self.config.port)
        try:
            control_sock = _bind(self.config.control_host, self.config.control_port)
        except OSError as exc:
            for s in device_socks:
                s.close()
            where = f"{self.config.control_host}:{self.config.control_port}"
            raise SimulatorError(
                f"cannot bind control API on {where}: {exc.strerror or exc}"
            ) from None
        except (socket.gaierror, UnicodeError) as exc:
            for s in device_socks:
                s.close()
            raise SimulatorError(f"bad control host {self.config.control_host!r}: {exc}") from None
        self.port = port
        self.control_port = control_sock.getsockname()[1]

        loop = asyncio.get_running_loop()
        date = _HttpDate()
        try:
            certificates = await asyncio.to_thread(self._certificates)
            lfp = len(self.printers.plans)
            for i, (address, sock, (ctx, fingerprint)) in enumerate(
                zip(self.addresses, device_socks, certificates, strict=True)
            ):
                device: _Device | _AdditiveDevice
                if i < lfp:
                    endpoint = DeviceEndpoint(
                        address, port, self.printers.plans[i], self.printers, fingerprint
                    )
                    self.endpoints.append(endpoint)
                    device = _Device(endpoint, self.clock)
                else:
                    cell = AdditiveEndpoint(
                        address, port, self.additive.plans[i - lfp], self.additive, fingerprint
                    )
                    self.additive_endpoints.append(cell)
                    device = _AdditiveDevice(cell, self.clock)

                def factory(device: _Device | _AdditiveDevice = device) -> _DeviceConnection:
                    return _DeviceConnection(device, self._connections, date)

                self._device_servers.append(
                    await loop.create_server(factory, sock=sock, ssl=ctx, backlog=_BACKLOG)
                )

            config = uvicorn.Config(
                _ControlApp(self),
                http="h11",
                ws="none",
                lifespan="off",
                log_config=None,
                log_level="warning",
                access_log=False,
                server_header=False,
                headers=[("server", "FleetMeter simulator")],
                timeout_graceful_shutdown=2,
            )
            control = _Server(config)
            self._servers.append(control)
            self._tasks.append(asyncio.create_task(control.serve(sockets=[control_sock])))
            while not all(s.started for s in self._servers):
                failed = [t for t in self._tasks if t.done()]
                if failed:
                    failed[0].result()  # re-raise the server's startup error
                    raise SimulatorError("a server stopped during startup")
                await asyncio.sleep(0.01)
        except BaseException:
            await self.stop()
            for sock in [*device_socks, control_sock]:
                sock.close()
            raise
        self._ticker = asyncio.create_task(self._tick())
        log.info(
            "simulating %d printers and %d additive printers on port %d (%s certificates), "
            "control API %s, speed %g",
            len(self.printers),
            len(self.additive),
            port,
            "one shared" if self.config.shared_certificate else "per-device",
            self.control_url,
            self.clock.speed,
        )

    async def _tick(self) -> None:
        # Advancing in the background spreads the job generation over time, so a request
        # after a long quiet spell at high speed does not pay for hours of simulated work.
        while True:
            await asyncio.sleep(_TICK_S)
            self.advance()

    async def stop(self) -> None:
        """Stop every server and close every socket and connection; safe to call twice."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for device_server in self._device_servers:
            device_server.close()
        for transport in list(self._connections):
            transport.close()
        for device_server in self._device_servers:
            await device_server.wait_closed()
        self._device_servers.clear()
        for server in self._servers:
            server.should_exit = True
        if self._tasks:
            results = await asyncio.gather(*self._tasks, return_exceptions=True)
            for r in results:
                if isinstance(r, Exception):
                    log.warning("server stopped with an error: %s", r)
        self._servers.clear()
        self._tasks.clear()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
