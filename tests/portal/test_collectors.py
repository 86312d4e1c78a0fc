"""Collector enrolment and signed remote settings in the portal: real app, real database
(SQLite and PostgreSQL), signatures checked with the same module the collector uses."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from fleetmeter.portal.cli import main as portal_main
from fleetmeter.portal.services import collectors as service
from fleetmeter.portal.settings import PortalSettings
from fleetmeter.portal.store.models import Collector, EnrolmentToken
from fleetmeter.signing.documents import DocumentError, parse_public_key, verify_settings
from fleetmeter.wire import now_utc
from fleetmeter.wire.codec import encode_batch
from tests.portal.portal_builders import PASSWORD, Tenant, batch, report

SETTINGS = {
    "ranges": [{"targets": ["10.0.1.0/24", "plotter-2.example"], "drivers": ["ledm", "ipp"]}],
    "schedule": {"usage_interval_minutes": 60, "health_interval_minutes": 5},
}


def _token(factory: sessionmaker[Session], tenant: Tenant, **kw: Any) -> str:
    with factory() as session:
        new = service.create_enrolment_token(
            session, reseller_id=tenant.reseller_id, customer_id=tenant.customer_id, **kw
        )
        session.commit()
    return new.token


def _enrol(client: TestClient, token: str, customer: str = "Acme customer") -> Any:
    return client.post(
        "/api/v1/enrolment", json={"customer": customer, "token": token, "name": "site PC"}
    )


def test_enrolment_gives_a_working_token_bound_to_the_customer(
    client: TestClient, tenant: Tenant, session_factory: sessionmaker[Session]
) -> None:
    answer = _enrol(client, _token(session_factory, tenant))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["reseller"] == "Acme" and body["customer"] == "Acme customer"
    assert body["config_signing_key"].startswith("ed25519:")
    with session_factory() as session:
        collector = session.get(Collector, uuid.UUID(body["collector_id"]))
        assert collector is not None
        assert (collector.reseller_id, collector.customer_id) == (
            tenant.reseller_id,
            tenant.customer_id,
        )
        assert collector.name == "site PC"
        assert body["token"] not in collector.token_hash  # only the hash is kept
    # The new token uploads into this reseller's tenant.
    upload = client.post(
        "/api/v1/ingest/batches",
        content=encode_batch(batch(report("SGENROL01")), "zstd"),
        headers={
            "Authorization": f"Bearer {body['token']}",
            "Content-Type": "application/json",
            "Content-Encoding": "zstd",
        },
    )
    assert upload.status_code == 200, upload.text
    devices = client.get("/api/v1/devices", auth=(tenant.email, PASSWORD)).json()["items"]
    assert [d["serial_number"] for d in devices] == ["SGENROL01"]


def test_a_token_enrols_once(
    client: TestClient, tenant: Tenant, session_factory: sessionmaker[Session]
) -> None:
    token = _token(session_factory, tenant)
    assert _enrol(client, token).status_code == 201
    again = _enrol(client, token)
    assert again.status_code == 403
    assert "already used" in again.json()["detail"]


def test_racing_enrolments_with_one_token_make_one_collector(
    client: TestClient, tenant: Tenant, session_factory: sessionmaker[Session]
) -> None:
    token = _token(session_factory, tenant)
    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(lambda _: _enrol(client, token).status_code, range(4)))
    assert codes.count(201) == 1, codes
    assert set(codes) <= {201, 403, 500} and 500 not in codes, codes


def test_expired_wrong_customer_and_forged_tokens_are_refused(
    client: TestClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session_factory: sessionmaker[Session],
) -> None:
    expired = _token(session_factory, tenant)
    with session_factory() as session:
        session.execute(update(EnrolmentToken).values(expires_at=now_utc() - timedelta(seconds=1)))
        session.commit()
    assert _enrol(client, expired).status_code == 403
    theirs = _token(session_factory, other_tenant)
    # Another reseller's token named with my customer: one message for every refusal.
    refused = _enrol(client, theirs, customer="Acme customer")
    assert refused.status_code == 403
    assert refused.json()["detail"] == _enrol(client, "fme_forged").json()["detail"]
    assert _enrol(client, "fmc_not-an-enrolment-token").status_code == 403
    assert client.post("/api/v1/enrolment", json={"customer": "x"}).status_code == 422
    with session_factory() as session:
        assert (
            session.scalar(select(EnrolmentToken).where(EnrolmentToken.used_at.is_not(None)))
            is None
        )


def test_enrolment_tokens_api_is_scoped_to_the_reseller(
    client: TestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    mine, theirs = (tenant.email, PASSWORD), (other_tenant.email, PASSWORD)
    url = "/api/v1/enrolment-tokens"
    made = client.post(url, json={"customer_id": str(tenant.customer_id)}, auth=mine)
    assert made.status_code == 201, made.text
    assert made.json()["token"].startswith("fme_")
    foreign = client.post(url, json={"customer_id": str(tenant.customer_id)}, auth=theirs)
    assert foreign.status_code == 404
    assert client.post(url, json={"customer_id": str(tenant.customer_id)}).status_code == 401
    too_long = {"customer_id": str(tenant.customer_id), "valid_hours": 24 * 365}
    assert client.post(url, json=too_long, auth=mine).status_code == 422
    assert _enrol(client, made.json()["token"]).status_code == 201


def _fetch(client: TestClient, token: str, running: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    if running is not None:
        headers[service.CONFIG_VERSION_HEADER] = running
    return client.get("/api/v1/collector/settings", headers=headers)


def test_settings_are_versioned_signed_and_reported(
    client: TestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = (tenant.email, PASSWORD)
    base = f"/api/v1/collectors/{tenant.collector_id}"
    assert _fetch(client, tenant.token).status_code == 204  # nothing set yet
    assert client.get(f"{base}/settings", auth=mine).json()["version"] == 0

    put = client.put(f"{base}/settings", json={"settings": SETTINGS}, auth=mine)
    assert put.status_code == 200, put.text
    assert put.json()["version"] == 1 and put.json()["created_by"] == tenant.email

    fetched = _fetch(client, tenant.token, running="0")
    assert fetched.status_code == 200
    key = parse_public_key(
        _enrolment_key(client)  # the key a collector got at enrolment
    )
    document = verify_settings(fetched.content, key)
    assert document.collector_id == tenant.collector_id and document.version == 1
    assert document.settings.ranges is not None
    assert document.settings.ranges[0].targets == ["10.0.1.0/24", "plotter-2.example"]
    assert document.settings.schedule.usage_interval_minutes == 60

    # A tampered envelope fails verification.
    envelope = json.loads(fetched.content)
    envelope["payload"] = envelope["payload"][:-4] + "AAAA"
    with pytest.raises(DocumentError, match="signature"):
        verify_settings(json.dumps(envelope).encode(), key)

    view = client.get(base, auth=mine).json()
    assert view["running_config_version"] == 0 and view["latest_config_version"] == 1
    assert view["config_pending"] is True
    _fetch(client, tenant.token, running="1")
    view = client.get(base, auth=mine).json()
    assert view["running_config_version"] == 1 and view["config_pending"] is False
    # An ingest request reports the version too; garbage in the header is ignored.
    _fetch(client, tenant.token, running="not-a-number")
    assert client.get(base, auth=mine).json()["running_config_version"] == 1

    # Another reseller sees none of it.
    theirs = (other_tenant.email, PASSWORD)
    assert client.get(base, auth=theirs).status_code == 404
    assert client.get(f"{base}/settings", auth=theirs).status_code == 404
    assert (
        client.put(f"{base}/settings", json={"settings": SETTINGS}, auth=theirs).status_code == 404
    )
    listed = client.get("/api/v1/collectors", auth=theirs).json()["items"]
    assert str(tenant.collector_id) not in {c["id"] for c in listed}
    assert str(tenant.collector_id) in {
        c["id"] for c in client.get("/api/v1/collectors", auth=mine).json()["items"]
    }


def _enrolment_key(client: TestClient) -> str:
    settings: PortalSettings = client.app.state.settings  # type: ignore[attr-defined]
    from fleetmeter.signing.documents import private_key_from_bytes, public_key_text

    return public_key_text(private_key_from_bytes(settings.resolve_config_signing_key()))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schedule": {"usage_interval_minutes": 29}}, "usage_interval_minutes"),
        ({"ranges": [{"targets": ["10.0.0.5/24"]}]}, "targets"),
        ({"ranges": [{"targets": ["10.0.0.0/8"]}]}, "hosts"),
        ({"ranges": [{"targets": ["10.0.0.1"], "community": "public"}]}, "community"),
        ({"ranges": [{"targets": []}]}, "targets"),
        ({"command": "reboot"}, "command"),
    ],
)
def test_bad_settings_are_refused_at_the_edge(
    client: TestClient, tenant: Tenant, change: dict[str, Any], field: str
) -> None:
    answer = client.put(
        f"/api/v1/collectors/{tenant.collector_id}/settings",
        json={"settings": change},
        auth=(tenant.email, PASSWORD),
    )
    assert answer.status_code == 422, answer.text
    assert field in answer.text
    assert _fetch(client, tenant.token).status_code == 204  # nothing was stored


def test_stale_expected_version_is_a_conflict(client: TestClient, tenant: Tenant) -> None:
    mine = (tenant.email, PASSWORD)
    url = f"/api/v1/collectors/{tenant.collector_id}/settings"
    first = client.put(url, json={"settings": SETTINGS, "expected_version": 0}, auth=mine)
    assert first.json()["version"] == 1
    stale = client.put(url, json={"settings": {}, "expected_version": 0}, auth=mine)
    assert stale.status_code == 409
    assert client.get(url, auth=mine).json()["version"] == 1


def test_unknown_collector_token_gets_no_settings(client: TestClient) -> None:
    assert _fetch(client, "fmc_nope").status_code == 401
    assert client.get("/api/v1/collector/settings").status_code == 401


def test_signing_key_is_generated_once_and_kept_private(settings: PortalSettings) -> None:
    first = settings.resolve_config_signing_key()
    assert settings.resolve_config_signing_key() == first
    path = settings.data_dir / "config-signing-key"
    assert path.stat().st_mode & 0o077 == 0


def test_cli_makes_enrolment_tokens(
    database_url: str, tmp_path: Path, tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--database-url", database_url, "--data-dir", str(tmp_path / "d")]
    code = portal_main(
        [
            "portal",
            "create-enrolment-token",
            "--reseller",
            "Acme",
            "--customer",
            "Acme customer",
            *db,
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["token"].startswith("fme_") and out["customer"] == "Acme customer"
    code = portal_main(
        ["portal", "create-enrolment-token", "--reseller", "Acme", "--customer", "Nobody", *db]
    )
    assert code != 0
    assert "Nobody" in capsys.readouterr().err
