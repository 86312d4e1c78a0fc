"""``fleetmeter portal serve`` as a real process: ready line, HTTPS, clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import select
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fleetmeter.signing.certs import certificate_authority, issue_server_certificate


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fleetmeter.portal.cli", "portal", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _ready_line(proc: subprocess.Popen[str], timeout: float = 30) -> dict[str, object]:
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], timeout)
    if not readable:
        proc.kill()
        pytest.fail(f"no ready line; stderr: {proc.communicate()[1]}")
    line = proc.stdout.readline()
    assert line, f"server exited: {proc.communicate()[1]}"
    ready: dict[str, object] = json.loads(line)
    return ready


@pytest.mark.parametrize("tls", [True, False])
def test_serve_prints_ready_line_and_stops_cleanly(tmp_path: Path, tls: bool) -> None:
    env = {**os.environ, "FLEETMETER_DATA_DIR": str(tmp_path / "data")}
    env.pop("FLEETMETER_DATABASE_URL", None)
    args = ["--host", "127.0.0.1", "--port", "0"]
    verify: ssl.SSLContext | bool = False
    if tls:
        ca = certificate_authority("test CA")
        server = issue_server_certificate(ca, ["127.0.0.1"])
        server.write(tmp_path / "portal.pem", tmp_path / "portal.key")
        (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
        verify = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        args += [
            "--tls-cert",
            str(tmp_path / "portal.pem"),
            "--tls-key",
            str(tmp_path / "portal.key"),
        ]

    proc = _start(args, env)
    try:
        ready = _ready_line(proc)
        url = str(ready["url"])
        assert ready["ready"] is True
        assert url.startswith("https://127.0.0.1:" if tls else "http://127.0.0.1:")
        assert not url.endswith(":0")
        response = httpx.get(url + "/healthz", verify=verify, timeout=10)
        assert response.status_code == 200
        if tls:
            assert response.headers["strict-transport-security"]
            login = httpx.get(url + "/login", verify=verify, timeout=10)
            assert "secure" in login.headers["set-cookie"].lower()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out == "", "stdout carries nothing but the ready line"


def test_serve_fails_with_one_line_on_bad_tls_file(tmp_path: Path) -> None:
    env = {**os.environ, "FLEETMETER_DATA_DIR": str(tmp_path / "data")}
    proc = _start(["--port", "0", "--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", "k"], env)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and out == ""
    assert "no such file" in err and "Traceback" not in err
