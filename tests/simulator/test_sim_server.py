"""The simulator over the network: HTTPS per device address, certificates, control API."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from cryptography import x509
from defusedxml.ElementTree import fromstring

from fleetmeter.simulator import ledm_docs
from fleetmeter.simulator.server import (
    Simulator,
    SimulatorConfig,
    SimulatorError,
    bind_same_port,
    device_addresses,
)

pytestmark = pytest.mark.anyio

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
config_buffer = SimulatorConfig().job_buffer
SUBNET = "127.0.71.0/24"  # apart from the demo's default 127.0.1.0/24


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(devices=2, seed=5, speed=3600, subnet=SUBNET, start=START)
    async with Simulator(config) as running:
        yield running


async def _peer_certificate(address: str, port: int) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    _reader, writer = await asyncio.open_connection(address, port, ssl=ctx)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert isinstance(der, bytes)
        return der
    finally:
        writer.close()
        await writer.wait_closed()


async def test_devices_answer_https_on_their_own_address_and_one_port(sim: Simulator) -> None:
    assert [e.address for e in sim.endpoints] == ["127.0.71.1", "127.0.71.2"]
    assert {e.port for e in sim.endpoints} == {sim.port} and sim.port > 0
    async with httpx.AsyncClient(verify=False, timeout=10) as client:
        for endpoint in sim.endpoints:
            base = f"https://{endpoint.address}:{sim.port}"
            r = await client.get(f"{base}/DevMgmt/ProductConfigDyn.xml")
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/xml")
            root = fromstring(r.content)
            serial = root.findtext(f".//{{{ledm_docs.DD}}}SerialNumber")
            assert serial == endpoint.printer.serial_number
            for name in ledm_docs.DOCUMENTS:
                r = await client.get(f"{base}/DevMgmt/{name}")
                assert r.status_code == 200, name
                fromstring(r.content)
            head = await client.head(f"{base}/DevMgmt/ProductUsageDyn.xml")
            assert head.status_code == 200 and head.content == b""
            assert (await client.get(f"{base}/DevMgmt/Nope.xml")).status_code == 404
            assert (await client.get(f"{base}/")).status_code == 404
            post = await client.post(f"{base}/DevMgmt/ProductUsageDyn.xml", content=b"x")
            assert post.status_code == 405


async def test_each_device_has_its_own_self_signed_certificate(sim: Simulator) -> None:
    ders = [await _peer_certificate(e.address, sim.port) for e in sim.endpoints]
    assert ders[0] != ders[1]
    for der, endpoint in zip(ders, sim.endpoints, strict=True):
        assert hashlib.sha256(der).hexdigest() == endpoint.certificate_sha256
        cert = x509.load_der_x509_certificate(der)
        assert cert.issuer == cert.subject  # self-signed, like a printer out of the box
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert endpoint.address in [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]


async def test_control_api_pause_truth_resume(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.control_url, timeout=10) as control:
        devices = (await control.get("/devices")).json()
        assert [(d["address"], d["port"]) for d in devices] == [
            (e.address, sim.port) for e in sim.endpoints
        ]
        assert {"serial_number", "model"} <= set(devices[0])

        clock = (await control.get("/clock")).json()
        assert clock["speed"] == 3600 and clock["paused"] is False

        paused = (await control.post("/pause")).json()
        assert paused["paused"] is True
        await asyncio.sleep(0.05)
        assert (await control.get("/clock")).json()["sim_time"] == paused["sim_time"]

        truth = (await control.get("/truth")).json()
        assert (await control.get("/truth")).json() == truth  # stable while paused
        assert [t["serial_number"] for t in truth] == [d["serial_number"] for d in devices]
        for t in truth:
            assert {"jobs", "meters", "initial_meters"} <= set(t)
            assert t["meters"]["impressions"] >= t["initial_meters"]["impressions"]

        # What the devices serve while paused is exactly the truth.
        async with httpx.AsyncClient(verify=False, timeout=10) as client:
            for t, endpoint in zip(truth, sim.endpoints, strict=True):
                url = f"https://{endpoint.address}:{sim.port}/DevMgmt/ProductUsageDyn.xml"
                served = (await client.get(url)).content
                assert served == ledm_docs.render(endpoint.printer, "ProductUsageDyn.xml")
                root = fromstring(served)
                total = root.findtext(f".//{{{ledm_docs.DD}}}TotalImpressions")
                assert total == str(t["meters"]["impressions"])
                jobs_url = f"https://{endpoint.address}:{sim.port}/DevMgmt/JobAccountingDyn.xml"
                doc = fromstring((await client.get(jobs_url)).content)
                uuids = [e.text for e in doc.iter(f"{{{ledm_docs.DD}}}UUID")]
                assert uuids == [j["job_uuid"] for j in t["jobs"]][-config_buffer:]

        resumed = (await control.post("/resume")).json()
        assert resumed["paused"] is False
        await asyncio.sleep(0.05)  # 0.05 s at 3600× is three simulated minutes
        assert (await control.get("/clock")).json()["sim_time"] > paused["sim_time"]

        assert (await control.get("/nope")).status_code == 404
        assert (await control.get("/pause")).status_code == 405


async def test_jobs_appear_as_simulated_time_passes(sim: Simulator) -> None:
    before = sum(len(p.jobs) for p in sim.printers)
    await asyncio.sleep(1.5)  # 1.5 simulated hours on a Monday morning
    sim.advance()
    assert sum(len(p.jobs) for p in sim.printers) > before


async def test_stop_closes_every_socket() -> None:
    config = SimulatorConfig(devices=2, seed=1, subnet=SUBNET, start=START)
    sim = Simulator(config)
    await sim.start()
    port, control = sim.port, sim.control_port
    await sim.stop()
    await sim.stop()  # idempotent
    # The same port binds again on every address: nothing is left listening.
    again, socks = bind_same_port(sim.addresses, port)
    assert again == port
    for s in socks:
        s.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", control)


def test_device_addresses_come_from_the_subnet() -> None:
    assert device_addresses("127.0.1.0/24", 3) == ["127.0.1.1", "127.0.1.2", "127.0.1.3"]
    assert len(device_addresses("127.0.1.0/24", 254)) == 254
    with pytest.raises(SimulatorError, match="room for 254"):
        device_addresses("127.0.1.0/24", 255)
    with pytest.raises(SimulatorError, match="room for 2"):
        device_addresses("127.0.1.0/30", 3)
    with pytest.raises(SimulatorError, match="invalid subnet"):
        device_addresses("not-a-subnet", 1)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (SimulatorConfig(devices=0), "devices"),
        (SimulatorConfig(speed=0), "speed"),
        (SimulatorConfig(port=70000), "port"),
        (SimulatorConfig(start=datetime(2026, 1, 5)), "time zone"),
    ],
)
def test_bad_configuration_is_refused(config: SimulatorConfig, message: str) -> None:
    with pytest.raises(SimulatorError, match=message):
        Simulator(config)


async def test_an_address_that_is_not_local_is_refused() -> None:
    sim = Simulator(SimulatorConfig(devices=1, subnet="192.0.2.0/24"))  # TEST-NET-1
    with pytest.raises(SimulatorError, match=r"cannot bind 192\.0\.2\.1"):
        await sim.start()
