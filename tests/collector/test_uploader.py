"""The uploader against a real local HTTPS server: delete on 200, retry on 5xx/429, quarantine
on other 4xx, batches within the size cap, the same batch id after a crash, TLS verified."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from fleetmeter.collector.config import CollectorConfig, load_config
from fleetmeter.collector.state import State
from fleetmeter.collector.uploader import (
    Backoff,
    Uploader,
    UploadResult,
    _encode,
    _reports,
    split_rows,
)
from fleetmeter.signing import certs
from fleetmeter.wire import DeviceIdentity, DeviceReport, ReportKind

from .conftest import TOKEN, FakePrinter, PortalStub, write_config


def report(serial: str, *, jobs: int = 2, name_size: int = 10) -> DeviceReport:
    printer = FakePrinter(serial, job_name_size=0)
    printer.print_jobs(jobs)
    for job in printer.jobs:
        # Random text compresses badly: the batch sizes below are not flattered by zstd.
        job.name = secrets.token_hex(name_size // 2)
    return DeviceReport(
        kind=ReportKind.USAGE,
        collected_at=datetime.now(UTC),
        device=DeviceIdentity(vendor="HP", serial_number=serial, driver="fake"),
        jobs=printer.jobs,
    )


def make_config(
    tmp_path: Path, portal: PortalStub, ca_file: Path, *, max_batch_bytes: int = 100_000
) -> CollectorConfig:
    path = write_config(
        tmp_path / "collector.toml",
        portal_url=portal.url,
        ca_file=ca_file,
        max_batch_bytes=max_batch_bytes,
    )
    return load_config(path)


def upload(config: CollectorConfig, state: State) -> UploadResult:
    async def go() -> UploadResult:
        async with Uploader(config, state) as uploader:
            return await uploader.upload_all()

    return asyncio.run(go())


def test_batches_are_split_under_the_cap_and_lose_nothing(
    tmp_path: Path, portal: PortalStub, ca_file: Path
) -> None:
    config = make_config(tmp_path, portal, ca_file, max_batch_bytes=8192)
    with State(config.data_dir) as state:
        sent = [report(f"SN{i:03}", jobs=5, name_size=200) for i in range(60)]
        for r in sent:
            state.enqueue(r)
        result = upload(config, state)
        assert result.ok, result
        assert state.outbox_count(include_quarantined=True) == 0

    assert result.batches_sent == len(portal.received) > 3  # really split
    for received in portal.received:
        assert received.size <= 8192
        assert received.headers["Content-Encoding"] == "zstd"
        assert received.headers["Authorization"] == f"Bearer {TOKEN}"
        assert received.batch.sender == "test-collector"
    got = [r.device.serial_number for x in portal.received for r in x.batch.reports]
    assert got == [r.device.serial_number for r in sent]  # all of them, in outbox order
    assert len({x.batch.batch_id for x in portal.received}) == len(portal.received)


def test_split_rows_takes_the_longest_fitting_prefix(tmp_path: Path) -> None:
    with State(tmp_path) as state:
        for i in range(40):
            state.enqueue(report(f"SN{i}", jobs=3, name_size=300))
        rows = state.unbatched_rows(100)
    now = datetime.now(UTC)
    taken, too_large = split_rows(rows, max_bytes=6000, sender="s", created_at=now)
    assert too_large == [] and 1 < len(taken) < len(rows)
    assert taken == rows[: len(taken)]

    def size(n: int) -> int:
        return len(_encode(uuid.uuid4(), now, "s", _reports(rows[:n])))

    assert size(len(taken)) <= 6000 < size(len(taken) + 1)


def test_server_error_keeps_rows_and_resend_reuses_the_batch_id(
    tmp_path: Path, portal: PortalStub, ca_file: Path
) -> None:
    config = make_config(tmp_path, portal, ca_file)
    portal.script = [500]
    with State(config.data_dir) as state:
        state.enqueue(report("SN1"))
        failed = upload(config, state)
        assert failed.error is not None and "500" in failed.error
        assert state.outbox_count() == 1
        # New reports queued meanwhile do not join the batch already formed.
        state.enqueue(report("SN2"))
        retried = upload(config, state)
        assert retried.ok and retried.batches_sent == 2
        assert state.outbox_count() == 0
    first, second, third = (r.batch for r in portal.received)
    assert second.batch_id == first.batch_id
    assert second.model_dump_json() == first.model_dump_json()  # byte-identical resend
    assert [r.device.serial_number for r in third.reports] == ["SN2"]


def test_resend_after_a_crash_mid_post_reuses_the_batch_id(
    tmp_path: Path, portal: PortalStub, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(tmp_path, portal, ca_file)
    real_post = httpx.AsyncClient.post

    async def post_then_die(self: httpx.AsyncClient, *args: object, **kwargs: object) -> None:
        # The portal gets (and stores) the batch, then the collector dies before the answer.
        await real_post(self, *args, **kwargs)  # type: ignore[arg-type]
        raise SystemExit("killed before the 200 was read")

    with State(config.data_dir) as state:
        state.enqueue(report("SN1"))
        monkeypatch.setattr(httpx.AsyncClient, "post", post_then_die)
        with pytest.raises(SystemExit):
            upload(config, state)
        monkeypatch.setattr(httpx.AsyncClient, "post", real_post)
    with State(config.data_dir) as state:  # the restarted collector
        assert state.outbox_count() == 1
        assert upload(config, state).ok
        assert state.outbox_count() == 0
    assert [r.batch.batch_id for r in portal.received] == [portal.received[0].batch.batch_id] * 2


def test_rate_limit_is_retried_later_honouring_retry_after(
    tmp_path: Path, portal: PortalStub, ca_file: Path
) -> None:
    config = make_config(tmp_path, portal, ca_file)
    portal.script = [429]
    with State(config.data_dir) as state:
        state.enqueue(report("SN1"))
        result = upload(config, state)
        assert result.error is not None and result.retry_after == 7
        assert state.outbox_count() == 1
    assert Backoff(cap_s=300).next_delay(7) >= 7
    assert Backoff(cap_s=5).next_delay(700) == 5


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    backoff = Backoff(base_s=1, cap_s=60)
    delays = [backoff.next_delay() for _ in range(10)]
    assert 1 <= delays[0] <= 2 and 2 <= delays[1] <= 4 and 4 <= delays[2] <= 8
    assert all(30 <= d <= 60 for d in delays[6:])
    backoff.reset()
    assert backoff.next_delay() <= 2


def test_rejected_batch_is_quarantined_with_the_problem_and_the_queue_moves_on(
    tmp_path: Path, portal: PortalStub, ca_file: Path
) -> None:
    config = make_config(tmp_path, portal, ca_file)
    portal.script = [422]
    with State(config.data_dir) as state:
        state.enqueue(report("SN1"))
        result = upload(config, state)
        (line,) = result.quarantined
        assert "422" in line and "serial_number: must not be empty" in line
        (row,) = state.quarantined()
        assert "Invalid batch" in row.reason
        # Not retried forever, and not blocking what comes after it.
        state.enqueue(report("SN2"))
        assert upload(config, state).ok
        assert state.outbox_count() == 0
        assert state.outbox_count(include_quarantined=True) == 1
    assert [r.reports[0].device.serial_number for r in (x.batch for x in portal.received)] == [
        "SN1",
        "SN2",
    ]


def test_a_report_too_large_alone_is_quarantined_not_blocking(
    tmp_path: Path, portal: PortalStub, ca_file: Path
) -> None:
    config = make_config(tmp_path, portal, ca_file, max_batch_bytes=4096)
    with State(config.data_dir) as state:
        state.enqueue(report("SN1"))
        state.enqueue(report("HUGE", jobs=20, name_size=1000))
        state.enqueue(report("SN3"))
        result = upload(config, state)
        assert result.batches_sent == 2
        (line,) = result.quarantined
        assert "exceeds max_batch_bytes (4096)" in line
        assert state.outbox_count() == 0
    sent = [r.device.serial_number for x in portal.received for r in x.batch.reports]
    assert sent == ["SN1", "SN3"]


def test_wrong_token_keeps_the_outbox_for_later_and_token_never_logged(
    tmp_path: Path, portal: PortalStub, ca_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = make_config(tmp_path, portal, ca_file)
    with State(config.data_dir) as state:
        state.enqueue(report("SN1"))
        assert upload(config, state).ok
        # A rotated or wrong token is fixed outside the collector: 401 must neither lose nor
        # set aside what is queued, only retry it later.
        bad = config.model_copy(
            update={"portal": config.portal.model_copy(update={"token": SecretStr("wrong")})}
        )
        state.enqueue(report("SN2"))
        state.enqueue(report("SN3"))
        result = upload(bad, state)
        assert not result.ok and "401" in (result.error or "")
        assert result.quarantined == []
        assert state.outbox_count() == 2
        assert upload(config, state).ok  # token fixed: delivered
        assert state.outbox_count(include_quarantined=True) == 0
    assert portal.auth_failures == 1
    assert TOKEN not in caplog.text
    assert "wrong" not in caplog.text


def test_untrusted_portal_certificate_gives_a_clear_error(
    tmp_path: Path, portal: PortalStub
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(certs.certificate_authority("Some other CA").cert_pem)
    config = make_config(tmp_path, portal, other_ca)
    with State(config.data_dir) as state:
        state.enqueue(report("SN1"))
        result = upload(config, state)
        assert state.outbox_count() == 1
    assert result.error is not None
    assert "TLS certificate verification failed" in result.error
    assert "portal.ca_file" in result.error
    assert portal.received == []


def test_unreachable_portal_keeps_everything(tmp_path: Path, ca_file: Path) -> None:
    path = write_config(tmp_path / "c.toml", portal_url="https://127.0.0.1:9", ca_file=ca_file)
    config = load_config(path)
    with State(config.data_dir) as state:
        state.enqueue(report("SN1"))
        result = upload(config, state)
        assert result.error is not None and "cannot connect" in result.error
        assert state.outbox_count() == 1
        assert len(state.pending_batches()) == 1  # formed and kept for the resend


def test_requeue_releases_quarantined_reports(
    tmp_path: Path, portal: PortalStub, ca_file: Path
) -> None:
    config = make_config(tmp_path, portal, ca_file)
    portal.script = [422]
    with State(config.data_dir) as state:
        state.enqueue(report("SN1"))
        assert upload(config, state).quarantined
        assert state.requeue_quarantined() == 1
        assert upload(config, state).ok
        assert state.outbox_count(include_quarantined=True) == 0
    assert [x.batch.reports[0].device.serial_number for x in portal.received] == ["SN1", "SN1"]


def test_a_stored_report_that_no_longer_validates_is_set_aside_alone(
    tmp_path: Path, portal: PortalStub, ca_file: Path
) -> None:
    # E.g. written by an older collector that accepted a counter beyond 64 bits: it must not
    # stop every later upload.
    config = make_config(tmp_path, portal, ca_file)
    with State(config.data_dir) as state:
        state.enqueue(report("SN1"))
        (bad_id,) = state.enqueue(report("SN2"))
        state.enqueue(report("SN3"))
        with state.transaction() as db:
            doc = json.loads(
                db.execute("SELECT report FROM outbox WHERE id = ?", (bad_id,)).fetchone()[0]
            )
            doc["usage"] = {"impressions": 2**64}
            db.execute("UPDATE outbox SET report = ? WHERE id = ?", (json.dumps(doc), bad_id))
        result = upload(config, state)
        assert result.error is None and result.reports_sent == 2
        (line,) = result.quarantined
        assert f"row {bad_id}" in line and "usage.impressions" in line
    sent = [r.device.serial_number for x in portal.received for r in x.batch.reports]
    assert sent == ["SN1", "SN3"]
