"""The direct-connection firmware agent: virtual printers that upload to the portal by themselves.

Some printers need no collector: their firmware sends usage straight to the portal, each
request signed with a secret given at provisioning (``fleetmeter.signing.httpsig``; the
secret never travels). This module plays that firmware for simulated printers:

- ``DirectAgent`` decides *when* a printer uploads and *what* (pure, no I/O, driven by the
  simulated clock). It uploads when ``UploadPolicy.interval`` (3 h) has passed, or after
  ``max_jobs`` (19) jobs, or ``max_pages`` (100) pages since its last upload, whichever
  comes first; a high-severity alert (error, critical) goes at once; a boot report goes at
  start. Triggers are exact: the agent walks simulated time second by second and looks at
  every job as it completes, so the 19th job (or the page that makes 100) triggers an
  upload at that job's completion with exactly the jobs since the last upload.
- ``DirectUploader`` sends a device's queued batches in order, signed afresh on every try
  (new nonce, created = the wall clock, which is what the portal checks), and keeps them
  while the portal is unreachable, retrying with capped exponential backoff. A batch keeps
  its id across tries, so a batch the portal stored but whose answer was lost is
  acknowledged as a duplicate, never stored twice.
- ``DirectSimulator`` runs a fleet of both, with a small control API like ``fleetmeter
  sim``'s (``GET /truth``, ``/uploads``, ``/clock``, ``/devices``; ``POST /pause``,
  ``/resume``, ``/flush``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import socket
import ssl
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import uvicorn

from fleetmeter import wire
from fleetmeter.signing import httpsig
from fleetmeter.simulator.clock import SimClock
from fleetmeter.simulator.printer import SimAlert, SimJob, VirtualPrinter, build_fleet
from fleetmeter.wire.codec import encode_batch

log = logging.getLogger(__name__)

BATCHES_PATH = "/api/v1/direct/batches"
DRIVER_ID = "direct"
VENDOR = "HP"

Trigger = Literal["boot", "interval", "jobs", "pages", "alert", "manual"]

_HIGH_SEVERITY = (wire.AlertSeverity.ERROR, wire.AlertSeverity.CRITICAL)
_SEVERITY = {
    "info": wire.AlertSeverity.INFO,
    "warning": wire.AlertSeverity.WARNING,
    "error": wire.AlertSeverity.ERROR,
    "critical": wire.AlertSeverity.CRITICAL,
}
_CARTRIDGE_STATE = {
    "ok": wire.SupplyState.OK,
    "low": wire.SupplyState.LOW,
    "veryLow": wire.SupplyState.VERY_LOW,
    "out": wire.SupplyState.EMPTY,
}


class DirectError(Exception):
    """The direct-connection simulator cannot run as configured (bad credentials, ...)."""


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class UploadPolicy:
    """When a device uploads: whichever threshold since its last upload is reached first."""

    interval: timedelta = timedelta(hours=3)
    max_jobs: int = 19
    max_pages: int = 100

    def __post_init__(self) -> None:
        if self.interval < timedelta(seconds=1) or self.max_jobs < 1 or self.max_pages < 1:
            raise ValueError("interval must be >= 1 s, max_jobs and max_pages >= 1")


@dataclass(frozen=True)
class DeviceCredentials:
    """What provisioning gave a device: its key id and shared secret (never logged)."""

    serial_number: str
    key_id: str
    secret: str = field(repr=False)


def load_credentials(path: Path) -> dict[str, DeviceCredentials]:
    """Read a JSON list of ``{"serial_number", "key_id", "secret"}`` (what provisioning prints)."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DirectError(f"cannot read credentials {path}: {exc}") from exc
    if not isinstance(entries, list):
        raise DirectError(f"{path}: expected a JSON list of {{serial_number, key_id, secret}}")
    out: dict[str, DeviceCredentials] = {}
    for i, entry in enumerate(entries):
        try:
            creds = DeviceCredentials(
                str(entry["serial_number"]), str(entry["key_id"]), str(entry["secret"])
            )
        except (KeyError, TypeError):
            raise DirectError(f"{path}: entry {i} needs serial_number, key_id and secret") from None
        out[creds.serial_number] = creds
    return out


# --------------------------------------------------------------------------- the agent


@dataclass
class Upload:
    """One upload the agent decided on: a batch with one report, and why it was made."""

    serial_number: str
    trigger: Trigger
    batch: wire.Batch
    sim_time: datetime
    jobs: int
    pages: int
    status: Literal["queued", "sent", "duplicate", "rejected"] = "queued"
    attempts: int = 0
    sent_at: datetime | None = None
    error: str | None = None

    def info(self) -> dict[str, Any]:
        return {
            "serial_number": self.serial_number,
            "batch_id": str(self.batch.batch_id),
            "trigger": self.trigger,
            "sim_time": _iso(self.sim_time),
            "jobs": self.jobs,
            "pages": self.pages,
            "status": self.status,
            "attempts": self.attempts,
            "sent_at": _iso(self.sent_at) if self.sent_at else None,
            "error": self.error,
        }


class DirectAgent:
    """Decides when one printer uploads and builds what it uploads (no I/O).

    Call ``start(now)`` once (the boot report), then ``poll(now)`` as simulated time goes
    on; each returns the uploads that became due, oldest first.
    """

    def __init__(
        self,
        printer: VirtualPrinter,
        *,
        key_id: str,
        policy: UploadPolicy | None = None,
    ) -> None:
        self.printer = printer
        self.key_id = key_id
        self.policy = policy or UploadPolicy()
        self._t = 0  # last simulated epoch second processed
        self._last_upload = 0
        self._seen_jobs = 0  # jobs of printer.jobs already assigned to an upload or pending
        self._pending: list[SimJob] = []
        self._pending_pages = 0
        self._open_alerts: dict[int, wire.Alert] = {}
        self._cleared: list[wire.Alert] = []
        self.started = False

    @property
    def serial_number(self) -> str:
        return self.printer.serial_number

    def start(self, now: datetime) -> list[Upload]:
        """Boot: catch up to ``now`` and upload at once, whatever happened before."""
        if self.started:
            raise RuntimeError("agent already started")
        self.started = True
        t = _epoch(now)
        self.printer.advance_to(_dt(t))
        self._t = t
        # Jobs printed before boot are in the lifetime counters, not in the job stream.
        self._seen_jobs = len(self.printer.jobs)
        self._track_alerts(t)
        return [self._upload(t, "boot")]

    def poll(self, now: datetime) -> list[Upload]:
        """Walk simulated time up to ``now`` second by second; the uploads that fell due."""
        if not self.started:
            raise RuntimeError("call start() first")
        uploads: list[Upload] = []
        target = _epoch(now)
        while self._t < target:
            self._t += 1
            t = self._t
            # The printer only changes at its own event times; advancing to every second
            # (cheap when nothing is due) is what makes each trigger exact.
            self.printer.advance_to(_dt(t))
            jobs = self.printer.jobs
            while self._seen_jobs < len(jobs):
                job = jobs[self._seen_jobs]
                self._seen_jobs += 1
                self._pending.append(job)
                self._pending_pages += job.pages
                if len(self._pending) >= self.policy.max_jobs:
                    uploads.append(self._upload(t, "jobs"))
                elif self._pending_pages >= self.policy.max_pages:
                    uploads.append(self._upload(t, "pages"))
            if self._track_alerts(t):
                uploads.append(self._upload(t, "alert"))
            elif t - self._last_upload >= self.policy.interval.total_seconds():
                uploads.append(self._upload(t, "interval"))
        return uploads

    def upload_now(self, now: datetime) -> list[Upload]:
        """Catch up to ``now`` and upload (trigger ``manual``): the control API's ``/flush``.

        Returns what fell due while catching up, then the manual upload, unless an upload
        made at this very second already carries everything.
        """
        uploads = self.poll(now)
        if uploads and uploads[-1].sim_time == _dt(self._t):
            return uploads
        return [*uploads, self._upload(self._t, "manual")]

    # ------------------------------------------------------------------ building reports

    def _track_alerts(self, t: int) -> bool:
        """Note raised and cleared alerts; True if a high-severity one was just raised."""
        current = {a.sequence_number: a for a in self.printer.alerts}
        urgent = False
        for seq, sim_alert in current.items():
            if seq not in self._open_alerts:
                alert = _wire_alert(sim_alert)
                self._open_alerts[seq] = alert
                urgent = urgent or alert.severity in _HIGH_SEVERITY
        for seq in [s for s in self._open_alerts if s not in current]:
            self._cleared.append(
                self._open_alerts.pop(seq).model_copy(update={"cleared_at": _dt(t)})
            )
        return urgent

    def _upload(self, t: int, trigger: Trigger) -> Upload:
        at = _dt(t)
        jobs = self._pending
        report = wire.DeviceReport(
            kind=wire.ReportKind.USAGE,
            collected_at=at,
            device=_identity(self.printer),
            status=_status(self.printer),
            usage=self.printer.lifetime_usage(),
            jobs=[j.to_wire() for j in jobs],
            alerts=[*self._cleared, *self._open_alerts.values()],
        )
        upload = Upload(
            serial_number=self.printer.serial_number,
            trigger=trigger,
            batch=wire.Batch(
                batch_id=uuid.uuid4(), created_at=at, sender=self.key_id, reports=[report]
            ),
            sim_time=at,
            jobs=len(jobs),
            pages=self._pending_pages,
        )
        self._pending = []
        self._pending_pages = 0
        self._cleared = []
        self._last_upload = t
        return upload


def _identity(printer: VirtualPrinter) -> wire.DeviceIdentity:
    return wire.DeviceIdentity(
        vendor=VENDOR,
        serial_number=printer.serial_number,
        product_number=printer.model.product_number,
        product_name=printer.model.name,
        firmware_version=printer.firmware_version,
        driver=DRIVER_ID,
    )


def _status(printer: VirtualPrinter) -> wire.DeviceStatus:
    return wire.DeviceStatus(
        engine_state=printer.engine_state(),
        cartridges=[
            wire.Cartridge(
                slot=c.slot,
                color=c.spec.color,
                status=_CARTRIDGE_STATE.get(c.state, wire.SupplyState.UNKNOWN),
                level_percent=c.level_percent,
                product_number=c.spec.product_number,
                product_name=c.spec.name,
                serial_number=c.serial_number,
                manufacturer=VENDOR,
                capacity_ul=c.spec.capacity_ul,
                installed_on=c.installed_on,
            )
            for c in printer.cartridges
        ],
        printheads=[
            wire.Printhead(
                slot=p.slot,
                colors=list(p.spec.colors),
                status=wire.SupplyState.LOW if p.replacement_due else wire.SupplyState.OK,
                health_percent=p.health_percent,
                product_number=p.spec.product_number,
                product_name=p.spec.name,
                serial_number=p.serial_number,
                installed_on=p.installed_on,
            )
            for p in printer.printheads
        ],
        media_sources=[
            wire.MediaSource(
                name=r.name,
                state="ready" if r.loaded else "empty",
                media_type=r.media_type,
                width_mm=r.width_mm,
                remaining_length_mm=r.remaining_mm,
            )
            for r in printer.rolls
        ],
    )


def _wire_alert(alert: SimAlert) -> wire.Alert:
    return wire.Alert(
        code=alert.code,
        severity=_SEVERITY.get(alert.severity.lower(), wire.AlertSeverity.WARNING),
        text=alert.text,
        first_seen=_dt(alert.raised_at),
        component=alert.component,
    )


# --------------------------------------------------------------------------- the uploader


class PortalRejected(Exception):
    """The portal refused a batch for good (4xx other than 401/408/429): resending is useless."""


class DirectUploader:
    """Sends one device's uploads in order, signed, keeping them while the portal is away.

    ``client`` is an ``httpx.AsyncClient`` whose ``base_url`` is the portal; tests pass one
    with their own transport or event hooks to see every request.
    """

    def __init__(
        self,
        credentials: DeviceCredentials,
        *,
        client: httpx.AsyncClient,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        encoding: str = "zstd",
    ) -> None:
        self.credentials = credentials
        self.client = client
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.encoding = encoding
        self.queue: deque[Upload] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._rng = random.Random()  # noqa: S311 (retry jitter, not secrets)

    def put(self, uploads: Iterable[Upload]) -> None:
        for upload in uploads:
            self.queue.append(upload)
            self._idle.clear()
        self._wake.set()

    async def drained(self) -> None:
        """Wait until every queued upload has been sent (or refused for good)."""
        await self._idle.wait()

    async def run(self) -> None:
        """Send forever: the oldest upload first, the next only once it went through."""
        delay = self.retry_initial_s
        while True:
            if not self.queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            upload = self.queue[0]
            try:
                await self.send(upload)
            except PortalRejected as exc:
                upload.status = "rejected"
                upload.error = str(exc)
                log.warning(
                    "%s: batch %s refused: %s", upload.serial_number, upload.batch.batch_id, exc
                )
            except (httpx.HTTPError, OSError, RetryLater) as exc:
                upload.error = f"{type(exc).__name__}: {exc}"
                # Full jitter: a fleet coming back after an outage does not retry in step.
                await asyncio.sleep(self._rng.uniform(delay / 2, delay))
                delay = min(delay * 2, self.retry_max_s)
                continue
            self.queue.popleft()
            delay = self.retry_initial_s

    async def send(self, upload: Upload) -> wire.BatchReceipt:
        """One signed POST of ``upload``; raises ``RetryLater``/``PortalRejected``/httpx errors."""
        upload.attempts += 1
        body = encode_batch(upload.batch, self.encoding)
        url = str(self.client.base_url.join(BATCHES_PATH))
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": self.encoding,
        }
        # Signed afresh on every try: a new nonce and created time, the same batch id.
        headers.update(
            httpsig.sign_request(
                method="POST",
                url=url,
                body=body,
                key_id=self.credentials.key_id,
                secret=self.credentials.secret,
            )
        )
        response = await self.client.post(url, content=body, headers=headers)
        if response.status_code == 200:
            receipt = wire.BatchReceipt.model_validate_json(response.content)
            upload.status = "sent" if receipt.status == "stored" else "duplicate"
            upload.sent_at = datetime.now(UTC)
            upload.error = None
            return receipt
        detail = _problem_detail(response)
        if response.status_code in (401, 408, 429) or response.status_code >= 500:
            # 401 may be a clock out of the window or a secret being rotated: keep the data.
            raise RetryLater(f"HTTP {response.status_code}: {detail}")
        raise PortalRejected(f"HTTP {response.status_code}: {detail}")


class RetryLater(Exception):
    """The portal could not take the batch now (5xx, 401, 408, 429): try again later."""


def _problem_detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", ""))[:200]
    except ValueError:
        return response.text[:200]


# --------------------------------------------------------------------------- the fleet


@dataclass
class DirectConfig:
    portal_url: str
    credentials: dict[str, DeviceCredentials]
    seed: int = 1
    devices: int | None = None
    """Fleet size; default: as many as credentials. Every printer needs credentials."""
    speed: float = 60.0
    start: datetime | None = None
    ca_file: Path | None = None
    policy: UploadPolicy = field(default_factory=UploadPolicy)
    control_host: str = "127.0.0.1"
    control_port: int = 0
    tick_s: float = 0.1
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0


def fleet_serials(*, seed: int, devices: int) -> list[str]:
    """The serial numbers of a simulated fleet, so they can be provisioned before it runs."""
    start = datetime(2026, 1, 1, tzinfo=UTC)  # serials depend on the seed only
    return [p.serial_number for p in build_fleet(seed=seed, count=devices, start=start)]


class DirectSimulator:
    """Printers with direct-connection firmware, on one simulated clock, with a control API.

    ``async with DirectSimulator(config) as sim:`` or ``await start()`` / ``await stop()``.
    """

    def __init__(
        self,
        config: DirectConfig,
        *,
        client_factory: Callable[[], httpx.AsyncClient] | None = None,
    ) -> None:
        count = config.devices if config.devices is not None else len(config.credentials)
        if count < 1:
            raise DirectError("no devices: give --devices or a non-empty credentials file")
        if not config.speed > 0:
            raise DirectError(f"speed must be > 0, got {config.speed}")
        if config.start is not None and config.start.tzinfo is None:
            raise DirectError("start time must carry a time zone")
        self.config = config
        self.clock = SimClock(start=config.start, speed=config.speed)
        self.printers = build_fleet(seed=config.seed, count=count, start=self.clock.now())
        missing = [
            p.serial_number for p in self.printers if p.serial_number not in config.credentials
        ]
        if missing:
            raise DirectError(
                f"no credentials for {len(missing)} device(s), e.g. {missing[0]}: provision them "
                "first (fleetmeter sim-direct --list-serials, fleetmeter portal add-device)"
            )
        self._client_factory = client_factory or self._default_client
        self.client: httpx.AsyncClient | None = None
        self.agents: list[DirectAgent] = []
        self.uploaders: dict[str, DirectUploader] = {}
        self.uploads: list[Upload] = []
        self.control_port = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._server: uvicorn.Server | None = None
        self._lock = asyncio.Lock()

    def _default_client(self) -> httpx.AsyncClient:
        verify: ssl.SSLContext | bool = True
        if self.config.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(self.config.ca_file))
        return httpx.AsyncClient(base_url=self.config.portal_url, verify=verify, timeout=30.0)

    @property
    def control_url(self) -> str:
        return f"http://{self.config.control_host}:{self.control_port}"

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, control: bool = True) -> None:
        self.client = self._client_factory()
        now = self.clock.now()
        for printer in self.printers:
            creds = self.config.credentials[printer.serial_number]
            agent = DirectAgent(printer, key_id=creds.key_id, policy=self.config.policy)
            uploader = DirectUploader(
                creds,
                client=self.client,
                retry_initial_s=self.config.retry_initial_s,
                retry_max_s=self.config.retry_max_s,
            )
            self.agents.append(agent)
            self.uploaders[printer.serial_number] = uploader
            self._queue(agent.start(now))
            self._tasks.append(asyncio.create_task(uploader.run()))
        self._tasks.append(asyncio.create_task(self._tick()))
        if control:
            await self._start_control()

    async def stop(self) -> None:
        """Stop the agents, senders and control API; unsent uploads are dropped (logged)."""
        if self._server is not None:
            self._server.should_exit = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._server = None
        unsent = sum(len(u.queue) for u in self.uploaders.values())
        if unsent:
            log.warning("stopping with %d upload(s) not sent", unsent)
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def __aenter__(self) -> DirectSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _queue(self, uploads: Sequence[Upload]) -> None:
        for upload in uploads:
            self.uploads.append(upload)
            log.info(
                "%s: upload (%s) %d job(s), %d page(s) at %s",
                upload.serial_number,
                upload.trigger,
                upload.jobs,
                upload.pages,
                _iso(upload.sim_time),
            )
            self.uploaders[upload.serial_number].put([upload])

    def advance(self) -> None:
        """Bring every agent (and its printer) to the clock's instant; queue what fell due."""
        now = self.clock.now()
        for agent in self.agents:
            self._queue(agent.poll(now))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_s)
            async with self._lock:
                self.advance()

    async def flush(self) -> dict[str, Any]:
        """Every device uploads now (trigger ``manual``); returns once all queues are empty."""
        async with self._lock:
            now = self.clock.now()
            for agent in self.agents:
                self._queue(agent.upload_now(now))
        await asyncio.gather(*(u.drained() for u in self.uploaders.values()))
        return {"flushed": len(self.agents), "sim_time": _iso(self.clock.now())}

    # ------------------------------------------------------------------ control API

    def truth(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        out = []
        for agent in self.agents:
            agent.printer.advance_to(now)
            out.append({"address": None, "port": None, **agent.printer.truth()})
        return out

    def uploads_info(self) -> list[dict[str, Any]]:
        return [u.info() for u in self.uploads]

    def clock_info(self) -> dict[str, Any]:
        return {
            "sim_time": _iso(self.clock.now()),
            "speed": self.clock.speed,
            "paused": self.clock.paused,
        }

    def devices_info(self) -> list[dict[str, Any]]:
        return [
            {
                "serial_number": a.printer.serial_number,
                "model": a.printer.model.name,
                "key_id": a.key_id,
                "queued": len(self.uploaders[a.serial_number].queue),
            }
            for a in self.agents
        ]

    async def pause(self) -> dict[str, Any]:
        async with self._lock:
            self.clock.pause()
            # Truth read after a pause is the truth at the frozen instant.
            self.advance()
        return self.clock_info()

    async def resume(self) -> dict[str, Any]:
        self.clock.resume()
        return self.clock_info()

    def ready_info(self) -> dict[str, Any]:
        return {
            "ready": True,
            "control_url": self.control_url,
            "devices": [
                {"serial_number": a.printer.serial_number, "model": a.printer.model.name}
                for a in self.agents
            ],
        }

    async def _start_control(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.config.control_host, self.config.control_port))
            sock.listen(64)
        except OSError as exc:
            sock.close()
            raise DirectError(f"cannot bind control API: {exc.strerror or exc}") from None
        self.control_port = sock.getsockname()[1]
        config = uvicorn.Config(
            _ControlApp(self),
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        server = _QuietServer(config)
        self._server = server
        self._tasks.append(asyncio.create_task(server.serve(sockets=[sock])))
        while not server.started:
            if self._tasks[-1].done():
                self._tasks[-1].result()
                raise DirectError("control API stopped during startup")
            await asyncio.sleep(0.01)


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: the CLI owns SIGINT/SIGTERM and stops us."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _ControlApp:
    """ASGI app of the control API (plain HTTP on loopback, for tests and the demo)."""

    def __init__(self, sim: DirectSimulator) -> None:
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        sim = self.sim
        handlers: dict[tuple[str, str], Callable[[], Awaitable[Any]]] = {
            ("GET", "/truth"): _sync(sim.truth),
            ("GET", "/uploads"): _sync(sim.uploads_info),
            ("GET", "/clock"): _sync(sim.clock_info),
            ("GET", "/devices"): _sync(sim.devices_info),
            ("POST", "/pause"): sim.pause,
            ("POST", "/resume"): sim.resume,
            ("POST", "/flush"): sim.flush,
        }
        handler = handlers.get((scope["method"], scope["path"]))
        if handler is None:
            status = 405 if scope["path"] in {p for _, p in handlers} else 404
            await _respond(send, status, {"error": "not found"})
            return
        await _respond(send, 200, await handler())


def _sync(func: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        return func()

    return call


async def _respond(send: Send, status: int, doc: Any) -> None:
    body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- time helpers


def _epoch(t: datetime) -> int:
    return math.floor(t.timestamp())


def _dt(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")
