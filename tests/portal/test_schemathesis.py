"""A bounded schemathesis run against the portal's own OpenAPI document (``app.openapi()``).

Every operation gets requests generated from its schema, valid and invalid (wrong types,
missing fields, odd strings, boundary numbers), sent in-process to the ASGI app with an API
token of a real tenant; the check is ``not_a_server_error``: no 5xx, whatever the request.
The budget is small (``EXAMPLES`` per operation) so that CI stays fast; the database is
SQLite (the PostgreSQL-specific failures are in ``test_hostile_input.py``).
``FLEETMETER_FUZZ_SCALE=20`` runs a longer campaign locally.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Verbosity, given, settings
from schemathesis.checks import not_a_server_error
from sqlalchemy.orm import Session, sessionmaker

from fleetmeter.portal.app import create_app
from fleetmeter.portal.settings import PortalSettings
from tests.devices.hostile_support import SCALE
from tests.portal.portal_builders import PASSWORD, Tenant

EXAMPLES = 12
MAX_SQL_INTEGER = 2**63 - 1


@pytest.fixture
def database_url(tmp_path: Path, _sqlite_template: Path) -> str:
    """SQLite only here (overrides the SQLite + PostgreSQL parametrisation)."""
    path = tmp_path / "portal.db"
    path.write_bytes(_sqlite_template.read_bytes())
    return f"sqlite:///{path}"


@pytest.fixture
def portal(settings: PortalSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def api_token(portal: TestClient, tenant: Tenant) -> str:
    basic = base64.b64encode(f"{tenant.email}:{PASSWORD}".encode()).decode()
    response = portal.post(
        "/api/v1/api-tokens",
        json={"name": "schemathesis"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


@pytest.fixture
def api_schema(
    portal: TestClient, session_factory: sessionmaker[Session]
) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_dict(portal.app.openapi())  # type: ignore[attr-defined]
    schema.app = portal.app
    return schema


def _known_bug(case: schemathesis.Case) -> bool:
    """Requests that hit a bug reported elsewhere (and pinned by an xfail test below), left
    out of the generated ones so that the run keeps looking for new failures."""
    query = case.query or {}
    return any(
        isinstance(query.get(name), int) and query[name] > MAX_SQL_INTEGER
        for name in ("offset", "limit")
    )


def test_no_server_error(api_schema: schemathesis.BaseSchema, api_token: str) -> None:
    """Each operation in turn, each with its own bounded hypothesis run; every failing
    operation is reported (not only the first). schemathesis's pytest plugin
    (``from_fixture``) does not run under pytest 9: its Python API does."""
    headers = {"Authorization": f"Bearer {api_token}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 20
    failures: dict[str, str] = {}

    for operation in operations:

        @given(case=operation.as_strategy().filter(lambda case: not _known_bug(case)))
        @settings(
            max_examples=EXAMPLES * SCALE,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            verbosity=Verbosity.quiet,
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        try:
            run()
        except Exception as exc:  # the operation's failure, with schemathesis's reproducer
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:2000]
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())


@pytest.mark.xfail(
    strict=True,
    reason=(
        "portal/api/read.py: Offset = Query(ge=0) has no upper bound, so "
        "GET /api/v1/devices?offset=9223372036854775808 (and /jobs, /devices/{id}/jobs) "
        "reaches SQLite/PostgreSQL and raises OverflowError / NumericValueOutOfRange: "
        "a 500 instead of a 422 (found by the schemathesis run)"
    ),
)
@pytest.mark.parametrize("path", ["/api/v1/devices", "/api/v1/jobs"])
def test_offset_past_64_bits_is_refused(portal: TestClient, api_token: str, path: str) -> None:
    response = portal.get(
        path,
        params={"offset": str(MAX_SQL_INTEGER + 1)},
        headers={"Authorization": f"Bearer {api_token}"},
    )
    assert 400 <= response.status_code < 500, response.status_code
