"""Every route of the API and the UI, tried with another tenant's ids: each answers 404 and
no answer carries the victim's data. SQLite and PostgreSQL.

The routes are read from the app itself, so a new route is covered the day it is added; a
path parameter this test does not know fails it, until the victim's object of that kind is
added to ``_victim_ids``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fleetmeter.portal.services import access, contracts, devices_direct, statements
from fleetmeter.portal.store.models import Customer, Device, Reseller, User
from fleetmeter.wire.codec import encode_batch
from tests.portal.portal_builders import PASSWORD, Tenant, batch, job, report

VICTIM_SERIAL = "VICTIM-SERIAL-1"
# Routes whose path parameters are not tenant objects (none yet); and routes that are not
# tenant-scoped by design (a collector's or device's own endpoints authenticate differently).
_NOT_TENANT_ROUTES = {"/static"}


def _victim_ids(
    client: TestClient, victim: Tenant, factory: sessionmaker[Session]
) -> dict[str, str]:
    answer = client.post(
        "/api/v1/ingest/batches",
        content=encode_batch(
            batch(report(VICTIM_SERIAL, jobs=[job(1, name="victim job")])), "zstd"
        ),
        headers={
            "Authorization": f"Bearer {victim.token}",
            "Content-Type": "application/json",
            "Content-Encoding": "zstd",
        },
    )
    assert answer.status_code == 200
    with factory() as session:
        device = session.scalar(select(Device).where(Device.serial_number == VICTIM_SERIAL))
        reseller = session.get(Reseller, victim.reseller_id)
        customer = session.get(Customer, victim.customer_id)
        user = session.scalar(select(User).where(User.email == victim.email))
        assert device and reseller and customer and user
        box = devices_direct.SecretBox(client.app.state.settings.resolve_secrets_key())  # type: ignore[attr-defined]
        credential = devices_direct.add_device(
            session, box=box, reseller=reseller, customer=customer, serial_number="VICTIM-D"
        )
        token = access.create_api_token(session, user=user, name="victim token", scope="read")
        # Billing (issue 7): a contract with the device on it, and a statement.
        contract = contracts.create_contract(
            session,
            reseller_id=reseller.id,
            customer_id=customer.id,
            plan_text='name = "Victim plan"\ncurrency = "EUR"\n',
        )
        contracts.add_device(
            session, reseller_id=reseller.id, contract_id=contract.id, device_id=device.id
        )
        statement = statements.generate_statement(
            session, reseller_id=reseller.id, contract_id=contract.id, period=contract.start_date
        )
        session.commit()
        job_id = session.scalar(select(Device.id).where(Device.id == device.id))
    jobs = client.get(f"/api/v1/devices/{device.id}/jobs", auth=(victim.email, PASSWORD)).json()[
        "items"
    ]
    return {
        "device_id": str(device.id),
        "collector_id": str(victim.collector_id),
        "customer_id": str(victim.customer_id),
        "key_id": credential.key_id,
        "token_id": str(token.token_id),
        "job_id": str(jobs[0].get("id", job_id)),
        "contract_id": str(contract.id),
        "statement_id": str(statement.id),
    }


def _flat(routes: list[Any]) -> list[Any]:
    """The app's routes; included routers (FastAPI keeps them as one entry) opened up. The
    routers here are included without an extra prefix: their routes carry full paths."""
    out: list[Any] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        out.extend(_flat(inner.routes) if inner is not None else [route])
    return out


def _routes(client: TestClient) -> list[tuple[str, str]]:
    out = []
    for route in _flat(client.app.routes):  # type: ignore[attr-defined]
        path = getattr(route, "path", "")
        if "{" not in path or any(path.startswith(p) for p in _NOT_TENANT_ROUTES):
            continue
        methods = route.methods if isinstance(route, APIRoute) else getattr(route, "methods", None)
        for method in sorted(methods or ()):
            if method != "HEAD":
                out.append((method, path))
    return out


def _csrf(client: TestClient) -> str:
    page = client.get("/collectors")
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, page.text[:500]
    return match.group(1)


@pytest.mark.parametrize("as_browser", [False, True], ids=["api", "browser"])
def test_every_route_refuses_another_tenants_ids(
    client: TestClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session_factory: sessionmaker[Session],
    as_browser: bool,
) -> None:
    victim = _victim_ids(client, tenant, session_factory)
    attacker_auth: Any = (other_tenant.email, PASSWORD)
    csrf = None
    if as_browser:
        login = client.post(
            "/api/v1/session", json={"email": other_tenant.email, "password": PASSWORD}
        )
        assert login.status_code == 200
        attacker_auth = None
        csrf = _csrf(client)
    routes = _routes(client)
    assert len(routes) >= 8, routes  # the sweep must actually sweep
    checked = 0
    for method, path in routes:
        params = re.findall(r"{(\w+)(?::\w+)?}", path)
        unknown = [p for p in params if p not in victim]
        assert not unknown, f"{method} {path}: add the victim's {unknown} to _victim_ids"
        url = path
        for name in params:
            url = re.sub(r"{" + name + r"(?::\w+)?}", victim[name], url)
        kwargs: dict[str, Any] = {"auth": attacker_auth} if attacker_auth else {}
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            if url.startswith("/api/"):
                kwargs["json"] = {"settings": {}, "overlap_hours": 1}
            else:
                kwargs["data"] = {"csrf": csrf or "", "usage": "60", "expected_version": "0"}
        answer = client.request(method, url, follow_redirects=False, **kwargs)
        if not as_browser and not url.startswith("/api/"):
            # Pages need a browser session: without one they send to the login page.
            assert answer.status_code in (303, 403), f"{method} {url}: {answer.status_code}"
            checked += 1
            continue
        assert answer.status_code == 404, (
            f"{method} {url}: {answer.status_code} {answer.text[:300]}"
        )
        # Echoing the id the caller sent is no leak; the victim's data would be.
        for secret in (VICTIM_SERIAL, "victim job", "VICTIM-D", "victim token"):
            assert secret not in answer.text, f"{method} {url} leaks {secret!r}"
        checked += 1
    assert checked == len(routes)
