"""Run the portal under uvicorn: pre-bound socket, optional TLS, one JSON "ready" line on stdout.

The ready line (exactly one line, flushed, nothing else on stdout) is how ``fleetmeter demo``
and tests learn the URL, which matters with ``port=0``::

    {"ready": true, "url": "https://127.0.0.1:54321"}
"""

from __future__ import annotations

import json
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import uvicorn

from fleetmeter.portal.app import create_app
from fleetmeter.portal.errors import ConfigError
from fleetmeter.portal.settings import PortalSettings
from fleetmeter.portal.store.migrate import upgrade

# Every uvicorn log to stderr: stdout carries only the ready line (uvicorn's default
# config sends access logs to stdout).
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"default": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "default",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
}


class _ReadyServer(uvicorn.Server):
    """Prints the ready line once uvicorn has started serving on the socket."""

    def __init__(self, config: uvicorn.Config, url: str) -> None:
        super().__init__(config)
        self.url = url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            sys.stdout.write(json.dumps({"ready": True, "url": self.url}) + "\n")
            sys.stdout.flush()


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before serving so that port 0 resolves to a real port we can announce."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def serve(
    settings: PortalSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8443,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    migrate: bool = True,
) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit code (0 on a clean stop)."""
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    for path in (tls_cert, tls_key):
        if path is not None and not path.is_file():
            raise ConfigError(f"no such file: {path}")
    tls = tls_cert is not None
    if tls:
        settings = settings.model_copy(update={"cookie_secure": True})
    if migrate:
        settings.ensure_data_dir()
        upgrade(settings.effective_database_url)
    app = create_app(settings)

    sock = bind_socket(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    # A wildcard bind is announced as loopback: the URL is for local clients to connect to.
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(bound_host) or (  # noqa: S104
        f"[{bound_host}]" if ":" in bound_host else bound_host
    )
    url = f"{'https' if tls else 'http'}://{shown}:{bound_port}"
    config = uvicorn.Config(
        app,
        log_config=LOG_CONFIG,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        proxy_headers=False,  # no trusted proxy configured: do not believe X-Forwarded-*
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    server = _ReadyServer(config, url)
    stop_signals: list[int] = []
    # uvicorn restores the previous handlers after its graceful shutdown and re-raises the
    # signal it caught; with the default handlers that would kill us (-15) or raise
    # KeyboardInterrupt. Recording it instead lets a requested stop exit 0.
    previous = {
        sig: signal.signal(sig, lambda signum, _frame: stop_signals.append(signum))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # A stop we were asked for is success; a failed startup (an unreadable TLS key, a
    # lifespan error) ends without a signal and must not exit 0.
    return 0 if stop_signals or server.started else 1
