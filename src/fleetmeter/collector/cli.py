"""``fleetmeter collector enroll|run|poll-once|discover|status|repin|pseudonym|requeue``: thin
CLI over ``agent`` and ``state``.

Exit codes: 0 success; 1 something failed at run time (a device poll, the upload, nothing
found, portal unreachable, no pin to forget); 2 the config is unusable. Errors are one line on
stderr, never a traceback; ``run`` writes exactly one line to stdout, ``{"ready": true, ...}``
(with ``"console"``: the site console's URL when enabled), once started. No command prints a
secret from the config: only the state database's contents are shown.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fleetmeter.collector.agent import (
    CollectorError,
    PollOnceResult,
    Started,
    describe_device,
    discover_once,
    poll_once,
    run,
)
from fleetmeter.collector.config import CollectorConfig, ConfigError, load_config
from fleetmeter.collector.privacy import FIELDS as PRIVACY_FIELDS
from fleetmeter.collector.privacy import (
    FieldPolicy,
    PrivacyError,
    load_or_create_key,
    pseudonym,
)
from fleetmeter.collector.state import State, StateError

EXIT_FAILED = 1
EXIT_CONFIG = 2


def _err(message: str) -> None:
    print(f"fleetmeter collector: {message}", file=sys.stderr)


def _load(args: argparse.Namespace) -> CollectorConfig | None:
    try:
        return load_config(args.config)
    except ConfigError as exc:
        for line in exc.errors:
            _err(line)
        return None


def _guarded(args: argparse.Namespace, body: Any) -> int:
    """Turn the collector's expected failures into one stderr line and an exit code."""
    config = _load(args)
    if config is None:
        return EXIT_CONFIG
    try:
        code: int = body(config)
    except ConfigError as exc:
        for line in exc.errors:
            _err(line)
        return EXIT_CONFIG
    except (CollectorError, StateError, OSError) as exc:
        _err(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    return code


def _cmd_run(args: argparse.Namespace) -> int:
    def body(config: CollectorConfig) -> int:
        def ready(started: Started) -> None:
            line: dict[str, Any] = {"ready": True, "data_dir": str(started.data_dir)}
            if started.console_url is not None:
                line["console"] = started.console_url
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()

        run(config, ready=ready)
        return 0

    return _guarded(args, body)


def _n(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def _print_poll_once(result: PollOnceResult) -> None:
    for device in result.devices:
        print(
            f"  {device['address']:<16} {device['driver']:<8} {device['serial_number']:<16} "
            f"{device['model'] or device['vendor']}"
        )
    print(
        f"{_n(result.devices_found, 'device')} found, {_n(result.reports_queued, 'report')} "
        f"queued, {_n(result.jobs_collected, 'job')} collected"
    )
    print(
        f"{_n(result.batches_sent, 'batch', 'batches')} sent "
        f"({_n(result.reports_uploaded, 'report')}), {result.outbox_remaining} left in the outbox"
    )
    for warning in result.warnings:
        print(f"warning: {warning}")
    for error in result.errors:
        print(f"error: {error}")
    if result.upload_error:
        print(f"error: upload: {result.upload_error}")


def _cmd_poll_once(args: argparse.Namespace) -> int:
    def body(config: CollectorConfig) -> int:
        result = poll_once(config)
        if args.json:
            print(json.dumps(result.as_dict(), indent=2))
        else:
            _print_poll_once(result)
        if not result.ok:
            _err(
                "poll-once failed: "
                + "; ".join(
                    [
                        *result.errors,
                        *([f"upload: {result.upload_error}"] if result.upload_error else []),
                    ]
                )
            )
        return 0 if result.ok else EXIT_FAILED

    return _guarded(args, body)


def _cmd_discover(args: argparse.Namespace) -> int:
    def body(config: CollectorConfig) -> int:
        result = discover_once(config)
        devices = [describe_device(d) for d in result.found]
        if args.json:
            doc = {"devices": devices, "problems": [str(p) for p in result.problems]}
            print(json.dumps(doc, indent=2))
        else:
            for d in devices:
                port = f":{d['port']}" if d["port"] else ""
                print(
                    f"{d['scheme']}://{d['address']}{port}  {d['driver']}  "
                    f"{d['vendor']} {d['model'] or ''}  serial {d['serial_number']}"
                )
            for problem in result.problems:
                print(f"problem: {problem}")
            print(f"{_n(len(devices), 'device')} found")
        return 0 if devices else EXIT_FAILED

    return _guarded(args, body)


def _cmd_status(args: argparse.Namespace) -> int:
    def body(config: CollectorConfig) -> int:
        with State(config.data_dir) as state:
            pending = state.outbox_count()
            quarantined = state.quarantined()
            devices = state.known_devices()
            statuses = state.device_statuses()
        cert_alerts = {
            key: row.cert_alert_since.isoformat(timespec="seconds")
            for key, row in statuses.items()
            if row.cert_alert_since is not None
        }
        if args.json:
            doc = {
                "outbox_pending": pending,
                "quarantined": [
                    {
                        "row": q.id,
                        "batch_id": str(q.batch_id) if q.batch_id else None,
                        "kind": q.kind,
                        "reason": q.reason,
                        "at": q.quarantined_at.isoformat(),
                    }
                    for q in quarantined
                ],
                "devices": [
                    {
                        "address": d.address,
                        "driver": d.driver,
                        "serial_number": d.serial_number,
                        "last_seen": d.last_seen.isoformat() if d.last_seen else None,
                        "last_error": d.last_error,
                        "certificate_changed_since": cert_alerts.get(
                            (d.driver, d.serial_number or "")
                        ),
                    }
                    for d in devices
                ],
            }
            print(json.dumps(doc, indent=2))
            return 0
        print(f"outbox pending:  {pending}")
        print(f"quarantined:     {len(quarantined)}")
        for q in quarantined:
            print(f"  row {q.id} ({q.kind}) batch {q.batch_id}: {q.reason}")
        print(f"known devices:   {len(devices)}")
        for d in devices:
            seen = d.last_seen.isoformat(timespec="seconds") if d.last_seen else "never"
            error = f"  last error: {d.last_error}" if d.last_error else ""
            since = cert_alerts.get((d.driver, d.serial_number or ""))
            cert = f"  CERTIFICATE CHANGED since {since} (repin after checking)" if since else ""
            print(f"  {d.address:<16} {d.driver:<8} {d.serial_number}  seen {seen}{error}{cert}")
        return 0

    return _guarded(args, body)


def _cmd_repin(args: argparse.Namespace) -> int:
    def body(config: CollectorConfig) -> int:
        address = args.address.strip()
        with State(config.data_dir) as state:
            forgotten = state.forget_pins(address)
        if not forgotten:
            _err(f"no certificate is pinned for {address}")
            return EXIT_FAILED
        for pin in forgotten:
            when = pin.pinned_at.isoformat(timespec="seconds") if pin.pinned_at else "?"
            print(f"forgot pin {pin.host_port}: sha256 {pin.sha256[:16]}… (pinned {when})")
        print(
            f"{address} will be pinned again at its next connection "
            "(a running collector picks this up before its next poll)"
        )
        return 0

    return _guarded(args, body)


def _cmd_pseudonym(args: argparse.Namespace) -> int:
    def body(config: CollectorConfig) -> int:
        try:
            key = load_or_create_key(config.privacy_key_file)
        except PrivacyError as exc:
            _err(str(exc))
            return EXIT_FAILED
        policy = config.privacy.policies()[args.field]
        print(pseudonym(key, args.field, args.value))
        if policy is not FieldPolicy.PSEUDONYMISE:
            _err(f"note: privacy.{args.field} is {policy.value!r}: this site does not send it so")
        return 0

    return _guarded(args, body)


def _cmd_requeue(args: argparse.Namespace) -> int:
    def body(config: CollectorConfig) -> int:
        with State(config.data_dir) as state:
            count = state.requeue_quarantined()
        print(f"{count} quarantined report(s) queued for upload again")
        return 0

    return _guarded(args, body)


def _cmd_enroll(args: argparse.Namespace) -> int:
    from fleetmeter.collector.enrolment import EnrolmentError, enroll

    if args.token_file is not None:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            _err(f"--token-file: cannot read {args.token_file}: {exc}")
            return EXIT_CONFIG
    else:
        token = args.token
    try:
        done = enroll(
            portal_url=args.portal,
            customer=args.customer,
            token=token,
            config_path=Path(args.config),
            name=args.name,
            ca_file=Path(args.ca_file) if args.ca_file else None,
            data_dir=args.data_dir,
            allow_insecure_http=args.allow_insecure_http,
        )
    except ConfigError as exc:
        for line in exc.errors:
            _err(line)
        return EXIT_CONFIG
    except (EnrolmentError, OSError) as exc:
        _err(str(exc))
        return EXIT_FAILED
    print(
        json.dumps(
            {
                "enrolled": True,
                "collector_id": str(done.collector_id),
                "reseller": done.reseller,
                "customer": done.customer,
                "config": str(done.config),
                "token_file": str(done.token_file),
                "next": f"fleetmeter collector run --config {done.config}",
            }
        )
    )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``collector`` and its sub-commands to the top-level ``fleetmeter`` parser."""
    collector = subparsers.add_parser(
        "collector",
        help="on-prem agent: discover devices, poll them, upload to the portal",
        description="Discover devices in the configured ranges, poll them read-only and upload "
        "their reports to the portal.",
    )
    sub = collector.add_subparsers(dest="collector_command", metavar="SUBCOMMAND", required=True)

    enroll_help = (
        "register this collector with the portal using a one-time token; writes the config "
        "file and the collector's token (ranges and intervals then come from the portal)"
    )
    enroll = sub.add_parser("enroll", help=enroll_help, description=enroll_help)
    enroll.add_argument("--portal", required=True, metavar="URL", help="https://portal:8443")
    enroll.add_argument("--customer", required=True, metavar="ACCOUNT", help="customer name")
    given = enroll.add_mutually_exclusive_group(required=True)
    given.add_argument("--token", metavar="TOKEN", help="the one-time enrolment token")
    given.add_argument("--token-file", metavar="FILE", help="read the token from FILE")
    enroll.add_argument(
        "--config", default="collector.toml", metavar="FILE", help="config to write (new)"
    )
    enroll.add_argument("--name", help="this collector's name in the portal")
    enroll.add_argument("--ca-file", metavar="PEM", help="CA of the portal's certificate")
    enroll.add_argument(
        "--data-dir", default="collector-data", help="outbox and state, relative to the config"
    )
    enroll.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="permit http:// to a loopback portal (tests and demos only)",
    )
    enroll.set_defaults(func=_cmd_enroll)

    def add(
        name: str, func: Any, help_text: str, *, json_flag: bool = True
    ) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("--config", required=True, metavar="FILE", help="collector TOML")
        if json_flag:
            parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.set_defaults(func=func)
        return parser

    add(
        "run",
        _cmd_run,
        'run until SIGINT/SIGTERM (prints {"ready": true} once started)',
        json_flag=False,
    )
    add(
        "poll-once",
        _cmd_poll_once,
        "discover, poll every device once, upload everything; non-zero exit on any failure",
    )
    add("discover", _cmd_discover, "list the devices found in the configured ranges")
    add("status", _cmd_status, "outbox size, quarantined reports and known devices")
    repin = add(
        "repin",
        _cmd_repin,
        "forget the certificate pinned for ADDRESS (after checking that the device's new "
        "certificate is legitimate); it is pinned anew at its next connection",
        json_flag=False,
    )
    repin.add_argument("address", metavar="ADDRESS", help="the device's host or IP address")
    pseudo = add(
        "pseudonym",
        _cmd_pseudonym,
        "print the pseudonym this site sends for VALUE (to find a person's or an account's "
        "jobs in the portal); needs the site's privacy key",
        json_flag=False,
    )
    pseudo.add_argument("value", metavar="VALUE", help="the name as the printers report it")
    pseudo.add_argument(
        "--field",
        choices=PRIVACY_FIELDS,
        default="user",
        help="the field VALUE is in (default: user)",
    )
    add(
        "requeue",
        _cmd_requeue,
        "send quarantined reports again (after fixing what the portal refused them for); "
        "the portal still stores each job once",
        json_flag=False,
    )
