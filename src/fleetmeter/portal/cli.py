"""``fleetmeter portal …``: serve, migrate and the tenancy admin commands.

``register(subparsers)`` adds the ``portal`` command to the top-level ``fleetmeter``
parser; every subcommand sets ``func(args) -> int``. Errors print one line on stderr and
exit non-zero, never a traceback. Admin commands print JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
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
    _db_options(user)
    user.set_defaults(func=_guard(_add_user))

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


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry (``python -m fleetmeter.portal.cli portal …``) for tests and scripts."""
    parser = argparse.ArgumentParser(prog="fleetmeter")
    register(parser.add_subparsers(dest="command", required=True))
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
    from fleetmeter.portal.services import tenancy

    with _session(args) as session:
        reseller = tenancy.find_reseller(session, name=args.reseller)
        user = tenancy.add_user(
            session, reseller=reseller, email=args.email, password=args.password
        )
        session.commit()
        _print({"user_id": str(user.id), "reseller_id": str(reseller.id), "email": user.email})
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
