"""The ``fleetmeter`` command: one entry point for the portal, collector, simulator and tools.

Each program registers its own sub-commands (``register(subparsers)``); this module only
assembles them and turns unexpected failures into a one-line error instead of a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from fleetmeter import __version__


def _cmd_wire_schema(args: argparse.Namespace) -> int:
    from fleetmeter.wire.schema import render

    sys.stdout.write(render())
    return 0


def _cmd_parse(args: argparse.Namespace) -> int:
    from fleetmeter.devices.errors import DeviceError
    from fleetmeter.devices.inspect import parse_capture

    try:
        report = parse_capture(args.driver, Path(args.capture))
    except (DeviceError, ValueError, KeyError, OSError) as exc:
        return _fail(f"parse: {_reason(exc)}")
    print(report.model_dump_json(indent=2, exclude_none=True))
    return 0


def _credentials(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--credential takes KEY=VALUE, got {pair.split('=')[0]!r}")
        out[key.strip()] = value
    return out


def _cmd_probe(args: argparse.Namespace) -> int:
    from fleetmeter.devices.errors import DeviceError
    from fleetmeter.devices.inspect import probe

    try:
        credentials = _credentials(args.credential)
    except ValueError as exc:
        return _fail(f"probe: {exc}", code=2)
    try:
        report = asyncio.run(
            probe(
                args.address,
                driver_id=args.driver,
                port=args.port,
                scheme="http" if args.http else "https",
                timeout_s=args.timeout,
                credentials=credentials,
            )
        )
    except (DeviceError, ValueError, KeyError, OSError) as exc:
        return _fail(f"probe {args.address}: {_reason(exc)}")
    print(report.model_dump_json(indent=2, exclude_none=True))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from fleetmeter.demo import DemoError, run_demo

    try:
        return run_demo(
            data_dir=Path(args.data_dir),
            devices=args.devices,
            additive=args.additive,
            speed=args.speed,
            port=args.port,
            seed=args.seed,
            reset=args.reset,
        )
    except DemoError as exc:
        return _fail(f"demo: {exc}")


def _reason(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return text or type(exc).__name__


def _fail(message: str, code: int = 1) -> int:
    print(f"fleetmeter: {message}", file=sys.stderr)
    return code


def build_parser() -> argparse.ArgumentParser:
    from fleetmeter.collector.cli import register as register_collector
    from fleetmeter.portal.cli import register as register_portal
    from fleetmeter.portal.cli import register_statement
    from fleetmeter.simulator.cli import register as register_simulator
    from fleetmeter.simulator.direct_cli import register as register_sim_direct

    parser = argparse.ArgumentParser(
        prog="fleetmeter",
        description="Pay-per-use metering and monitoring for printer fleets.",
    )
    parser.add_argument("--version", action="version", version=f"fleetmeter {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo",
        help="run portal + simulated fleet + collector on SQLite, print the URL",
        description="Start the portal (SQLite), a simulated fleet and a collector on an "
        "accelerated clock. Ctrl-C stops everything.",
    )
    demo.add_argument(
        "--data-dir", default=".fleetmeter-demo", help="where the demo keeps its state"
    )
    demo.add_argument("--devices", type=int, default=10, help="simulated printers (default 10)")
    demo.add_argument(
        "--additive", type=int, default=2, help="simulated industrial 3D printers (default 2)"
    )
    demo.add_argument(
        "--speed", type=float, default=120.0, help="simulated seconds per real second (default 120)"
    )
    demo.add_argument(
        "--port", type=int, default=8443, help="portal port (default 8443; 0 = any free)"
    )
    demo.add_argument("--seed", type=int, default=1, help="simulator seed")
    demo.add_argument("--reset", action="store_true", help="start from an empty data directory")
    demo.set_defaults(func=_cmd_demo)

    register_portal(sub)
    register_statement(sub)
    register_collector(sub)
    register_simulator(sub)
    register_sim_direct(sub)

    parse = sub.add_parser(
        "parse",
        help="print the device report built from captured device responses",
        description="ledm: a directory of documents named as on the device "
        "(ProductUsageDyn.xml, ...); ipp: a Get-Printer-Attributes response body; "
        "snmp: an snmpsim .snmprec recording.",
    )
    parse.add_argument("--driver", default="ledm", help="driver id (default ledm)")
    parse.add_argument("capture", help="the captured directory or file")
    parse.set_defaults(func=_cmd_parse)

    probe = sub.add_parser("probe", help="read one live device (read-only) and print its report")
    probe.add_argument("--driver", default=None, help="driver id (default: try every driver)")
    probe.add_argument("--port", type=int, default=None, help="port (default: the driver's)")
    probe.add_argument("--http", action="store_true", help="plain HTTP instead of HTTPS")
    probe.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    probe.add_argument(
        "--credential",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a driver secret, repeatable: community=… (snmp), v3_user=… v3_auth_key=… "
        "(snmp v3), api_key=… (octoprint, moonraker)",
    )
    probe.add_argument("address", help="IP address or host name")
    probe.set_defaults(func=_cmd_probe)

    schema = sub.add_parser("wire-schema", help="print the wire model's JSON Schema")
    schema.set_defaults(func=_cmd_wire_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        # httpx logs every request at INFO: thousands of lines per poll round at a large site
        # (and ~2 % of the collector's CPU, docs/performance.md). Our own logs say what matters.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `fleetmeter parse … | head`: the reader left; not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        # Last resort: a one-line error, never a traceback (run with -v to see one).
        if args.verbose:
            raise
        return _fail(f"{args.command}: unexpected error: {type(exc).__name__}: {exc}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
