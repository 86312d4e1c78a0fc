"""The LEDM parser (fleetmeter.devices.ledm.parse) reads what the simulator serves: ground truth.

Documents are fetched over HTTPS from a paused simulator and parsed into a DeviceReport;
its lifetime meters and job records must equal the simulator's /truth exactly.
"""

from __future__ import annotations

import asyncio
import importlib
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from fleetmeter.simulator import ledm_docs
from fleetmeter.simulator.models import MODELS
from fleetmeter.simulator.server import Simulator, SimulatorConfig
from fleetmeter.wire import EngineState

try:
    parse: Any = importlib.import_module("fleetmeter.devices.ledm.parse")
    parse_documents = parse.parse_documents
except (ImportError, AttributeError) as exc:  # the parser is written in parallel
    pytest.skip(f"fleetmeter.devices.ledm.parse not importable yet: {exc}", allow_module_level=True)

pytestmark = pytest.mark.anyio

START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


async def test_parsed_documents_equal_the_ground_truth() -> None:
    # Enough devices for every model; one simulated week (at 1 day per real second).
    config = SimulatorConfig(
        devices=12, seed=2, speed=86_400, subnet="127.0.74.0/24", start=START, job_buffer=400
    )
    async with Simulator(config) as sim:
        assert {e.printer.model.name for e in sim.endpoints} == {m.name for m in MODELS}
        await asyncio.sleep(3)
        async with httpx.AsyncClient(base_url=sim.control_url, timeout=30) as control:
            await control.post("/pause")
            truth = (await control.get("/truth")).json()
        async with httpx.AsyncClient(verify=False, timeout=30) as client:
            for endpoint, expected in zip(sim.endpoints, truth, strict=True):
                base = f"https://{endpoint.address}:{endpoint.port}/DevMgmt/"
                docs = {n: (await client.get(base + n)).content for n in ledm_docs.DOCUMENTS}
                report = parse_documents(docs, address=endpoint.address)
                printer = endpoint.printer
                where = f"{printer.model.name} {printer.serial_number}"

                assert report.device.serial_number == expected["serial_number"], where
                assert report.device.product_number == printer.model.product_number, where
                assert report.device.firmware_version == printer.firmware_version, where

                assert report.usage is not None, where
                assert report.usage.meters() == expected["meters"], where

                wire_jobs = [j.to_wire() for j in printer.recent_jobs()]
                assert len(wire_jobs) > 0, where
                assert report.jobs == wire_jobs, where
                truth_jobs = expected["jobs"][-len(report.jobs) :]
                assert [str(j.job_uuid) for j in report.jobs] == [
                    j["job_uuid"] for j in truth_jobs
                ], where
                for job, t in zip(report.jobs, truth_jobs, strict=True):
                    assert (job.sequence_number, job.pages, job.media_area_mm2, job.ink_ul) == (
                        t["sequence_number"],
                        t["pages"],
                        t["media_area_mm2"],
                        t["ink_ul"],
                    ), where

                assert report.status is not None, where
                assert [c.color for c in report.status.cartridges] == list(printer.colors), where
                levels = [c.level_percent for c in report.status.cartridges]
                assert levels == [c.level_percent for c in printer.cartridges], where
                heads = [(h.colors, h.health_percent) for h in report.status.printheads]
                assert heads == [
                    (list(h.spec.colors), h.health_percent) for h in printer.printheads
                ], where
                sources = [(s.name, s.media_type, s.width_mm) for s in report.status.media_sources]
                assert sources == [(r.name, r.media_type, r.width_mm) for r in printer.rolls], where
                assert {m.id for m in report.status.supported_media} >= set(printer.model.media)
                state = printer.engine_state()
                # LEDM has one "processing" category for spooling and printing alike.
                if state is EngineState.PROCESSING:
                    state = EngineState.PRINTING
                if state is not EngineState.ERROR:
                    assert report.status.engine_state == state, where
