"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from fleetmeter.portal.app import create_app
from fleetmeter.portal.errors import NotMigratedError
from fleetmeter.portal.settings import PortalSettings
from fleetmeter.portal.store.migrate import SCRIPT_LOCATION, current_revision, head_revision
from fleetmeter.portal.store.models import Base


def test_migrated_schema_equals_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    assert current_revision(engine) == head_revision()


def test_tenant_tables_lead_with_reseller_id() -> None:
    """DESIGN.md "Scale": reseller_id leads every composite key, unique constraint and index."""
    for table in Base.metadata.sorted_tables:
        if "reseller_id" not in table.c:
            continue
        groups = [list(table.primary_key.columns)] + [
            list(c.columns) for c in table.constraints if hasattr(c, "columns")
        ]
        groups += [list(i.columns) for i in table.indexes]
        for columns in groups:
            if len(columns) > 1:
                assert columns[0].name == "reseller_id", (table.name, [c.name for c in columns])


def test_migration_scripts_are_in_the_package() -> None:
    assert (SCRIPT_LOCATION / "env.py").is_file()
    assert (SCRIPT_LOCATION / "__init__.py").is_file()  # so setuptools ships them
    assert (SCRIPT_LOCATION / "versions" / "__init__.py").is_file()


def test_app_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    settings = PortalSettings(database_url=f"sqlite:///{tmp_path / 'empty.db'}", data_dir=tmp_path)
    with pytest.raises(NotMigratedError, match="fleetmeter portal migrate"):
        create_app(settings)
