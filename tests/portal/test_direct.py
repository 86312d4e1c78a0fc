"""Direct connection in the portal: provisioning, secrets at rest, signed uploads, rejections.

Real app, real codec, real database (SQLite and PostgreSQL); requests signed with the same
``fleetmeter.signing.httpsig`` the device firmware uses.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from fleetmeter import wire
from fleetmeter.portal.cli import main as portal_main
from fleetmeter.portal.errors import TenancyError
from fleetmeter.portal.services import devices_direct
from fleetmeter.portal.services.devices_direct import NewDeviceSecret, SecretBox
from fleetmeter.portal.settings import PortalSettings
from fleetmeter.portal.store.models import (
    Customer,
    Device,
    DeviceCredential,
    IngestedBatch,
    JobRecord,
    Reseller,
    SeenNonce,
)
from fleetmeter.signing.httpsig import sign_request
from fleetmeter.wire import now_utc
from fleetmeter.wire.codec import encode_batch
from tests.portal.portal_builders import PASSWORD, Tenant, batch, job, report

PATH = "/api/v1/direct/batches"
URL = "http://testserver" + PATH
SERIAL = "SG11112222"
REFUSED = "signature verification failed"


@pytest.fixture
def box(settings: PortalSettings) -> SecretBox:
    # The app resolves the same key from the same data dir.
    return SecretBox(settings.resolve_secrets_key())


def _provision(
    factory: sessionmaker[Session], box: SecretBox, tenant: Tenant, serial: str = SERIAL
) -> NewDeviceSecret:
    with factory() as session:
        reseller = session.get(Reseller, tenant.reseller_id)
        customer = session.get(Customer, tenant.customer_id)
        assert reseller is not None and customer is not None
        new = devices_direct.add_device(
            session, box=box, reseller=reseller, customer=customer, serial_number=serial
        )
        session.commit()
    return new


@pytest.fixture
def device(
    client: TestClient, session_factory: sessionmaker[Session], box: SecretBox, tenant: Tenant
) -> NewDeviceSecret:
    return _provision(session_factory, box, tenant)


def _post(
    client: TestClient,
    b: wire.Batch,
    *,
    key_id: str,
    secret: str,
    created: int | None = None,
    nonce: str | None = None,
    body: bytes | None = None,
    url: str = URL,
) -> tuple[int, dict[str, object], dict[str, str]]:
    signed_body = encode_batch(b)
    headers = {"Content-Type": "application/json", "Content-Encoding": "zstd"}
    headers.update(
        sign_request(
            method="POST",
            url=url,
            body=signed_body,
            key_id=key_id,
            secret=secret,
            created=created,
            nonce=nonce,
        )
    )
    response = client.post(PATH, content=body if body is not None else signed_body, headers=headers)
    return response.status_code, response.json(), dict(response.headers)


def _refused(
    result: tuple[int, dict[str, object], dict[str, str]],
    caplog: pytest.LogCaptureFixture,
    reason: str,
) -> None:
    status, problem, headers = result
    assert status == 401, problem
    assert headers["content-type"].startswith("application/problem+json")
    # Non-revealing: the same detail whatever failed; the reason is only in the log.
    assert problem["detail"] == REFUSED
    assert f"reason={reason}" in caplog.text
    caplog.clear()


# --------------------------------------------------------------------------- provisioning


def test_secret_is_encrypted_at_rest(
    device: NewDeviceSecret, session_factory: sessionmaker[Session], box: SecretBox
) -> None:
    assert device.key_id.startswith("fmk_") and device.secret.startswith("fms_")
    with session_factory() as session:
        row = session.execute(
            text("SELECT * FROM device_credentials WHERE key_id = :k"), {"k": device.key_id}
        ).one()
        stored = session.scalars(select(DeviceCredential)).one()
    # No column of the row holds the secret, in clear or in base64.
    encoded = base64.urlsafe_b64encode(device.secret.encode()).decode()
    for value in row:
        assert device.secret not in str(value) and encoded not in str(value)
    assert box.open(stored.secret_encrypted, key_id=device.key_id) == device.secret
    # The key id is the associated data: the ciphertext does not open under another row.
    with pytest.raises(ValueError, match="does not decrypt"):
        box.open(stored.secret_encrypted, key_id="fmk_other")
    # Nor under another portal's key.
    other = SecretBox(base64.urlsafe_b64decode(base64.urlsafe_b64encode(bytes(range(32)))))
    with pytest.raises(ValueError):
        other.open(stored.secret_encrypted, key_id=device.key_id)


def test_a_device_has_one_active_credential(
    device: NewDeviceSecret,
    session_factory: sessionmaker[Session],
    box: SecretBox,
    tenant: Tenant,
) -> None:
    with pytest.raises(TenancyError, match="already has credential"):
        _provision(session_factory, box, tenant)
    with session_factory() as session:
        devices_direct.revoke(session, key_id=device.key_id)
        session.commit()
    again = _provision(session_factory, box, tenant)
    assert again.key_id != device.key_id


# --------------------------------------------------------------------------- uploads


def test_signed_upload_lands_in_the_resellers_tenant(
    client: TestClient,
    device: NewDeviceSecret,
    session_factory: sessionmaker[Session],
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    b = batch(report(SERIAL, jobs=[job(1), job(2)]))
    status, body, _ = _post(client, b, key_id=device.key_id, secret=device.secret)
    assert status == 200, body
    assert (body["status"], body["jobs_stored"]) == ("stored", 2)

    with session_factory() as session:
        stored = session.scalars(select(Device)).one()
        assert (stored.reseller_id, stored.customer_id) == (tenant.reseller_id, tenant.customer_id)
        assert {j.reseller_id for j in session.scalars(select(JobRecord))} == {tenant.reseller_id}
        ingested = session.scalars(select(IngestedBatch)).one()
        assert ingested.collector_id is None
        credential = session.scalars(select(DeviceCredential)).one()
        assert ingested.device_credential_id == credential.id
        assert credential.last_seen_at is not None

    # The other reseller's admin sees nothing of it.
    auth = (other_tenant.email, PASSWORD)
    assert client.get("/api/v1/devices", auth=auth).json()["items"] == []
    mine = client.get("/api/v1/devices", auth=(tenant.email, PASSWORD)).json()["items"]
    assert [d["serial_number"] for d in mine] == [SERIAL]


def test_resent_batch_is_a_duplicate(client: TestClient, device: NewDeviceSecret) -> None:
    b = batch(report(SERIAL, jobs=[job(1)]))
    assert _post(client, b, key_id=device.key_id, secret=device.secret)[1]["status"] == "stored"
    # A retry is signed afresh (new nonce) and carries the same batch id.
    status, body, _ = _post(client, b, key_id=device.key_id, secret=device.secret)
    assert (status, body["status"], body["jobs_stored"]) == (200, "duplicate", 0)


def test_reports_about_another_device_are_forbidden(
    client: TestClient, device: NewDeviceSecret, session_factory: sessionmaker[Session]
) -> None:
    b = batch(report(SERIAL), report("SG99999999"))
    status, problem, headers = _post(client, b, key_id=device.key_id, secret=device.secret)
    assert status == 403 and headers["content-type"].startswith("application/problem+json")
    assert "SG99999999" in str(problem["detail"])
    with session_factory() as session:
        assert session.scalars(select(Device)).all() == []


# --------------------------------------------------------------------------- rejections


def test_unknown_key_id_is_refused(
    client: TestClient, device: NewDeviceSecret, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "fleetmeter.portal.direct")
    result = _post(client, batch(report(SERIAL)), key_id="fmk_unknown", secret=device.secret)
    _refused(result, caplog, "unknown_key")


def test_bad_signature_is_refused(
    client: TestClient, device: NewDeviceSecret, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "fleetmeter.portal.direct")
    result = _post(client, batch(report(SERIAL)), key_id=device.key_id, secret="fms_wrong")
    _refused(result, caplog, "bad_signature")


def test_signature_for_another_host_is_refused(
    client: TestClient, device: NewDeviceSecret, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "fleetmeter.portal.direct")
    result = _post(
        client,
        batch(report(SERIAL)),
        key_id=device.key_id,
        secret=device.secret,
        url="https://staging.example" + PATH,
    )
    _refused(result, caplog, "bad_signature")


def test_tampered_body_is_refused_before_decompression(
    client: TestClient,
    device: NewDeviceSecret,
    caplog: pytest.LogCaptureFixture,
    session_factory: sessionmaker[Session],
) -> None:
    caplog.set_level(logging.WARNING, "fleetmeter.portal.direct")
    genuine = batch(report(SERIAL, jobs=[job(1)]))
    forged = encode_batch(batch(report(SERIAL, jobs=[job(1), job(2), job(3)])))
    result = _post(client, genuine, key_id=device.key_id, secret=device.secret, body=forged)
    _refused(result, caplog, "digest_mismatch")
    # Not even valid compressed data: refused on the digest, never decompressed (no 400).
    result = _post(client, genuine, key_id=device.key_id, secret=device.secret, body=b"\x00junk")
    _refused(result, caplog, "digest_mismatch")
    with session_factory() as session:
        assert session.scalars(select(JobRecord)).all() == []


@pytest.mark.parametrize("offset", [-301, 301, -3600])
def test_created_outside_the_window_is_refused(
    client: TestClient, device: NewDeviceSecret, caplog: pytest.LogCaptureFixture, offset: int
) -> None:
    caplog.set_level(logging.WARNING, "fleetmeter.portal.direct")
    created = int(time.time()) + offset
    result = _post(
        client, batch(report(SERIAL)), key_id=device.key_id, secret=device.secret, created=created
    )
    _refused(result, caplog, "created_out_of_window")


def test_replayed_request_is_refused(
    client: TestClient,
    device: NewDeviceSecret,
    caplog: pytest.LogCaptureFixture,
    session_factory: sessionmaker[Session],
) -> None:
    caplog.set_level(logging.WARNING, "fleetmeter.portal.direct")
    b = batch(report(SERIAL, jobs=[job(1)]))
    body = encode_batch(b)
    headers = {"Content-Type": "application/json", "Content-Encoding": "zstd"}
    headers.update(
        sign_request(method="POST", url=URL, body=body, key_id=device.key_id, secret=device.secret)
    )
    first = client.post(PATH, content=body, headers=headers)
    assert first.status_code == 200
    # The identical request again (captured and re-sent by an attacker): same nonce.
    again = client.post(PATH, content=body, headers=headers)
    _refused((again.status_code, again.json(), dict(again.headers)), caplog, "replayed")
    with session_factory() as session:
        assert len(session.scalars(select(SeenNonce)).all()) == 1


def test_expired_nonces_are_purged(
    client: TestClient, device: NewDeviceSecret, session_factory: sessionmaker[Session]
) -> None:
    def upload() -> int:
        return _post(client, batch(report(SERIAL)), key_id=device.key_id, secret=device.secret)[0]

    assert upload() == 200
    with session_factory() as session:
        session.execute(update(SeenNonce).values(expires_at=now_utc() - timedelta(seconds=1)))
        session.commit()
    assert upload() == 200
    with session_factory() as session:
        assert len(session.scalars(select(SeenNonce)).all()) == 1  # the old one went


def test_revoked_device_is_refused(
    client: TestClient,
    device: NewDeviceSecret,
    caplog: pytest.LogCaptureFixture,
    session_factory: sessionmaker[Session],
) -> None:
    caplog.set_level(logging.WARNING, "fleetmeter.portal.direct")
    with session_factory() as session:
        devices_direct.revoke(session, key_id=device.key_id)
        session.commit()
    result = _post(client, batch(report(SERIAL)), key_id=device.key_id, secret=device.secret)
    _refused(result, caplog, "revoked")


def test_unsigned_request_is_refused(
    client: TestClient, device: NewDeviceSecret, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "fleetmeter.portal.direct")
    response = client.post(
        PATH,
        content=encode_batch(batch(report(SERIAL))),
        headers={"Content-Type": "application/json", "Content-Encoding": "zstd"},
    )
    _refused((response.status_code, response.json(), dict(response.headers)), caplog, "missing")
    assert "fleetmeter-direct" in response.headers["accept-signature"]


# --------------------------------------------------------------------------- rotation


def test_rotation_keeps_the_old_secret_for_the_overlap_only(
    client: TestClient,
    device: NewDeviceSecret,
    box: SecretBox,
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "fleetmeter.portal.direct")
    with session_factory() as session:
        rotated = devices_direct.rotate_secret(
            session, box=box, key_id=device.key_id, overlap=timedelta(hours=1)
        )
        session.commit()
    assert rotated.key_id == device.key_id and rotated.secret != device.secret
    assert rotated.previous_valid_until is not None

    for secret in (device.secret, rotated.secret):  # both work during the overlap
        status, body, _ = _post(client, batch(report(SERIAL)), key_id=device.key_id, secret=secret)
        assert status == 200, body

    with session_factory() as session:  # the overlap ends
        session.execute(
            update(DeviceCredential).values(previous_valid_until=now_utc() - timedelta(seconds=1))
        )
        session.commit()
    old = _post(client, batch(report(SERIAL)), key_id=device.key_id, secret=device.secret)
    _refused(old, caplog, "bad_signature")
    new = _post(client, batch(report(SERIAL)), key_id=device.key_id, secret=rotated.secret)
    assert new[0] == 200


def test_rotation_without_overlap_ends_the_old_secret_at_once(
    client: TestClient,
    device: NewDeviceSecret,
    box: SecretBox,
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "fleetmeter.portal.direct")
    with session_factory() as session:
        devices_direct.rotate_secret(session, box=box, key_id=device.key_id, overlap=timedelta(0))
        session.commit()
    old = _post(client, batch(report(SERIAL)), key_id=device.key_id, secret=device.secret)
    _refused(old, caplog, "bad_signature")


# --------------------------------------------------------------------------- provisioning API


def test_provisioning_api_and_tenant_scoping(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, session_factory: sessionmaker[Session]
) -> None:
    mine, theirs = (tenant.email, PASSWORD), (other_tenant.email, PASSWORD)
    base = "/api/v1/device-credentials"
    created = client.post(
        base,
        json={"customer_id": str(tenant.customer_id), "serial_number": SERIAL},
        auth=mine,
    )
    assert created.status_code == 201, created.text
    doc = created.json()
    key_id, secret = doc["key_id"], doc["secret"]
    assert doc["vendor"] == "HP" and secret.startswith("fms_")

    # The secret is shown once: the list never carries it.
    listed = client.get(base, auth=mine).json()["items"]
    assert [c["key_id"] for c in listed] == [key_id] and "secret" not in json.dumps(listed)
    assert client.get(base, auth=theirs).json()["items"] == []

    # Another reseller's customer, key ids: 404, exactly like ones that do not exist.
    foreign = client.post(
        base, json={"customer_id": str(other_tenant.customer_id), "serial_number": "X1"}, auth=mine
    )
    assert foreign.status_code == 404
    for action in ("rotate", "revoke"):
        assert client.post(f"{base}/{key_id}/{action}", auth=theirs).status_code == 404
        assert client.post(f"{base}/fmk_nope/{action}", auth=mine).status_code == 404
    assert client.post(base, json={"customer_id": str(uuid.uuid4())}, auth=mine).status_code == 422
    assert client.post(f"{base}/{key_id}/rotate").status_code == 401  # not logged in

    rotated = client.post(f"{base}/{key_id}/rotate", json={"overlap_hours": 2}, auth=mine)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] not in (secret, None)
    assert rotated.json()["previous_valid_until"] is not None

    revoked = client.post(f"{base}/{key_id}/revoke", auth=mine)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert client.post(f"{base}/{key_id}/rotate", auth=mine).status_code == 409
    with session_factory() as session:
        row = session.scalars(select(DeviceCredential)).one()
        assert row.reseller_id == tenant.reseller_id and row.previous_secret_encrypted is None


# --------------------------------------------------------------------------- CLI


def test_cli_add_rotate_revoke(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], tenant: Tenant
) -> None:
    db = ["--database-url", database_url, "--data-dir", str(tmp_path / "data")]

    def run(*argv: str) -> dict[str, object]:
        code = portal_main(["portal", *argv, *db])
        out, err = capsys.readouterr()
        assert code == 0, err
        doc: dict[str, object] = json.loads(out)
        return doc

    added = run("add-device", "--reseller", "Acme", "--customer", "Acme customer", "--serial", "S1")
    assert set(added) >= {"device_id", "key_id", "secret"} and added["device_id"] == added["key_id"]
    rotated = run("rotate-device-secret", "--key-id", str(added["key_id"]), "--overlap-hours", "1")
    assert rotated["secret"] != added["secret"] and rotated["previous_valid_until"]
    revoked = run("revoke-device", "--key-id", str(added["key_id"]))
    assert revoked["revoked_at"]

    code = portal_main(["portal", "revoke-device", "--key-id", "fmk_nope", *db])
    assert code == 1 and "no device credential" in capsys.readouterr().err


def test_weak_secrets_key_is_refused() -> None:
    with pytest.raises(ValueError, match="secrets key"):
        PortalSettings(secrets_key="changeme")
    with pytest.raises(ValueError, match="insecure"):
        PortalSettings(secrets_key=base64.urlsafe_b64encode(b"a" * 32).decode())


def test_generated_secrets_key_is_kept(tmp_path: Path) -> None:
    first = PortalSettings(data_dir=tmp_path).resolve_secrets_key()
    assert len(first) == 32
    assert (tmp_path / "secrets-key").stat().st_mode & 0o777 == 0o600
    assert PortalSettings(data_dir=tmp_path).resolve_secrets_key() == first
