"""``fleetmeter sim-direct``: simulated printers that upload to the portal by themselves.

``--list-serials`` prints the fleet's serial numbers (JSON list) and exits, so the devices
can be provisioned (``fleetmeter portal add-device``) before the fleet runs. Otherwise
stdout carries exactly one line, the JSON ready line ``{"ready": true, "control_url": …}``;
logs go to stderr. Bad arguments give a one-line error and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path

from fleetmeter.simulator.cli import add_fleet_arguments
from fleetmeter.simulator.direct import (
    DirectConfig,
    DirectError,
    DirectSimulator,
    UploadPolicy,
    fleet_serials,
    load_credentials,
)

log = logging.getLogger("fleetmeter.simulator.direct")

EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = UploadPolicy()
    parser.add_argument("--portal", metavar="URL", help="portal base URL, e.g. https://host:8443")
    parser.add_argument("--ca-file", type=Path, help="CA certificate(s) that sign the portal's")
    parser.add_argument(
        "--credentials",
        type=Path,
        metavar="FILE.json",
        help="JSON list of {serial_number, key_id, secret}, one per device",
    )
    parser.add_argument(
        "--devices", type=int, default=None, help="fleet size (default: one per credential)"
    )
    add_fleet_arguments(parser)
    parser.add_argument(
        "--interval-minutes",
        type=float,
        default=defaults.interval.total_seconds() / 60,
        help="upload at least this often, simulated minutes (default %(default)g)",
    )
    parser.add_argument(
        "--max-jobs",
        type=int,
        default=defaults.max_jobs,
        help="upload after this many jobs (default %(default)s)",
    )
    parser.add_argument(
        "--max-pages",
        type=int,
        default=defaults.max_pages,
        help="upload after this many pages (default %(default)s)",
    )
    parser.add_argument(
        "--retry-max", type=float, default=30.0, help="longest retry delay, real seconds"
    )
    parser.add_argument(
        "--list-serials",
        action="store_true",
        help="print the fleet's serial numbers (needs --devices) and exit",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sim-direct`` command to the ``fleetmeter`` CLI."""
    parser = subparsers.add_parser(
        "sim-direct",
        help="run simulated printers that upload to the portal by themselves (signed)",
        description=__doc__,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``fleetmeter sim-direct``; returns the exit status."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    try:
        if args.list_serials:
            if not args.devices or args.devices < 1:
                raise DirectError("--list-serials needs --devices N (N >= 1)")
            print(json.dumps(fleet_serials(seed=args.seed, devices=args.devices)), flush=True)
            return 0
        sim = DirectSimulator(_config(args))
        return asyncio.run(_serve(sim))
    except (DirectError, ValueError) as exc:
        print(f"fleetmeter sim-direct: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _config(args: argparse.Namespace) -> DirectConfig:
    if not args.portal or not args.credentials:
        raise DirectError("--portal and --credentials are required (or --list-serials)")
    if not args.portal.startswith(("https://", "http://")):
        raise DirectError(f"--portal must be an http(s) URL, got {args.portal!r}")
    if args.ca_file is not None and not args.ca_file.is_file():
        raise DirectError(f"--ca-file: no such file: {args.ca_file}")
    start: datetime | None = None
    if args.start is not None:
        try:
            start = datetime.fromisoformat(args.start)
        except ValueError:
            raise DirectError(f"--start: not an ISO 8601 time: {args.start!r}") from None
        if start.tzinfo is None:
            raise DirectError("--start: give a time zone, e.g. 2026-01-05T08:00:00Z")
    return DirectConfig(
        portal_url=args.portal.rstrip("/"),
        credentials=load_credentials(args.credentials),
        seed=args.seed,
        devices=args.devices,
        speed=args.speed,
        start=start,
        ca_file=args.ca_file,
        policy=UploadPolicy(
            interval=timedelta(minutes=args.interval_minutes),
            max_jobs=args.max_jobs,
            max_pages=args.max_pages,
        ),
        control_host=args.control_host,
        control_port=args.control_port,
        retry_max_s=args.retry_max,
    )


async def _serve(sim: DirectSimulator) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await sim.start()
        try:
            print(json.dumps(sim.ready_info(), ensure_ascii=False), flush=True)
            log.info(
                "%d direct-connected printer(s) uploading to %s, control API %s, speed %g",
                len(sim.agents),
                sim.config.portal_url,
                sim.control_url,
                sim.clock.speed,
            )
            await stop.wait()
            log.info("stopping")
        finally:
            await sim.stop()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m fleetmeter.simulator.direct_cli …``) until the lead
    registers ``sim-direct`` in ``fleetmeter.cli``."""
    parser = argparse.ArgumentParser(prog="fleetmeter sim-direct", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
