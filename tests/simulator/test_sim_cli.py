"""``fleetmeter sim`` / ``python -m fleetmeter.simulator`` as a real process."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import urllib.request
from typing import IO

import pytest

from fleetmeter.simulator import cli

ARGS = ["--devices", "2", "--seed", "4", "--speed", "120", "--start", "2026-01-05T08:00:00Z"]


def _start(*extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fleetmeter.simulator", *ARGS, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_line(stream: IO[str] | None) -> str:
    assert stream is not None
    return stream.readline()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_prints_one_ready_line_and_stops_cleanly_on_a_signal(sig: signal.Signals) -> None:
    proc = _start("--subnet", "127.0.72.0/24")
    try:
        line = _read_line(proc.stdout)  # blocks until ready (or the process dies)
        assert line, proc.stderr.read() if proc.stderr else ""
        ready = json.loads(line)
        assert ready["ready"] is True
        assert ready["control_url"].startswith("http://127.0.0.1:")
        assert isinstance(ready["port"], int) and ready["port"] > 0
        assert [d["address"] for d in ready["devices"]] == ["127.0.72.1", "127.0.72.2"]
        assert all(d["serial_number"].startswith("SG") and d["model"] for d in ready["devices"])
        with urllib.request.urlopen(ready["control_url"] + "/devices", timeout=5) as r:
            assert len(json.load(r)) == 2
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == ""  # nothing but the ready line on stdout
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--devices", "0"], "devices must be >= 1"),
        (["--subnet", "127.0.73.0/30", "--devices", "5"], "room for 2 devices"),
        (["--subnet", "192.0.2.0/24"], "cannot bind 192.0.2.1"),
        (["--start", "yesterday"], "not an ISO 8601 time"),
        (["--start", "2026-01-05T08:00:00"], "time zone"),
        (["--speed", "0"], "speed must be > 0"),
    ],
)
def test_bad_arguments_give_one_error_line_and_status_2(extra: list[str], message: str) -> None:
    proc = _start(*extra)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert out == ""
    assert err.strip().count("\n") == 0, err
    assert message in err and "Traceback" not in err


def test_register_adds_the_sim_command() -> None:
    parser = argparse.ArgumentParser(prog="fleetmeter")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sim", "--devices", "3", "--subnet", "127.0.9.0/24"])
    assert args.func is cli.run
    config = cli.config_from_args(args)
    assert (config.devices, config.subnet, config.seed, config.speed) == (3, "127.0.9.0/24", 1, 60)
    assert config.start is None
