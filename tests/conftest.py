"""Shared database fixtures: ``database_url`` runs a test on SQLite and on PostgreSQL.

PostgreSQL comes from ``FLEETMETER_TEST_POSTGRES_URL`` (default: the local ``test`` database);
if it is unreachable those params skip with the reason. Each test session gets its own
schema (via ``search_path``), so parallel and repeated runs never collide; it is dropped
at the end. Every test starts on a freshly migrated, empty database.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from fleetmeter.portal.store.migrate import upgrade
from fleetmeter.portal.store.models import Base

POSTGRES_URL = os.environ.get(
    "FLEETMETER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per session; tests get a copy (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "portal.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _postgres_schema_url() -> Iterator[str]:
    admin = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        pytest.skip(
            f"PostgreSQL unreachable at {make_url(POSTGRES_URL).render_as_string()}: {reason} "
            "(set FLEETMETER_TEST_POSTGRES_URL)"
        )
    schema = f"fm_test_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    url_text = url.render_as_string(hide_password=False)
    try:
        upgrade(url_text)
        yield url_text
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a copied SQLite file, or a truncated PostgreSQL schema."""
    if request.param == "sqlite":
        path = tmp_path / "portal.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("_postgres_schema_url")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            conn.execute(sa.text(f"TRUNCATE {tables} CASCADE"))
    finally:
        engine.dispose()
    return url
