"""The direct-connection firmware agent: exact upload triggers, and nothing lost while offline.

A scripted printer (a real ``VirtualPrinter`` whose job stream the test writes) pins each
trigger at its boundary; a real printer run for days checks that every upload was made at
the first instant a rule allowed, and that every job went up exactly once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from fleetmeter import wire
from fleetmeter.simulator.direct import (
    DeviceCredentials,
    DirectAgent,
    DirectUploader,
    Upload,
    UploadPolicy,
)
from fleetmeter.simulator.printer import SimAlert, SimJob, VirtualPrinter, build_fleet
from fleetmeter.wire.codec import decode_batch

T0 = datetime(2026, 3, 2, 7, 30, tzinfo=UTC)


def _template_job() -> SimJob:
    donor = build_fleet(seed=11, count=1, start=T0)[0]
    donor.advance_to(T0 + timedelta(days=2))
    return donor.jobs[0]


class Scripted:
    """A real printer whose jobs and alerts come from a script: {second after T0: events}."""

    def __init__(self) -> None:
        self.printer = build_fleet(seed=5, count=1, start=T0)[0]
        self.template = _template_job()
        self.jobs_at: dict[int, list[int]] = {}
        self.alerts_at: dict[int, list[SimAlert]] = {}
        self.clear_at: dict[int, list[int]] = {}
        self._done = 0
        self._seq = 1_000_000
        self.printer.advance_to = self._advance_to  # type: ignore[method-assign]
        self.printer.alerts = []

    def job(self, second: int, pages: int = 1) -> None:
        self.jobs_at.setdefault(second, []).append(pages)

    def alert(self, second: int, severity: str, seq: int) -> None:
        at = int(T0.timestamp()) + second
        sim = SimAlert(seq, f"code{seq}", severity, "engine", "text", at, blocking=False)
        self.alerts_at.setdefault(second, []).append(sim)

    def clear(self, second: int, seq: int) -> None:
        self.clear_at.setdefault(second, []).append(seq)

    def _advance_to(self, t: datetime) -> None:
        target = int((t - T0).total_seconds())
        while self._done < target:
            self._done += 1
            s = self._done
            for pages in self.jobs_at.get(s, []):
                self._seq += 1
                job = dataclasses.replace(
                    self.template,
                    job_uuid=uuid.uuid4(),
                    pages=pages,
                    sequence_number=self._seq,
                    completed_at=int(T0.timestamp()) + s,
                    submitted_at=int(T0.timestamp()) + s - 1,
                    xml=None,
                )
                self.printer.jobs.append(job)
                self.printer.counters.add_job(job)
            self.printer.alerts.extend(self.alerts_at.get(s, []))
            gone = set(self.clear_at.get(s, []))
            self.printer.alerts = [a for a in self.printer.alerts if a.sequence_number not in gone]


@pytest.fixture
def scripted() -> Scripted:
    return Scripted()


def _agent(printer: VirtualPrinter, policy: UploadPolicy | None = None) -> DirectAgent:
    agent = DirectAgent(printer, key_id="fmk_test", policy=policy)
    (boot,) = agent.start(T0)
    assert boot.trigger == "boot"
    return agent


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# --------------------------------------------------------------------------- boot


def test_boot_report_goes_at_start(scripted: Scripted) -> None:
    agent = DirectAgent(scripted.printer, key_id="fmk_test")
    (boot,) = agent.start(T0)
    (report,) = boot.batch.reports
    assert (boot.trigger, boot.jobs, boot.sim_time) == ("boot", 0, T0)
    assert report.collected_at == T0 and report.jobs == []
    assert report.usage == scripted.printer.lifetime_usage()
    assert report.status is not None and report.status.cartridges
    assert report.device.serial_number == scripted.printer.serial_number
    assert report.device.driver == "direct"
    assert boot.batch.sender == "fmk_test"


# --------------------------------------------------------------------------- jobs


def test_eighteen_jobs_do_not_upload_the_nineteenth_does(scripted: Scripted) -> None:
    for s in range(1, 20):
        scripted.job(s * 60)
    agent = _agent(scripted.printer)
    assert agent.poll(_at(18 * 60)) == []
    assert agent.poll(_at(19 * 60 - 1)) == []
    (upload,) = agent.poll(_at(19 * 60))
    assert (upload.trigger, upload.jobs, upload.sim_time) == ("jobs", 19, _at(19 * 60))
    sent = [j.job_uuid for j in upload.batch.reports[0].jobs]
    assert sent == [j.job_uuid for j in scripted.printer.jobs[-19:]]


def test_nineteen_jobs_in_one_poll_cut_exactly_at_the_nineteenth(scripted: Scripted) -> None:
    for s in range(1, 41):
        scripted.job(s)
    agent = _agent(scripted.printer)
    uploads = agent.poll(_at(40))  # one big step: the cut is still at each 19th job
    assert [(u.trigger, u.jobs, u.sim_time) for u in uploads] == [
        ("jobs", 19, _at(19)),
        ("jobs", 19, _at(38)),
    ]


def test_thresholds_are_configurable(scripted: Scripted) -> None:
    for s in range(1, 4):
        scripted.job(s)
    agent = _agent(scripted.printer, UploadPolicy(max_jobs=3))
    assert [u.jobs for u in agent.poll(_at(3))] == [3]


# --------------------------------------------------------------------------- pages


def test_ninety_nine_pages_do_not_upload_the_hundredth_does(scripted: Scripted) -> None:
    for s, pages in ((1, 50), (2, 40), (3, 9), (4, 1)):
        scripted.job(s, pages)
    agent = _agent(scripted.printer)
    assert agent.poll(_at(3)) == []  # 99 pages
    (upload,) = agent.poll(_at(4))
    assert (upload.trigger, upload.jobs, upload.pages) == ("pages", 4, 100)


def test_a_job_that_crosses_a_hundred_pages_uploads(scripted: Scripted) -> None:
    scripted.job(1, 99)
    scripted.job(2, 7)
    agent = _agent(scripted.printer)
    assert agent.poll(_at(1)) == []
    (upload,) = agent.poll(_at(2))
    assert (upload.trigger, upload.pages) == ("pages", 106)


# --------------------------------------------------------------------------- time


def test_three_hours_minus_a_second_do_not_upload_three_hours_do(scripted: Scripted) -> None:
    agent = _agent(scripted.printer)
    assert agent.poll(_at(3 * 3600 - 1)) == []
    (upload,) = agent.poll(_at(3 * 3600))
    assert (upload.trigger, upload.jobs, upload.sim_time) == ("interval", 0, _at(3 * 3600))
    assert upload.batch.reports[0].usage is not None
    # The interval counts from the last upload, whatever triggered it.
    assert agent.poll(_at(6 * 3600 - 1)) == []
    assert [u.trigger for u in agent.poll(_at(6 * 3600))] == ["interval"]


def test_any_upload_restarts_every_count(scripted: Scripted) -> None:
    for s in range(1, 20):
        scripted.job(3600 + s, pages=2)
    agent = _agent(scripted.printer)
    (by_jobs,) = agent.poll(_at(3600 + 19))
    assert by_jobs.trigger == "jobs"
    # The clock restarts at that upload: 3 h after it, not after boot.
    assert agent.poll(_at(3600 + 19 + 3 * 3600 - 1)) == []
    assert [u.trigger for u in agent.poll(_at(3600 + 19 + 3 * 3600))] == ["interval"]


# --------------------------------------------------------------------------- alerts


def test_high_severity_alert_goes_at_once(scripted: Scripted) -> None:
    scripted.job(5)
    scripted.alert(7, "Warning", seq=1)
    scripted.alert(10, "Error", seq=2)
    scripted.clear(20, seq=2)
    agent = _agent(scripted.printer)
    assert agent.poll(_at(9)) == []  # a warning waits for the next upload
    (upload,) = agent.poll(_at(10))
    assert (upload.trigger, upload.sim_time, upload.jobs) == ("alert", _at(10), 1)
    alerts = {a.code: a for a in upload.batch.reports[0].alerts}
    assert alerts["code2"].severity == wire.AlertSeverity.ERROR
    assert alerts["code1"].severity == wire.AlertSeverity.WARNING
    # Cleared afterwards: the next upload says when.
    (later,) = agent.poll(_at(10 + 3 * 3600))
    cleared = {a.code: a.cleared_at for a in later.batch.reports[0].alerts}
    assert cleared == {"code2": _at(20), "code1": None}


# --------------------------------------------------------------------------- a real printer


def _run(
    printer: VirtualPrinter,
    steps: Callable[[], float],
    hours: float,
    policy: UploadPolicy | None = None,
) -> list[Upload]:
    agent = DirectAgent(printer, key_id="fmk_test", policy=policy)
    uploads = agent.start(T0)
    t = 0.0
    while t < hours * 3600:
        t = min(t + steps(), hours * 3600)
        uploads += agent.poll(_at(t))
    return uploads


def test_real_printer_every_upload_at_its_first_allowed_instant() -> None:
    printer = build_fleet(seed=3, count=1, start=T0)[0]
    # Lower thresholds than the defaults, so that three days show every kind of trigger.
    policy = UploadPolicy(max_jobs=5, max_pages=12)
    uploads = _run(printer, lambda: 977.0, hours=72, policy=policy)
    assert {u.trigger for u in uploads} >= {"boot", "jobs", "pages", "interval"}
    sent = [j for u in uploads for j in u.batch.reports[0].jobs]
    assert [j.job_uuid for j in sent] == [j.job_uuid for j in printer.jobs]  # once, in order
    previous = uploads[0].sim_time
    for u in uploads[1:]:
        jobs = u.batch.reports[0].jobs
        pages = [j.pages for j in jobs]
        # No earlier cut was possible: without its last job, no rule was met yet ...
        assert len(jobs[:-1]) < policy.max_jobs and sum(pages[:-1]) < policy.max_pages
        assert u.sim_time - previous <= policy.interval
        if u.trigger == "jobs":
            assert len(jobs) == policy.max_jobs and jobs[-1].completed_at == u.sim_time
        elif u.trigger == "pages":
            assert sum(pages) >= policy.max_pages and jobs[-1].completed_at == u.sim_time
        elif u.trigger == "interval":
            assert u.sim_time - previous == policy.interval
            assert len(jobs) < policy.max_jobs and sum(pages) < policy.max_pages
        previous = u.sim_time
    assert uploads[-1].batch.reports[0].usage is not None


def test_uploads_do_not_depend_on_how_often_the_agent_is_polled() -> None:
    def run(step: Callable[[], float]) -> list[tuple[str, datetime, int]]:
        printer = build_fleet(seed=4, count=1, start=T0)[0]
        return [(u.trigger, u.sim_time, u.jobs) for u in _run(printer, step, hours=30)]

    rng = random.Random(1)
    assert run(lambda: 1.0 * 60) == run(lambda: rng.uniform(1, 7200))


# --------------------------------------------------------------------------- offline


class FlakyPortal:
    """A portal that stores batches (by id, answering duplicates) and can be switched off."""

    def __init__(self) -> None:
        self.down = True
        self.stored: list[uuid.UUID] = []
        self.refused = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            self.refused += 1
            raise httpx.ConnectError("connection refused", request=request)
        assert request.headers["signature-input"].startswith("fm=")
        batch = decode_batch(request.content, request.headers["content-encoding"])
        status = "duplicate" if batch.batch_id in self.stored else "stored"
        if status == "stored":
            self.stored.append(batch.batch_id)
        receipt = {"batch_id": str(batch.batch_id), "status": status}
        return httpx.Response(200, content=json.dumps(receipt).encode())


@pytest.mark.anyio
async def test_portal_down_keeps_reports_and_sends_them_later_in_order(
    scripted: Scripted,
) -> None:
    for s in range(1, 60):
        scripted.job(s * 10)
    agent = DirectAgent(scripted.printer, key_id="fmk_test")
    portal = FlakyPortal()
    client = httpx.AsyncClient(
        base_url="https://portal.test", transport=httpx.MockTransport(portal.handler)
    )
    creds = DeviceCredentials(scripted.printer.serial_number, "fmk_test", "fms_secret")
    uploader = DirectUploader(creds, client=client, retry_initial_s=0.01, retry_max_s=0.05)
    task = asyncio.create_task(uploader.run())
    try:
        uploader.put(agent.start(T0))
        uploader.put(agent.poll(_at(600)))  # three uploads of 19 jobs while the portal is down
        await asyncio.sleep(0.3)
        queued = [u.batch.batch_id for u in uploader.queue]
        assert len(queued) == 4 and portal.refused >= 2 and portal.stored == []
        assert all(u.status == "queued" for u in uploader.queue)
        assert uploader.queue[0].attempts >= 2 and uploader.queue[1].attempts == 0

        portal.down = False
        uploader.put(agent.poll(_at(4 * 3600)))  # and one more after it is back
        await asyncio.wait_for(uploader.drained(), timeout=5)
    finally:
        task.cancel()
        await client.aclose()
    assert portal.stored[:4] == queued and len(portal.stored) == 5  # in order, none lost
    assert not uploader.queue
