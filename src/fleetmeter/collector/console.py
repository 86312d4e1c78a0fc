"""The site console: a read-only local web page of the collector's state, and its JSON.

``GET /`` (HTML) and ``GET /api/status`` (JSON) show every known device (state, supplies and
alerts from its last report, last successful poll, last error), the outbox (depth, size against
its cap, age of the oldest waiting report, and a warning above ``outbox_alert_rows``, at the
cap, or when the disk is full), the upload status and the config the collector runs. It is
served by uvicorn inside the collector's own event loop (so it reads the same ``State``
connection, from the same thread) on a socket bound before the agent starts, which makes
``listen = "127.0.0.1:0"`` work for tests.

It changes nothing: GET (and HEAD) only, anything else is 405. Device-supplied strings (model
names, alert texts, errors) are untrusted and escaped by Jinja2's autoescape; the Content
Security Policy allows no script and only the console's own stylesheet. Requests naming a
host other than an IP address, localhost, this machine or ``allowed_hosts`` are refused, so
that a web page on the internet cannot read the console through DNS rebinding.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Generator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleetmeter.wire import now_utc

if TYPE_CHECKING:
    from fleetmeter.collector.agent import Agent
    from fleetmeter.collector.state import State

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
    "cache-control": "no-store",
}
REFRESH_SECONDS = 30

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,  # every device string is untrusted
    undefined=jinja2.StrictUndefined,
)


class ConsoleError(RuntimeError):
    """The console cannot listen on its configured address."""


# --------------------------------------------------------------------------- status document


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def status_document(agent: Agent) -> dict[str, Any]:
    """Everything the console shows, as JSON-ready data (also ``GET /api/status``)."""
    state = agent.state
    config = agent.config
    statuses = state.device_statuses()
    schedules = agent.scheduler.devices if agent.scheduler is not None else {}
    devices = []
    for known in state.known_devices():
        key = (known.driver, known.serial_number or "")
        row = statuses.get(key)
        snapshot = row.snapshot if row is not None else {}
        schedule = schedules.get((*key, known.address))
        failing = row is not None and (
            row.last_error_at is not None
            and (row.last_success_at is None or row.last_error_at > row.last_success_at)
        )
        devices.append(
            {
                "address": known.address,
                "driver": known.driver,
                "serial_number": known.serial_number,
                "vendor": known.vendor,
                "model": known.model,
                "state": snapshot.get("state"),
                "ok": not failing and row is not None and row.last_success_at is not None,
                "last_success_at": _iso(row.last_success_at if row else None),
                "last_usage_at": _iso(row.last_usage_at if row else None),
                "last_error": row.last_error if row else known.last_error,
                "last_error_at": _iso(row.last_error_at if row else None),
                "failing": failing,
                "certificate_changed_since": _iso(row.cert_alert_since if row else None),
                "next_usage_at": _epoch_iso(schedule.next_usage) if schedule else None,
                "next_health_at": _epoch_iso(schedule.next_health) if schedule else None,
                "cartridges": snapshot.get("cartridges", []),
                "printheads": snapshot.get("printheads", []),
                "media": snapshot.get("media", []),
                "materials": snapshot.get("materials", []),
                "alerts": snapshot.get("alerts", []),
                "impressions": snapshot.get("impressions"),
            }
        )
    upload = agent.uploader.status
    return {
        "collector": {
            "name": config.collector.name,
            "config_version": config.config_version,
            "version": config.version,
            "config_sha256": config.source_sha256,
            "started_at": _iso(agent.started_at),
            "now": _iso(now_utc()),
            "hosts_in_range": len(agent.targets),
            "drivers": list(agent.drivers),
            "speed": config.collector.speed,
        },
        "outbox": outbox_document(state),
        "upload": {
            "portal": config.portal.url,
            "last_attempt_at": _iso(upload.last_attempt_at),
            "last_success_at": _iso(upload.last_success_at),
            "last_error": upload.last_error,
            "last_error_at": _iso(upload.last_error_at),
            "next_retry_at": _iso(upload.next_retry_at),
            "batches_sent": upload.batches_sent,
        },
        "devices": devices,
    }


def outbox_document(state: State) -> dict[str, Any]:
    """The outbox's depth and retention: what waits, since when, how close to the cap."""
    depth = state.outbox_depth()
    now = now_utc()
    oldest = depth.oldest_pending_at
    return {
        "pending": depth.pending,
        "quarantined": depth.quarantined,
        "oldest_pending_at": _iso(oldest),
        "oldest_pending_age_s": int((now - oldest).total_seconds()) if oldest else None,
        "used_bytes": depth.used_bytes,
        "max_bytes": depth.limits.max_bytes,
        "alert_rows": depth.limits.alert_rows,
        # pending > alert_rows: the portal has not taken the reports for a while
        "above_alert": depth.above_alert,
        # at or near max_bytes: the oldest unsent health reports are dropped to make room
        "at_cap": depth.at_cap,
        # at the cap with billing data only: usage polls are stopped (nothing is deleted)
        "full_since": _iso(state.outbox_full_since),
        "disk_full_since": _iso(state.full_since),
    }


def _age(seconds: int | None) -> str:
    """``3 d 4 h``, ``2 h 5 min``, ``4 min``, ``12 s``: the two largest units."""
    if seconds is None:
        return ""
    units = (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1))
    parts: list[str] = []
    for name, size in units:
        if seconds >= size or (name == "s" and not parts):
            parts.append(f"{seconds // size} {name}")
            seconds %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def _megabytes(value: int) -> str:
    return f"{value / 1_000_000:,.1f} MB"


_TEMPLATES.filters.update(age=_age, megabytes=_megabytes)


def _epoch_iso(value: float) -> str:
    return datetime.fromtimestamp(value, now_utc().tzinfo).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- app


class _Guard:
    """Security headers on every response; requests for a foreign Host refused (400)."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: set[str]) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts

    def _host_allowed(self, scope: Scope) -> bool:
        host = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1").lower()
        if host.startswith("["):  # [v6]:port
            host = host[1 : host.find("]")]
        elif host.count(":") == 1:
            host = host.split(":")[0]
        if host in self.allowed_hosts:
            return True
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return False
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        if not self._host_allowed(scope):
            response = PlainTextResponse("unknown host name (see [console] allowed_hosts)", 400)
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def create_app(agent: Agent) -> ASGIApp:
    """The console's ASGI app over ``agent`` (read at each request, never written)."""

    async def page(request: Request) -> Response:
        html = _TEMPLATES.get_template("console.html").render(
            status=status_document(agent), refresh=REFRESH_SECONDS
        )
        return HTMLResponse(html)

    async def api_status(request: Request) -> Response:
        return JSONResponse(status_document(agent))

    async def stylesheet(request: Request) -> Response:
        css = (Path(__file__).parent / "templates" / "console.css").read_text(encoding="utf-8")
        return Response(css, media_type="text/css")

    # methods=["GET"]: Starlette answers HEAD too, and 405 (with Allow) to everything else.
    app = Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/api/status", api_status, methods=["GET"]),
            Route("/console.css", stylesheet, methods=["GET"]),
        ]
    )
    host = agent.config.console.host.lower()
    allowed = {"localhost", host, *(h.lower() for h in agent.config.console.allowed_hosts)}
    allowed |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return _Guard(app, allowed_hosts=allowed)


# --------------------------------------------------------------------------- server


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the collector's loop: the collector owns SIGINT/SIGTERM (uvicorn would
    otherwise capture them and re-raise them when it stops)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on (host, port); port 0 picks a free one."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConsoleError(f"console: cannot resolve listen host {host!r}: {exc}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConsoleError(f"console: cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(False)
    return sock


class SiteConsole:
    """The console's socket and server; ``serve()`` runs until ``shutdown()``."""

    def __init__(self, agent: Agent, sock: socket.socket) -> None:
        self.socket = sock
        host, port = sock.getsockname()[:2]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
        config = uvicorn.Config(
            create_app(agent),
            log_config=None,  # keep the collector's logging setup
            access_log=False,
            lifespan="off",
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=2,
        )
        self._server = _EmbeddedServer(config)

    @classmethod
    def bind(cls, agent: Agent) -> SiteConsole:
        section = agent.config.console
        return cls(agent, bind_socket(section.host, section.port))

    async def serve(self) -> None:
        await self._server.serve(sockets=[self.socket])

    async def wait_started(self, timeout_s: float = 10.0) -> None:
        """Until the server accepts connections (or has stopped: its task shows why)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not self._server.started and not self._server.should_exit:
            if asyncio.get_running_loop().time() > deadline:
                raise ConsoleError(f"console: did not start within {timeout_s:g} s")
            await asyncio.sleep(0.01)

    def shutdown(self) -> None:
        self._server.should_exit = True

    def close(self) -> None:
        self.socket.close()
