"""Uploads through a real HTTP proxy: Debian's tinyproxy with Basic authentication, started by
the tests on a free 127.0.0.1 port (``scripts/peers/install-tinyproxy`` installs it; without
it these tests skip).

``[proxy]`` with the right and the wrong credentials, the environment's ``HTTPS_PROXY`` and
``NO_PROXY`` without it, an https proxy, devices never proxied, and the proxy's password in
no log line, error, repr or stored failure reason.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import select
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleetmeter.collector.agent import poll_once, run_async
from fleetmeter.collector.config import CollectorConfig, ConfigError, load_config
from fleetmeter.collector.state import State
from fleetmeter.collector.uploader import (
    PortalProxy,
    Uploader,
    no_proxy_matches,
    portal_proxy,
)
from fleetmeter.devices.base import PinStore, Target
from fleetmeter.devices.http import DeviceHttp
from fleetmeter.signing import certs
from fleetmeter.supervise import programs
from fleetmeter.wire import DeviceReport
from tests.e2e_stack import prepare_portal

from .conftest import TOKEN, FakeDriver, PortalStub, write_config
from .test_uploader import report

TINYPROXY = shutil.which("tinyproxy")
needs_tinyproxy = pytest.mark.skipif(
    TINYPROXY is None,
    reason="tinyproxy is not installed (scripts/peers/install-tinyproxy installs Debian's "
    "tinyproxy-bin)",
)
USER = "fleet-site"
PASSWORD = "pr0xy-Pa55-qz7"  # distinctive: searched for in every log and error below
WRONG = "wr0ng-Pa55-kx4"
SECRETS = (
    PASSWORD,
    WRONG,
    base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
    base64.b64encode(f"{USER}:{WRONG}".encode()).decode(),
)
PROXY_VARIABLES = (
    *("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"),
    *("no_proxy", "NO_PROXY"),
)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy from the machine running the tests: each test sets what it means."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


# --------------------------------------------------------------------------- tinyproxy


@dataclass
class Tinyproxy:
    """One tinyproxy process (foreground, its own session), its port and its log file."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def requests(self) -> list[str]:
        """The request lines it received, e.g. ``CONNECT 127.0.0.1:8443 HTTP/1.1``."""
        marker = "): "
        return [
            line.split(marker, 1)[1]
            for line in self.log().splitlines()
            if "Request (file descriptor" in line and marker in line
        ]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_tinyproxy(directory: Path, *, connect_ports: list[int], auth: bool = True) -> Tinyproxy:
    """Start tinyproxy on a free port and wait until it accepts connections. Retries on
    another port if the one picked was taken in the meantime."""
    assert TINYPROXY is not None
    directory.mkdir(parents=True, exist_ok=True)
    last_log = ""
    for attempt in range(3):
        port = free_port()
        log_path = directory / f"tinyproxy-{attempt}.log"
        conf = directory / f"tinyproxy-{attempt}.conf"
        lines = [
            f"Port {port}",
            "Listen 127.0.0.1",
            "Timeout 30",
            f'LogFile "{log_path}"',
            "LogLevel Info",  # Info includes the Connect level: every request line is logged
            f'PidFile "{directory / f"tinyproxy-{attempt}.pid"}"',
            "MaxClients 32",
            "Allow 127.0.0.1",
            "DisableViaHeader Yes",
            # Only the portal's port may be tunnelled to (tinyproxy allows every port to
            # CONNECT when no ConnectPort is given at all).
            *(f"ConnectPort {p}" for p in connect_ports),
        ]
        if auth:
            lines.append(f"BasicAuth {USER} {PASSWORD}")
        conf.write_text("\n".join(lines) + "\n")
        with open(directory / f"tinyproxy-{attempt}.out", "wb") as out:
            process = subprocess.Popen(
                [TINYPROXY, "-d", "-c", str(conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        proxy = Tinyproxy(process, port, log_path)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            if log_path.exists() and "Accepting connections" in proxy.log():
                return proxy
            time.sleep(0.05)
        last_log = proxy.log() if log_path.exists() else ""
        proxy.stop()
    raise RuntimeError(f"tinyproxy did not start: {last_log[-2000:]}")


@pytest.fixture
def tinyproxy_factory(tmp_path: Path) -> Iterator[Callable[..., Tinyproxy]]:
    """Starts tinyproxies for a test; every one is stopped at its end, whatever happened."""
    if TINYPROXY is None:
        pytest.skip("tinyproxy is not installed (scripts/peers/install-tinyproxy)")
    started: list[Tinyproxy] = []

    def start(connect_ports: list[int], *, auth: bool = True) -> Tinyproxy:
        proxy = start_tinyproxy(
            tmp_path / f"proxy{len(started)}", connect_ports=connect_ports, auth=auth
        )
        started.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for proxy in started:
            proxy.stop()


@pytest.fixture
def tinyproxy(tinyproxy_factory: Callable[..., Tinyproxy], portal: PortalStub) -> Tinyproxy:
    """A tinyproxy with Basic auth that may CONNECT to the portal stub's port only."""
    return tinyproxy_factory([portal.port])


# --------------------------------------------------------------------------- helpers


def proxy_section(
    url: str, *, user: str | None = USER, password: str | None = PASSWORD, extra: str = ""
) -> str:
    lines = ["[proxy]", f"url = {json.dumps(url)}"]
    if user is not None:
        lines.append(f"username = {json.dumps(user)}")
    if password is not None:
        lines.append(f"password = {json.dumps(password)}")
    return "\n".join(lines) + "\n" + extra


def config_with(
    tmp_path: Path, portal_url: str, ca_file: Path, proxy: str = "", name: str = "c.toml"
) -> CollectorConfig:
    return load_config(
        write_config(tmp_path / name, portal_url=portal_url, ca_file=ca_file, extra=proxy)
    )


def batch_failures(config: CollectorConfig) -> list[str]:
    with State(config.data_dir) as state, state.transaction() as db:
        return [row[0] for row in db.execute("SELECT last_error FROM batches").fetchall()]


# --------------------------------------------------------------------------- through the proxy


@needs_tinyproxy
def test_uploads_go_through_the_configured_proxy_with_its_credentials(
    tmp_path: Path,
    portal: PortalStub,
    ca_file: Path,
    tinyproxy: Tinyproxy,
    fake_driver: FakeDriver,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx's and httpcore's own logging too
    # [proxy] wins: the environment's proxy (here one that does not exist) is ignored.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    fake_driver.add("127.0.1.1", "SN-PROXY", jobs=3)
    config = config_with(tmp_path, portal.url, ca_file, proxy_section(tinyproxy.url))

    result = poll_once(config)

    assert result.ok, result.as_dict()
    assert result.outbox_remaining == 0
    (received,) = portal.received
    assert [len(r.jobs) for r in received.batch.reports] == [3]
    # The portal got the collector's own headers, and nothing of the proxy's.
    assert "Proxy-Authorization" not in received.headers
    assert f"CONNECT 127.0.0.1:{portal.port} HTTP/1.1" in tinyproxy.requests()
    assert f"portal traffic goes through proxy {tinyproxy.url} (from [proxy])" in caplog.text
    assert_no_secret(caplog.text, json.dumps(result.as_dict()), repr(config), str(config))
    assert_no_secret(config.model_dump_json(), tinyproxy.log())


@needs_tinyproxy
def test_wrong_password_keeps_the_batch_and_says_the_proxy_refused(
    tmp_path: Path,
    portal: PortalStub,
    ca_file: Path,
    tinyproxy: Tinyproxy,
    fake_driver: FakeDriver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_driver.add("127.0.1.1", "SN-PROXY", jobs=2)
    wrong = config_with(tmp_path, portal.url, ca_file, proxy_section(tinyproxy.url, password=WRONG))

    result = poll_once(wrong)

    assert result.upload_error is not None
    assert "proxy refused the credentials" in result.upload_error
    assert "check proxy.username and proxy.password" in result.upload_error
    assert result.outbox_remaining == 1  # nothing lost, nothing set aside
    assert result.errors == []
    assert portal.received == []
    assert "proxy refused the credentials" in caplog.text
    (failure,) = batch_failures(wrong)  # kept with the batch in the state database
    assert "proxy refused the credentials" in failure
    assert_no_secret(caplog.text, result.upload_error, failure, json.dumps(result.as_dict()))
    assert any(r.startswith("CONNECT ") for r in tinyproxy.requests())

    # The operator fixes the password: the same batch is delivered, once.
    right = config_with(
        tmp_path, portal.url, ca_file, proxy_section(tinyproxy.url), name="fixed.toml"
    )
    with State(right.data_dir) as state:
        (pending,) = state.pending_batches()

        async def upload() -> None:
            async with Uploader(right, state) as uploader:
                assert (await uploader.upload_all()).ok

        asyncio.run(upload())
        assert state.outbox_count(include_quarantined=True) == 0
    assert [r.batch.batch_id for r in portal.received] == [pending.batch_id]


@needs_tinyproxy
def test_no_credentials_is_a_407_that_names_the_missing_settings(
    tmp_path: Path,
    portal: PortalStub,
    ca_file: Path,
    tinyproxy: Tinyproxy,
) -> None:
    config = config_with(
        tmp_path, portal.url, ca_file, proxy_section(tinyproxy.url, user=None, password=None)
    )
    with State(config.data_dir) as state:
        state.enqueue(report_for("SN-1"))

        async def go() -> tuple[str | None, str | None]:
            async with Uploader(config, state) as uploader:
                problem = await uploader.check_portal()
                return problem, (await uploader.upload_all()).error

        problem, error = asyncio.run(go())
        assert state.outbox_count() == 1
    for text in (problem, error):
        assert text is not None
        assert f"proxy asks for credentials: proxy {tinyproxy.url} (from [proxy]) answered " in text
        assert "answered HTTP 407; set proxy.username and proxy.password" in text


@needs_tinyproxy
def test_a_refusing_proxy_is_retried_with_backoff_and_loses_nothing(
    tmp_path: Path,
    portal: PortalStub,
    ca_file: Path,
    tinyproxy: Tinyproxy,
    fake_driver: FakeDriver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    fake_driver.add("127.0.1.1", "SN-PROXY", jobs=2)
    path = write_config(
        tmp_path / "c.toml",
        portal_url=portal.url,
        ca_file=ca_file,
        speed=50.0,  # backoff delays are divided by the speed: retries come quickly
        extra=proxy_section(tinyproxy.url, password=WRONG),
    )
    config = load_config(path)

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_async(config, stop=stop))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and caplog.text.count("upload: retrying in") < 3:
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 15)

    asyncio.run(go())
    assert caplog.text.count("upload: retrying in") >= 3
    assert "portal not reachable now" in caplog.text  # the start-up check says why, too
    assert "proxy refused the credentials" in caplog.text
    assert len([r for r in tinyproxy.requests() if r.startswith("CONNECT ")]) >= 3
    with State(config.data_dir) as state:
        assert state.outbox_count() == 1
        assert state.quarantined() == []
    assert portal.received == []
    assert_no_secret(caplog.text)


@needs_tinyproxy
def test_https_proxy_from_the_environment_without_proxy_config(
    tmp_path: Path,
    portal: PortalStub,
    ca_file: Path,
    tinyproxy: Tinyproxy,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # As curl and most tools take it: the credentials inside the variable's URL.
    monkeypatch.setenv("HTTPS_PROXY", f"http://{USER}:{PASSWORD}@127.0.0.1:{tinyproxy.port}")
    config = config_with(tmp_path, portal.url, ca_file)
    with State(config.data_dir) as state:

        async def go() -> Uploader:
            async with Uploader(config, state) as uploader:
                state.enqueue(report_for("SN-ENV"))
                assert (await uploader.upload_all()).ok
                return uploader

        uploader = asyncio.run(go())
    assert uploader.proxy == PortalProxy(tinyproxy.url, "HTTPS_PROXY")
    assert uploader.status.proxy == f"proxy {tinyproxy.url} (from HTTPS_PROXY)"
    assert len(portal.received) == 1
    assert f"CONNECT 127.0.0.1:{portal.port} HTTP/1.1" in tinyproxy.requests()
    assert_no_secret(caplog.text, repr(uploader.proxy), str(uploader.proxy))


@needs_tinyproxy
def test_wrong_credentials_in_the_environment_are_reported_without_them(
    tmp_path: Path,
    portal: PortalStub,
    ca_file: Path,
    tinyproxy: Tinyproxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("https_proxy", f"http://{USER}:{WRONG}@127.0.0.1:{tinyproxy.port}")
    config = config_with(tmp_path, portal.url, ca_file)
    with State(config.data_dir) as state:
        state.enqueue(report_for("SN-ENV"))

        async def go() -> str | None:
            async with Uploader(config, state) as uploader:
                return (await uploader.upload_all()).error

        error = asyncio.run(go())
        assert state.outbox_count() == 1
    assert error is not None
    assert "proxy refused the credentials" in error
    assert "check the user and password in https_proxy" in error
    assert_no_secret(error)


@needs_tinyproxy
def test_no_proxy_bypasses_the_environment_proxy(
    tmp_path: Path,
    portal: PortalStub,
    ca_file: Path,
    tinyproxy: Tinyproxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://{USER}:{PASSWORD}@127.0.0.1:{tinyproxy.port}")
    monkeypatch.setenv("NO_PROXY", "portal.example,127.0.0.0/8")
    config = config_with(tmp_path, portal.url, ca_file)
    with State(config.data_dir) as state:
        state.enqueue(report_for("SN-DIRECT"))

        async def go() -> Uploader:
            async with Uploader(config, state) as uploader:
                assert (await uploader.upload_all()).ok
                return uploader

        uploader = asyncio.run(go())
    assert uploader.proxy is None and uploader.status.proxy is None
    assert len(portal.received) == 1
    assert tinyproxy.requests() == []  # went direct


@needs_tinyproxy
def test_proxy_config_ignores_no_proxy(
    tmp_path: Path,
    portal: PortalStub,
    ca_file: Path,
    tinyproxy: Tinyproxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # [proxy] replaces the environment whole, NO_PROXY included: what the file says is what
    # the collector does.
    monkeypatch.setenv("NO_PROXY", "*")
    config = config_with(tmp_path, portal.url, ca_file, proxy_section(tinyproxy.url))
    with State(config.data_dir) as state:
        state.enqueue(report_for("SN-1"))

        async def go() -> None:
            async with Uploader(config, state) as uploader:
                assert (await uploader.upload_all()).ok

        asyncio.run(go())
    assert f"CONNECT 127.0.0.1:{portal.port} HTTP/1.1" in tinyproxy.requests()


@needs_tinyproxy
def test_the_proxy_refusing_the_portal_port_is_named(
    tmp_path: Path,
    portal: PortalStub,
    ca_file: Path,
    tinyproxy_factory: Callable[..., Tinyproxy],
) -> None:
    proxy = tinyproxy_factory([portal.port + 1 if portal.port < 65535 else 1])
    config = config_with(tmp_path, portal.url, ca_file, proxy_section(proxy.url))
    with State(config.data_dir) as state:
        state.enqueue(report_for("SN-1"))

        async def go() -> str | None:
            async with Uploader(config, state) as uploader:
                return (await uploader.upload_all()).error

        error = asyncio.run(go())
        assert state.outbox_count() == 1
    assert error is not None
    assert f"proxy {proxy.url} (from [proxy]) refused to open a tunnel to it" in error


def test_proxy_down_names_the_proxy_not_the_portal(
    tmp_path: Path, portal: PortalStub, ca_file: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    config = config_with(tmp_path, portal.url, ca_file, proxy_section(url))
    with State(config.data_dir) as state:
        state.enqueue(report_for("SN-1"))

        async def go() -> str | None:
            async with Uploader(config, state) as uploader:
                return (await uploader.upload_all()).error

        error = asyncio.run(go())
    assert error is not None and f"cannot connect to proxy {url} (from [proxy])" in error


class TlsFront:
    """A TLS listener that passes bytes on to tinyproxy, which has no TLS of its own: together
    they are an https proxy (the collector speaks TLS to the proxy, then TLS to the portal
    inside the tunnel)."""

    def __init__(self, ca: certs.KeyPair, backend_port: int, directory: Path) -> None:
        pair = certs.issue_server_certificate(ca, ["127.0.0.1"])
        pair.write(directory / "front.pem", directory / "front.key")
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(directory / "front.pem", directory / "front.key")
        self.backend_port = backend_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with (
                self.context.wrap_socket(conn, server_side=True) as front,
                socket.create_connection(("127.0.0.1", self.backend_port)) as back,
            ):
                while not self.closed:
                    ready = (
                        [front] if front.pending() else select.select([front, back], [], [], 1)[0]
                    )
                    for sock in ready:
                        data = sock.recv(65536)
                        if not data:
                            return
                        (back if sock is front else front).sendall(data)
        except OSError:
            return

    def close(self) -> None:
        self.closed = True
        self.server.close()


@needs_tinyproxy
def test_an_https_proxy_verified_against_its_ca_file(
    tmp_path: Path,
    portal: PortalStub,
    ca_file: Path,
    test_ca: certs.KeyPair,
    tinyproxy: Tinyproxy,
) -> None:
    front = TlsFront(test_ca, tinyproxy.port, tmp_path)
    try:
        url = f"https://127.0.0.1:{front.port}"
        section = proxy_section(url, extra=f"ca_file = {json.dumps(str(ca_file))}\n")
        config = config_with(tmp_path, portal.url, ca_file, section)
        with State(config.data_dir) as state:
            state.enqueue(report_for("SN-TLS"))

            async def go() -> None:
                async with Uploader(config, state) as uploader:
                    result = await uploader.upload_all()
                    assert result.ok, result

            asyncio.run(go())
        assert len(portal.received) == 1
        assert f"CONNECT 127.0.0.1:{portal.port} HTTP/1.1" in tinyproxy.requests()

        # Without the proxy's CA (the system's CAs do not know the test CA): refused, clearly.
        untrusted = config_with(
            tmp_path, portal.url, ca_file, proxy_section(url), name="untrusted.toml"
        )
        with State(untrusted.data_dir) as state:
            state.enqueue(report_for("SN-TLS2"))

            async def fail() -> str | None:
                async with Uploader(untrusted, state) as uploader:
                    return (await uploader.upload_all()).error

            error = asyncio.run(fail())
        assert error is not None and "TLS certificate verification failed" in error
        assert "proxy.ca_file" in error
    finally:
        front.close()


@needs_tinyproxy
def test_a_real_portal_through_the_proxy(
    tmp_path: Path,
    tinyproxy_factory: Callable[..., Tinyproxy],
    fake_driver: FakeDriver,
) -> None:
    """The real `fleetmeter portal serve` over test-CA TLS, reached only through tinyproxy."""
    (tmp_path / "real").mkdir()
    real = prepare_portal(tmp_path / "real")
    with programs() as running:
        url = real.start(running, tmp_path / "real")
        port = httpx.URL(url).port
        assert port is not None
        proxy = tinyproxy_factory([port])
        fake_driver.add("127.0.1.1", "SN-REAL", jobs=4)
        path = write_config(
            tmp_path / "c.toml",
            portal_url=url,
            ca_file=real.ca_file,
            extra=proxy_section(proxy.url),
        )
        path.write_text(path.read_text().replace(json.dumps(TOKEN), json.dumps(real.token)))
        result = poll_once(load_config(path))
        assert result.ok, result.as_dict()
        with real.client() as client:
            devices = client.get("/api/v1/devices").raise_for_status().json()["items"]
            (device,) = [d for d in devices if d["serial_number"] == "SN-REAL"]
            jobs = client.get(f"/api/v1/devices/{device['id']}/jobs").raise_for_status().json()
        assert len(jobs["items"]) == 4
        assert f"CONNECT 127.0.0.1:{port} HTTP/1.1" in proxy.requests()


# --------------------------------------------------------------------------- devices: never


class _DeviceHandler(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        type(self).seen.append(dict(self.headers))
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@needs_tinyproxy
def test_devices_are_never_read_through_the_environment_proxy(
    tmp_path: Path,
    tinyproxy_factory: Callable[..., Tinyproxy],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = tinyproxy_factory([443])
    with_creds = f"http://{USER}:{PASSWORD}@127.0.0.1:{proxy.port}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, with_creds)
    _DeviceHandler.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DeviceHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        target = Target(host="127.0.0.1", port=port, scheme="http")

        async def read() -> int:
            async with DeviceHttp(
                target, PinStore(), timeout_s=5, max_body_bytes=1000, max_connections=1
            ) as device:
                answer = await device.receive("GET", f"http://127.0.0.1:{port}/x", where="t")
                return answer.status

        assert asyncio.run(read()) == 200
    finally:
        server.shutdown()
        server.server_close()
    (headers,) = _DeviceHandler.seen
    assert "Proxy-Authorization" not in headers and "Via" not in headers
    assert proxy.requests() == []


# --------------------------------------------------------------------------- config and choice


def report_for(serial: str) -> DeviceReport:
    return report(serial, jobs=1)


def write(tmp_path: Path, proxy: str) -> Path:
    return write_config(tmp_path / "c.toml", extra=proxy)


def config_errors(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert_no_secret(str(caught.value), str(caught.value.__cause__), repr(caught.value.__cause__))
    return caught.value.errors


def test_credentials_inside_the_url_are_refused_without_echoing_them(tmp_path: Path) -> None:
    path = write(tmp_path, proxy_section(f"http://{USER}:{PASSWORD}@proxy.example:3128"))
    (line,) = config_errors(path)
    assert line.endswith(
        "proxy: url must not contain credentials (user:password@); set username and password "
        "(or password_file) instead"
    )
    assert USER not in line


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (proxy_section("socks5://proxy.example:1080"), "must look like http://host:port"),
        (proxy_section("proxy.example:3128"), "must look like http://host:port"),
        (proxy_section("http://proxy.example:3128/path"), "without a path"),
        (proxy_section("http://proxy.example:99999"), "invalid port"),
        (proxy_section("http://proxy.example:3128", user=None), "a password needs a username"),
        (
            proxy_section("http://proxy.example:3128", password=None),
            "username needs a password or password_file",
        ),
        (
            proxy_section("http://p.example:3128", extra='password_file = "pw"\n'),
            "at most one of password or password_file",
        ),
        (
            proxy_section("http://p.example:3128", extra='ca_file = "ca.pem"\n'),
            "ca_file verifies an https proxy's certificate",
        ),
        (proxy_section("http://p.example:3128", user="a:b"), "must not contain ':'"),
        (proxy_section("http://p.example:3128", password=""), "password is empty"),
        (proxy_section("http://p.example:3128", extra="port = 3\n"), "unknown key"),
    ],
)
def test_bad_proxy_sections_are_refused(tmp_path: Path, section: str, message: str) -> None:
    (line,) = config_errors(write(tmp_path, section))
    assert ": proxy" in line and message in line


def test_password_file_and_ca_file_resolve_against_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "proxy.password").write_text(PASSWORD + "\n")
    (tmp_path / "proxy-ca.pem").write_bytes(certs.certificate_authority("p").cert_pem)
    section = proxy_section(
        "https://proxy.example:3128",
        password=None,
        extra='password_file = "proxy.password"\nca_file = "proxy-ca.pem"\n',
    )
    config = load_config(write(tmp_path, section))
    assert config.proxy is not None
    assert config.proxy.auth == (USER, PASSWORD)
    assert config.proxy.ca_file == tmp_path / "proxy-ca.pem"
    assert_no_secret(repr(config), config.model_dump_json())

    (tmp_path / "proxy.password").write_text("\n")
    section = proxy_section(
        "http://proxy.example:3128", password=None, extra='password_file = "proxy.password"\n'
    )
    (line,) = config_errors(write(tmp_path, section))
    assert "proxy.password_file" in line and "is empty" in line
    section = proxy_section("https://proxy.example:3128", extra='ca_file = "missing.pem"\n')
    (line,) = config_errors(write(tmp_path, section))
    assert "proxy.ca_file" in line and "does not exist" in line


def test_which_proxy_the_portal_traffic_takes(tmp_path: Path) -> None:
    plain = load_config(write(tmp_path, ""))
    assert portal_proxy(plain, {}) is None
    env = {"HTTPS_PROXY": f"{USER}:{PASSWORD}@proxy.example:3128"}  # no scheme: http://
    chosen = portal_proxy(plain, env)
    assert chosen == PortalProxy("http://proxy.example:3128", "HTTPS_PROXY")
    assert chosen is not None and chosen.auth == (USER, PASSWORD)
    assert_no_secret(repr(chosen), str(chosen))
    # Lower case first, then ALL_PROXY; HTTP_PROXY is not for an https portal.
    both = {"https_proxy": "http://a.example:1", "HTTPS_PROXY": "http://b.example:2"}
    assert portal_proxy(plain, both) == PortalProxy("http://a.example:1", "https_proxy")
    assert portal_proxy(plain, {"HTTP_PROXY": "http://a.example:1"}) is None
    assert portal_proxy(plain, {"ALL_PROXY": "http://c.example:3"}) == PortalProxy(
        "http://c.example:3", "ALL_PROXY"
    )
    # Percent-encoded credentials are decoded; IPv6 proxies keep their brackets.
    coded = portal_proxy(plain, {"HTTPS_PROXY": "http://u%40x:p%3Aw@[::1]:3128"})
    assert coded is not None and coded.auth == ("u@x", "p:w") and coded.url == "http://[::1]:3128"
    # NO_PROXY naming the portal (127.0.0.1:9 in write_config) means direct.
    assert portal_proxy(plain, {**env, "no_proxy": "127.0.0.1"}) is None
    # An unusable variable is a configuration error that does not quote it.
    with pytest.raises(ConfigError) as caught:
        portal_proxy(plain, {"HTTPS_PROXY": f"socks5://{USER}:{PASSWORD}@proxy.example:1080"})
    assert "environment: HTTPS_PROXY" in str(caught.value)
    assert_no_secret(str(caught.value))

    configured = load_config(write(tmp_path, proxy_section("http://proxy.example:3128")))
    assert portal_proxy(configured, env) == PortalProxy("http://proxy.example:3128", "[proxy]")


@pytest.mark.parametrize(
    ("host", "no_proxy", "bypass"),
    [
        ("portal.example", "", False),
        ("portal.example", "*", True),
        ("portal.example", "portal.example", True),
        ("portal.example", "other.example, PORTAL.example", True),
        ("portal.example", ".example", True),
        ("portal.example", "example", True),
        ("portal.example", "ortal.example", False),
        ("sub.portal.example", ".portal.example", True),
        ("10.1.2.3", "10.0.0.0/8", True),
        ("10.1.2.3", "10.1.2.3", True),
        ("10.1.2.3", "10.1.2.4,example", False),
        ("::1", "[::1]", True),
        ("[::1]", "::1", True),
        ("fd00::5", "fd00::/8", True),
        ("portal.example", "10.0.0.0/8", False),
    ],
)
def test_no_proxy_matching(host: str, no_proxy: str, bypass: bool) -> None:
    assert no_proxy_matches(host, no_proxy) is bypass
