"""Roles, API tokens, customer users, platform operators with audited grants, login
throttling, and the tenant scope the query layer adds by itself. Real app, SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fleetmeter.portal.cli import main as portal_main
from fleetmeter.portal.services import access, tenancy
from fleetmeter.portal.store.models import ApiToken, Customer, Device, JobRecord
from fleetmeter.wire.codec import encode_batch
from tests.portal.portal_builders import PASSWORD, Tenant, batch, job, report


def _ingest(client: TestClient, token: str, *reports: Any) -> None:
    answer = client.post(
        "/api/v1/ingest/batches",
        content=encode_batch(batch(*reports), "zstd"),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Content-Encoding": "zstd",
        },
    )
    assert answer.status_code == 200, answer.text


def _user(
    factory: sessionmaker[Session], tenant: Tenant, role: str, *, customer: uuid.UUID | None = None
) -> tuple[str, str]:
    email = f"{role}-{uuid.uuid4().hex[:6]}@acme.example"
    with factory() as session:
        reseller = tenancy.find_reseller(session, name="Acme")
        user = tenancy.add_user(session, reseller=reseller, email=email, password=PASSWORD)
        user.role, user.customer_id = role, customer
        session.commit()
    return email, PASSWORD


def _second_customer(factory: sessionmaker[Session]) -> uuid.UUID:
    with factory() as session:
        reseller = tenancy.find_reseller(session, name="Acme")
        customer = tenancy.get_or_create_customer(session, reseller=reseller, name="Second")
        session.commit()
        return customer.id


def test_service_users_read_but_change_nothing(
    client: TestClient, tenant: Tenant, session_factory: sessionmaker[Session]
) -> None:
    service = _user(session_factory, tenant, "service")
    assert client.get("/api/v1/devices", auth=service).status_code == 200
    put = client.put(
        f"/api/v1/collectors/{tenant.collector_id}/settings", json={"settings": {}}, auth=service
    )
    assert put.status_code == 403
    made = client.post(
        "/api/v1/enrolment-tokens", json={"customer_id": str(tenant.customer_id)}, auth=service
    )
    assert made.status_code == 403
    credential = {"customer_id": str(tenant.customer_id), "serial_number": "X1"}
    assert (
        client.post("/api/v1/device-credentials", json=credential, auth=service).status_code == 403
    )
    assert client.get("/api/v1/users", auth=service).status_code == 403
    assert client.get("/api/v1/audit", auth=service).status_code == 403
    admin = (tenant.email, PASSWORD)
    assert client.post("/api/v1/device-credentials", json=credential, auth=admin).status_code == 201


def test_customer_users_see_their_customer_only(
    client: TestClient, tenant: Tenant, session_factory: sessionmaker[Session]
) -> None:
    other_customer = _second_customer(session_factory)
    with session_factory() as session:
        reseller = tenancy.find_reseller(session, name="Acme")
        customer = session.get(Customer, other_customer)
        assert customer is not None
        second = tenancy.add_collector(session, reseller=reseller, customer=customer)
        session.commit()
    _ingest(client, tenant.token, report("MINE-1", jobs=[job(1)]))
    _ingest(client, second.token, report("THEIRS-1", jobs=[job(1), job(2)]))
    viewer = _user(session_factory, tenant, "customer", customer=tenant.customer_id)
    devices = client.get("/api/v1/devices", auth=viewer).json()["items"]
    assert [d["serial_number"] for d in devices] == ["MINE-1"]
    admin_view = client.get("/api/v1/devices", auth=(tenant.email, PASSWORD)).json()["items"]
    theirs = next(d for d in admin_view if d["serial_number"] == "THEIRS-1")
    assert client.get(f"/api/v1/devices/{theirs['id']}", auth=viewer).status_code == 404
    jobs = client.get("/api/v1/jobs", auth=viewer).json()["items"]
    assert len(jobs) == 1
    assert (
        client.post(
            "/api/v1/api-tokens", json={"name": "w", "scope": "write"}, auth=viewer
        ).status_code
        == 403
    )


def test_api_tokens_are_scoped_revocable_and_hashed(
    client: TestClient, tenant: Tenant, session_factory: sessionmaker[Session]
) -> None:
    admin = (tenant.email, PASSWORD)
    made = client.post("/api/v1/api-tokens", json={"name": "nightly export"}, auth=admin)
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    assert token.startswith("fmt_") and made.json()["scope"] == "read"
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/devices", headers=bearer).status_code == 200
    # A read token cannot write, even an admin's.
    put = client.put(
        f"/api/v1/collectors/{tenant.collector_id}/settings",
        json={"settings": {}},
        headers=bearer,
    )
    assert put.status_code == 403
    listed = client.get("/api/v1/api-tokens", auth=admin).json()["items"]
    assert [t["name"] for t in listed] == ["nightly export"]
    assert token not in json.dumps(listed)
    with session_factory() as session:
        stored = session.scalars(select(ApiToken.token_hash)).all()
        assert token not in stored and len(stored) == 1

    write = client.post(
        "/api/v1/api-tokens", json={"name": "ops", "scope": "write"}, auth=admin
    ).json()["token"]
    ok = client.put(
        f"/api/v1/collectors/{tenant.collector_id}/settings",
        json={"settings": {}},
        headers={"Authorization": f"Bearer {write}"},
    )
    assert ok.status_code == 200

    revoked = client.delete(f"/api/v1/api-tokens/{made.json()['id']}", auth=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert client.get("/api/v1/devices", headers=bearer).status_code == 401
    assert (
        client.get("/api/v1/devices", headers={"Authorization": "Bearer fmt_nope"}).status_code
        == 401
    )
    actions = [e["action"] for e in client.get("/api/v1/audit", auth=admin).json()["items"]]
    assert "api token revoked" in actions and "api token created" in actions


def test_another_resellers_token_is_not_found(
    client: TestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    made = client.post("/api/v1/api-tokens", json={"name": "a"}, auth=(tenant.email, PASSWORD))
    theirs = (other_tenant.email, PASSWORD)
    assert client.delete(f"/api/v1/api-tokens/{made.json()['id']}", auth=theirs).status_code == 404
    assert client.get("/api/v1/api-tokens", auth=theirs).json()["items"] == []


def test_login_is_throttled_per_account(client: TestClient, tenant: Tenant) -> None:
    for _ in range(access.MAX_FAILURES_PER_ACCOUNT):
        assert (
            client.get("/api/v1/devices", auth=(tenant.email, "wrong-password")).status_code == 401
        )
    # Locked: even the right password is refused without being checked, with Retry-After.
    locked = client.get("/api/v1/devices", auth=(tenant.email, PASSWORD))
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    session_login = client.post(
        "/api/v1/session", json={"email": tenant.email, "password": PASSWORD}
    )
    assert session_login.status_code == 429


def test_a_good_login_resets_the_count(client: TestClient, tenant: Tenant) -> None:
    for _ in range(access.MAX_FAILURES_PER_ACCOUNT - 1):
        client.get("/api/v1/devices", auth=(tenant.email, "wrong-password"))
    assert client.get("/api/v1/devices", auth=(tenant.email, PASSWORD)).status_code == 200
    for _ in range(access.MAX_FAILURES_PER_ACCOUNT - 1):
        client.get("/api/v1/devices", auth=(tenant.email, "wrong-password"))
    assert client.get("/api/v1/devices", auth=(tenant.email, PASSWORD)).status_code == 200


def test_operators_need_a_grant_and_every_request_is_audited(
    client: TestClient,
    tenant: Tenant,
    other_tenant: Tenant,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = ["--database-url", database_url, "--data-dir", str(tmp_path / "d")]
    op_password = "operator-password-1"
    assert (
        portal_main(
            [
                "portal",
                "add-operator",
                "--email",
                "ops@platform.example",
                "--password",
                op_password,
                *db,
            ]
        )
        == 0
    )
    capsys.readouterr()
    auth = ("ops@platform.example", op_password)
    tenant_header = {"FleetMeter-Tenant": str(tenant.reseller_id)}
    # No grant yet: nothing.
    assert client.get("/api/v1/devices", auth=auth, headers=tenant_header).status_code == 401
    assert (
        portal_main(
            [
                *("portal", "grant-operator-access", "--operator", "ops@platform.example"),
                *(
                    "--reseller",
                    "Acme",
                    "--reason",
                    "ticket 4711: missing jobs",
                    "--hours",
                    "2",
                    *db,
                ),
            ]
        )
        == 0
    )
    _ingest(client, tenant.token, report("SEEN-BY-OPS"))
    seen = client.get("/api/v1/devices", auth=auth, headers=tenant_header)
    assert seen.status_code == 200
    assert [d["serial_number"] for d in seen.json()["items"]] == ["SEEN-BY-OPS"]
    # Read-only, and only the granted tenant.
    put = client.put(
        f"/api/v1/collectors/{tenant.collector_id}/settings",
        json={"settings": {}},
        auth=auth,
        headers=tenant_header,
    )
    assert put.status_code == 403
    other_header = {"FleetMeter-Tenant": str(other_tenant.reseller_id)}
    assert client.get("/api/v1/devices", auth=auth, headers=other_header).status_code == 401
    events = client.get("/api/v1/audit", auth=(tenant.email, PASSWORD)).json()["items"]
    described = [(e["actor"], e["action"]) for e in events]
    assert ("operator:ops@platform.example", "GET /api/v1/devices") in described
    assert ("operator:ops@platform.example", "operator access granted") in described
    assert any("ticket 4711" in (e["detail"] or "") for e in events)
    assert client.get("/api/v1/audit", auth=(other_tenant.email, PASSWORD)).json()["items"] == []


def test_the_query_layer_scopes_unfiltered_reads(
    client: TestClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session_factory: sessionmaker[Session],
) -> None:
    """A query that forgets its reseller filter still sees only the scoped tenant."""
    _ingest(client, tenant.token, report("A-1", jobs=[job(1)]))
    _ingest(client, other_tenant.token, report("B-1", jobs=[job(1)]))
    factory: sessionmaker[Session] = client.app.state.session_factory  # type: ignore[attr-defined]
    with factory() as session:
        assert len(session.scalars(select(Device)).all()) == 2  # no scope: everything
        access.set_scope(session, access.TenantScope(other_tenant.reseller_id))
        assert [d.serial_number for d in session.scalars(select(Device))] == ["B-1"]
        assert len(session.scalars(select(JobRecord)).all()) == 1
        mine = session.scalars(select(Device.id).where(Device.serial_number == "A-1")).all()
        assert mine == []


def test_cli_adds_users_with_roles(
    database_url: str, tmp_path: Path, tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--database-url", database_url, "--data-dir", str(tmp_path / "d")]
    base = ["portal", "add-user", "--reseller", "Acme", "--password", PASSWORD, *db]
    assert portal_main([*base, "--email", "tech@acme.example", "--role", "service"]) == 0
    assert json.loads(capsys.readouterr().out)["role"] == "service"
    assert portal_main([*base, "--email", "c@acme.example", "--role", "customer"]) != 0
    assert "--customer" in capsys.readouterr().err
    code = portal_main(
        [*base, "--email", "c@acme.example", "--role", "customer", "--customer", "Acme customer"]
    )
    assert code == 0
