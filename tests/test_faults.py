"""Fault tests (issue 4): kill the collector and the portal at random instants, cut the
connection between them, and the portal's ledger still equals the fleet's ground truth.

Every scenario runs the real programs (``tests/e2e_stack.py``): a simulated fleet, a portal on
SQLite, a collector, and between collector and portal the fault proxy (``tests/faultproxy.py``),
which also tells the test when a batch is at the portal or its receipt on the way back, so
that kills land inside an upload, not only near one. After the faults, the simulator is paused
(its truth stops moving), the collector — a survivor or a restarted one — is left to settle,
and then: every job the printers printed is in the portal exactly once (UUID sets and counts),
no job is invented, the latest lifetime counters are the printers', and the outbox is empty
with nothing quarantined.

Random choices (kill instants, kinds, faults) come from one seed, printed at the start of each
test and in every failure; ``FLEETMETER_FAULT_SEED=N`` replays the same choices (timing still
varies: processes are real). The collector runs at ×1200 with a 30-minute usage interval
(1.5 s real), so that job cursors move, and batches go up, several times a second. The whole
file takes about two minutes on two cores.

Two tests guard bugs this suite found and that are now fixed: a 200 that is not the portal's
receipt no longer confirms a batch (``Uploader._check_receipt``), and the scheduler no longer
skips every other slot (``Scheduler.done``).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleetmeter.collector.scheduler import Scheduler
from fleetmeter.supervise import Program, programs
from fleetmeter.wire import ReportKind
from tests.e2e_stack import (
    Portal,
    assert_ledger_equals_truth,
    control,
    prepare_portal,
    random_subnet,
    start_simulator,
    write_collector_config,
)
from tests.faultproxy import Fault, FaultProxy, Plan

DEVICES = 6
SIM_SPEED = 3600.0  # one simulated hour of printing per real second
COLLECTOR_SPEED = 1200.0  # usage every 1.5 s, health every 0.75 s (real)
SETTLE_S = 60.0


def _seed() -> int:
    seed = int(os.environ.get("FLEETMETER_FAULT_SEED", random.randrange(2**31)))
    print(f"fault seed {seed} (replay: FLEETMETER_FAULT_SEED={seed})")
    return seed


def _kill(program: Program) -> None:
    """kill -9 the program's process group, then reap it."""
    if program.running():
        os.killpg(program.proc.pid, signal.SIGKILL)
    program.stop()


# --------------------------------------------------------------------------- the stack


@dataclass
class FaultStack:
    tmp: Path
    seed: int
    rng: random.Random
    portal: Portal
    proxy: FaultProxy
    running: list[Program]
    control_url: str
    config: Path
    collector: Program | None = None
    log: list[str] = field(default_factory=list)

    def sim(self, method: str, path: str) -> Any:
        return control(self.control_url, method, path)

    def note(self, line: str) -> None:
        self.log.append(line)
        print(line)

    def context(self) -> str:
        return f"seed {self.seed}; proxy {dict(self.proxy.counts())}; events {self.log[-12:]}"

    def start_collector(self) -> Program:
        program = Program(
            "collector",
            ["collector", "run", "--config", str(self.config)],
            log_path=self.tmp / "collector.log",
        )
        self.running.append(program)
        program.wait_ready(timeout_s=60)
        self.collector = program
        return program

    def kill_collector(self) -> None:
        assert self.collector is not None
        _kill(self.collector)
        self.collector = None

    def restart_portal(self) -> None:
        """A new portal process on the same database and the same port."""
        self.portal.start(self.running, self.tmp, port=self.portal.port, tls=False)

    def outbox(self) -> tuple[int, int]:
        """(pending, quarantined) rows in the collector's outbox, read from its database."""
        db = self.tmp / "collector" / "collector.sqlite3"
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            pending = conn.execute(
                "SELECT count(*) FROM outbox WHERE quarantined_at IS NULL"
            ).fetchone()[0]
            quarantined = conn.execute(
                "SELECT count(*) FROM outbox WHERE quarantined_at IS NOT NULL"
            ).fetchone()[0]
        return int(pending), int(quarantined)

    def settle(self, timeout_s: float = SETTLE_S) -> int:
        """Pause the fleet, let the collector catch up, and check the ledger: exactly the
        truth, an empty outbox, nothing quarantined. Returns the number of jobs."""
        self.proxy.set_plan(Plan())
        if self.collector is None:
            self.start_collector()
        self.sim("POST", "/pause")
        truth = self.sim("GET", "/truth")
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.collector is not None and self.collector.running(), (
                f"collector died: {self.collector and self.collector.log_tail()}; " + self.context()
            )
            try:
                pending, quarantined = self.outbox()
                assert quarantined == 0, f"{quarantined} outbox rows quarantined"
                total = assert_ledger_equals_truth(self.portal, truth)
                assert pending == 0, f"{pending} reports still in the outbox"
                break
            except (AssertionError, httpx.HTTPError) as exc:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{exc}; {self.context()}") from exc
                time.sleep(0.5)
        assert total > 0, "the fleet printed nothing: the test would prove nothing"
        self.note(f"settled: {total} jobs, proxy {dict(self.proxy.counts())}")
        return total


@contextlib.contextmanager
def _fault_stack(tmp_path: Path, *, tls: bool) -> Iterator[FaultStack]:
    """The portal serves plain HTTP unless ``tls`` (the HTTP-aware proxy must read the
    requests); the collector's portal URL is the proxy's."""
    seed = _seed()
    portal = prepare_portal(tmp_path)
    subnet = random_subnet()
    with programs() as running:
        portal.start(running, tmp_path, tls=tls)
        fleet = start_simulator(
            running, tmp_path, devices=DEVICES, seed=seed % 1000, speed=SIM_SPEED, subnet=subnet
        )
        with FaultProxy(("127.0.0.1", portal.port), seed=seed, http=not tls) as proxy:
            config = tmp_path / "collector.toml"
            write_collector_config(
                config,
                portal_url=(f"https://127.0.0.1:{proxy.port}" if tls else proxy.url),
                token=portal.token,
                ca_file=portal.ca_file if tls else None,
                data_dir=tmp_path / "collector",
                targets=[subnet],
                port=int(fleet["port"]),
                speed=COLLECTOR_SPEED,
                usage_interval_minutes=30,
                health_interval_minutes=15,
                timeout_seconds=1.0,
                max_backoff_seconds=300,  # 0.25 s real at ×1200
            )
            yield FaultStack(
                tmp_path,
                seed,
                random.Random(seed),
                portal,
                proxy,
                running,
                fleet["control_url"],
                config,
            )


@pytest.fixture
def fault_stack(tmp_path: Path) -> Iterator[FaultStack]:
    with _fault_stack(tmp_path, tls=False) as stack:
        yield stack


@pytest.fixture
def tls_fault_stack(tmp_path: Path) -> Iterator[FaultStack]:
    with _fault_stack(tmp_path, tls=True) as stack:
        yield stack


def _until(condition: Callable[[], bool], timeout_s: float, what: str, stack: FaultStack) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; {stack.context()}")
        time.sleep(0.05)


# --------------------------------------------------------------------------- scenarios

COLLECTOR_KILLS = 10


@pytest.mark.slow
def test_collector_killed_at_random_instants(fault_stack: FaultStack) -> None:
    """kill -9 the collector many times: at a random instant (discovery, polls, uploads),
    while a batch is at the portal, and while the portal's receipt is held on its way back
    (the portal stored it; the collector never learns) — then it must settle exactly."""
    stack = fault_stack
    proxy = stack.proxy
    kinds = ["random", "in_upload", "receipt_held"]
    for i in range(COLLECTOR_KILLS):
        kind = kinds[i % 3] if i < 3 else stack.rng.choice(kinds)
        stack.start_collector()
        before = proxy.counts()
        if kind == "random":
            time.sleep(stack.rng.uniform(0.05, 2.0))
        elif kind == "in_upload":
            if not proxy.wait_for("forwarded", above=before["forwarded"], timeout_s=10):
                kind += " (no upload came)"
            time.sleep(stack.rng.uniform(0, 0.01))
        else:
            proxy.set_plan(Plan({Fault.DELAY_RESPONSE: 1.0}, delay_s=(1.0, 1.0), batches_only=True))
            if not proxy.wait_for(
                "holding_response", above=before["holding_response"], timeout_s=10
            ):
                kind += " (no upload came)"
        stack.kill_collector()
        proxy.set_plan(Plan())
        stack.note(f"kill {i + 1}: collector, {kind}")

    stack.settle()
    counts = proxy.counts()
    # A receipt held while the collector was killed is a batch the portal stored and the
    # collector re-sent after its restart under the same batch id: the portal must have said
    # "duplicate" then, not stored it again (the ledger check above proves the "not again").
    if counts["held.stored"]:
        assert counts["receipt.duplicate"] >= 1, stack.context()


PORTAL_KILLS = 5


@pytest.mark.slow
def test_portal_killed_and_restarted_during_ingest(fault_stack: FaultStack) -> None:
    """kill -9 the portal while a batch is being ingested (or at a random instant), restart it
    on the same database and port, several times."""
    stack = fault_stack
    proxy = stack.proxy
    stack.start_collector()
    for i in range(PORTAL_KILLS):
        before = proxy.counts()
        if i % 2 == 0:
            kind = "in_ingest"
            if not proxy.wait_for("forwarded", above=before["forwarded"], timeout_s=15):
                kind += " (no upload came)"
            time.sleep(stack.rng.uniform(0, 0.005))
        else:
            kind = "random"
            time.sleep(stack.rng.uniform(0.1, 1.5))
        assert stack.portal.program is not None
        _kill(stack.portal.program)
        stack.note(f"kill {i + 1}: portal, {kind}")
        time.sleep(stack.rng.uniform(0.1, 0.8))  # the collector meets a closed port
        stack.restart_portal()
        # Let uploads resume before the next kill.
        answered = proxy.counts()["answered"]
        if not proxy.wait_for("answered", above=answered, timeout_s=20):
            raise AssertionError(f"no upload after the restart; {stack.context()}")
    stack.settle()
    assert proxy.counts()["upstream_refused"] + proxy.counts()["upstream_closed"] > 0


HTTP_FAULTS = {
    Fault.PASS: 3.0,
    Fault.DROP: 1.0,
    Fault.DELAY_REQUEST: 1.0,
    Fault.DELAY_RESPONSE: 1.0,
    Fault.RESET_MID_BODY: 1.5,
    Fault.RESPONSE_LOST: 1.5,
    Fault.RESET_MID_RESPONSE: 1.0,
}


@pytest.mark.slow
def test_connection_faults_between_collector_and_portal(fault_stack: FaultStack) -> None:
    """Drops, delays (some longer than the collector's 1 s timeout: the request still arrives,
    late), resets mid-body, lost and truncated answers, drawn per request."""
    stack = fault_stack
    proxy = stack.proxy
    proxy.set_plan(Plan(HTTP_FAULTS, delay_s=(0.05, 1.6)))
    stack.start_collector()

    def enough() -> bool:
        counts = proxy.counts()
        return all(counts[f] >= 2 for f in HTTP_FAULTS) and counts["receipt_lost.stored"] >= 2

    _until(enough, 45, "every fault twice and two lost receipts", stack)
    counts = proxy.counts()
    stack.note(f"faults: {dict(counts)}")
    stack.settle()
    assert proxy.counts()["receipt.duplicate"] >= 1, stack.context()


@pytest.mark.slow
def test_a_200_that_is_not_a_receipt_loses_nothing(fault_stack: FaultStack) -> None:
    """A third of the batches are answered 200 by a middlebox with its own HTML page and never
    reach the portal: the collector must treat that as "not stored" and send them again."""
    stack = fault_stack
    proxy = stack.proxy
    proxy.set_plan(Plan({Fault.PASS: 2.0, Fault.FAKE_OK: 1.0}, batches_only=True))
    stack.start_collector()
    _until(lambda: proxy.counts()[Fault.FAKE_OK] >= 6, 30, "six faked answers", stack)
    stack.settle(timeout_s=20)  # seconds are enough; a lost batch never settles


@pytest.mark.slow
def test_tls_connection_cut_after_random_byte_counts(tls_fault_stack: FaultStack) -> None:
    """The same over the portal's real TLS: the proxy cannot read the requests, so it drops,
    delays, or resets after a random number of bytes in one direction (handshake, request or
    answer, wherever that falls)."""
    stack = tls_fault_stack
    proxy = stack.proxy
    # The collector keeps its connection alive while it has batches to send: close it when
    # idle for 50 ms (a short server keep-alive), so that new connections draw new faults.
    proxy.idle_close_s = 0.05
    proxy.set_plan(
        Plan(
            {
                Fault.PASS: 2.0,
                Fault.DROP: 1.0,
                Fault.DELAY_REQUEST: 1.0,
                Fault.RESET_AFTER_BYTES: 3,
            },
            delay_s=(0.05, 1.5),
            reset_after_bytes=(1, 6000),
        )
    )
    stack.start_collector()

    def enough() -> bool:
        counts = proxy.counts()
        return (
            counts[Fault.DROP] >= 2
            and counts[Fault.DELAY_REQUEST] >= 2
            and counts["reset_up"] >= 3
            and counts["reset_down"] >= 3
        )

    _until(enough, 45, "drops, delays and resets both ways", stack)
    stack.note(f"faults: {dict(proxy.counts())}")
    stack.settle()


# --------------------------------------------------------------------------- the pace


def test_the_collector_keeps_the_documented_pace_day_after_day() -> None:
    """What the traffic figures (bench.site_traffic) and every "exactly once" above assume:
    a day has 288 health slots (5 min) and 8 usage slots (180 min) per device, and a
    collector that starts each poll a little after its slot (jitter, loop latency) keeps
    them all."""
    usage_s, health_s = 180 * 60.0, 5 * 60.0
    scheduler = Scheduler(usage_s=usage_s, health_s=health_s, rng=random.Random(4))
    keys = [("ledm", f"SN{n}", f"10.0.0.{n}") for n in range(20)]
    for key in keys:
        scheduler.add(key, now=0.0)
    polls: Counter[ReportKind] = Counter()
    t = 0.0
    while t < 86_400:
        for key, kind in scheduler.due(t):
            polls[kind] += 1
            scheduler.done(key, kind, started=t)
        next_due = scheduler.next_due()
        assert next_due is not None
        t = max(t, next_due) + 0.05  # the poll starts 50 ms after it is due
    per_device = {kind: n / len(keys) for kind, n in polls.items()}
    assert per_device[ReportKind.USAGE] >= 8 - 1, per_device
    assert per_device[ReportKind.USAGE] + per_device[ReportKind.HEALTH] >= 288 - 3, per_device


# --------------------------------------------------------------------------- the proxy itself


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.append(body)  # type: ignore[attr-defined]
        answer = b'{"status": "stored"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the resets these tests cause on purpose


@pytest.fixture
def echo() -> Iterator[ThreadingHTTPServer]:
    server = _QuietServer(("127.0.0.1", 0), _Echo)
    server.bodies = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _post(url: str, body: bytes) -> bytes:
    request = urllib.request.Request(url + "/api/v1/ingest/batches", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        data: bytes = response.read()
        return data


def test_proxy_passes_and_counts(echo: ThreadingHTTPServer) -> None:
    port = echo.server_address[1]
    with FaultProxy(("127.0.0.1", int(port)), seed=1) as proxy:
        assert _post(proxy.url, b"x" * 1000) == b'{"status": "stored"}'
        assert proxy.wait_for("receipt.stored", above=0, timeout_s=5)
        counts = proxy.counts()
    assert echo.bodies == [b"x" * 1000]  # type: ignore[attr-defined]
    assert counts["receipt.stored"] == 1
    assert counts["bytes_up"] > 1000 and counts["bytes_down"] > 20


@pytest.mark.parametrize(
    ("fault", "stored", "event"),
    [
        (Fault.DROP, 0, "drop"),
        (Fault.RESET_MID_BODY, 0, "reset_mid_body"),
        (Fault.RESPONSE_LOST, 1, "receipt_lost.stored"),
        (Fault.RESET_MID_RESPONSE, 1, "receipt_lost.stored"),
    ],
)
def test_proxy_faults_land_where_they_say(
    echo: ThreadingHTTPServer, fault: Fault, stored: int, event: str
) -> None:
    port = echo.server_address[1]
    with FaultProxy(("127.0.0.1", int(port)), seed=1, plan=Plan({fault: 1.0})) as proxy:
        with pytest.raises(OSError):
            _post(proxy.url, b"y" * 5000)
        assert proxy.wait_for(event, above=0, timeout_s=5)
        time.sleep(0.05)
        assert proxy.counts()[event] == 1
    # Mid-body: the server saw part of the body and never a whole request.
    assert len(echo.bodies) == stored  # type: ignore[attr-defined]


def test_proxy_bytes_mode_resets_after_n_bytes(echo: ThreadingHTTPServer) -> None:
    port = echo.server_address[1]
    plan = Plan({Fault.RESET_AFTER_BYTES: 1.0}, reset_after_bytes=(50, 50))
    with FaultProxy(("127.0.0.1", int(port)), seed=3, plan=plan, http=False) as proxy:
        for _ in range(6):
            with pytest.raises(OSError):
                _post(proxy.url, b"z" * 5000)
        counts = proxy.counts()
        cut = [(c.bytes_up, c.bytes_down) for c in proxy.connections]
    assert counts["reset_up"] + counts["reset_down"] == 6
    # Up: exactly 50 bytes of the request got through; down: all of it, and 50 of the answer.
    assert all(up == 50 or (up > 5000 and down == 50) for up, down in cut), cut
