"""Additive printers in the simulator over the network: their own addresses after the
large-format printers, the JSON API over HTTPS, the control API's truth, configuration."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from fleetmeter.simulator import additive_api, cli
from fleetmeter.simulator.server import Simulator, SimulatorConfig, SimulatorError

pytestmark = pytest.mark.anyio

START = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)
SUBNET = "127.0.77.0/28"  # apart from the other simulator tests' subnets


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(
        devices=1, additive=2, seed=5, speed=100_000, subnet=SUBNET, start=START, build_buffer=20
    )
    async with Simulator(config) as running:
        yield running


def _base(sim: Simulator, address: str) -> str:
    return f"https://{address}:{sim.port}{additive_api.PREFIX}"


async def test_addresses_follow_the_large_format_printers(sim: Simulator) -> None:
    assert [e.address for e in sim.endpoints] == ["127.0.77.1"]
    assert [e.address for e in sim.additive_endpoints] == ["127.0.77.2", "127.0.77.3"]
    info = sim.devices_info()
    assert [(d["address"], d["kind"]) for d in info] == [
        ("127.0.77.1", "lfp"),
        ("127.0.77.2", "additive"),
        ("127.0.77.3", "additive"),
    ]
    ready = sim.ready_info()
    assert [d["kind"] for d in ready["devices"]] == ["lfp", "additive", "additive"]
    assert all(d["serial_number"].startswith("AM") for d in ready["devices"][1:])


async def test_every_document_is_json_over_https(sim: Simulator) -> None:
    async with httpx.AsyncClient(verify=False, timeout=10) as client:
        for cell in sim.additive_endpoints:
            base = _base(sim, cell.address)
            for name in additive_api.DOCUMENTS:
                r = await client.get(base + name)
                assert r.status_code == 200, name
                assert r.headers["content-type"] == "application/json"
                assert r.headers["server"] == additive_api.SERVER_HEADER.decode()
                assert isinstance(r.json(), dict)
            device = (await client.get(base + "device")).json()
            assert device["serialNumber"] == cell.serial_number
            assert device["api"] == "fleetmeter-additive"
            head = await client.head(base + "status")
            assert head.status_code == 200 and head.content == b""
            assert (await client.post(base + "status", content=b"x")).status_code == 405
            assert (await client.get(base + "nope")).status_code == 404
            assert (await client.get(f"https://{cell.address}:{sim.port}/")).status_code == 404
            lfp_only = f"https://{cell.address}:{sim.port}/DevMgmt/DiscoveryTree.xml"
            assert (await client.get(lfp_only)).status_code == 404
        # The large-format printer does not serve the 3D API.
        lfp = sim.endpoints[0].address
        assert (await client.get(_base(sim, lfp) + "device")).status_code == 404


@pytest.mark.parametrize(
    ("query", "message"),
    [("after=x", "after must be a whole number"), ("limit=0", "limit must be at least 1")],
)
async def test_bad_history_queries_are_refused(sim: Simulator, query: str, message: str) -> None:
    async with httpx.AsyncClient(verify=False, timeout=10) as client:
        cell = sim.additive_endpoints[0]
        r = await client.get(f"{_base(sim, cell.address)}builds?{query}")
        assert r.status_code == 400 and message in r.json()["error"]


async def test_history_pages_and_truth_agree_while_paused(sim: Simulator) -> None:
    await asyncio.sleep(1.5)  # about 1.7 simulated days
    async with httpx.AsyncClient(base_url=sim.control_url, timeout=10) as control:
        await control.post("/pause")
        truth = (await control.get("/truth")).json()
    assert [t["kind"] for t in truth] == ["lfp", "additive", "additive"]
    async with httpx.AsyncClient(verify=False, timeout=10) as client:
        for cell, expected in zip(sim.additive_endpoints, truth[1:], strict=True):
            assert expected["serial_number"] == cell.serial_number
            base = _base(sim, cell.address)
            sequences: list[int] = []
            after = 0
            while True:
                page = (await client.get(f"{base}builds?after={after}&limit=2")).json()
                sequences += [b["sequenceNumber"] for b in page["builds"]]
                if not page["more"]:
                    break
                after = page["builds"][-1]["sequenceNumber"]
            assert sequences == [j["sequence_number"] for j in expected["jobs"]][-20:]
            assert len(sequences) >= 3, "too few builds to prove anything"
            last = (await client.get(f"{base}builds?last=2")).json()
            assert [b["sequenceNumber"] for b in last["builds"]] == sequences[-2:]
            assert last["latestSequenceNumber"] == sequences[-1]
            counters = (await client.get(base + "counters")).json()
            assert counters["builds"] == expected["meters"]["jobs"]
            assert counters["buildSeconds"] == expected["meters"]["build_time_s"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (SimulatorConfig(devices=0), "devices must be >= 1"),
        (SimulatorConfig(additive=-1), "must be >= 0"),
        (SimulatorConfig(additive=1, build_buffer=0), "build buffer"),
        (SimulatorConfig(devices=250, additive=10), "room for 254 devices, 260 requested"),
    ],
)
def test_bad_configuration_is_refused(config: SimulatorConfig, message: str) -> None:
    with pytest.raises(SimulatorError, match=message):
        Simulator(config)


def test_a_simulator_of_additive_printers_only() -> None:
    sim = Simulator(SimulatorConfig(devices=0, additive=3, subnet=SUBNET))
    assert len(sim.printers) == 0 and len(sim.additive) == 3
    assert len(sim.addresses) == 3


def test_cli_takes_the_number_of_additive_printers() -> None:
    parser = argparse.ArgumentParser(prog="fleetmeter")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sim", "--devices", "2", "--additive", "3", "--build-buffer", "9"])
    config = cli.config_from_args(args)
    assert (config.devices, config.additive, config.build_buffer) == (2, 3, 9)
    assert cli.config_from_args(parser.parse_args(["sim"])).additive == 0
