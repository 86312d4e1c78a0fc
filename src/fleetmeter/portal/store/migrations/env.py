"""Alembic environment: runs on the connection ``fleetmeter.portal.store.migrate`` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from fleetmeter.portal.store.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through fleetmeter.portal.store.migrate, not alembic's CLI")
_run(connection)
