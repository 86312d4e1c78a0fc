"""``fleetmeter portal …``: serve, migrate, the tenancy admin commands, contracts and
statements (and the top-level ``fleetmeter statement``, which needs the same database).

``register(subparsers)`` adds the ``portal`` command to the top-level ``fleetmeter``
parser; every subcommand sets ``func(args) -> int``. Errors print one line on stderr and
exit non-zero, never a traceback. Admin commands print JSON on stdout.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Heavy imports (SQLAlchemy, Alembic, uvicorn) happen inside the commands: the top-level
# ``fleetmeter`` CLI registers every program at start, and `fleetmeter collector …` must
# not pay for the portal's imports.
if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from fleetmeter.portal.settings import PortalSettings

EXIT_ERROR = 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    portal = subparsers.add_parser("portal", help="the multi-tenant portal (web UI + ingest API)")
    portal.set_defaults(func=lambda _args: _usage(portal))
    commands = portal.add_subparsers(dest="portal_command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the portal (migrates the database first)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8443, help="0 picks a free port")
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate (chain); enables HTTPS")
    serve.add_argument("--tls-key", type=Path, help="PEM private key for --tls-cert")
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not migrate on start (run `portal migrate` as a release step instead)",
    )
    _db_options(serve)
    serve.set_defaults(func=_guard(_serve, migration_log=True))

    migrate = commands.add_parser(
        "migrate", help="bring the database schema to the newest revision"
    )
    _db_options(migrate)
    migrate.set_defaults(func=_guard(_migrate, migration_log=True))

    tenant = commands.add_parser(
        "create-tenant", help="create a reseller and a customer (existing names are reused)"
    )
    tenant.add_argument("--reseller", required=True, metavar="NAME")
    tenant.add_argument("--customer", required=True, metavar="NAME")
    tenant.add_argument("--admin-email", metavar="EMAIL")
    tenant.add_argument("--admin-password", metavar="PASSWORD")
    _db_options(tenant)
    tenant.set_defaults(func=_guard(_create_tenant))

    user = commands.add_parser("add-user", help="add a user who can log in to a reseller's portal")
    user.add_argument("--reseller", required=True, metavar="NAME")
    user.add_argument("--email", required=True)
    user.add_argument("--password", required=True)
    user.add_argument(
        "--role",
        default="admin",
        choices=["admin", "billing", "service", "customer"],
        help="admin: everything; billing: contracts and statements; service: read-only; "
        "customer: read-only, one customer's devices (needs --customer)",
    )
    user.add_argument("--customer", metavar="NAME", help="for --role customer")
    _db_options(user)
    user.set_defaults(func=_guard(_add_user))

    operator = commands.add_parser(
        "add-operator",
        help="add a platform operator (sees no tenant until granted access to one)",
    )
    operator.add_argument("--email", required=True)
    operator.add_argument("--password", required=True)
    _db_options(operator)
    operator.set_defaults(func=_guard(_add_operator))

    grant = commands.add_parser(
        "grant-operator-access",
        help="let an operator read one reseller's data for a while; the reseller's audit log "
        "shows the grant, its reason and every request made under it",
    )
    grant.add_argument("--operator", required=True, metavar="EMAIL")
    grant.add_argument("--reseller", required=True, metavar="NAME")
    grant.add_argument(
        "--reason", required=True, help="why (a ticket number): the reseller reads it"
    )
    grant.add_argument("--hours", type=float, default=4.0, help="default 4, at most 72")
    _db_options(grant)
    grant.set_defaults(func=_guard(_grant_operator_access))

    collector = commands.add_parser(
        "add-collector", help="create a collector and print its token (shown once)"
    )
    collector.add_argument("--reseller", required=True, metavar="NAME")
    collector.add_argument("--customer", required=True, metavar="NAME")
    collector.add_argument("--name")
    _db_options(collector)
    collector.set_defaults(func=_guard(_add_collector))

    enrolment = commands.add_parser(
        "create-enrolment-token",
        help="make a one-time token with which `fleetmeter collector enroll` registers a "
        "collector for this customer (shown once)",
    )
    enrolment.add_argument("--reseller", required=True, metavar="NAME")
    enrolment.add_argument("--customer", required=True, metavar="NAME")
    enrolment.add_argument(
        "--valid-hours", type=float, default=24 * 7, help="default: one week; at most 90 days"
    )
    _db_options(enrolment)
    enrolment.set_defaults(func=_guard(_create_enrolment_token))

    device = commands.add_parser(
        "add-device",
        help="register a direct-connected device; prints its key id and secret (shown once)",
    )
    device.add_argument("--reseller", required=True, metavar="NAME")
    device.add_argument("--customer", required=True, metavar="NAME")
    device.add_argument("--serial", required=True, metavar="SERIAL")
    device.add_argument("--vendor", default="HP", help="default %(default)s")
    _db_options(device)
    device.set_defaults(func=_guard(_add_device))

    rotate = commands.add_parser(
        "rotate-device-secret",
        help="issue a new secret for a device; the old one stays valid for the overlap",
    )
    rotate.add_argument("--key-id", required=True)
    rotate.add_argument(
        "--overlap-hours",
        type=float,
        default=24.0,
        help="how long the previous secret stays valid (default %(default)s; 0 = not at all)",
    )
    _db_options(rotate)
    rotate.set_defaults(func=_guard(_rotate_device_secret))

    revoke = commands.add_parser(
        "revoke-device", help="refuse every later upload signed with this key id"
    )
    revoke.add_argument("--key-id", required=True)
    _db_options(revoke)
    revoke.set_defaults(func=_guard(_revoke_device))

    _register_billing(commands)


def _register_billing(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Contracts and statements (docs/billing.md, "Command line")."""
    contract = commands.add_parser(
        "add-contract",
        help="create a contract for a customer from a price plan file (TOML, or .json)",
    )
    contract.add_argument("--reseller", required=True, metavar="NAME")
    contract.add_argument("--customer", required=True, metavar="NAME")
    contract.add_argument("--plan", required=True, type=Path, metavar="FILE")
    contract.add_argument(
        "--timezone", default="UTC", help="IANA name, e.g. Europe/Berlin (default UTC)"
    )
    contract.add_argument("--start", type=_day, metavar="DATE", help="first day (default today)")
    contract.add_argument("--end", type=_day, metavar="DATE", help="first day no longer covered")
    contract.add_argument("--name", help="default: '<plan name> from <start>'")
    _db_options(contract)
    contract.set_defaults(func=_guard(_add_contract))

    listing = commands.add_parser("list-contracts", help="a reseller's contracts as JSON")
    listing.add_argument("--reseller", required=True, metavar="NAME")
    listing.add_argument("--customer", metavar="NAME")
    _db_options(listing)
    listing.set_defaults(func=_guard(_list_contracts))

    plan = commands.add_parser(
        "set-contract-plan",
        help="replace a contract's plan (open statements take it when next generated)",
    )
    plan.add_argument("--contract", required=True, metavar="ID")
    plan.add_argument("--plan", required=True, type=Path, metavar="FILE")
    _db_options(plan)
    plan.set_defaults(func=_guard(_set_contract_plan))

    add = commands.add_parser("contract-add-device", help="put a device on a contract")
    add.add_argument("--contract", required=True, metavar="ID")
    add.add_argument("--serial", required=True, metavar="SERIAL")
    add.add_argument("--vendor", help="only when two vendors' devices share the serial")
    add.add_argument(
        "--from", dest="valid_from", type=_day, metavar="DATE", help="first day (default today)"
    )
    add.add_argument(
        "--placement", help="where it stands (default: its address); a swap keeps the placement"
    )
    _db_options(add)
    add.set_defaults(func=_guard(_contract_add_device))

    remove = commands.add_parser("contract-remove-device", help="take a device off a contract")
    remove.add_argument("--contract", required=True, metavar="ID")
    remove.add_argument("--serial", required=True, metavar="SERIAL")
    remove.add_argument("--vendor")
    remove.add_argument(
        "--on", dest="valid_to", type=_day, metavar="DATE", help="first day off (default today)"
    )
    _db_options(remove)
    remove.set_defaults(func=_guard(_contract_remove_device))

    generate = commands.add_parser(
        "generate-statement", help="(re)generate a period's open statement; prints its summary"
    )
    generate.add_argument("--contract", required=True, metavar="ID")
    generate.add_argument("--period", required=True, help="2026-03, 2026-Q1, 2026 or a day")
    _db_options(generate)
    generate.set_defaults(func=_guard(_generate_statement))

    close = commands.add_parser(
        "close-statement",
        help="generate a period's statement one last time and close it (it never changes "
        "again; closing twice is harmless)",
    )
    close.add_argument("--contract", required=True, metavar="ID")
    close.add_argument("--period", required=True, help="2026-03, 2026-Q1, 2026 or a day")
    _db_options(close)
    close.set_defaults(func=_guard(_close_statement))


STATEMENT_FORMATS = ("json", "csv", "csv-devices", "csv-reconciliation", "xlsx", "pdf")


def register_statement(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The top-level ``fleetmeter statement`` command (it needs the portal's database)."""
    statement = subparsers.add_parser(
        "statement",
        help="a contract's statement for a period as JSON, CSV, XLSX or PDF",
        description="An open (or not yet made) statement is generated first, so it shows the "
        "jobs stored now; a closed one is shown exactly as it was closed.",
    )
    statement.add_argument("--contract", required=True, metavar="ID")
    statement.add_argument("--period", required=True, help="2026-03, 2026-Q1, 2026 or a day")
    statement.add_argument(
        "--format",
        default="json",
        choices=STATEMENT_FORMATS,
        help="csv: line items; csv-devices: usage per device; csv-reconciliation: the flags "
        "(default json)",
    )
    statement.add_argument("--output", type=Path, metavar="FILE", help="default: stdout")
    _db_options(statement)
    statement.set_defaults(func=_guard(_statement))


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _contract_id(text: str) -> uuid.UUID:
    from fleetmeter.portal.services.contracts import ContractNotFoundError

    try:
        return uuid.UUID(text)
    except ValueError:
        raise ContractNotFoundError(f"no contract {text!r} (contract ids are UUIDs)") from None


def _read_plan(path: Path) -> tuple[str, str]:
    from fleetmeter.portal.services.contracts import ContractError, plan_format_of

    try:
        return path.read_text(encoding="utf-8"), plan_format_of(path.name)
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"{path}: cannot read: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry (``python -m fleetmeter.portal.cli portal …``) for tests and scripts."""
    parser = argparse.ArgumentParser(prog="fleetmeter")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    register_statement(subparsers)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


# --------------------------------------------------------------------------- commands


def _serve(args: argparse.Namespace) -> int:
    from fleetmeter.portal.server import serve  # uvicorn only when serving

    return serve(
        _settings(args),
        host=args.host,
        port=args.port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        migrate=not args.no_migrate,
    )


def _migrate(args: argparse.Namespace) -> int:
    from fleetmeter.portal.store.migrate import upgrade

    settings = _settings(args)
    settings.ensure_data_dir()
    upgrade(settings.effective_database_url)
    _print({"migrated": True})
    return 0


def _create_tenant(args: argparse.Namespace) -> int:
    from fleetmeter.portal.services import tenancy

    with _session(args) as session:
        ids = tenancy.create_tenant(
            session,
            reseller_name=args.reseller,
            customer_name=args.customer,
            admin_email=args.admin_email,
            admin_password=args.admin_password,
        )
        session.commit()
    out = {"reseller_id": str(ids.reseller_id), "customer_id": str(ids.customer_id)}
    if ids.user_id is not None:
        out["user_id"] = str(ids.user_id)
    _print(out)
    return 0


def _add_user(args: argparse.Namespace) -> int:
    from fleetmeter.portal.services import access, tenancy

    with _session(args) as session:
        reseller = tenancy.find_reseller(session, name=args.reseller)
        customer_id = None
        if args.customer is not None:
            customer_id = tenancy.find_customer(session, reseller=reseller, name=args.customer).id
        role = access.check_role(args.role, customer_id=customer_id)
        user = tenancy.add_user(
            session, reseller=reseller, email=args.email, password=args.password
        )
        user.role, user.customer_id = role.value, customer_id
        session.commit()
        _print(
            {
                "user_id": str(user.id),
                "reseller_id": str(reseller.id),
                "email": user.email,
                "role": user.role,
            }
        )
    return 0


def _add_operator(args: argparse.Namespace) -> int:
    from fleetmeter.portal.services import access

    with _session(args) as session:
        operator = access.add_operator(session, email=args.email, password=args.password)
        session.commit()
        _print({"operator_id": str(operator.id), "email": operator.email})
    return 0


def _grant_operator_access(args: argparse.Namespace) -> int:
    from fleetmeter.portal.services import access, tenancy

    with _session(args) as session:
        reseller = tenancy.find_reseller(session, name=args.reseller)
        grant = access.grant_operator(
            session,
            operator_email=args.operator,
            reseller=reseller,
            reason=args.reason,
            hours=args.hours,
        )
        session.commit()
        _print(
            {
                "reseller_id": str(reseller.id),
                "expires_at": grant.expires_at.isoformat(),
                "header": f"FleetMeter-Tenant: {reseller.id}",
            }
        )
    return 0


def _add_collector(args: argparse.Namespace) -> int:
    from fleetmeter.portal.services import tenancy

    with _session(args) as session:
        reseller = tenancy.find_reseller(session, name=args.reseller)
        customer = tenancy.find_customer(session, reseller=reseller, name=args.customer)
        new = tenancy.add_collector(session, reseller=reseller, customer=customer, name=args.name)
        session.commit()
    _print({"collector_id": str(new.collector_id), "token": new.token})
    return 0


def _create_enrolment_token(args: argparse.Namespace) -> int:
    from fleetmeter.portal.services import collectors, tenancy

    with _session(args) as session:
        reseller = tenancy.find_reseller(session, name=args.reseller)
        customer = tenancy.find_customer(session, reseller=reseller, name=args.customer)
        new = collectors.create_enrolment_token(
            session,
            reseller_id=reseller.id,
            customer_id=customer.id,
            valid_for=timedelta(hours=args.valid_hours),
        )
        session.commit()
    _print(
        {
            "token": new.token,
            "customer": customer.name,
            "expires_at": new.expires_at.isoformat(),
        }
    )
    return 0


def _add_device(args: argparse.Namespace) -> int:
    from fleetmeter.portal.services import devices_direct, tenancy

    box = devices_direct.SecretBox(_settings(args).resolve_secrets_key())
    with _session(args) as session:
        reseller = tenancy.find_reseller(session, name=args.reseller)
        customer = tenancy.find_customer(session, reseller=reseller, name=args.customer)
        new = devices_direct.add_device(
            session,
            box=box,
            reseller=reseller,
            customer=customer,
            serial_number=args.serial,
            vendor=args.vendor,
        )
        session.commit()
    _print(
        {
            "device_id": new.key_id,
            "key_id": new.key_id,
            "secret": new.secret,
            "vendor": new.vendor,
            "serial_number": new.serial_number,
        }
    )
    return 0


def _rotate_device_secret(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from fleetmeter.portal.errors import TenancyError
    from fleetmeter.portal.services import devices_direct

    if args.overlap_hours < 0:
        raise TenancyError("--overlap-hours must not be negative")
    box = devices_direct.SecretBox(_settings(args).resolve_secrets_key())
    with _session(args) as session:
        new = devices_direct.rotate_secret(
            session, box=box, key_id=args.key_id, overlap=timedelta(hours=args.overlap_hours)
        )
        session.commit()
    until = new.previous_valid_until
    _print(
        {
            "key_id": new.key_id,
            "secret": new.secret,
            "previous_valid_until": until.isoformat() if until is not None else None,
        }
    )
    return 0


def _revoke_device(args: argparse.Namespace) -> int:
    from fleetmeter.portal.services import devices_direct

    with _session(args) as session:
        credential = devices_direct.revoke(session, key_id=args.key_id)
        session.commit()
        revoked_at = credential.revoked_at
    _print({"key_id": args.key_id, "revoked_at": revoked_at.isoformat() if revoked_at else None})
    return 0


def _add_contract(args: argparse.Namespace) -> int:
    from fleetmeter.portal.services import contracts, tenancy

    text, plan_format = _read_plan(args.plan)
    with _session(args) as session:
        reseller = tenancy.find_reseller(session, name=args.reseller)
        customer = tenancy.find_customer(session, reseller=reseller, name=args.customer)
        try:
            contract = contracts.create_contract(
                session,
                reseller_id=reseller.id,
                customer_id=customer.id,
                plan_text=text,
                plan_format=plan_format,
                timezone=args.timezone,
                start_date=args.start,
                end_date=args.end,
                name=args.name,
            )
        except contracts.ContractError as exc:
            # The plan's own message names "plan"; the file is what the user gave.
            raise contracts.ContractError(str(exc).replace("plan: ", f"{args.plan}: ", 1)) from None
        session.commit()
        out = contracts.contract_as_dict(contract, [])
    del out["plan_text"]
    _print(out)
    return 0


def _list_contracts(args: argparse.Namespace) -> int:
    from fleetmeter.portal.services import contracts, tenancy

    with _session(args) as session:
        reseller = tenancy.find_reseller(session, name=args.reseller)
        customer_id = None
        if args.customer:
            customer_id = tenancy.find_customer(session, reseller=reseller, name=args.customer).id
        items = []
        for c in contracts.list_contracts(
            session, reseller_id=reseller.id, customer_id=customer_id
        ):
            placed = contracts.devices_of(session, reseller_id=reseller.id, contract_id=c.id)
            item = contracts.contract_as_dict(c, placed)
            del item["plan_text"]
            items.append(item)
    _print({"items": items})
    return 0


def _set_contract_plan(args: argparse.Namespace) -> int:
    from fleetmeter.portal.services import contracts

    text, plan_format = _read_plan(args.plan)
    contract_id = _contract_id(args.contract)
    with _session(args) as session:
        reseller_id = contracts.reseller_of_contract(session, contract_id=contract_id)
        contract = contracts.set_plan(
            session,
            reseller_id=reseller_id,
            contract_id=contract_id,
            plan_text=text,
            plan_format=plan_format,
        )
        session.commit()
        _print({"contract_id": str(contract.id), "plan_name": contract.plan_name})
    return 0


def _contract_add_device(args: argparse.Namespace) -> int:
    from fleetmeter.portal.services import contracts

    contract_id = _contract_id(args.contract)
    with _session(args) as session:
        reseller_id = contracts.reseller_of_contract(session, contract_id=contract_id)
        device = contracts.find_device(
            session, reseller_id=reseller_id, serial_number=args.serial, vendor=args.vendor
        )
        placed = contracts.add_device(
            session,
            reseller_id=reseller_id,
            contract_id=contract_id,
            device_id=device.id,
            valid_from=args.valid_from,
            placement=args.placement,
        )
        session.commit()
        _print({"contract_id": str(contract_id), **contracts.placed_as_dict(placed)})
    return 0


def _contract_remove_device(args: argparse.Namespace) -> int:
    from fleetmeter.portal.services import contracts

    contract_id = _contract_id(args.contract)
    with _session(args) as session:
        reseller_id = contracts.reseller_of_contract(session, contract_id=contract_id)
        device = contracts.find_device(
            session, reseller_id=reseller_id, serial_number=args.serial, vendor=args.vendor
        )
        placed = contracts.remove_device(
            session,
            reseller_id=reseller_id,
            contract_id=contract_id,
            device_id=device.id,
            valid_to=args.valid_to,
        )
        session.commit()
        _print({"contract_id": str(contract_id), **contracts.placed_as_dict(placed)})
    return 0


def _generate_statement(args: argparse.Namespace) -> int:
    from fleetmeter.portal.services import contracts, statements

    contract_id = _contract_id(args.contract)
    with _session(args) as session:
        reseller_id = contracts.reseller_of_contract(session, contract_id=contract_id)
        record = statements.generate_statement(
            session, reseller_id=reseller_id, contract_id=contract_id, period=args.period
        )
        session.commit()
        _print(statements.summary_of(statements.document_of(record)))
    return 0


def _close_statement(args: argparse.Namespace) -> int:
    from fleetmeter.portal.services import contracts, statements

    contract_id = _contract_id(args.contract)
    with _session(args) as session:
        reseller_id = contracts.reseller_of_contract(session, contract_id=contract_id)
        record = statements.find_statement(
            session, reseller_id=reseller_id, contract_id=contract_id, period=args.period
        )
        if record is None:
            record = statements.generate_statement(
                session, reseller_id=reseller_id, contract_id=contract_id, period=args.period
            )
        record = statements.close_statement(
            session, reseller_id=reseller_id, statement_id=record.id
        )
        session.commit()
        _print(statements.summary_of(statements.document_of(record)))
    return 0


def _statement(args: argparse.Namespace) -> int:
    from fleetmeter.portal.services import contracts, statements

    # The PDF renderer's font subsetter logs every table it prunes at INFO.
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    contract_id = _contract_id(args.contract)
    if args.format != "json" and importlib.util.find_spec("fleetmeter.billing.exports") is None:
        # Said before anything is generated: the answer would not be usable anyway.
        raise statements.StatementError(
            f"--format {args.format} is not available yet (fleetmeter.billing.exports is "
            "missing): use --format json"
        )
    with _session(args) as session:
        reseller_id = contracts.reseller_of_contract(session, contract_id=contract_id)
        record = statements.find_statement(
            session, reseller_id=reseller_id, contract_id=contract_id, period=args.period
        )
        if record is None or record.status == statements.OPEN:
            record = statements.generate_statement(
                session, reseller_id=reseller_id, contract_id=contract_id, period=args.period
            )
            session.commit()
        doc = statements.document_of(record)
        contract = contracts.get_contract(session, reseller_id=reseller_id, contract_id=contract_id)
        names = statements.names_of(session, reseller_id=reseller_id, contract=contract)
    data = _render(doc, args.format, names)
    if args.output is not None:
        args.output.write_bytes(data)
    elif args.format in ("xlsx", "pdf") and sys.stdout.isatty():
        raise statements.StatementError(f"--format {args.format} is binary: give --output FILE")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


def _render(doc: Any, fmt: str, names: Any) -> bytes:
    if fmt == "json":
        return (json.dumps(doc.as_json(), indent=2) + "\n").encode()
    from fleetmeter.portal.services.statements import StatementError

    try:
        from fleetmeter.billing import exports
    except ImportError as exc:
        raise StatementError(
            f"--format {fmt} is not available yet ({exc}): use --format json"
        ) from None
    adjustments = doc.adjustments
    if fmt == "csv":
        return exports.statement_lines_csv(doc.statement, adjustments=adjustments).encode()
    if fmt == "csv-devices":
        return exports.device_usage_csv(doc.usage).encode()
    if fmt == "csv-reconciliation":
        return exports.reconciliation_csv(doc.reconciliation.flags).encode()
    header = exports.StatementHeader(
        reseller=names.reseller,
        customer=names.customer,
        contract=names.contract,
        number=str(doc.id),
        issued_at=doc.closed_at,
        draft=doc.status != "closed",
    )
    if fmt == "xlsx":
        data: bytes = exports.statement_xlsx(
            doc.statement,
            doc.usage,
            header=header,
            adjustments=adjustments,
            flags=doc.reconciliation.flags,
        )
        return data
    pdf: bytes = exports.statement_pdf(
        doc.statement, doc.usage, header=header, adjustments=adjustments
    )
    return pdf


# --------------------------------------------------------------------------- plumbing


def _db_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL (env FLEETMETER_DATABASE_URL; default: SQLite in --data-dir)",
    )
    parser.add_argument("--data-dir", type=Path, help="env FLEETMETER_DATA_DIR; default ./data")


def _settings(args: argparse.Namespace) -> PortalSettings:
    from fleetmeter.portal.settings import PortalSettings

    # Only flags actually given override the environment.
    overrides: dict[str, Any] = {}
    if args.database_url:
        overrides["database_url"] = args.database_url
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    return PortalSettings(**overrides)


class _SessionScope:
    """A session on a migrated database, disposed of with its engine."""

    def __init__(self, args: argparse.Namespace) -> None:
        from fleetmeter.portal.store.db import make_engine

        settings = _settings(args)
        if settings.database_url is None:
            settings.ensure_data_dir()
        self.engine: Engine = make_engine(settings.effective_database_url)
        self.session: Session | None = None

    def __enter__(self) -> Session:
        from fleetmeter.portal.store.db import make_session_factory
        from fleetmeter.portal.store.migrate import require_current

        require_current(self.engine)
        self.session = make_session_factory(self.engine)()
        return self.session

    def __exit__(self, *exc: object) -> None:
        if self.session is not None:
            self.session.close()
        self.engine.dispose()


def _session(args: argparse.Namespace) -> _SessionScope:
    return _SessionScope(args)


def _print(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _guard(
    func: Callable[[argparse.Namespace], int], *, migration_log: bool = False
) -> Callable[[argparse.Namespace], int]:
    """Turn expected failures into one line on stderr and a non-zero exit."""

    def run(args: argparse.Namespace) -> int:
        # Alembic logs its plugin set-up and every schema check at INFO; only the lines of
        # an actual upgrade ("Running upgrade …") are worth showing, and only when migrating.
        logging.getLogger("alembic").setLevel(logging.INFO if migration_log else logging.WARNING)
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
        import pydantic
        from alembic.util.exc import CommandError as AlembicCommandError
        from sqlalchemy.exc import SQLAlchemyError

        from fleetmeter.portal.errors import PortalError

        try:
            return func(args)
        except PortalError as exc:
            message = str(exc)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            message = f"invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}"
        except SQLAlchemyError as exc:
            # The first line of a driver error says what went wrong; the rest is SQL noise.
            cause = getattr(exc, "orig", None) or exc
            message = f"database error: {(str(cause).strip().splitlines() or [repr(cause)])[0]}"
        except (OSError, AlembicCommandError) as exc:
            message = str(exc)
        except KeyboardInterrupt:
            return 130
        sys.stderr.write(f"fleetmeter portal: error: {message}\n")
        return EXIT_ERROR

    return run


if __name__ == "__main__":
    raise SystemExit(main())
