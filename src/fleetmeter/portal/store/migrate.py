"""Programmatic Alembic: ``upgrade(database_url)`` and the at-head check the app runs on start.

No alembic.ini is needed at runtime: the Config is built here, and the scripts live in
this package (``migrations/``), so they ship in the wheel.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from fleetmeter.portal.errors import NotMigratedError
from fleetmeter.portal.store.db import make_engine

SCRIPT_LOCATION = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade_engine(engine: Engine, revision: str = "head") -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database at ``database_url`` to ``revision`` (default: the newest)."""
    engine = make_engine(database_url)
    try:
        upgrade_engine(engine, revision)
    finally:
        engine.dispose()


def current_revision(engine: Engine) -> str | None:
    # A read-only check: Alembic's "Context impl …" INFO lines would only be noise on
    # stderr of every admin command and every start.
    log = logging.getLogger("alembic.runtime.migration")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        log.setLevel(level)


def require_current(engine: Engine) -> None:
    """Refuse to serve a database whose schema is not at the newest revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise NotMigratedError(
            f"database {engine.url.render_as_string(hide_password=True)} is at revision "
            f"{current or 'none (empty)'}, this portal needs {head}: "
            "run `fleetmeter portal migrate` first"
        )
