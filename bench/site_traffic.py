"""Site traffic and recovery (issue 4): what one site's collector sends to the portal, and how
long it takes to catch up after a week offline.

Run from the repository root (docs/performance.md, "Site traffic and recovery (issue 4)", has
the results and what they mean)::

    .venv/bin/python -m bench.site_traffic       # 50 printers: a day, 10 min at ×1, a week offline
    .venv/bin/python -m bench.site_traffic --devices 5 --days 0.25 --realtime-minutes 1 \\
        --offline-days 0.5                       # smoke run, a few minutes

Everything is the real programs on loopback (``tests/e2e_stack.py``): the simulator, the
portal (SQLite), the collector with the default schedule (usage every 180 min, health every
5 min, upload defaults), simulator and collector at the same accelerated ``--speed``. Between
collector and portal, two proxies from ``tests/faultproxy.py``:

    collector ──TLS──▶ wire counter ──TLS──▶ TLS end + HTTP recorder ──HTTP──▶ portal
                       (bytes both ways,       (the portal's certificate;
                        TCP connections)        every request and answer)

The wire counter counts the TCP payload both ways, TLS included, i.e. what crosses the site's
line apart from TCP/IP headers (estimated separately). The recorder terminates TLS with the
portal's own certificate and key (the collector verifies it against the test CA as usual) and
sees every batch: compressed body, decompressed JSON (the baseline: the same data uploaded as
plain JSON), reports, HTTP heads. It also plays the server's keep-alive timeout (uvicorn's and
httpx's default, 5 s) on the accelerated clock: a connection with no new request 5 s / speed
after an answer is closed, so connections are reopened as often as they would be at ×1 (in
(b) the real 5 s: the drain runs at the machine's pace, not the simulated clock's).

Parts:

(a) **Traffic** — after one simulated hour of warm-up (first contact: discovery, the first
    usage read of every printer), ``--days`` simulated days are counted. The collector's
    upload rounds are paced on the simulated clock (a round every ``upload.interval_seconds``,
    usage reports and new serious alerts at once), so the accelerated day holds as many
    batches as a real one. (a2) checks the per-request cost at the real pace: the collector is
    restarted at ×1 for ``--realtime-minutes`` (health polls only: no usage poll is due) and
    what each batch costs beyond its body (HTTP heads and answer, TLS framing and handshakes
    when the connection has idled out) is measured. The **projected ×1 figure** is the day's
    compressed bodies plus each of its batches at that ×1 overhead.
(b) **Recovery** — a new site at ``--offline-speed``; after a simulated hour online, the
    portal is stopped for ``--offline-days`` while the collector keeps polling into its outbox.
    One usage interval (plus 15 minutes) before the end, the fleet is paused, so everything
    printed is in the outbox when the portal comes back (same database, same port). Timed from
    the portal's ready line to an empty outbox; then the ledger must equal the simulator's
    truth (jobs and counters). The collector's retry wait after the outage is its backoff
    (at most ``max_backoff_seconds``, 300 s, with jitter; accelerated here, so reported apart).

A table goes to stdout, the JSON to ``bench/results/`` (not kept in git). Exit 1 if a figure
could not be measured (the collector fell behind its schedule by more than 5 %, the ledger is
not the truth, a report was quarantined).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import math
import os
import platform
import random
import shutil
import sqlite3
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from tests.e2e_stack import (
    Portal,
    assert_ledger_equals_truth,
    control,
    prepare_portal,
    start_simulator,
    write_collector_config,
)
from tests.faultproxy import Exchange, FaultProxy

from fleetmeter.collector.scheduler import Scheduler
from fleetmeter.supervise import Program, programs
from fleetmeter.wire import Batch
from fleetmeter.wire.codec import decompress, encode_batch

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"

LINE_BITS_PER_S = 5_000_000
CLAIM_FRACTION = 0.0001  # the white paper: "under 0.01 % of a 5 Mbit/s line"
LINE_BYTES_PER_DAY = LINE_BITS_PER_S / 8 * 86_400  # 54,000,000,000
KEEPALIVE_S = 5.0  # uvicorn timeout_keep_alive and httpx keepalive_expiry defaults
HEALTH_S = 5 * 60
USAGE_S = 180 * 60
WARMUP_SIM_S = 3600
MAX_BACKOFF_S = 300
# TCP/IP header estimate: IPv4 20 + TCP 20 + timestamps 12 bytes per packet (Ethernet framing
# not counted); packets = payload chunks + about one pure ACK per two data packets + 7 per
# connection (3-way handshake and FIN/ACK both ways).
HEADER_BYTES_PER_PACKET = 52
PACKETS_PER_CONNECTION = 7
MIN_ACHIEVED = 0.95


class BenchError(RuntimeError):
    """The benchmark could not run (a process failed, a wait timed out)."""


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- recording


@dataclass(frozen=True)
class Record:
    """One ingest exchange as the recorder saw it."""

    at: float
    status: int
    request_head: int
    body: int  # compressed, as sent
    decoded: int  # the same batch as plain JSON
    answer: int  # head + body
    reports: int
    batch_json: bytes | None  # kept for part (a) only


class Recorder:
    """The HTTP recorder's observer: every ingest exchange, sizes and (optionally) the batch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: list[Record] = []
        self.others = 0  # exchanges that are not batches (the start-up check, settings)
        self.keep_batches = False

    def __call__(self, exchange: Exchange) -> None:
        if not exchange.is_batch:
            with self._lock:
                self.others += 1
            return
        encoding = "identity"
        for line in exchange.request_head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-encoding":
                encoding = value.strip().decode()
        raw = decompress(exchange.request_body, encoding)
        reports = 0
        with contextlib.suppress(ValueError):
            reports = int(json.loads(exchange.answer_body).get("reports", 0))
        record = Record(
            at=exchange.at,
            status=exchange.status,
            request_head=len(exchange.request_head),
            body=len(exchange.request_body),
            decoded=len(raw),
            answer=len(exchange.answer_head) + len(exchange.answer_body),
            reports=reports,
            batch_json=raw if self.keep_batches else None,
        )
        with self._lock:
            self.records.append(record)

    def between(self, t0: float, t1: float) -> list[Record]:
        with self._lock:
            return [r for r in self.records if t0 <= r.at < t1]


# --------------------------------------------------------------------------- one site


def _subnet(devices: int) -> str:
    """A random loopback subnet just large enough for the fleet (no clash with other runs)."""
    prefix = 32 - max(2, math.ceil(math.log2(devices + 2)))  # devices ≤ 254: prefix ≥ 24
    net = ipaddress.ip_network(
        f"127.{random.randint(2, 254)}.{random.randint(0, 255)}.0/{prefix}", strict=False
    )
    return str(net)


@dataclass
class Site:
    work: Path
    speed: float
    portal: Portal
    running: list[Program]
    control_url: str
    config: Path
    wire: FaultProxy
    tls_end: FaultProxy
    recorder: Recorder
    collector: Program | None = None

    def sim(self, method: str, path: str) -> Any:
        return control(self.control_url, method, path)

    def sim_seconds(self, real_s: float) -> float:
        return real_s * self.speed

    def real_seconds(self, sim_s: float) -> float:
        return sim_s / self.speed

    def write_config(self, speed: float) -> None:
        lines = [
            f"speed = {speed}" if line.startswith("speed = ") else line
            for line in self.config.read_text().splitlines()
        ]
        self.config.write_text("\n".join(lines) + "\n")

    def start_collector(self) -> Program:
        program = Program(
            "collector",
            ["collector", "run", "--config", str(self.config)],
            log_path=self.work / "collector.log",
        )
        self.running.append(program)
        program.wait_ready(timeout_s=60)
        self.collector = program
        return program

    def check_collector(self) -> None:
        if self.collector is None or not self.collector.running():
            tail = self.collector.log_tail() if self.collector else ""
            raise BenchError(f"the collector stopped: {tail}")

    def outbox(self) -> dict[str, int]:
        """Pending reports by kind and quarantined rows, read from the collector's database."""
        with contextlib.closing(self._db()) as conn:
            out = {
                str(kind): int(n)
                for kind, n in conn.execute(
                    "SELECT kind, count(*) FROM outbox WHERE quarantined_at IS NULL GROUP BY kind"
                )
            }
            out["quarantined"] = int(
                conn.execute(
                    "SELECT count(*) FROM outbox WHERE quarantined_at IS NOT NULL"
                ).fetchone()[0]
            )
        return out

    def _db(self) -> sqlite3.Connection:
        db = self.work / "collector" / "collector.sqlite3"
        return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)

    def last_outbox_row(self) -> int:
        with contextlib.closing(self._db()) as conn:
            return int(conn.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0])

    def pending_up_to(self, row: int) -> int:
        with contextlib.closing(self._db()) as conn:
            query = "SELECT count(*) FROM outbox WHERE id <= ? AND quarantined_at IS NULL"
            return int(conn.execute(query, (row,)).fetchone()[0])

    def upload_failures(self) -> int:
        """Failed upload attempts so far (the collector logs each one as a warning)."""
        try:
            text = (self.work / "collector.log").read_text(errors="replace")
        except OSError:
            return 0
        return text.count("fleetmeter.collector.agent: upload: ")

    def portal_devices(self) -> int:
        try:
            with self.portal.client() as client:
                response = client.get("/api/v1/devices").raise_for_status()
                return len(response.json()["items"])
        except httpx.HTTPError:
            return 0

    def warm_up(self, devices: int) -> None:
        """Until every printer is in the portal and a simulated hour has passed."""
        started = time.monotonic()
        deadline = started + 300
        while self.portal_devices() < devices:
            self.check_collector()
            if time.monotonic() > deadline:
                raise BenchError(f"only {self.portal_devices()} of {devices} devices arrived")
            time.sleep(1)
        left = self.real_seconds(WARMUP_SIM_S) - (time.monotonic() - started)
        time.sleep(max(0.0, left))


@contextlib.contextmanager
def site(work: Path, *, devices: int, speed: float, seed: int) -> Iterator[Site]:
    work.mkdir(parents=True)
    portal = prepare_portal(work)
    subnet = _subnet(devices)
    recorder = Recorder()
    with programs() as running:
        portal.start(running, work, tls=False)
        fleet = start_simulator(
            running, work, devices=devices, seed=seed, speed=speed, subnet=subnet
        )
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(portal.cert, portal.key)
        with (
            FaultProxy(
                ("127.0.0.1", portal.port),
                seed=seed,
                http=True,
                server_ssl=tls,
                observer=recorder,
                idle_close_s=KEEPALIVE_S / speed,
            ) as tls_end,
            FaultProxy(("127.0.0.1", tls_end.port), seed=seed, http=False) as wire,
        ):
            config = work / "collector.toml"
            write_collector_config(
                config,
                portal_url=f"https://127.0.0.1:{wire.port}",
                token=portal.token,
                ca_file=portal.ca_file,
                data_dir=work / "collector",
                targets=[subnet],
                port=int(fleet["port"]),
                speed=speed,
            )
            yield Site(
                work, speed, portal, running, fleet["control_url"], config, wire, tls_end, recorder
            )


# --------------------------------------------------------------------------- expectations


def scheduled_polls(serials: list[str], *, start_s: float, span_s: float) -> dict[str, int]:
    """The polls the collector's own ``Scheduler`` asks for in [start_s, start_s + span_s)
    (simulated seconds after the collector started), each poll starting a second after it is
    due: what the collector should have done unless it fell behind. Compare with the
    documented schedule (``documented_polls``) to see the schedule itself."""
    counts = {"usage": 0, "health": 0}
    end = start_s + span_s
    for serial in serials:
        scheduler = Scheduler(usage_s=USAGE_S, health_s=HEALTH_S, rng=random.Random(0))
        key = ("ledm", serial, "")
        scheduler.add(key, now=0.0)
        t = 0.0
        while t < end:
            for due_key, kind in scheduler.due(t):
                if t >= start_s:
                    counts[str(kind)] += 1
                scheduler.done(due_key, kind, started=t)
            next_due = scheduler.next_due()
            assert next_due is not None
            t = max(t, next_due) + 1.0
    return counts


def documented_polls(devices: int, span_s: float) -> dict[str, float]:
    """Usage every 180 min, health every 5 min, a usage poll counting as a health poll."""
    usage = devices * span_s / USAGE_S
    return {"usage": usage, "health": devices * span_s / HEALTH_S - usage}


# --------------------------------------------------------------------------- (a) traffic


@dataclass
class Window:
    """Traffic over one measured interval."""

    t0: float
    real_s: float
    sim_s: float
    wire_up: int
    wire_down: int
    connections: int
    chunks: int
    failed_uploads: int
    records: list[Record] = field(repr=False)

    @property
    def wire(self) -> int:
        return self.wire_up + self.wire_down

    @property
    def reports(self) -> int:
        return sum(r.reports for r in self.records)

    @property
    def batches(self) -> int:
        return len(self.records)

    def packets_estimate(self) -> int:
        return int(self.chunks * 1.5) + self.connections * PACKETS_PER_CONNECTION

    def summary(self, devices: int) -> dict[str, Any]:
        days = self.sim_s / 86_400
        bodies = sum(r.body for r in self.records)
        decoded = sum(r.decoded for r in self.records)
        http = sum(r.request_head + r.body + r.answer for r in self.records)
        return {
            "real_s": round(self.real_s, 1),
            "simulated_days": round(days, 4),
            "batches": self.batches,
            "reports": self.reports,
            "reports_per_batch": round(self.reports / self.batches, 2) if self.batches else None,
            "failed_upload_attempts": self.failed_uploads,
            "tcp_connections": self.connections,
            "connections_per_batch": round(self.connections / self.batches, 3)
            if self.batches
            else None,
            "wire_bytes_up": self.wire_up,
            "wire_bytes_down": self.wire_down,
            "compressed_body_bytes": bodies,
            "json_bytes": decoded,
            "compression_ratio": round(decoded / bodies, 2) if bodies else None,
            "http_bytes": http,
            "tls_bytes": self.wire - http,
            "wire_bytes_per_report": round(self.wire / self.reports, 1) if self.reports else None,
            "wire_bytes_per_device_per_day": round(self.wire / devices / days) if days else None,
            "json_bytes_per_device_per_day": round(decoded / devices / days) if days else None,
            "tcp_ip_header_bytes_per_device_per_day_estimate": round(
                self.packets_estimate() * HEADER_BYTES_PER_PACKET / devices / days
            )
            if days
            else None,
        }


def measure(site_: Site, real_s: float) -> Window:
    counts0 = site_.wire.counts()
    failures0 = site_.upload_failures()
    t0 = time.monotonic()
    deadline = t0 + real_s
    while (left := deadline - time.monotonic()) > 0:
        site_.check_collector()
        time.sleep(min(left, 5.0))
    t1 = time.monotonic()
    counts1 = site_.wire.counts()
    return Window(
        t0=t0,
        real_s=t1 - t0,
        sim_s=site_.sim_seconds(t1 - t0),
        wire_up=counts1["bytes_up"] - counts0["bytes_up"],
        wire_down=counts1["bytes_down"] - counts0["bytes_down"],
        connections=counts1["connections"] - counts0["connections"],
        chunks=(counts1["chunks_up"] + counts1["chunks_down"])
        - (counts0["chunks_up"] + counts0["chunks_down"]),
        failed_uploads=site_.upload_failures() - failures0,
        records=site_.recorder.between(t0, t1),
    )


def alone_sizes(records: list[Record]) -> dict[str, dict[str, int]]:
    """Each report of the window compressed alone, as a one-report batch (what ×1 sends),
    and its plain JSON size, by kind."""
    out: dict[str, dict[str, int]] = {}
    for record in records:
        assert record.batch_json is not None
        batch = Batch.model_validate_json(record.batch_json)
        for report in batch.reports:
            alone = Batch(
                batch_id=batch.batch_id,
                created_at=batch.created_at,
                sender=batch.sender,
                reports=[report],
            )
            kind = out.setdefault(
                str(report.kind), {"reports": 0, "compressed": 0, "json": 0, "jobs": 0}
            )
            kind["reports"] += 1
            kind["compressed"] += len(encode_batch(alone, "zstd"))
            kind["json"] += len(alone.model_dump_json(exclude_none=True))
            kind["jobs"] += len(report.jobs)
    return out


def _projection(site_day_bytes: float, devices: int) -> dict[str, Any]:
    return {
        "wire_bytes_per_device_per_day": round(site_day_bytes / devices),
        "site_wire_bytes_per_day": round(site_day_bytes),
        "fraction_of_5mbit_line": site_day_bytes / LINE_BYTES_PER_DAY,
    }


def traffic(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    n, speed = args.devices, args.speed
    with site(work, devices=n, speed=speed, seed=args.seed) as s:
        serials = [d["serial_number"] for d in s.sim("GET", "/devices")]
        s.recorder.keep_batches = True
        log(f"(a) traffic: {n} printers at ×{speed:g}; warming up (1 simulated hour)")
        s.start_collector()
        collector_started = time.monotonic()
        s.warm_up(n)
        log(f"(a) measuring {args.days:g} simulated day(s): {args.days * 86400 / speed:.0f} s")
        day = measure(s, args.days * 86_400 / speed)
        s.recorder.keep_batches = False
        sizes = alone_sizes(day.records)
        scheduled = scheduled_polls(
            serials, start_s=(day.t0 - collector_started) * speed, span_s=day.sim_s
        )
        documented = documented_polls(n, day.sim_s)
        made = {kind: sizes.get(kind, {}).get("reports", 0) for kind in ("usage", "health")}

        realtime: dict[str, Any] | None = None
        overhead_per_batch: float | None = None
        if args.realtime_minutes > 0:
            log(f"(a2) collector at ×1 for {args.realtime_minutes:g} min (health polls only)")
            assert s.collector is not None
            s.collector.stop()
            s.write_config(1.0)
            s.tls_end.idle_close_s = KEEPALIVE_S
            s.speed = 1.0
            s.start_collector()
            time.sleep(15)  # start-up: the portal check, discovery (LAN only)
            s.recorder.keep_batches = True
            window = measure(s, args.realtime_minutes * 60)
            realtime = window.summary(n)
            realtime["reports_by_kind"] = {
                kind: v["reports"] for kind, v in alone_sizes(window.records).items()
            }
            realtime["reports_per_batch_max"] = max((r.reports for r in window.records), default=0)
            if window.batches:
                bodies = sum(r.body for r in window.records)
                overhead_per_batch = (window.wire - bodies) / window.batches
                realtime["wire_overhead_bytes_per_batch"] = round(overhead_per_batch, 1)
        per_day = day.sim_s / 86_400
        projected: dict[str, Any] = {}
        if overhead_per_batch is not None:
            # Uploads are paced on the simulated clock (a round every interval, urgent reports
            # at once), so the accelerated day holds as many batches as a real one; only the
            # per-request cost (TLS handshakes, keep-alive) could differ at ×1: the day's
            # compressed bodies plus each batch at the overhead measured at ×1.
            bodies_day = sum(r.body for r in day.records)
            projected["as_scheduled"] = _projection(
                (bodies_day + day.batches * overhead_per_batch) / per_day, n
            )
        site_measured = day.wire / per_day
        return {
            "devices": n,
            "speed": speed,
            "day": day.summary(n),
            "polls": {
                "made": made,
                "scheduled": scheduled,
                "documented": {k: round(v) for k, v in documented.items()},
                "made_of_scheduled": _fraction(sum(made.values()), sum(scheduled.values())),
                "made_of_documented": _fraction(sum(made.values()), sum(documented.values())),
            },
            "reports_alone_by_kind": sizes,
            "measured_site_wire_bytes_per_day": round(site_measured),
            "measured_fraction_of_5mbit_line": site_measured / LINE_BYTES_PER_DAY,
            "realtime": realtime,
            "projected_x1": projected,
        }


def _fraction(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


# --------------------------------------------------------------------------- (b) recovery


def recovery(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    n, speed = args.devices, args.offline_speed
    with site(work, devices=n, speed=speed, seed=args.seed + 1) as s:
        serials = [d["serial_number"] for d in s.sim("GET", "/devices")]
        # The drain runs at the machine's pace, not the simulated clock's: the keep-alive
        # timeout is the real one (scaled down, it would cut connections between batches
        # that take longer than that to prepare).
        s.tls_end.idle_close_s = KEEPALIVE_S
        log(f"(b) recovery: {n} printers at ×{speed:g}; warming up (1 simulated hour)")
        s.start_collector()
        collector_started = time.monotonic()
        s.warm_up(n)
        assert s.portal.program is not None
        s.portal.program.stop()
        down_at = time.monotonic()
        offline_s = args.offline_days * 86_400 / speed
        # Two usage intervals and a quarter of an hour: every printer has a whole usage poll
        # after the pause even at the schedule's every-other-slot pace (docs/performance.md).
        freeze_lead = min(offline_s / 2, (2 * USAGE_S + 15 * 60) / speed)
        log(f"(b) portal down for {args.offline_days:g} simulated day(s): {offline_s:.0f} s")
        while (left := down_at + offline_s - freeze_lead - time.monotonic()) > 0:
            s.check_collector()
            time.sleep(min(left, 10.0))
        s.sim("POST", "/pause")  # what was printed is final; the collector keeps polling
        truth = s.sim("GET", "/truth")
        while (left := down_at + offline_s - time.monotonic()) > 0:
            s.check_collector()
            time.sleep(min(left, 5.0))
        backlog = s.outbox()
        last_row = s.last_outbox_row()
        offline_real = time.monotonic() - down_at
        scheduled = scheduled_polls(
            serials,
            start_s=(down_at - collector_started) * speed,
            span_s=s.sim_seconds(offline_real),
        )
        documented = documented_polls(n, s.sim_seconds(offline_real))
        queued = sum(v for k, v in backlog.items() if k != "quarantined")
        log(f"(b) portal back; outbox {backlog}")
        wire0 = s.wire.counts()
        failures0 = s.upload_failures()
        t_restart = time.monotonic()
        s.portal.start(s.running, work, port=s.portal.port, tls=False)
        t_back = time.monotonic()
        deadline = t_back + args.recovery_timeout
        first_batch: float | None = None
        while True:
            s.check_collector()
            if first_batch is None:
                stored = [r for r in s.recorder.between(t_back, math.inf) if r.status == 200]
                first_batch = stored[0].at if stored else None
            # Drained: every report queued while offline is gone (new polls keep coming).
            left = s.pending_up_to(last_row)
            if left == 0:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"{left} reports left after {args.recovery_timeout} s")
            time.sleep(0.2)
        t_empty = time.monotonic()
        wire1 = s.wire.counts()
        failures = s.upload_failures() - failures0
        records = s.recorder.between(t_back, t_empty)
        ledger_ok, ledger_error, jobs = False, "", 0
        ledger_deadline = time.monotonic() + 120
        while True:
            try:
                jobs = assert_ledger_equals_truth(s.portal, truth)
                ledger_ok = True
                break
            except (AssertionError, httpx.HTTPError) as exc:
                ledger_error = str(exc)[:300]
                if time.monotonic() > ledger_deadline:
                    break
                time.sleep(1)
        t_ledger = time.monotonic()
        drain_from = first_batch if first_batch is not None else t_back
        bodies = sum(r.body for r in records)
        decoded = sum(r.decoded for r in records)
        reports = sum(r.reports for r in records)
        wire = (wire1["bytes_up"] - wire0["bytes_up"]) + (wire1["bytes_down"] - wire0["bytes_down"])
        return {
            "devices": n,
            "speed": speed,
            "offline_simulated_days": round(s.sim_seconds(offline_real) / 86_400, 3),
            "backlog": backlog,
            "backlog_reports": queued,
            "polls": {
                "made": queued,
                "scheduled": scheduled,
                "documented": {k: round(v) for k, v in documented.items()},
                "made_of_scheduled": _fraction(queued, sum(scheduled.values())),
                "made_of_documented": _fraction(queued, sum(documented.values())),
            },
            "portal_start_s": round(t_back - t_restart, 2),
            "wait_for_first_batch_s": round(drain_from - t_back, 2),
            "drain_s": round(t_empty - drain_from, 2),
            "back_to_backlog_drained_s": round(t_empty - t_back, 2),
            "back_to_ledger_equals_truth_s": round(t_ledger - t_back, 2) if ledger_ok else None,
            "ledger_equals_truth": ledger_ok,
            "ledger_error": None if ledger_ok else ledger_error,
            "jobs": jobs,
            "batches": len(records),
            "failed_upload_attempts": failures,
            "batch_statuses": sorted({r.status for r in records}),
            "reports_uploaded": reports,
            "reports_per_batch_max": max((r.reports for r in records), default=0),
            "reports_per_s": round(reports / (t_empty - drain_from), 1)
            if t_empty > drain_from
            else None,
            "wire_bytes": wire,
            "compressed_body_bytes": bodies,
            "json_bytes": decoded,
            "compression_ratio": round(decoded / bodies, 2) if bodies else None,
            "largest_batch_json_bytes": max((r.decoded for r in records), default=0),
            "quarantined_after": s.outbox()["quarantined"],
            "max_backoff_at_x1_s": MAX_BACKOFF_S,
        }


# --------------------------------------------------------------------------- report


def _mb(value: float) -> str:
    return f"{value / 1e6:,.2f} MB"


def format_table(result: dict[str, Any]) -> str:
    lines = [f"site_traffic {result['date']}  ({result['machine']['cpus']} CPUs)"]
    t = result.get("traffic")
    if t:
        d, polls = t["day"], t["polls"]
        lines += [
            "",
            f"(a) traffic, {t['devices']} printers, {d['simulated_days']} simulated day(s) "
            f"at ×{t['speed']:g}",
            f"  polls {polls['made']} = {polls['made_of_scheduled']:.0%} of what the scheduler "
            f"asks, {polls['made_of_documented']:.0%} of the documented schedule",
            f"  batches {d['batches']:,}, reports {d['reports']:,} "
            f"({d['reports_per_batch']} per batch), TCP connections {d['tcp_connections']:,}",
            f"  wire (TLS, both ways) {d['wire_bytes_per_device_per_day']:,} B/device/day; "
            f"plain JSON {d['json_bytes_per_device_per_day']:,} B/device/day; "
            f"compression ×{d['compression_ratio']}",
            f"  site: {_mb(t['measured_site_wire_bytes_per_day'])}/day = "
            f"{t['measured_fraction_of_5mbit_line']:.5%} of a 5 Mbit/s line "
            f"(claim: under {CLAIM_FRACTION:.2%})",
        ]
        rt = t.get("realtime")
        if rt:
            lines.append(
                f"  ×1 sample {rt['real_s']:.0f} s: {rt['reports']} reports in {rt['batches']} "
                f"batches, {rt['tcp_connections']} connections, "
                f"{rt.get('wire_bytes_per_report')} wire B/report, "
                f"{rt.get('wire_overhead_bytes_per_batch')} B HTTP/TLS overhead per batch"
            )
        for name, p in t.get("projected_x1", {}).items():
            lines.append(
                f"  projected at ×1, {name.replace('_', ' ')}: "
                f"{p['wire_bytes_per_device_per_day']:,} B/device/day, site "
                f"{_mb(p['site_wire_bytes_per_day'])}/day = {p['fraction_of_5mbit_line']:.5%} "
                "of the line"
            )
    r = result.get("recovery")
    if r:
        polls = r["polls"]
        lines += [
            "",
            f"(b) recovery, {r['devices']} printers, {r['offline_simulated_days']} simulated "
            f"days offline at ×{r['speed']:g}",
            f"  backlog {r['backlog_reports']:,} reports = {polls['made_of_scheduled']:.0%} of "
            f"what the scheduler asks, {polls['made_of_documented']:.0%} of the documented "
            "schedule",
            f"  portal start {r['portal_start_s']} s, first batch after "
            f"{r['wait_for_first_batch_s']} s, drained in {r['drain_s']} s "
            f"({r['reports_per_s']} reports/s)",
            f"  {r['batches']} batches (largest {r['reports_per_batch_max']} reports, "
            f"{_mb(r['largest_batch_json_bytes'])} JSON), {_mb(r['wire_bytes'])} on the wire, "
            f"{_mb(r['json_bytes'])} as JSON (×{r['compression_ratio']})",
            f"  ledger equals truth: {r['ledger_equals_truth']} ({r['jobs']:,} jobs) "
            f"{r['back_to_ledger_equals_truth_s']} s after the portal was back",
        ]
    if result["problems"]:
        lines += ["", "PROBLEMS:", *(f"  {p}" for p in result["problems"])]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="fm-site-traffic-"))
    load_at_start = os.getloadavg()[0]
    result: dict[str, Any] = {
        "benchmark": "site_traffic",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_1m_at_start": round(load_at_start, 2),
        },
        "line": {
            "bits_per_s": LINE_BITS_PER_S,
            "bytes_per_day": LINE_BYTES_PER_DAY,
            "claim_fraction": CLAIM_FRACTION,
            "claim_site_bytes_per_day": LINE_BYTES_PER_DAY * CLAIM_FRACTION,
        },
        "args": {k: v for k, v in vars(args).items() if k != "results_dir"}
        | {"results_dir": str(args.results_dir)},
        "problems": [],
    }
    problems: list[str] = result["problems"]
    try:
        if args.days > 0:
            t = result["traffic"] = traffic(args, work / "traffic")
            made = t["polls"]["made_of_scheduled"] or 0
            if made < MIN_ACHIEVED:
                problems.append(
                    f"(a) the collector made {made:.0%} of its scheduled polls: lower --speed"
                )
        if args.offline_days > 0:
            r = result["recovery"] = recovery(args, work / "recovery")
            made = r["polls"]["made_of_scheduled"] or 0
            if made < MIN_ACHIEVED:
                problems.append(
                    f"(b) the collector made {made:.0%} of its scheduled polls while offline: "
                    "lower --offline-speed"
                )
            if not r["ledger_equals_truth"]:
                problems.append(f"(b) the ledger is not the truth: {r['ledger_error']}")
            if r["quarantined_after"]:
                problems.append(f"(b) {r['quarantined_after']} outbox rows quarantined")
    finally:
        result["machine"]["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
        if args.keep:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.site_traffic", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--devices", type=int, default=50, help="default %(default)s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--speed", type=float, default=120, help="(a) simulated s per real s (%(default)s)"
    )
    parser.add_argument(
        "--days", type=float, default=1, help="(a) simulated days counted; 0 skips (a)"
    )
    parser.add_argument(
        "--realtime-minutes", type=float, default=16, help="(a2) ×1 sample; 0 skips it"
    )
    parser.add_argument(
        "--offline-speed", type=float, default=240, help="(b) simulated s per real s"
    )
    parser.add_argument(
        "--offline-days", type=float, default=7, help="(b) days offline; 0 skips (b)"
    )
    parser.add_argument("--recovery-timeout", type=float, default=1800, help="seconds")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--json", action="store_true", help="print the JSON instead of a table")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    if not 1 <= args.devices <= 250:
        parser.error("--devices must be between 1 and 250")
    try:
        result = run(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"site_traffic-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    print(f"results: {path}", file=sys.stderr)
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
