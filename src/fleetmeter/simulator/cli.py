"""``fleetmeter sim``: run a fleet of virtual printers until SIGINT/SIGTERM.

stdout carries exactly one line, the JSON ready line (for scripts and tests); everything
human-readable goes to stderr. Bad arguments give a one-line error and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from datetime import datetime

from fleetmeter.simulator.server import (
    SHARED_CERTIFICATE_ABOVE,
    Simulator,
    SimulatorConfig,
    SimulatorError,
)

log = logging.getLogger("fleetmeter.simulator")

EXIT_USAGE = 2
_LISTED = 50  # devices named on stderr at start; the ready line and /devices list them all


def add_fleet_arguments(parser: argparse.ArgumentParser) -> None:
    """What every simulator command shares: the seeded fleet, its clock, the control API."""
    defaults = SimulatorConfig()
    parser.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="random seed: same seed, same fleet and jobs (default %(default)s)",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=defaults.speed,
        help="simulated seconds per real second (default %(default)s)",
    )
    parser.add_argument(
        "--start",
        default=None,
        metavar="ISO8601",
        help="simulated start time, e.g. 2026-01-05T08:00:00Z (default: now)",
    )
    parser.add_argument(
        "--control-host",
        default=defaults.control_host,
        help="control API address (default %(default)s)",
    )
    parser.add_argument(
        "--control-port",
        type=int,
        default=defaults.control_port,
        help="control API port; 0 = a free one",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SimulatorConfig()
    parser.add_argument(
        "--devices",
        type=int,
        default=defaults.devices,
        help="number of large-format printers (default %(default)s)",
    )
    parser.add_argument(
        "--additive",
        type=int,
        default=defaults.additive,
        metavar="N",
        help="number of industrial powder-bed 3D printers, each with its build units and "
        "processing station, on the addresses after the large-format printers "
        "(default %(default)s)",
    )
    add_fleet_arguments(parser)
    parser.add_argument(
        "--subnet",
        default=defaults.subnet,
        help="device i listens on the subnet base + i + 1 (default %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=defaults.port,
        help="device HTTPS port, the same on every address; 0 = a free one",
    )
    parser.add_argument(
        "--job-buffer",
        type=int,
        default=defaults.job_buffer,
        help="jobs each device keeps in JobAccountingDyn.xml (default %(default)s)",
    )
    parser.add_argument(
        "--build-buffer",
        type=int,
        default=defaults.build_buffer,
        help="finished builds each 3D printer keeps in its history (default %(default)s)",
    )
    parser.add_argument(
        "--certificates",
        choices=("auto", "per-device", "shared"),
        default=defaults.certificates,
        help="a self-signed certificate per device, or one shared by all; auto = per-device "
        f"up to {SHARED_CERTIFICATE_ABOVE} devices (default %(default)s)",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sim`` command to the ``fleetmeter`` CLI."""
    parser = subparsers.add_parser(
        "sim",
        help="run simulated printers: large-format (HP EWS / LEDM over HTTPS) and "
        "industrial 3D (JSON over HTTPS)",
        description=__doc__,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    start: datetime | None = None
    if args.start is not None:
        try:
            start = datetime.fromisoformat(args.start)
        except ValueError:
            raise SimulatorError(f"--start: not an ISO 8601 time: {args.start!r}") from None
        if start.tzinfo is None:
            raise SimulatorError("--start: give a time zone, e.g. 2026-01-05T08:00:00Z")
    return SimulatorConfig(
        devices=args.devices,
        seed=args.seed,
        speed=args.speed,
        subnet=args.subnet,
        port=args.port,
        control_host=args.control_host,
        control_port=args.control_port,
        start=start,
        job_buffer=args.job_buffer,
        certificates=args.certificates,
        additive=args.additive,
        build_buffer=args.build_buffer,
    )


def run(args: argparse.Namespace) -> int:
    """Entry point of ``fleetmeter sim``; returns the exit status."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    try:
        sim = Simulator(config_from_args(args))
        return asyncio.run(_serve(sim))
    except SimulatorError as exc:
        print(f"fleetmeter sim: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


async def _serve(sim: Simulator) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Installed before binding, so a signal that arrives during startup stops cleanly too.
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await sim.start()
        print(json.dumps(sim.ready_info(), ensure_ascii=False), flush=True)
        endpoints = sim.all_endpoints
        for e in endpoints[:_LISTED]:
            log.info(
                "%s  https://%s:%d  %s", e.plan.serial_number, e.address, e.port, e.plan.model.name
            )
        if len(endpoints) > _LISTED:
            log.info("... and %d more (GET %s/devices)", len(endpoints) - _LISTED, sim.control_url)
        await stop.wait()
        log.info("stopping")
        await sim.stop()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleetmeter sim", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
