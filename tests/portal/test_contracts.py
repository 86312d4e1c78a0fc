"""Contracts: plans validated on the way in, devices joining and leaving by date, the rules
that keep closed statements true, and the API and CLI, scoped to the reseller.

Runs on SQLite and on PostgreSQL (``database_url``).
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from fleetmeter.portal.cli import main as portal_main
from fleetmeter.portal.services import contracts, tenancy
from fleetmeter.portal.services.contracts import (
    ContractConflictError,
    ContractError,
    ContractNotFoundError,
)
from tests.portal.billing_builders import Fleet, device_report, utc
from tests.portal.portal_builders import PASSWORD, Tenant

PLAN = """
name = "Area"
currency = "EUR"
[[components]]
name = "Media"
meter = "media_area"
unit_price = "0.55"
"""

PLAN_JSON = {
    "name": "Area JSON",
    "currency": "EUR",
    "components": [{"name": "Media", "meter": "media_area", "unit_price": 0.55}],
}


@pytest.fixture
def fleet(session_factory: sessionmaker[Session], tenant: Tenant) -> Fleet:
    return Fleet(session_factory, tenant)


def _device_id(fleet: Fleet, serial: str) -> uuid.UUID:
    with fleet.factory() as s:
        return contracts.find_device(
            s, reseller_id=fleet.tenant.reseller_id, serial_number=serial
        ).id


# --------------------------------------------------------------------------- service


def test_plans_are_validated_before_anything_is_stored(fleet: Fleet) -> None:
    with fleet.factory() as s:
        bad = PLAN.replace("unit_price", "unit_pric")
        with pytest.raises(ContractError, match=r"components\[0\]\.unit_pric: unknown key"):
            contracts.create_contract(
                s,
                reseller_id=fleet.tenant.reseller_id,
                customer_id=fleet.tenant.customer_id,
                plan_text=bad,
            )
        with pytest.raises(ContractError, match="not an IANA name"):
            contracts.create_contract(
                s,
                reseller_id=fleet.tenant.reseller_id,
                customer_id=fleet.tenant.customer_id,
                plan_text=PLAN,
                timezone="Europe/Atlantis",
            )
        with pytest.raises(ContractError, match="prices in EUR, not USD"):
            contracts.create_contract(
                s,
                reseller_id=fleet.tenant.reseller_id,
                customer_id=fleet.tenant.customer_id,
                plan_text=PLAN,
                currency="USD",
            )
        with pytest.raises(ContractError, match="not valid JSON"):
            contracts.create_contract(
                s,
                reseller_id=fleet.tenant.reseller_id,
                customer_id=fleet.tenant.customer_id,
                plan_text="{",
                plan_format="json",
            )
        contract = contracts.create_contract(
            s,
            reseller_id=fleet.tenant.reseller_id,
            customer_id=fleet.tenant.customer_id,
            plan_text=contracts.plan_json_text(PLAN_JSON),
            plan_format="json",
            timezone="Europe/Berlin",
            start_date=date(2026, 1, 1),
        )
        # A JSON 0.55 is read back as exactly 0.55, not the float nearest to it.
        plan = contracts.contract_plan(contract)
        assert str(plan.components[0].unit_price) == "0.55"
        assert (contract.currency, contract.billing_period, contract.name) == (
            "EUR",
            "monthly",
            "Area JSON from 2026-01-01",
        )
        with pytest.raises(ContractConflictError, match="in EUR; a plan in USD"):
            contracts.set_plan(
                s,
                reseller_id=fleet.tenant.reseller_id,
                contract_id=contract.id,
                plan_text=PLAN.replace("EUR", "USD"),
            )


def test_device_rules(fleet: Fleet, other_tenant: Tenant) -> None:
    fleet.ingest(device_report("SG1", at=utc(2026, 3, 1)), device_report("SG2", at=utc(2026, 3, 1)))
    first = fleet.contract(PLAN, start=date(2026, 1, 1))
    fleet.place("SG1", on=date(2026, 1, 1))
    second = fleet.contract(PLAN, start=date(2026, 1, 1))
    reseller = fleet.tenant.reseller_id
    sg1 = _device_id(fleet, "SG1")
    with fleet.factory() as s:
        # One contract at a time per device.
        with pytest.raises(ContractConflictError, match=f"on contract {first}"):
            contracts.add_device(
                s,
                reseller_id=reseller,
                contract_id=second,
                device_id=sg1,
                valid_from=date(2026, 2, 1),
            )
        with pytest.raises(ContractConflictError, match="is on this from 2026-01-01"):
            contracts.add_device(
                s,
                reseller_id=reseller,
                contract_id=first,
                device_id=sg1,
                valid_from=date(2026, 2, 1),
            )
        # Not before the contract starts.
        with pytest.raises(ContractError, match="starts on 2026-01-01"):
            contracts.add_device(
                s,
                reseller_id=reseller,
                contract_id=second,
                device_id=_device_id(fleet, "SG2"),
                valid_from=date(2025, 12, 1),
            )
        # Leaving: after joining, and the device must be on it.
        with pytest.raises(ContractError, match="remove it on a later day"):
            contracts.remove_device(
                s, reseller_id=reseller, contract_id=first, device_id=sg1, valid_to=date(2026, 1, 1)
            )
        with pytest.raises(ContractNotFoundError):
            contracts.remove_device(
                s,
                reseller_id=reseller,
                contract_id=first,
                device_id=_device_id(fleet, "SG2"),
                valid_to=date(2026, 2, 1),
            )
    fleet.contract_id = first
    fleet.unplace("SG1", on=date(2026, 3, 10))
    # Back in the same month would be two stretches in one period: refused.
    with fleet.factory() as s, pytest.raises(ContractConflictError, match="from 2026-04-01"):
        contracts.add_device(
            s, reseller_id=reseller, contract_id=first, device_id=sg1, valid_from=date(2026, 3, 20)
        )
    # On the other contract from the day it left: fine.
    fleet.contract_id = second
    fleet.place("SG1", on=date(2026, 3, 10))
    # Another reseller's device, or one of another customer, cannot be placed.
    with fleet.factory() as s, pytest.raises(ContractNotFoundError):
        contracts.add_device(
            s, reseller_id=other_tenant.reseller_id, contract_id=first, device_id=sg1
        )


def test_closed_periods_cannot_change_through_device_dates(fleet: Fleet) -> None:
    fleet.ingest(device_report("SG1", at=utc(2026, 3, 1)), device_report("SG2", at=utc(2026, 3, 1)))
    fleet.contract(PLAN)
    fleet.place("SG1")
    fleet.close("2026-03")
    with pytest.raises(ContractConflictError, match=r"2026-03-01\.\.2026-04-01 is closed"):
        fleet.unplace("SG1", on=date(2026, 3, 20))
    with pytest.raises(ContractConflictError, match="use a day from 2026-04-01 on"):
        fleet.place("SG2", on=date(2026, 3, 15))
    fleet.unplace("SG1", on=date(2026, 4, 1))
    fleet.place("SG2", on=date(2026, 4, 1))


def test_a_device_of_another_customer_is_refused(fleet: Fleet) -> None:
    fleet.ingest(device_report("SG1", at=utc(2026, 3, 1)))
    with fleet.factory() as s:
        reseller = tenancy.find_reseller(s, name="Acme")
        other = tenancy.get_or_create_customer(s, reseller=reseller, name="Initech")
        s.commit()
        contract = contracts.create_contract(
            s,
            reseller_id=reseller.id,
            customer_id=other.id,
            plan_text=PLAN,
            start_date=date(2026, 1, 1),
        )
        with pytest.raises(ContractConflictError, match="another customer"):
            contracts.add_device(
                s,
                reseller_id=reseller.id,
                contract_id=contract.id,
                device_id=_device_id(fleet, "SG1"),
            )


# --------------------------------------------------------------------------- API


def _auth(email: str, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{email}:{password}".encode()).decode()}


def test_contracts_api_round_trip(fleet: Fleet, client: TestClient) -> None:
    fleet.ingest(device_report("SG1", at=utc(2026, 3, 1), address="10.1.1.1"))
    me = _auth(fleet.tenant.email)
    r = client.post(
        "/api/v1/contracts",
        json={
            "customer_id": str(fleet.tenant.customer_id),
            "plan_toml": PLAN,
            "timezone": "Europe/Berlin",
            "start_date": "2026-01-01",
            "name": "Plot room",
        },
        headers=me,
    )
    assert r.status_code == 201, r.text
    contract = r.json()
    assert (
        contract["name"],
        contract["timezone"],
        contract["currency"],
        contract["plan_format"],
    ) == (
        "Plot room",
        "Europe/Berlin",
        "EUR",
        "toml",
    )
    cid = contract["id"]
    device_id = str(_device_id(fleet, "SG1"))
    r = client.post(
        f"/api/v1/contracts/{cid}/devices",
        json={"device_id": device_id, "valid_from": "2026-02-01"},
        headers=me,
    )
    assert r.status_code == 201, r.text
    assert (r.json()["placement"], r.json()["valid_to"]) == ("10.1.1.1", None)
    r = client.post(
        f"/api/v1/contracts/{cid}/devices/{device_id}/remove",
        json={"valid_to": "2026-05-01"},
        headers=me,
    )
    assert r.status_code == 200 and r.json()["valid_to"] == "2026-05-01"
    r = client.put(f"/api/v1/contracts/{cid}/plan", json={"plan": PLAN_JSON}, headers=me)
    assert r.status_code == 200 and r.json()["plan_name"] == "Area JSON"
    got = client.get(f"/api/v1/contracts/{cid}", headers=me).json()
    assert got["plan_format"] == "json" and len(got["devices"]) == 1
    assert [c["id"] for c in client.get("/api/v1/contracts", headers=me).json()["items"]] == [cid]

    bad = client.post(
        "/api/v1/contracts",
        json={"customer_id": str(fleet.tenant.customer_id), "plan_toml": "name = 1"},
        headers=me,
    )
    assert bad.status_code == 422
    assert bad.json()["detail"] == "plan: name: Input should be a valid string (and 1 more)"
    both = client.post(
        "/api/v1/contracts",
        json={"customer_id": str(fleet.tenant.customer_id), "plan_toml": PLAN, "plan": PLAN_JSON},
        headers=me,
    )
    assert both.status_code == 422


def test_contracts_api_is_scoped_to_the_reseller(
    fleet: Fleet, other_tenant: Tenant, client: TestClient
) -> None:
    fleet.ingest(device_report("SG1", at=utc(2026, 3, 1)))
    cid = fleet.contract(PLAN)
    fleet.place("SG1")
    device_id = _device_id(fleet, "SG1")
    them = _auth(other_tenant.email)
    for method, path, body in [
        ("GET", f"/api/v1/contracts/{cid}", None),
        ("PUT", f"/api/v1/contracts/{cid}/plan", {"plan_toml": PLAN}),
        ("POST", f"/api/v1/contracts/{cid}/devices", {"device_id": str(device_id)}),
        ("POST", f"/api/v1/contracts/{cid}/devices/{device_id}/remove", {"valid_to": "2026-05-01"}),
        # Their own customer id with our device, our customer id with their session.
        (
            "POST",
            "/api/v1/contracts",
            {"customer_id": str(fleet.tenant.customer_id), "plan_toml": PLAN},
        ),
    ]:
        r = client.request(method, path, json=body, headers=them)
        assert r.status_code == 404, (path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert client.get("/api/v1/contracts", headers=them).json() == {"items": []}
    # Their contract cannot take our device either.
    r = client.post(
        "/api/v1/contracts",
        json={
            "customer_id": str(other_tenant.customer_id),
            "plan_toml": PLAN,
            "start_date": "2026-01-01",
        },
        headers=them,
    )
    assert r.status_code == 201
    r = client.post(
        f"/api/v1/contracts/{r.json()['id']}/devices",
        json={"device_id": str(device_id)},
        headers=them,
    )
    assert r.status_code == 404
    # Unchanged for us.
    with fleet.factory() as s:
        (placed,) = contracts.devices_of(s, reseller_id=fleet.tenant.reseller_id, contract_id=cid)
        assert placed.slot.valid_to is None


def test_only_admins_and_billing_users_change_contracts(fleet: Fleet, client: TestClient) -> None:
    cid = fleet.contract(PLAN)
    with fleet.factory() as s:
        reseller = tenancy.find_reseller(s, name="Acme")
        service = tenancy.add_user(
            s, reseller=reseller, email="tech@acme.example", password=PASSWORD
        )
        service.role = "service"
        billing = tenancy.add_user(
            s, reseller=reseller, email="bill@acme.example", password=PASSWORD
        )
        billing.role = "billing"
        s.commit()
    tech, clerk = _auth("tech@acme.example"), _auth("bill@acme.example")
    assert client.get(f"/api/v1/contracts/{cid}", headers=tech).status_code == 200
    r = client.put(f"/api/v1/contracts/{cid}/plan", json={"plan_toml": PLAN}, headers=tech)
    assert r.status_code == 403
    r = client.post(f"/api/v1/contracts/{cid}/statements", json={"period": "2026-03"}, headers=tech)
    assert r.status_code == 403
    r = client.post(
        f"/api/v1/contracts/{cid}/statements", json={"period": "2026-03"}, headers=clerk
    )
    assert r.status_code == 200, r.text


# --------------------------------------------------------------------------- CLI


def test_contract_commands(
    fleet: Fleet, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.ingest(device_report("SG1", at=utc(2026, 3, 1)))
    db = ["--database-url", database_url, "--data-dir", str(tmp_path)]
    plan = tmp_path / "area.toml"
    plan.write_text(PLAN)

    def run(*argv: str) -> tuple[int, str, str]:
        code = portal_main(["portal", *argv, *db])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = run(
        "add-contract",
        "--reseller",
        "Acme",
        "--customer",
        "Acme customer",
        "--plan",
        str(plan),
        "--timezone",
        "Europe/Berlin",
        "--start",
        "2026-01-01",
    )
    assert code == 0, err
    cid = json.loads(out)["id"]
    code, out, err = run(
        "contract-add-device", "--contract", cid, "--serial", "SG1", "--from", "2026-02-01"
    )
    assert code == 0, err
    assert json.loads(out)["valid_from"] == "2026-02-01"
    code, out, err = run(
        "contract-remove-device", "--contract", cid, "--serial", "SG1", "--on", "2026-06-01"
    )
    assert code == 0 and json.loads(out)["valid_to"] == "2026-06-01"
    code, out, err = run("list-contracts", "--reseller", "Acme")
    assert code == 0 and [c["id"] for c in json.loads(out)["items"]] == [cid]
    json_plan = tmp_path / "area.json"
    json_plan.write_text(json.dumps(PLAN_JSON))
    code, out, err = run("set-contract-plan", "--contract", cid, "--plan", str(json_plan))
    assert code == 0 and json.loads(out)["plan_name"] == "Area JSON"

    # Errors: one line on stderr, no traceback.
    bad = tmp_path / "bad.toml"
    bad.write_text(PLAN.replace("unit_price", "unit_pric"))
    for argv, message in [
        (
            (
                "add-contract",
                "--reseller",
                "Acme",
                "--customer",
                "Acme customer",
                "--plan",
                str(bad),
            ),
            f"{bad}: components[0].unit_pric: unknown key",
        ),
        (
            ("add-contract", "--reseller", "Acme", "--customer", "Nobody", "--plan", str(plan)),
            "no customer named 'Nobody'",
        ),
        (
            (
                "add-contract",
                "--reseller",
                "Acme",
                "--customer",
                "Acme customer",
                "--plan",
                str(tmp_path / "x.toml"),
            ),
            "cannot read",
        ),
        (("contract-add-device", "--contract", cid, "--serial", "NOPE"), "no device with serial"),
        (
            ("contract-add-device", "--contract", str(uuid.uuid4()), "--serial", "SG1"),
            "no contract",
        ),
    ]:
        code, out, err = run(*argv)
        assert code == 1 and message in err and err.count("\n") == 1, err
        assert "Traceback" not in err


def test_a_customers_user_sees_only_its_customers_contracts(
    fleet: Fleet, client: TestClient
) -> None:
    fleet.ingest(device_report("SG1", at=utc(2026, 3, 1)))
    ours = fleet.contract(PLAN)
    fleet.place("SG1")
    march = fleet.generate("2026-03")
    with fleet.factory() as s:
        reseller = tenancy.find_reseller(s, name="Acme")
        other = tenancy.get_or_create_customer(s, reseller=reseller, name="Initech")
        theirs = contracts.create_contract(
            s, reseller_id=reseller.id, customer_id=other.id, plan_text=PLAN
        ).id
        user = tenancy.add_user(
            s, reseller=reseller, email="boss@initech.example", password=PASSWORD
        )
        user.role, user.customer_id = "customer", other.id
        s.commit()
    initech = _auth("boss@initech.example")
    listed = client.get("/api/v1/contracts", headers=initech).json()["items"]
    assert [c["id"] for c in listed] == [str(theirs)]
    assert client.get(f"/api/v1/contracts/{ours}", headers=initech).status_code == 404
    assert client.get(f"/api/v1/contracts/{ours}/statements", headers=initech).status_code == 404
    assert client.get(f"/api/v1/statements/{march.id}", headers=initech).status_code == 404
    assert client.get(f"/api/v1/contracts/{theirs}", headers=initech).status_code == 200
    r = client.post(
        f"/api/v1/contracts/{theirs}/statements", json={"period": "2026-03"}, headers=initech
    )
    assert r.status_code == 403
