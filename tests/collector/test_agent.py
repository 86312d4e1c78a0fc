"""poll_once, run and the CLI with the stand-in driver (conftest.FakeDriver) on loopback
addresses and the local HTTPS portal stub."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleetmeter.collector import cli as collector_cli
from fleetmeter.collector.agent import poll_once, run_async
from fleetmeter.collector.config import CollectorConfig, load_config
from fleetmeter.collector.state import State
from fleetmeter.wire import Alert, AlertSeverity, ReportKind

from .conftest import T0, FakeDriver, PortalStub, write_config

pytestmark = pytest.mark.usefixtures("fake_driver")


def fleet(driver: FakeDriver) -> None:
    driver.add("127.0.1.1", "SN-A", jobs=3)
    driver.add("127.0.1.2", "SN-B", jobs=0)
    driver.add("127.0.1.3", "SN-C", jobs=5)
    driver.not_mine.add("127.0.1.4")  # answers, but is not one of the driver's devices


def config_for(tmp_path: Path, portal: PortalStub, ca_file: Path, **kw: object) -> CollectorConfig:
    kw.setdefault("targets", ["127.0.1.0/29"])
    path = write_config(tmp_path / "collector.toml", portal_url=portal.url, ca_file=ca_file, **kw)  # type: ignore[arg-type]
    return load_config(path)


def jobs_at_portal(portal: PortalStub) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for received in portal.received:
        for report in received.batch.reports:
            out.setdefault(report.device.serial_number, []).extend(
                j.sequence_number for j in report.jobs
            )
    return out


def test_poll_once_collects_every_job_once(
    tmp_path: Path, portal: PortalStub, ca_file: Path, fake_driver: FakeDriver
) -> None:
    fleet(fake_driver)
    config = config_for(tmp_path, portal, ca_file)
    result = poll_once(config)
    assert result.ok, result
    assert result.devices_found == 3
    assert [d["address"] for d in result.devices] == ["127.0.1.1", "127.0.1.2", "127.0.1.3"]
    assert (result.reports_queued, result.jobs_collected) == (3, 8)
    assert result.batches_sent == 1 and result.reports_uploaded == 3
    assert result.outbox_remaining == 0
    assert jobs_at_portal(portal) == {"SN-A": [1, 2, 3], "SN-B": [], "SN-C": [1, 2, 3, 4, 5]}
    (received,) = portal.received
    for report in received.batch.reports:
        assert report.kind is ReportKind.USAGE
        assert report.device.address is not None and report.device.address.startswith("127.0.1.")
        assert report.status is not None and report.alerts  # usage carries status and alerts

    # More printing; the second round sends only the new jobs (cursors advanced with the
    # reports), and the pins learnt on first contact were kept.
    fake_driver.printers["127.0.1.1"].print_jobs(2)
    portal.received.clear()
    fake_driver.reads.clear()
    second = poll_once(config)
    assert second.ok and second.jobs_collected == 2
    assert jobs_at_portal(portal) == {"SN-A": [4, 5], "SN-B": [], "SN-C": []}
    cursors = {host: opts.job_cursor for host, opts in fake_driver.reads}
    assert cursors == {"127.0.1.1": 3, "127.0.1.2": None, "127.0.1.3": 5}
    with State(config.data_dir) as state:
        assert set(state.load_pins().pins) == {
            "127.0.1.1:default",
            "127.0.1.2:default",
            "127.0.1.3:default",
        }


def test_a_failing_device_fails_the_run_but_not_the_others(
    tmp_path: Path, portal: PortalStub, ca_file: Path, fake_driver: FakeDriver
) -> None:
    fleet(fake_driver)
    fake_driver.printers["127.0.1.2"].fail_read = "ProductUsageDyn.xml: not XML"
    result = poll_once(config_for(tmp_path, portal, ca_file))
    assert not result.ok
    assert result.errors == ["poll 127.0.1.2 (fake): ProductUsageDyn.xml: not XML"]
    assert set(jobs_at_portal(portal)) == {"SN-A", "SN-C"}


def test_nothing_found_is_a_failure(
    tmp_path: Path, portal: PortalStub, ca_file: Path, fake_driver: FakeDriver
) -> None:
    result = poll_once(config_for(tmp_path, portal, ca_file))
    assert not result.ok and result.devices_found == 0
    assert result.errors == ["no devices found in the configured ranges"]


def test_a_known_device_that_went_silent_is_reported_not_forgotten(
    tmp_path: Path, portal: PortalStub, ca_file: Path, fake_driver: FakeDriver
) -> None:
    fleet(fake_driver)
    config = config_for(tmp_path, portal, ca_file)
    assert poll_once(config).ok
    del fake_driver.printers["127.0.1.3"]  # switched off
    result = poll_once(config)
    assert result.devices_found == 2
    assert result.errors == ["poll 127.0.1.3 (fake): 127.0.1.3: connection refused"]
    with State(config.data_dir) as state:
        known = {d.address: d.last_error for d in state.known_devices()}
    assert known["127.0.1.3"] == "127.0.1.3: connection refused"


def test_a_swapped_device_is_read_with_its_own_cursor(
    tmp_path: Path,
    portal: PortalStub,
    ca_file: Path,
    fake_driver: FakeDriver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_driver.add("127.0.1.1", "OLD", jobs=9)
    config = config_for(tmp_path, portal, ca_file)
    assert poll_once(config).ok
    # Between discovery and the read, another printer (own job numbering) takes the address.
    from fleetmeter.collector import agent

    real_discover = agent.Agent.discover

    async def discover_then_swap(self: agent.Agent) -> object:
        result = await real_discover(self)
        fake_driver.add("127.0.1.1", "NEW", jobs=4)
        return result

    monkeypatch.setattr(agent.Agent, "discover", discover_then_swap)
    portal.received.clear()
    result = poll_once(config)
    assert result.ok and result.jobs_collected == 4
    assert jobs_at_portal(portal) == {"NEW": [1, 2, 3, 4]}


def test_a_large_job_backlog_is_split_into_reports_that_fit(
    tmp_path: Path, portal: PortalStub, ca_file: Path, fake_driver: FakeDriver
) -> None:
    # A printer's whole job log (the simulator keeps 2000) arrives at the first poll: it must
    # reach the portal complete, in batches under the cap, none quarantined as too large.
    printer = fake_driver.add("127.0.1.1", "SN-BIG")
    printer.job_name_size = 200
    printer.print_jobs(2000)
    config = config_for(tmp_path, portal, ca_file, max_batch_bytes=50_000)
    result = poll_once(config)
    assert result.ok, result.as_dict()
    assert result.jobs_collected == 2000
    assert jobs_at_portal(portal) == {"SN-BIG": list(range(1, 2001))}
    reports = [r for x in portal.received for r in x.batch.reports]
    assert len(reports) == 8 and all(len(r.jobs) <= 250 for r in reports)
    assert reports[0].usage is not None and all(r.usage is None for r in reports[1:])
    assert all(x.size <= 50_000 for x in portal.received)
    with State(config.data_dir) as state:
        assert state.job_cursor("fake", "SN-BIG") == 2000


# --------------------------------------------------------------------------- CLI


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fleetmeter")
    collector_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_cli_poll_once_and_discover(
    tmp_path: Path,
    portal: PortalStub,
    ca_file: Path,
    fake_driver: FakeDriver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fleet(fake_driver)
    config = config_for(tmp_path, portal, ca_file)
    assert cli(["collector", "discover", "--config", str(config.source)]) == 0
    out = capsys.readouterr().out
    assert "https://127.0.1.1  fake  HP Fake T830  serial SN-A" in out
    assert "3 devices found" in out

    assert cli(["collector", "poll-once", "--config", str(config.source)]) == 0
    out = capsys.readouterr().out
    assert "3 devices found, 3 reports queued, 8 jobs collected" in out
    assert "1 batch sent (3 reports), 0 left in the outbox" in out

    assert cli(["collector", "poll-once", "--json", "--config", str(config.source)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["devices_found"] == 3 and doc["jobs_collected"] == 0

    assert cli(["collector", "status", "--json", "--config", str(config.source)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["outbox_pending"] == 0 and len(doc["devices"]) == 3


def test_cli_errors_are_one_line_without_traceback(
    tmp_path: Path, ca_file: Path, fake_driver: FakeDriver, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write_config(tmp_path / "bad.toml", usage_minutes=10)
    for command in ("run", "poll-once", "discover", "status"):
        assert cli(["collector", command, "--config", str(bad)]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        (line,) = captured.err.splitlines()
        assert "schedule.usage_interval_minutes" in line and "Traceback" not in captured.err

    fleet(fake_driver)
    down = write_config(tmp_path / "down.toml", portal_url="https://127.0.0.1:9", ca_file=ca_file)
    assert cli(["collector", "poll-once", "--config", str(down)]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "upload: portal https://127.0.0.1:9/api/v1/ingest/batches: cannot connect" in (
        captured.err
    )


# --------------------------------------------------------------------------- run


def test_run_polls_on_schedule_uploads_and_stops_cleanly(
    tmp_path: Path, portal: PortalStub, ca_file: Path, fake_driver: FakeDriver
) -> None:
    fleet(fake_driver)
    # Speed 1200: usage every 1.5 s, health every 0.25 s, upload every 0.05 s of real time.
    config = config_for(tmp_path, portal, ca_file, usage_minutes=30, speed=1200.0)
    ready = threading.Event()
    loop_box: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
    errors: list[BaseException] = []

    def body() -> None:
        async def go() -> None:
            stop = asyncio.Event()
            loop_box.append((asyncio.get_running_loop(), stop))
            await run_async(config, ready=lambda _: ready.set(), stop=stop)

        try:
            asyncio.run(go())
        except BaseException as exc:  # reported to the test thread below
            errors.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    try:
        assert ready.wait(10), errors

        def kinds(p: PortalStub) -> list[ReportKind]:
            return [r.kind for x in p.received for r in x.batch.reports]

        # First usage right away, then health polls, then the second usage round.
        assert portal.wait_for(lambda p: kinds(p).count(ReportKind.USAGE) >= 6, 15)
        assert ReportKind.HEALTH in kinds(portal)
        assert kinds(portal)[:3] == [ReportKind.USAGE] * 3
        fake_driver.printers["127.0.1.2"].print_jobs(2)
        assert portal.wait_for(lambda p: jobs_at_portal(p).get("SN-B") == [1, 2], 15)
    finally:
        loop, stop = loop_box[0]
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
    assert not thread.is_alive() and errors == []
    assert jobs_at_portal(portal) == {"SN-A": [1, 2, 3], "SN-B": [1, 2], "SN-C": [1, 2, 3, 4, 5]}


@contextlib.contextmanager
def running_agent(config: CollectorConfig) -> Iterator[None]:
    """``run_async(config)`` in a thread of its own until the block ends; fails the test if it
    does not start, does not stop, or raised."""
    ready = threading.Event()
    loop_box: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
    errors: list[BaseException] = []

    def body() -> None:
        async def go() -> None:
            stop = asyncio.Event()
            loop_box.append((asyncio.get_running_loop(), stop))
            await run_async(config, ready=lambda _: ready.set(), stop=stop)

        try:
            asyncio.run(go())
        except BaseException as exc:  # reported to the test thread below
            errors.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    try:
        assert ready.wait(10), errors
        yield
    finally:
        if loop_box:
            loop, stop = loop_box[0]
            loop.call_soon_threadsafe(stop.set)
        thread.join(15)
    assert not thread.is_alive() and errors == []


def test_routine_health_waits_for_the_round_and_a_new_serious_alert_goes_at_once(
    tmp_path: Path, portal: PortalStub, ca_file: Path, fake_driver: FakeDriver
) -> None:
    # One request per health poll would cost a site more in HTTP heads and TLS handshakes
    # than its data: routine health reports wait for the upload round, usage and a newly
    # raised error alert do not. At ×600 health is polled every 0.5 s and the upload round
    # (a day here) never comes during the test: only urgent reports make a request.
    printer = fake_driver.add("127.0.1.1", "SN-A", jobs=2)
    config = config_for(
        tmp_path,
        portal,
        ca_file,
        targets=["127.0.1.1"],
        usage_minutes=1440,
        speed=600.0,
        upload_extra="interval_seconds = 86400",
    )

    def health_reads() -> int:
        return sum(1 for _, options in fake_driver.reads if options.kind is ReportKind.HEALTH)

    def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        return condition()

    def reports() -> list[tuple[ReportKind, set[str]]]:
        return [
            (r.kind, {a.code for a in r.alerts})
            for received in portal.received
            for r in received.batch.reports
        ]

    with running_agent(config):
        # The first usage read goes at once (billing data).
        assert portal.wait_for(lambda p: len(p.received) == 1, 15)
        assert [kind for kind, _ in reports()] == [ReportKind.USAGE]
        # Routine health polls queue their reports and make no request.
        reads = health_reads()
        assert wait_until(lambda: health_reads() >= reads + 3, 15)
        assert len(portal.received) == 1
        # A new error alert (a failed printhead) is sent at once, with what was waiting.
        printer.alerts.append(
            Alert(code="printhead.failed", severity=AlertSeverity.ERROR, first_seen=T0)
        )
        assert portal.wait_for(lambda p: len(p.received) == 2, 15)
        second = [kind for kind, _ in reports()[1:]]
        assert ReportKind.HEALTH in second and len(second) >= 4  # three waiting + the alert
        assert "printhead.failed" in reports()[-1][1]
        # The same alert in the following polls is not new: no further request.
        reads = health_reads()
        assert wait_until(lambda: health_reads() >= reads + 3, 15)
        assert len(portal.received) == 2


def test_run_keeps_collecting_while_the_portal_is_down(
    tmp_path: Path, ca_file: Path, fake_driver: FakeDriver, caplog: pytest.LogCaptureFixture
) -> None:
    # A site PC often boots before its network; the portal may be down for days. The agent
    # must start anyway and keep every reading in the outbox.
    fleet(fake_driver)
    down = load_config(
        write_config(
            tmp_path / "down.toml",
            portal_url="https://127.0.0.1:9",
            ca_file=ca_file,
            targets=["127.0.1.0/29"],
        )
    )
    ready = threading.Event()

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_async(down, ready=lambda _: ready.set(), stop=stop))
        for _ in range(100):
            await asyncio.sleep(0.1)
            with State(down.data_dir) as state:
                if state.outbox_count() >= 3:
                    break
        stop.set()
        await asyncio.wait_for(task, 15)

    asyncio.run(go())
    assert ready.is_set()
    assert "portal not reachable now" in caplog.text
    with State(down.data_dir) as state:
        assert state.outbox_count() >= 3  # one usage report per printer, waiting for the portal


def test_cli_run_prints_ready_and_stops_on_sigterm(
    tmp_path: Path,
    portal: PortalStub,
    ca_file: Path,
    fake_driver: FakeDriver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fleet(fake_driver)
    config = config_for(tmp_path, portal, ca_file, usage_minutes=30, speed=600.0)
    done = threading.Event()

    def terminate_after_first_batch() -> None:
        if portal.wait_for(lambda p: len(p.received) >= 1, 15) and not done.is_set():
            os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_after_first_batch)
    killer.start()
    try:
        code = cli(["collector", "run", "--config", str(config.source)])
    finally:
        done.set()
        killer.join()
    assert code == 0
    out = capsys.readouterr().out
    assert json.loads(out.splitlines()[0])["ready"] is True
    assert len(out.splitlines()) == 1  # stdout carries the ready line only
    with State(config.data_dir) as state:
        assert state.known_devices()  # state written and closed cleanly


# --------------------------------------------------------------------------- moves and hangs


def test_a_device_at_a_new_address_is_the_same_device_and_keeps_its_cursor(
    tmp_path: Path, portal: PortalStub, ca_file: Path, fake_driver: FakeDriver
) -> None:
    printer = fake_driver.add("127.0.1.1", "SN-A", jobs=3)
    printer.cert = "c" * 64  # the same certificate wherever it is
    fake_driver.add("127.0.1.2", "SN-B", jobs=1)
    config = config_for(tmp_path, portal, ca_file)
    assert poll_once(config).ok
    # DHCP hands it another address; it prints two more jobs.
    fake_driver.printers["127.0.1.5"] = fake_driver.printers.pop("127.0.1.1")
    printer.print_jobs(2)
    portal.received.clear()
    fake_driver.reads.clear()
    result = poll_once(config)
    assert result.ok, result.as_dict()  # the old address is not polled (and failing) any more
    assert jobs_at_portal(portal) == {"SN-A": [4, 5], "SN-B": []}
    assert dict((host, o.job_cursor) for host, o in fake_driver.reads)["127.0.1.5"] == 3
    with State(config.data_dir) as state:
        known = {d.serial_number: d.address for d in state.known_devices()}
        assert known == {"SN-A": "127.0.1.5", "SN-B": "127.0.1.2"}
        # Its certificate moved with it: the old address's pin is gone, the new one kept.
        assert set(state.load_pins().pins) == {"127.0.1.5:default", "127.0.1.2:default"}


def test_a_hung_device_does_not_delay_the_others(
    tmp_path: Path, portal: PortalStub, ca_file: Path, fake_driver: FakeDriver
) -> None:
    fleet(fake_driver)
    fake_driver.printers["127.0.1.2"].hang = True
    config = config_for(tmp_path, portal, ca_file, schedule_extra="poll_timeout_seconds = 0.2")
    started = time.monotonic()
    result = poll_once(config)
    assert time.monotonic() - started < 5
    assert result.errors == ["poll 127.0.1.2 (fake): no answer within 0.6 s"]
    assert set(jobs_at_portal(portal)) == {"SN-A", "SN-C"}


def test_run_keeps_polling_the_others_while_one_device_hangs(
    tmp_path: Path, portal: PortalStub, ca_file: Path, fake_driver: FakeDriver
) -> None:
    fleet(fake_driver)
    hung = fake_driver.printers["127.0.1.2"]
    # Usage every 1.5 s, health every 0.25 s; a poll is abandoned after 3 × 1 s.
    config = config_for(
        tmp_path,
        portal,
        ca_file,
        usage_minutes=30,
        speed=1200.0,
        schedule_extra="poll_timeout_seconds = 1.0",
    )

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_async(config, stop=stop))
        try:
            while len(fake_driver.reads) < 3:  # first usage round done
                await asyncio.sleep(0.02)
            hung.hang = True
            started = time.monotonic()
            reads_before = len(fake_driver.reads)
            await asyncio.sleep(2.0)  # the hung poll is still waiting for its 3 s timeout
            others = {host for host, _ in fake_driver.reads[reads_before:]}
            assert others == {"127.0.1.1", "127.0.1.3"}
            assert len(fake_driver.reads) - reads_before >= 8  # several health rounds each
            assert time.monotonic() - started < 2.5
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(go())
    with State(config.data_dir) as state:
        (row,) = [d for d in state.known_devices() if d.address == "127.0.1.2"]
        assert row.last_error is not None and "no answer within 3 s" in row.last_error


# --------------------------------------------------------------------------- certificate change


def test_a_changed_certificate_raises_an_alert_until_repinned(
    tmp_path: Path,
    portal: PortalStub,
    ca_file: Path,
    fake_driver: FakeDriver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fleet(fake_driver)
    config = config_for(tmp_path, portal, ca_file)
    assert poll_once(config).ok
    printer = fake_driver.printers["127.0.1.3"]
    printer.cert = "e" * 64  # the device presents another certificate
    printer.print_jobs(1)
    portal.received.clear()
    result = poll_once(config)
    assert not result.ok
    (error,) = result.errors
    assert "127.0.1.3" in error and "TLS certificate changed" in error
    reports = [r for x in portal.received for r in x.batch.reports]
    (alerting,) = [r for r in reports if r.alerts and r.alerts[0].code == "tls.certificate_changed"]
    assert alerting.kind is ReportKind.HEALTH and alerting.device.serial_number == "SN-C"
    (alert,) = alerting.alerts
    assert alert.severity == "error" and alert.cleared_at is None
    assert "eeeeeeeeeeeeeeee" in alert.text and "repin 127.0.1.3" in alert.text
    assert [r.kind for r in reports if r.device.serial_number == "SN-C"] == [ReportKind.HEALTH]
    first_seen = alert.first_seen

    # Still refused on the next poll: the same alert (same first_seen), still no data read.
    portal.received.clear()
    assert not poll_once(config).ok
    again = [a for x in portal.received for r in x.batch.reports for a in r.alerts]
    assert [a.first_seen for a in again if a.code == "tls.certificate_changed"] == [first_seen]

    assert cli(["collector", "status", "--config", str(config.source)]) == 0
    assert "CERTIFICATE CHANGED" in capsys.readouterr().out

    # The operator checked the device and re-pins it.
    assert cli(["collector", "repin", "--config", str(config.source), "127.0.1.3"]) == 0
    out = capsys.readouterr().out
    assert "forgot pin 127.0.1.3:default" in out
    assert cli(["collector", "repin", "--config", str(config.source), "127.0.1.3"]) == 1
    assert "no certificate is pinned for 127.0.1.3" in capsys.readouterr().err

    portal.received.clear()
    result = poll_once(config)
    assert result.ok, result.as_dict()
    assert jobs_at_portal(portal)["SN-C"] == [6]
    (report,) = [
        r for x in portal.received for r in x.batch.reports if r.device.serial_number == "SN-C"
    ]
    (cleared,) = [a for a in report.alerts if a.code == "tls.certificate_changed"]
    assert cleared.cleared_at is not None and cleared.first_seen == first_seen
    with State(config.data_dir) as state:
        assert state.load_pins().pins["127.0.1.3:default"] == "e" * 64


def test_a_running_agent_picks_up_a_repin(
    tmp_path: Path, portal: PortalStub, ca_file: Path, fake_driver: FakeDriver
) -> None:
    fake_driver.add("127.0.1.1", "SN-A")
    config = config_for(tmp_path, portal, ca_file, usage_minutes=30, speed=1200.0)
    assert poll_once(config).ok
    fake_driver.printers["127.0.1.1"].cert = "d" * 64

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_async(config, stop=stop))
        try:
            while not any(
                a.code == "tls.certificate_changed"
                for x in list(portal.received)
                for r in x.batch.reports
                for a in r.alerts
            ):
                await asyncio.sleep(0.05)
            with State(config.data_dir) as other_process:
                assert other_process.forget_pins("127.0.1.1")
            reads = len(fake_driver.reads)
            while len(fake_driver.reads) == reads:  # read again within a health interval
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(asyncio.wait_for(go(), 12))
    with State(config.data_dir) as state:
        # The agent did not write the old pin back when it saved the ones it learnt.
        assert state.load_pins().pins == {"127.0.1.1:default": "d" * 64}
