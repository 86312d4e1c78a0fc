"""A direct-connected fleet against the real portal app: every request recorded, no secret in any.

The simulated devices talk to the portal's ASGI app in-process (``httpx.ASGITransport``)
through a recording transport, so the test sees each request exactly as it would go on the
wire: method, URL, headers and the (compressed) body. The secrets must be in none of them,
and the portal's ledger must equal the printers' ground truth.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from fleetmeter.portal.app import create_app
from fleetmeter.portal.services import devices_direct, tenancy
from fleetmeter.portal.services.devices_direct import SecretBox
from fleetmeter.portal.settings import PortalSettings
from fleetmeter.portal.store.db import make_engine, make_session_factory
from fleetmeter.portal.store.models import CounterReading, Device, JobRecord
from fleetmeter.simulator.direct import (
    DeviceCredentials,
    DirectConfig,
    DirectSimulator,
    fleet_serials,
)
from fleetmeter.wire.codec import decompress

SEED = 21
DEVICES = 3
START = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)


class Recorder(httpx.AsyncBaseTransport):
    """Passes each request on and keeps a copy of everything it put on the wire."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[tuple[str, str, list[tuple[bytes, bytes]], bytes]] = []
        self.statuses: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.requests.append((request.method, str(request.url), request.headers.raw, body))
        response = await self.inner.handle_async_request(request)
        self.statuses.append(response.status_code)
        return response


def _provision(settings: PortalSettings, database_url: str) -> dict[str, DeviceCredentials]:
    engine = make_engine(database_url)
    box = SecretBox(settings.resolve_secrets_key())
    out: dict[str, DeviceCredentials] = {}
    try:
        with make_session_factory(engine)() as session:
            tenancy.create_tenant(session, reseller_name="R", customer_name="C")
            reseller = tenancy.find_reseller(session, name="R")
            customer = tenancy.find_customer(session, reseller=reseller, name="C")
            for serial in fleet_serials(seed=SEED, devices=DEVICES):
                new = devices_direct.add_device(
                    session, box=box, reseller=reseller, customer=customer, serial_number=serial
                )
                out[serial] = DeviceCredentials(serial, new.key_id, new.secret)
            session.commit()
    finally:
        engine.dispose()
    return out


@pytest.mark.anyio
async def test_no_request_carries_the_secret_and_the_ledger_is_exact(
    database_url: str, tmp_path: Path
) -> None:
    settings = PortalSettings(database_url=database_url, data_dir=tmp_path / "portal")
    credentials = _provision(settings, database_url)
    recorder = Recorder(httpx.ASGITransport(app=create_app(settings)))
    config = DirectConfig(
        portal_url="https://portal.test",
        credentials=credentials,
        seed=SEED,
        speed=6 * 3600.0,  # six simulated hours per real second
        start=START,
        tick_s=0.02,
    )
    sim = DirectSimulator(
        config,
        client_factory=lambda: httpx.AsyncClient(base_url=config.portal_url, transport=recorder),
    )
    await sim.start(control=False)
    try:
        await asyncio.sleep(1.5)
        await sim.pause()
        await sim.flush()
        truth = sim.truth()
        uploads = sim.uploads_info()
    finally:
        await sim.stop()

    assert len(recorder.requests) >= 2 * DEVICES
    assert set(recorder.statuses) == {200}, recorder.statuses
    assert {u["status"] for u in uploads} == {"sent"}
    assert {"boot", "manual"} <= {u["trigger"] for u in uploads}

    # The secret, in any form a careless client might send it, is in no request.
    seen: list[bytes] = []
    for method, url, headers, body in recorder.requests:
        clear = decompress(body, dict(headers).get(b"content-encoding", b"identity").decode())
        lines = [method.encode(), url.encode(), *(k + b": " + v for k, v in headers), body, clear]
        seen.append(b"\n".join(lines))
    for creds in credentials.values():
        secret = creds.secret.encode()
        forms = [
            secret,
            base64.b64encode(secret),
            base64.urlsafe_b64encode(secret),
            secret.hex().encode(),
        ]
        for wire_bytes in seen:
            for form in forms:
                assert form not in wire_bytes
        assert any(creds.key_id.encode() in w for w in seen)  # the key id does travel

    # Every job once, counters equal to the printers'.
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            devices = {d.serial_number: d for d in session.scalars(select(Device))}
            assert sorted(devices) == sorted(t["serial_number"] for t in truth)
            for device in truth:
                row = devices[device["serial_number"]]
                stored = session.scalars(
                    select(JobRecord.job_uuid).where(JobRecord.device_id == row.id)
                ).all()
                assert max(Counter(stored).values(), default=1) == 1
                assert {str(u) for u in stored} == {j["job_uuid"] for j in device["jobs"]}
                latest = session.scalar(
                    select(func.max(CounterReading.read_at)).where(
                        CounterReading.device_id == row.id
                    )
                )
                meters = dict(
                    session.execute(
                        select(CounterReading.meter, CounterReading.value).where(
                            CounterReading.device_id == row.id, CounterReading.read_at == latest
                        )
                    ).all()
                )
                assert meters == device["meters"]
            total = sum(len(d["jobs"]) for d in truth)
            assert total > 0, "the fleet printed nothing: the test would prove nothing"
    finally:
        engine.dispose()
    assert uuid.UUID(uploads[0]["batch_id"])
