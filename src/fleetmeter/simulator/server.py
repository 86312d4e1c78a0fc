"""Serve a fleet of virtual printers over HTTPS (one loopback address each) plus a control API.

Each printer answers ``GET /DevMgmt/<document>.xml`` on its own address (``subnet base + i + 1``)
with its own self-signed certificate, all on the same TCP port, like a LAN of real EWS. A
plain-HTTP control API on ``control_host`` exposes ground truth and the clock
(docs/architecture.md, "Simulator control API"). Everything runs on one asyncio loop: one
``uvicorn.Server`` per pre-bound socket, with tiny raw ASGI apps (no framework per request,
to keep CPU low when ten printers are polled at high speed).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import logging
import socket
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Generator, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn

from fleetmeter.signing.certs import self_signed
from fleetmeter.simulator import ledm_docs
from fleetmeter.simulator.clock import SimClock
from fleetmeter.simulator.printer import DEFAULT_JOB_BUFFER, VirtualPrinter, build_fleet

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_TICK_S = 1.0  # real seconds between background advances (keeps request-time work small)


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


@dataclass(frozen=True)
class DeviceEndpoint:
    address: str
    port: int
    printer: VirtualPrinter
    certificate_sha256: str

    def info(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "port": self.port,
            "serial_number": self.printer.serial_number,
            "model": self.printer.model.name,
            "product_number": self.printer.model.product_number,
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


def _bind(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(128)
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


def _ssl_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # load_cert_chain reads files only; the key lives on disk just long enough to load it.
    with tempfile.TemporaryDirectory(prefix="fleetmeter-sim-") as tmp:
        cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert_path.write_bytes(cert_pem)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key_pem)
        ctx.load_cert_chain(cert_path, key_path)
    return ctx


def _fixed_context(
    ctx: ssl.SSLContext,
) -> Callable[[uvicorn.Config, Callable[[], ssl.SSLContext]], ssl.SSLContext]:
    def factory(_config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return ctx

    return factory


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


class _DeviceApp:
    """ASGI app of one printer's EWS: GET/HEAD /DevMgmt/<document>, 404 for anything else."""

    def __init__(self, printer: VirtualPrinter, clock: SimClock) -> None:
        self.printer = printer
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, b"", "text/plain", [(b"allow", b"GET, HEAD")])
            return
        path: str = scope["path"]
        name = path.removeprefix("/DevMgmt/")
        if name == path or name not in ledm_docs.RENDERERS:
            await _respond(send, 404, b"Not Found", "text/plain")
            return
        # Documents are consistent with ground truth at the instant they are served.
        self.printer.advance_to(self.clock.now())
        body = ledm_docs.render(self.printer, name)
        await _respond(send, 200, body, "text/xml; charset=utf-8")


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
        if config.devices < 1:
            raise SimulatorError(f"devices must be >= 1, got {config.devices}")
        if not config.speed > 0:
            raise SimulatorError(f"speed must be > 0, got {config.speed}")
        if config.job_buffer < 1:
            raise SimulatorError(f"job buffer must be >= 1, got {config.job_buffer}")
        for name, port in (("port", config.port), ("control port", config.control_port)):
            if not 0 <= port <= 65535:
                raise SimulatorError(f"{name} must be in 0..65535, got {port}")
        if config.start is not None and config.start.tzinfo is None:
            raise SimulatorError("start time must carry a time zone (e.g. 2026-01-05T08:00:00Z)")
        self.config = config
        self.addresses = device_addresses(config.subnet, config.devices)
        self.clock = SimClock(start=config.start, speed=config.speed)
        self.printers = build_fleet(
            seed=config.seed,
            count=config.devices,
            start=self.clock.now(),
            job_buffer=config.job_buffer,
        )
        self.endpoints: list[DeviceEndpoint] = []
        self.port = 0
        self.control_port = 0
        self._servers: list[_Server] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._ticker: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ control API data

    @property
    def control_url(self) -> str:
        return f"http://{self.config.control_host}:{self.control_port}"

    def advance(self) -> datetime:
        """Bring every printer to the clock's current instant."""
        now = self.clock.now()
        for printer in self.printers:
            printer.advance_to(now)
        return now

    def devices_info(self) -> list[dict[str, Any]]:
        return [e.info() for e in self.endpoints]

    def truth(self) -> list[dict[str, Any]]:
        self.advance()
        return [{"address": e.address, "port": e.port, **e.printer.truth()} for e in self.endpoints]

    def clock_info(self) -> dict[str, Any]:
        return {
            "sim_time": self.clock.now().isoformat().replace("+00:00", "Z"),
            "speed": self.clock.speed,
            "paused": self.clock.paused,
        }

    def pause(self) -> dict[str, Any]:
        self.clock.pause()
        self.advance()  # truth read after a pause is the truth at the frozen instant
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
                    "serial_number": e.printer.serial_number,
                    "model": e.printer.model.name,
                }
                for e in self.endpoints
            ],
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
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

        plan: list[tuple[socket.socket, Any, ssl.SSLContext | None, list[tuple[str, str]]]] = []
        for address, sock, printer in zip(self.addresses, device_socks, self.printers, strict=True):
            pair = self_signed(printer.serial_number, [address])
            self.endpoints.append(DeviceEndpoint(address, port, printer, pair.fingerprint))
            model = printer.model
            server_header = (
                f"HP HTTP Server; {model.name} - {model.product_number}; "
                f"Serial Number: {printer.serial_number}; {printer.firmware_version}"
            )
            plan.append(
                (
                    sock,
                    _DeviceApp(printer, self.clock),
                    _ssl_context(pair.cert_pem, pair.key_pem),
                    [("server", server_header)],
                )
            )
        plan.append((control_sock, _ControlApp(self), None, [("server", "FleetMeter simulator")]))

        for sock, app, ctx, headers in plan:
            config = uvicorn.Config(
                app,
                http="h11",
                ws="none",
                lifespan="off",
                log_config=None,
                log_level="warning",
                access_log=False,
                server_header=False,
                headers=headers,
                timeout_graceful_shutdown=2,
                ssl_context_factory=_fixed_context(ctx) if ctx is not None else None,
            )
            server = _Server(config)
            self._servers.append(server)
            self._tasks.append(asyncio.create_task(server.serve(sockets=[sock])))
        try:
            while not all(s.started for s in self._servers):
                failed = [t for t in self._tasks if t.done()]
                if failed:
                    failed[0].result()  # re-raise the server's startup error
                    raise SimulatorError("a server stopped during startup")
                await asyncio.sleep(0.01)
        except BaseException:
            await self.stop()
            for sock, *_ in plan:
                sock.close()
            raise
        self._ticker = asyncio.create_task(self._tick())
        log.info(
            "simulating %d printers on port %d, control API %s, speed %g",
            len(self.printers),
            port,
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
        """Stop every server and close every socket; safe to call twice."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
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
