"""A 3D site end to end with real processes: simulated powder-bed printers (with their build
units and stations) beside large-format printers → a collector with every driver enabled →
the portal, on loopback; optionally with an OctoPrint farm (the real OctoPrint peer).

The simulator's ground truth is the reference: every build it finished is in the portal once,
with its material and duration, every plotter job too, and the latest lifetime counters equal
the devices' own. The portal is read through its JSON API only.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from fleetmeter.supervise import Program, programs, run_command
from tests.devices.octoprint_fixtures import (
    FOLDER,
    PART,
    PART_FILAMENT_MM,
    PART_FILAMENT_UL,
    OctoPrintPeer,
    octoprint_peer_fixture,  # noqa: F401  (provides the octoprint_peer fixture)
)
from tests.e2e_stack import (
    START,
    Portal,
    assert_ledger_equals_truth,
    control,
    portal_ledger,
    prepare_portal,
    random_subnet,
)

pytestmark = pytest.mark.slow

SEED = 11
PLOTTERS = 2
CELLS = 3
SPEED = 36_000.0  # ten simulated hours per real second: a few builds per printer per poll


@dataclass
class Site:
    portal: Portal
    control_url: str
    config: Path
    tmp: Path

    def sim(self, method: str, path: str) -> Any:
        return control(self.control_url, method, path)

    def poll_once(self) -> str:
        return run_command(["collector", "poll-once", "--config", str(self.config)], timeout_s=120)

    def run_for(self, seconds: float) -> None:
        self.sim("POST", "/resume")
        time.sleep(seconds)
        self.sim("POST", "/pause")


def _write_config(
    path: Path,
    *,
    portal: Portal,
    data_dir: Path,
    subnet: str,
    port: int,
    octoprint: OctoPrintPeer | None = None,
) -> None:
    """Every driver on the simulated subnet (discovery must tell the kinds apart itself);
    the OctoPrint farm as its own plain-HTTP range with its API key."""
    lines = [
        "[portal]",
        f"url = {json.dumps(portal.url)}",
        f"token = {json.dumps(portal.token)}",
        f"ca_file = {json.dumps(str(portal.ca_file))}",
        "",
        "[collector]",
        f"data_dir = {json.dumps(str(data_dir))}",
        "",
        "[schedule]",
        "usage_interval_minutes = 180",
        "health_interval_minutes = 5",
        # Not less: each SNMP probe builds a pysnmp engine (~50 ms of CPU on the event loop),
        # and with every driver on a /28 that held the HTTP probes past 2-3 s timeouts.
        "probe_timeout_seconds = 6",
        "",
        "[[ranges]]",
        f"targets = {json.dumps([subnet])}",
        f"port = {port}",
        "",
    ]
    if octoprint is not None:
        lines += [
            "[[ranges]]",
            'targets = ["127.0.0.1"]',
            f"port = {octoprint.port}",
            'scheme = "http"',
            'drivers = ["octoprint"]',
            "[ranges.octoprint]",
            f"api_key = {json.dumps(octoprint.api_key)}",
            "",
        ]
    path.write_text("\n".join(lines))
    path.chmod(0o600)


def _start_site(
    tmp_path: Path, running: list[Program], octoprint: OctoPrintPeer | None = None
) -> Site:
    portal = prepare_portal(tmp_path)
    portal.start(running, tmp_path)
    subnet = random_subnet()
    sim = Program(
        "simulator",
        [
            *("sim", "--devices", str(PLOTTERS), "--additive", str(CELLS)),
            *("--seed", str(SEED), "--speed", str(SPEED)),
            *("--subnet", subnet, "--port", "0", "--start", START),
        ],
        log_path=tmp_path / "sim.log",
    )
    running.append(sim)
    fleet = sim.wait_ready()
    assert [d["kind"] for d in fleet["devices"]] == ["lfp"] * PLOTTERS + ["additive"] * CELLS
    config = tmp_path / "collector.toml"
    _write_config(
        config,
        portal=portal,
        data_dir=tmp_path / "collector",
        subnet=subnet,
        port=int(fleet["port"]),
        octoprint=octoprint,
    )
    site = Site(portal, fleet["control_url"], config, tmp_path)
    site.sim("POST", "/pause")
    return site


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with programs() as running:
        yield _start_site(tmp_path, running)


def _portal_jobs(
    portal: Portal,
) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Devices by serial, and every job of each as the portal's JSON API returns it."""
    devices: dict[str, dict[str, Any]] = {}
    jobs: dict[str, list[dict[str, Any]]] = {}
    with portal.client() as client:
        for device in client.get("/api/v1/devices").raise_for_status().json()["items"]:
            devices[device["serial_number"]] = device
            items: list[dict[str, Any]] = []
            offset: int | None = 0
            while offset is not None:
                page = (
                    client.get(
                        f"/api/v1/devices/{device['id']}/jobs",
                        params={"limit": 500, "offset": offset},
                    )
                    .raise_for_status()
                    .json()
                )
                items += page["items"]
                offset = page["next_offset"]
            jobs[device["serial_number"]] = items
    return devices, jobs


def _assert_builds_in_portal(
    portal: Portal, truth: list[dict[str, Any]], *, others: int = 0
) -> int:
    """Every finished build is in the portal once with its material and duration; the
    ledger and counters of every simulated device (plotters too) equal the simulator's;
    ``others`` devices besides them (an OctoPrint farm). Returns the number of builds."""
    if others:
        ledger, counters = portal_ledger(portal)
        assert len(ledger) == len(truth) + others
        for device in truth:
            serial = device["serial_number"]
            stored = ledger[serial]
            assert len(stored) == len(set(stored)), f"{serial}: jobs stored twice"
            assert set(stored) == {j["job_uuid"] for j in device["jobs"]}, serial
            assert counters[serial] == device["meters"], f"{serial}: lifetime counters differ"
    else:
        assert_ledger_equals_truth(portal, truth)
    devices, jobs = _portal_jobs(portal)
    builds = 0
    for cell in (t for t in truth if t["kind"] == "additive"):
        serial = cell["serial_number"]
        device = devices[serial]
        assert (device["driver"], device["device_class"]) == ("additive", "printer3d"), serial
        stored = {job["job_uuid"]: job for job in jobs[serial]}
        assert not [u for u, n in Counter(j["job_uuid"] for j in jobs[serial]).items() if n > 1]
        for build in cell["jobs"]:
            job = stored[build["job_uuid"]]
            where = f"{serial} build {build['sequence_number']}"
            assert job["sequence_number"] == build["sequence_number"], where
            assert job["status"] == build["status"], where
            assert job["print_time_s"] == build["print_time_s"], where
            assert job["duration_s"] == build["duration_s"], where
            assert datetime.fromisoformat(job["completed_at"]) == datetime.fromisoformat(
                build["completed_at"]
            ), where
            extra = job["extra"] or {}
            assert extra.get("material") == build["material"], where
            assert extra.get("material_used_g") == build["material_used_g"], where
            assert extra.get("agent_used_ul") == build["agent_used_ul"], where
            assert extra.get("build_volume_mm3") == build["build_volume_mm3"], where
            builds += 1
        # The latest snapshot shows the cell: its build units and its station.
        status = device["status"] or {}
        additive = status.get("additive") or {}
        assert len(additive.get("build_units", [])) == 3, serial
        assert len(additive.get("stations", [])) == 1, serial
    return builds


def test_every_build_reaches_the_portal_once_with_material_and_duration(site: Site) -> None:
    site.run_for(2.0)  # about 20 simulated hours
    out = site.poll_once()
    assert f"{PLOTTERS + CELLS} device" in out, out
    first = _assert_builds_in_portal(site.portal, site.sim("GET", "/truth"))
    assert first >= CELLS, "the cells finished too few builds: the test would prove little"

    # More building, then a second collection: only the new builds arrive, none twice.
    site.run_for(1.5)
    site.poll_once()
    second = _assert_builds_in_portal(site.portal, site.sim("GET", "/truth"))
    assert second > first

    # Nothing new: polling again changes nothing.
    site.poll_once()
    assert _assert_builds_in_portal(site.portal, site.sim("GET", "/truth")) == second


def test_a_3d_site_with_an_octoprint_farm(tmp_path: Path, octoprint_peer: OctoPrintPeer) -> None:
    with programs() as running:
        site = _start_site(tmp_path, running, octoprint=octoprint_peer)
        site.run_for(1.5)
        out = site.poll_once()
        assert f"{PLOTTERS + CELLS + 1} device" in out, out
        builds = _assert_builds_in_portal(site.portal, site.sim("GET", "/truth"), others=1)
        assert builds >= CELLS
        # The farm's finished print (the peer fixture printed the part once) is there once,
        # with its filament and its print time.
        devices, jobs = _portal_jobs(site.portal)
        farm = [s for s, d in devices.items() if d["driver"] == "octoprint"]
        assert len(farm) == 1
        prints = [j for j in jobs[farm[0]] if j["name"] == f"{FOLDER}/{PART}"]
        assert len(prints) == 1, prints
        part = prints[0]
        assert part["status"] == "completed"
        assert part["print_time_s"] is not None and part["print_time_s"] >= 0
        assert part["media_length_mm"] == PART_FILAMENT_MM
        assert (part["extra"] or {}).get("filament_ul") == PART_FILAMENT_UL
        # Polling again stores nothing twice.
        site.poll_once()
        _, again = _portal_jobs(site.portal)
        assert [j["job_uuid"] for j in again[farm[0]]] == [j["job_uuid"] for j in jobs[farm[0]]]
