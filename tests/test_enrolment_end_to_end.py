"""Enrolment and remote settings with real processes: portal (HTTPS, test CA), simulator and
collector, on loopback.

A reseller makes a one-time token; ``collector enroll`` turns it into a config with no
ranges; ranges and intervals set through the portal's API reach the collector, which scans
them, reports the version it runs, and takes a later change on its next contact without a
restart. A tampered stored settings file stops the collector with a clear message and is
left as it was.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from fleetmeter.supervise import Program, ProgramFailed, programs, run_command
from tests.e2e_stack import TENANT, Portal, prepare_portal, random_subnet, start_simulator

pytestmark = pytest.mark.slow

DEVICES = 3


def _enroll(portal: Portal, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    token = json.loads(run_command(["portal", "create-enrolment-token", *TENANT], env=portal.env))[
        "token"
    ]
    config = tmp_path / "site" / "collector.toml"
    out = run_command(
        [
            *("collector", "enroll", "--portal", portal.url, "--customer", "C1"),
            *("--token", token, "--config", str(config), "--ca-file", str(portal.ca_file)),
            *("--name", "site PC"),
        ]
    )
    answer = json.loads(out)
    # Spent: the same token enrols nothing a second time.
    again = tmp_path / "again" / "collector.toml"
    with pytest.raises(ProgramFailed, match="already used"):
        run_command(
            [
                *("collector", "enroll", "--portal", portal.url, "--customer", "C1"),
                *("--token", token, "--config", str(again), "--ca-file", str(portal.ca_file)),
            ]
        )
    assert not again.exists()
    return config, answer


def _wait(predicate: Any, what: str, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def test_enrol_then_the_portal_sets_ranges_and_intervals(tmp_path: Path) -> None:
    portal = prepare_portal(tmp_path)
    subnet = random_subnet()
    with programs() as running:
        portal.start(running, tmp_path)
        fleet = start_simulator(
            running, tmp_path, devices=DEVICES, seed=11, speed=3600.0, subnet=subnet
        )
        config, enrolled = _enroll(portal, tmp_path)
        token_file = config.parent / "collector.token"
        assert os.stat(token_file).st_mode & 0o077 == 0
        text = config.read_text()
        assert "signing_key" in text and "\n[[ranges]]" not in text
        assert token_file.read_text().strip() not in text

        collector_id = enrolled["collector_id"]
        base = f"/api/v1/collectors/{collector_id}"
        with portal.client() as client:
            assert client.get(base).json()["latest_config_version"] is None
            put = client.put(
                f"{base}/settings",
                json={
                    "settings": {
                        "ranges": [
                            {"targets": [subnet], "port": int(fleet["port"]), "drivers": ["ledm"]}
                        ],
                        "schedule": {"usage_interval_minutes": 30},
                    },
                    "expected_version": 0,
                },
            )
            assert put.status_code == 200, put.text

        # poll-once asks for the settings first, so it scans the portal's range.
        out = run_command(["collector", "poll-once", "--config", str(config)], timeout_s=120)
        assert f"{DEVICES} devices found" in out, out
        with portal.client() as client:
            serials = {d["serial_number"] for d in client.get("/api/v1/devices").json()["items"]}
            assert len(serials) == DEVICES
            view = client.get(base).json()
            assert view["running_config_version"] == 1 and not view["config_pending"]

        # The long-running collector takes a change on its next contact.
        config.write_text(
            config.read_text().replace(
                "[collector]\n", "[collector]\nspeed = 600.0\n"
            )  # upload (and settings) contact every 0.1 s of real time
        )
        collector = Program(
            "collector",
            ["collector", "run", "--config", str(config)],
            log_path=tmp_path / "collector.log",
        )
        running.append(collector)
        collector.wait_ready()
        first_address = subnet.rsplit(".", 1)[0] + "." + subnet.rsplit(".", 1)[1].split("/")[0]
        with portal.client() as client:
            put = client.put(
                f"{base}/settings",
                json={
                    "settings": {
                        "ranges": [{"targets": [first_address], "port": int(fleet["port"])}],
                        "schedule": {"usage_interval_minutes": 45, "health_interval_minutes": 2},
                    }
                },
            )
            assert put.json()["version"] == 2
            _wait(
                lambda: client.get(base).json()["running_config_version"] == 2,
                "the collector to report version 2",
            )
        log = _wait(
            lambda: (
                (tmp_path / "collector.log").read_text()
                if "settings version 2 applied" in (tmp_path / "collector.log").read_text()
                else ""
            ),
            "the collector to log the change",
        )
        assert "usage every 45 min" in log
        stored = config.parent / "collector-data" / "settings.signed.json"
        assert json.loads(stored.read_text())["format"] == "fleetmeter-signed/1"
        collector.stop()

        # A stored document altered on disk: a clear refusal, the file left as it was.
        envelope = json.loads(stored.read_text())
        envelope["payload"] = envelope["payload"][:-6] + "AAAAAA"
        tampered = json.dumps(envelope)
        stored.write_text(tampered)
        with pytest.raises(ProgramFailed, match="bad signature") as refused:
            run_command(["collector", "poll-once", "--config", str(config)], timeout_s=60)
        assert "Traceback" not in str(refused.value)
        assert stored.read_text() == tampered
