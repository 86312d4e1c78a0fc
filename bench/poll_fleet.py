"""Poll a simulated fleet through the collector and compare with a bare HTTP client, same run.

Run from the repository root (docs/performance.md has the results and what they mean)::

    .venv/bin/python -m bench.poll_fleet                 # 5,000 devices, a few minutes
    .venv/bin/python -m bench.poll_fleet --devices 200   # smoke run, well under a minute

Steps: the simulator (``fleetmeter sim``, its own process) serves N printers on N loopback
addresses; it runs ``--hours`` simulated hours (one usage interval of jobs) and is paused,
so every pass reads the same documents. Then, in this order:

1. baseline, usage: one bare ``httpx.AsyncClient`` (verify=False) fetches what
   ``fleetmeter collector poll-once`` fetches (discovery: DiscoveryTree + ProductConfigDyn of
   every host; usage: DiscoveryTree + the eight LEDM documents of every device), with the
   collector's concurrency (hosts probed at once, devices read at once, 4 connections each);
2. collector, usage: ``fleetmeter collector poll-once`` in its own process (discovery, one
   usage poll of every device, upload), uploading to a sink in this process;
3. baseline, health: the four health documents of every device;
4. collector, health: ``python -m bench.collector_pass --kind health`` (one health poll of
   every device the collector knows from step 2, then upload), as the running collector
   does every 5 minutes between discoveries.

The sink is a minimal ingest endpoint (plain HTTP on 127.0.0.1): it decodes and validates
every batch with the wire codec, counts compressed and decoded bytes, and answers a
``stored`` receipt. It is not the portal: the figures are the collector's, not the portal's.

Reported: devices/s (baseline and collector) and their ratio, wall times, the collector
process's peak RSS (``ru_maxrss`` from ``os.wait4``), compressed bytes uploaded per device
per usage and per health poll, and the simulator's CPU use in each pass (near 100 % of a core
would mean the simulator, not the client, set the pace). A table goes to stdout, the JSON to
``bench/results/`` (not kept in git).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from fleetmeter.collector.config import ScheduleSection
from fleetmeter.devices.ledm.parse import (
    DISCOVERY_TREE,
    DOCUMENTS,
    HEALTH_DOCUMENTS,
    PRODUCT_CONFIG,
)
from fleetmeter.supervise import Program
from fleetmeter.wire import BatchReceipt
from fleetmeter.wire.codec import decode_batch

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
SIM_START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)  # a Monday morning: printers are busy
CONNECTIONS_PER_DEVICE = 4  # fleetmeter.devices.ledm.client._MAX_CONNECTIONS
TARGET_RATIO = 0.7
TARGET_RSS_MB = 300
PASS_TIMEOUT_S = 1800.0

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class BenchError(RuntimeError):
    """The benchmark could not run (a process failed, a pass timed out, devices missing)."""


# --------------------------------------------------------------------------- the ingest sink


@dataclass
class SinkCounts:
    batches: int = 0
    compressed_bytes: int = 0
    decoded_bytes: int = 0
    reports: dict[str, int] = field(default_factory=dict)
    jobs: int = 0
    rejected: int = 0

    def minus(self, before: SinkCounts) -> SinkCounts:
        return SinkCounts(
            batches=self.batches - before.batches,
            compressed_bytes=self.compressed_bytes - before.compressed_bytes,
            decoded_bytes=self.decoded_bytes - before.decoded_bytes,
            reports={k: v - before.reports.get(k, 0) for k, v in self.reports.items()},
            jobs=self.jobs - before.jobs,
            rejected=self.rejected - before.rejected,
        )


class Sink:
    """A minimal ingest endpoint: decode, validate, count, answer ``stored``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = SinkCounts()

    def snapshot(self) -> SinkCounts:
        with self._lock:
            c = self._counts
            return SinkCounts(
                c.batches, c.compressed_bytes, c.decoded_bytes, dict(c.reports), c.jobs, c.rejected
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status, answer = 404, b'{"title": "not found"}'
        if scope["method"] == "POST" and scope["path"] == "/api/v1/ingest/batches":
            try:
                batch = decode_batch(body, headers.get("content-encoding", "identity"))
            except Exception as exc:  # counted and answered 422, like the portal would
                with self._lock:
                    self._counts.rejected += 1
                status, answer = 422, json.dumps({"title": str(exc)[:200]}).encode()
            else:
                decoded = len(batch.model_dump_json())
                with self._lock:
                    c = self._counts
                    c.batches += 1
                    c.compressed_bytes += len(body)
                    c.decoded_bytes += decoded
                    c.jobs += sum(len(r.jobs) for r in batch.reports)
                    for report in batch.reports:
                        kind = str(report.kind)
                        c.reports[kind] = c.reports.get(kind, 0) + 1
                receipt = BatchReceipt(
                    batch_id=batch.batch_id, status="stored", reports=len(batch.reports)
                )
                status, answer = 200, receipt.model_dump_json().encode()
        elif scope["method"] == "GET":
            status, answer = 200, b"{}"  # the collector's reachability check
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer})


class SinkServer:
    """The sink on 127.0.0.1:<free port>, served by uvicorn in a thread of this process."""

    def __init__(self, sink: Sink) -> None:
        config = uvicorn.Config(
            sink, host="127.0.0.1", port=0, log_config=None, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        # uvicorn installs no signal handlers outside the main thread.
        self.thread = threading.Thread(target=self.server.run, name="sink", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise BenchError("the ingest sink did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


# --------------------------------------------------------------------------- baseline client


@dataclass
class FetchPass:
    seconds: float = 0.0
    requests: int = 0
    bytes: int = 0
    errors: int = 0


async def _fetch(
    client: httpx.AsyncClient, url: str, gate: asyncio.Semaphore, result: FetchPass
) -> None:
    async with gate:
        try:
            response = await client.get(url)
        except httpx.HTTPError:
            result.errors += 1
            return
    result.requests += 1
    result.bytes += len(response.content)
    if response.status_code != 200:
        result.errors += 1


async def baseline_pass(
    addresses: Sequence[str],
    port: int,
    *,
    phases: Sequence[tuple[Sequence[str], int]],
) -> list[FetchPass]:
    """Fetch ``documents`` of every device, phase after phase, ``devices_at_once`` devices at
    a time and ``CONNECTIONS_PER_DEVICE`` requests per device at once: the first document of
    a phase alone (as the driver reads DiscoveryTree first), the rest together.

    ``devices_at_once`` workers each take the next device and hold one client with a pool of
    ``CONNECTIONS_PER_DEVICE`` connections. (One client for all would be slower, not faster:
    httpcore scans its whole pool on every request, so a pool of hundreds of connections
    makes the client spend most of its time there.)"""
    results: list[FetchPass] = []
    limits = httpx.Limits(
        max_connections=CONNECTIONS_PER_DEVICE, max_keepalive_connections=CONNECTIONS_PER_DEVICE
    )
    for documents, devices_at_once in phases:
        result = FetchPass()
        queue = iter(addresses)

        async def worker(
            documents: Sequence[str] = documents,
            result: FetchPass = result,
            queue: Iterator[str] = queue,
        ) -> None:
            gate = asyncio.Semaphore(CONNECTIONS_PER_DEVICE)
            async with httpx.AsyncClient(verify=False, timeout=30, limits=limits) as client:
                for address in queue:
                    base = f"https://{address}:{port}/DevMgmt/"
                    await _fetch(client, base + documents[0], gate, result)
                    rest = (_fetch(client, base + name, gate, result) for name in documents[1:])
                    await asyncio.gather(*rest)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(devices_at_once, len(addresses)))))
        result.seconds = time.perf_counter() - started
        results.append(result)
    return results


# --------------------------------------------------------------------------- processes


@dataclass
class ChildRun:
    started_wall: datetime
    seconds: float
    exit_code: int
    peak_rss_mb: float
    cpu_s: float
    stdout: str
    stderr_path: Path


def run_child(
    args: Sequence[str],
    *,
    log_path: Path,
    timeout_s: float,
    profile: Path | None = None,
    cprofile: Path | None = None,
) -> ChildRun:
    """Run a child to completion; its peak RSS and CPU time come from ``os.wait4``.

    ``profile``: run it under ``py-spy record`` and write collapsed stacks there (the peak RSS
    and CPU time are then py-spy's and the child's together: for finding hot spots only).
    ``cprofile``: run the Python child (``python -m MODULE ...``) under cProfile with a CPU
    clock (``bench.cpu_profile``) and write its stats there (``python -m pstats FILE``); it
    slows the child down about twofold."""
    if cprofile is not None and list(args[1:2]) == ["-m"]:
        args = [args[0], "-m", "bench.cpu_profile", str(cprofile), *args[2:]]
    if profile is not None:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        args = [
            py_spy,
            "record",
            "--format",
            "raw",
            "--rate",
            "200",
            "-o",
            str(profile),
            "--",
            *args,
        ]
    with open(log_path, "wb") as log, tempfile.TemporaryFile() as out:
        started_wall = datetime.now()  # naive local time, as in the child's log lines
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(args), stdout=out, stderr=log, stdin=subprocess.DEVNULL, cwd=REPO
        )
        deadline = time.monotonic() + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                proc.returncode = -9
                raise BenchError(f"{' '.join(args[2:5])} timed out after {timeout_s:g} s")
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        # py-spy (--profile) says what it does on stdout: keep the child's output only.
        lines = out.read().decode(errors="replace").splitlines()
        stdout = "\n".join(line for line in lines if not line.startswith("py-spy>"))
    return ChildRun(
        started_wall=started_wall,
        seconds=seconds,
        exit_code=proc.returncode,
        peak_rss_mb=usage.ru_maxrss / 1024,  # kilobytes on Linux
        cpu_s=usage.ru_utime + usage.ru_stime,
        stdout=stdout,
        stderr_path=log_path,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_open_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise BenchError(f"{needed} open files needed, hard limit is {hard} (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _control(url: str, method: str = "GET", timeout_s: float = 30) -> Any:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.load(response)


_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def _log_phases(log_path: Path, first: datetime) -> dict[str, float | None]:
    """Phase ends from the collector's INFO log (best effort: None if a line is missing);
    ``first``: when the process started (the discovery phase includes the start-up)."""
    marks: dict[str, datetime] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        match = _LOG_TIME.match(line)
        if not match:
            continue
        at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
        if "hosts probed" in line and "discovery" not in marks:
            marks["discovery"] = at
        elif " poll: " in line and "poll" not in marks:
            marks["poll"] = at
    out: dict[str, float | None] = {"discovery_s": None, "poll_s": None}
    if "discovery" in marks:
        out["discovery_s"] = (marks["discovery"] - first).total_seconds()
        if "poll" in marks:
            out["poll_s"] = (marks["poll"] - marks["discovery"]).total_seconds()
    return out


# --------------------------------------------------------------------------- the run


def _addresses(subnet: str, count: int) -> list[str]:
    net = ipaddress.ip_network(subnet)
    return [str(net.network_address + i + 1) for i in range(count)]


def _concurrency() -> tuple[int, int]:
    """(hosts probed at once, devices read at once): the collector's defaults."""
    fields = ScheduleSection.model_fields
    probe = fields["probe_concurrency"].default if "probe_concurrency" in fields else 64
    poll = fields["poll_concurrency"].default if "poll_concurrency" in fields else 16
    return int(probe), int(poll)


def _collector_config(
    path: Path, *, sink_url: str, data_dir: Path, first: str, last: str, port: int
) -> None:
    schedule = "".join(
        f"{name} = {value}\n"
        for name, value in zip(
            ("probe_concurrency", "poll_concurrency"), _concurrency(), strict=True
        )
        if name in ScheduleSection.model_fields
    )
    path.write_text(
        f"""[portal]
url = "{sink_url}"
token = "bench-token"
allow_insecure_http = true

[collector]
data_dir = "{data_dir}"
name = "bench"

[schedule]
{schedule}
[[ranges]]
targets = ["{first}-{last}"]
drivers = ["ledm"]
port = {port}
scheme = "https"
""",
        encoding="utf-8",
    )


def _rate(devices: int, seconds: float) -> float:
    return devices / seconds if seconds > 0 else 0.0


def run(args: argparse.Namespace) -> dict[str, Any]:
    devices: int = args.devices
    load_at_start = os.getloadavg()[0]
    raise_open_files(devices + 2048)
    probe_at_once, poll_at_once = _concurrency()
    work = Path(tempfile.mkdtemp(prefix="fleetmeter-bench-"))
    sink = Sink()
    sim_cpu: dict[str, float] = {}
    bench_cpu: dict[str, float] = {}
    try:
        sim = Program(
            "simulator",
            [
                "sim",
                "--devices",
                str(devices),
                "--subnet",
                args.subnet,
                "--seed",
                str(args.seed),
                "--start",
                SIM_START.isoformat().replace("+00:00", "Z"),
                "--speed",
                str(args.hours * 3600 / 2),  # the simulated hours pass in ~2 s
            ],
            log_path=work / "simulator.log",
        )
        try:
            ready = sim.wait_ready(timeout_s=180)
            control, port = ready["control_url"], int(ready["port"])
            addresses = [d["address"] for d in ready["devices"]]
            if addresses != _addresses(args.subnet, devices):
                raise BenchError("the simulator's addresses are not the subnet's first N")
            until = SIM_START + timedelta(hours=args.hours)
            while datetime.fromisoformat(_control(control + "/clock")["sim_time"]) < until:
                time.sleep(0.1)
            started = time.perf_counter()
            clock = _control(control + "/pause", "POST", timeout_s=600)
            sim_prepare_s = time.perf_counter() - started
            print(
                f"simulator: {devices} devices ready, paused at {clock['sim_time']} "
                f"({sim_prepare_s:.1f} s to build and advance every printer)",
                file=sys.stderr,
            )

            with SinkServer(sink) as sink_url:
                config = work / "collector.toml"
                _collector_config(
                    config,
                    sink_url=sink_url,
                    data_dir=work / "collector-data",
                    first=addresses[0],
                    last=addresses[-1],
                    port=port,
                )

                def measured(name: str, call: Callable[[], Any]) -> Any:
                    print(f"{name} ...", file=sys.stderr, flush=True)
                    before = cpu_seconds(sim.proc.pid)
                    own = time.process_time()
                    value = call()
                    sim_cpu[name] = cpu_seconds(sim.proc.pid) - before
                    # This process's CPU: the baseline client's work (and the sink's, idle then).
                    bench_cpu[name] = time.process_time() - own
                    return value

                usage_docs = [DISCOVERY_TREE, *DOCUMENTS]
                discovery_docs = [DISCOVERY_TREE, PRODUCT_CONFIG]
                base_disc, base_usage = measured(
                    "baseline_usage",
                    lambda: asyncio.run(
                        baseline_pass(
                            addresses,
                            port,
                            phases=[(discovery_docs, probe_at_once), (usage_docs, poll_at_once)],
                        )
                    ),
                )

                sink_before = sink.snapshot()
                usage_run: ChildRun = measured(
                    "collector_usage",
                    lambda: run_child(
                        [
                            sys.executable,
                            "-m",
                            "fleetmeter",
                            "collector",
                            "poll-once",
                            "--config",
                            str(config),
                            "--json",
                        ],
                        log_path=work / "collector-usage.log",
                        timeout_s=PASS_TIMEOUT_S,
                        profile=work / "collector-usage.pyspy" if args.profile else None,
                        cprofile=work / "collector-usage.prof" if args.cprofile else None,
                    ),
                )
                usage_sink = sink.snapshot().minus(sink_before)
                try:
                    usage_result = json.loads(usage_run.stdout)
                except ValueError:
                    raise BenchError(
                        f"poll-once printed no JSON (exit {usage_run.exit_code}); "
                        f"see {usage_run.stderr_path}"
                    ) from None

                (base_health,) = measured(
                    "baseline_health",
                    lambda: asyncio.run(
                        baseline_pass(addresses, port, phases=[(HEALTH_DOCUMENTS, poll_at_once)])
                    ),
                )

                sink_before = sink.snapshot()
                health_run: ChildRun = measured(
                    "collector_health",
                    lambda: run_child(
                        [
                            sys.executable,
                            "-m",
                            "bench.collector_pass",
                            "--config",
                            str(config),
                            "--kind",
                            "health",
                        ],
                        log_path=work / "collector-health.log",
                        timeout_s=PASS_TIMEOUT_S,
                        profile=work / "collector-health.pyspy" if args.profile else None,
                        cprofile=work / "collector-health.prof" if args.cprofile else None,
                    ),
                )
                health_sink = sink.snapshot().minus(sink_before)
                try:
                    health_result = json.loads(health_run.stdout.strip().splitlines()[-1])
                except (ValueError, IndexError):
                    raise BenchError(
                        f"collector_pass printed no JSON (exit {health_run.exit_code}); "
                        f"see {health_run.stderr_path}"
                    ) from None
            sim_rss_mb = _rss_mb(sim.proc.pid)
        finally:
            sim.stop()
        return _report(
            args=args,
            port_devices=devices,
            concurrency=(probe_at_once, poll_at_once),
            base=(base_disc, base_usage, base_health),
            usage=(
                usage_run,
                usage_result,
                usage_sink,
                _log_phases(usage_run.stderr_path, usage_run.started_wall),
            ),
            health=(health_run, health_result, health_sink),
            sim_cpu=sim_cpu,
            bench_cpu=bench_cpu,
            sim_rss_mb=sim_rss_mb,
            sim_prepare_s=sim_prepare_s,
            paused_at=clock["sim_time"],
            load_at_start=load_at_start,
        )
    finally:
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def _rss_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def _report(
    *,
    args: argparse.Namespace,
    port_devices: int,
    concurrency: tuple[int, int],
    base: tuple[FetchPass, FetchPass, FetchPass],
    usage: tuple[ChildRun, dict[str, Any], SinkCounts, dict[str, float | None]],
    health: tuple[ChildRun, dict[str, Any], SinkCounts],
    sim_cpu: dict[str, float],
    bench_cpu: dict[str, float],
    sim_rss_mb: float | None,
    sim_prepare_s: float,
    paused_at: str,
    load_at_start: float,
) -> dict[str, Any]:
    n = port_devices
    base_disc, base_usage, base_health = base
    usage_run, usage_result, usage_sink, usage_phases = usage
    health_run, health_result, health_sink = health
    base_usage_s = base_disc.seconds + base_usage.seconds
    health_poll_s = health_result["poll_s"] + health_result["upload_s"]
    collector_usage_rate = _rate(n, usage_run.seconds)
    base_usage_rate = _rate(n, base_usage_s)
    collector_health_rate = _rate(n, health_poll_s)
    base_health_rate = _rate(n, base_health.seconds)
    poll_phase_s = usage_phases["poll_s"]
    wall = {
        "baseline_usage": base_usage_s,
        "collector_usage": usage_run.seconds,
        "baseline_health": base_health.seconds,
        "collector_health": health_run.seconds,
    }
    summary = {
        "devices": n,
        "baseline_usage_devices_per_s": round(base_usage_rate, 1),
        "collector_usage_devices_per_s": round(collector_usage_rate, 1),
        "usage_ratio": round(collector_usage_rate / base_usage_rate, 3)
        if base_usage_rate
        else None,
        "baseline_health_devices_per_s": round(base_health_rate, 1),
        "collector_health_devices_per_s": round(collector_health_rate, 1),
        "health_ratio": round(collector_health_rate / base_health_rate, 3)
        if base_health_rate
        else None,
        "collector_usage_peak_rss_mb": round(usage_run.peak_rss_mb, 1),
        "collector_health_peak_rss_mb": round(health_run.peak_rss_mb, 1),
        "usage_bytes_per_device": round(usage_sink.compressed_bytes / n, 1),
        "health_bytes_per_device": round(health_sink.compressed_bytes / n, 1),
        "usage_wall_s": round(usage_run.seconds, 2),
        "health_wall_s": round(health_run.seconds, 2),
        "baseline_usage_wall_s": round(base_usage_s, 2),
        "baseline_health_wall_s": round(base_health.seconds, 2),
    }
    problems = []
    if usage_result.get("devices_found") != n:
        problems.append(f"usage pass found {usage_result.get('devices_found')} of {n} devices")
    if usage_result.get("errors") or usage_result.get("upload_error"):
        problems.append(f"usage pass errors: {len(usage_result.get('errors', []))}")
    if health_result["poll_failures"] or health_result["upload_error"]:
        problems.append(f"health pass: {health_result['poll_failures']} failed polls")
    if usage_sink.reports.get("usage", 0) < n or health_sink.reports.get("health", 0) < n:
        problems.append("the sink received fewer reports than devices")
    for name, p in (("baseline_usage", base_usage), ("baseline_health", base_health)):
        if p.errors:
            problems.append(f"{name}: {p.errors} failed requests")
    return {
        "benchmark": "poll_fleet",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            # Other work on the machine slows every pass; the ratio is what stays comparable.
            "load_average_1m_at_start": round(load_at_start, 2),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "summary": summary,
        "targets": {"usage_ratio_min": TARGET_RATIO, "peak_rss_mb_max": TARGET_RSS_MB},
        "problems": problems,
        "config": {
            "devices": n,
            "simulated_hours_of_jobs": args.hours,
            "paused_at": paused_at,
            "hosts_probed_at_once": concurrency[0],
            "devices_read_at_once": concurrency[1],
            "connections_per_device": CONNECTIONS_PER_DEVICE,
            "sink": "in-process decode-and-count ingest sink (plain HTTP, 127.0.0.1)",
        },
        "baseline": {
            "usage": {
                "discovery_s": base_disc.seconds,
                "poll_s": base_usage.seconds,
                "cpu_s": bench_cpu["baseline_usage"],
                "cpu_ms_per_device": round(bench_cpu["baseline_usage"] / n * 1000, 2),
                "requests": base_disc.requests + base_usage.requests,
                "bytes_fetched": base_disc.bytes + base_usage.bytes,
                "errors": base_disc.errors + base_usage.errors,
            },
            "health": {
                "poll_s": base_health.seconds,
                "cpu_s": bench_cpu["baseline_health"],
                "cpu_ms_per_device": round(bench_cpu["baseline_health"] / n * 1000, 2),
                "requests": base_health.requests,
                "bytes_fetched": base_health.bytes,
                "errors": base_health.errors,
            },
        },
        "collector": {
            "usage": {
                "command": "fleetmeter collector poll-once",
                "wall_s": usage_run.seconds,
                "cpu_s": usage_run.cpu_s,
                "cpu_ms_per_device": round(usage_run.cpu_s / n * 1000, 2),
                "peak_rss_mb": usage_run.peak_rss_mb,
                "exit_code": usage_run.exit_code,
                "discovery_s_from_log": usage_phases["discovery_s"],
                "poll_s_from_log": poll_phase_s,
                "poll_phase_ratio": round(_rate(n, poll_phase_s) / _rate(n, base_usage.seconds), 3)
                if poll_phase_s and base_usage.seconds
                else None,
                "devices_found": usage_result.get("devices_found"),
                "reports_queued": usage_result.get("reports_queued"),
                "jobs_collected": usage_result.get("jobs_collected"),
                "batches_sent": usage_result.get("batches_sent"),
                "errors": len(usage_result.get("errors", [])),
            },
            "health": {
                "command": "python -m bench.collector_pass --kind health",
                "wall_s": health_run.seconds,
                "cpu_s": health_run.cpu_s,
                "cpu_ms_per_device": round(health_run.cpu_s / n * 1000, 2),
                "peak_rss_mb": health_run.peak_rss_mb,
                "exit_code": health_run.exit_code,
                **health_result,
            },
        },
        "upload": {
            "usage": _sink_dict(usage_sink, n),
            "health": _sink_dict(health_sink, n),
        },
        "simulator": {
            "prepare_s": sim_prepare_s,
            "peak_rss_mb": sim_rss_mb,
            "cpu_s": sim_cpu,
            "cpu_share_of_one_core": {
                name: round(sim_cpu[name] / wall[name], 3) for name in sim_cpu if wall.get(name)
            },
        },
    }


def _sink_dict(counts: SinkCounts, devices: int) -> dict[str, Any]:
    return {
        "batches": counts.batches,
        "reports": counts.reports,
        "jobs": counts.jobs,
        "compressed_bytes": counts.compressed_bytes,
        "decoded_bytes": counts.decoded_bytes,
        "compressed_bytes_per_device": round(counts.compressed_bytes / devices, 1),
        "decoded_bytes_per_device": round(counts.decoded_bytes / devices, 1),
        "rejected": counts.rejected,
    }


def format_table(result: dict[str, Any]) -> str:
    s = result["summary"]
    cpu = result["simulator"]["cpu_share_of_one_core"]
    rows = [
        ("pass", "baseline dev/s", "collector dev/s", "ratio", "peak RSS MB", "bytes/device"),
        (
            "usage",
            f"{s['baseline_usage_devices_per_s']:.1f}",
            f"{s['collector_usage_devices_per_s']:.1f}",
            f"{s['usage_ratio']}",
            f"{s['collector_usage_peak_rss_mb']:.1f}",
            f"{s['usage_bytes_per_device']:.0f}",
        ),
        (
            "health",
            f"{s['baseline_health_devices_per_s']:.1f}",
            f"{s['collector_health_devices_per_s']:.1f}",
            f"{s['health_ratio']}",
            f"{s['collector_health_peak_rss_mb']:.1f}",
            f"{s['health_bytes_per_device']:.0f}",
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    usage = result["collector"]["usage"]
    health = result["collector"]["health"]
    lines += [
        "",
        f"devices: {s['devices']}  (probe {result['config']['hosts_probed_at_once']} hosts, "
        f"read {result['config']['devices_read_at_once']} devices at once)",
        f"usage:  baseline {s['baseline_usage_wall_s']:.2f} s; collector poll-once "
        f"{s['usage_wall_s']:.2f} s wall, {usage['cpu_s']:.1f} s CPU "
        f"(discovery {usage['discovery_s_from_log']} s, poll {usage['poll_s_from_log']} s "
        f"from its log; poll phase ratio {usage['poll_phase_ratio']})",
        f"health: baseline {s['baseline_health_wall_s']:.2f} s; collector "
        f"{health['poll_s'] + health['upload_s']:.2f} s poll+upload "
        f"({s['health_wall_s']:.2f} s wall with start-up)",
        "CPU ms per device (usage / health): baseline "
        f"{result['baseline']['usage']['cpu_ms_per_device']:.1f} / "
        f"{result['baseline']['health']['cpu_ms_per_device']:.1f}, collector process "
        f"{usage['cpu_ms_per_device']:.1f} / {health['cpu_ms_per_device']:.1f} "
        "(collector figures include the process start-up)",
        "simulator CPU share of one core: "
        + ", ".join(f"{name} {share:.0%}" for name, share in cpu.items()),
        f"targets: ratio >= {TARGET_RATIO}, peak RSS < {TARGET_RSS_MB} MB",
    ]
    lines += [f"PROBLEM: {p}" for p in result["problems"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.poll_fleet", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--devices", type=int, default=5000, help="default %(default)s")
    parser.add_argument(
        "--subnet",
        default="127.20.0.0/19",
        help="loopback subnet of the simulated devices (default %(default)s: up to 8190)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--hours",
        type=float,
        default=3.0,
        help="simulated hours of jobs before the clock is paused (default %(default)s: "
        "one usage interval)",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--json", action="store_true", help="print the JSON instead of a table")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the collector passes under py-spy (collapsed stacks in the work directory, "
        "kept); timings and memory are then not comparable",
    )
    parser.add_argument(
        "--cprofile",
        action="store_true",
        help="run the collector passes under cProfile (stats in the work directory, kept: "
        "python -m pstats FILE); timings are then not comparable",
    )
    args = parser.parse_args(argv)
    args.keep = args.keep or args.profile or args.cprofile
    if args.devices < 1:
        parser.error("--devices must be >= 1")
    # SIGTERM ends the run through the finally blocks (the simulator is stopped).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        result = run(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.results_dir / f"poll_fleet-{args.devices}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    print(f"results: {path}", file=sys.stderr)
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
