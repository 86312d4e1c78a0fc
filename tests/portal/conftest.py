"""Portal fixtures: a tenant with a collector and a user, wire batch builders, the real app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fleetmeter.portal.app import create_app
from fleetmeter.portal.settings import PortalSettings
from fleetmeter.portal.store.db import make_engine, make_session_factory
from tests.portal.portal_builders import Tenant, make_tenant


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def tenant(session_factory: sessionmaker[Session]) -> Tenant:
    return make_tenant(session_factory, "Acme")


@pytest.fixture
def other_tenant(session_factory: sessionmaker[Session]) -> Tenant:
    return make_tenant(session_factory, "Globex")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> PortalSettings:
    return PortalSettings(database_url=database_url, data_dir=tmp_path / "data")


@pytest.fixture
def client(settings: PortalSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client
