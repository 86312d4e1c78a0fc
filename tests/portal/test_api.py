"""The HTTP API through the real app, real codec and a real database."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import zstandard
from fastapi.testclient import TestClient

from fleetmeter import wire
from fleetmeter.wire.codec import encode_batch
from tests.portal.portal_builders import PASSWORD, T0, Tenant, batch, job, report

INGEST = "/api/v1/ingest/batches"


def _post(
    client: TestClient,
    body: bytes,
    *,
    token: str | None,
    encoding: str = "zstd",
    content_type: str = "application/json",
) -> tuple[int, dict[str, object], dict[str, str]]:
    headers = {"Content-Type": content_type, "Content-Encoding": encoding}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    response = client.post(INGEST, content=body, headers=headers)
    return response.status_code, response.json(), dict(response.headers)


def _basic(email: str, password: str = PASSWORD) -> dict[str, str]:
    raw = base64.b64encode(f"{email}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def _assert_problem(
    status: int, body: dict[str, object], headers: dict[str, str], want: int
) -> None:
    assert status == want, body
    assert headers["content-type"].startswith("application/problem+json")
    assert body["status"] == want and body["title"] and body["detail"]


# --------------------------------------------------------------------------- ingest


@pytest.mark.parametrize("encoding", ["zstd", "gzip", "identity"])
def test_ingest_stores_and_answers_receipt(
    client: TestClient, tenant: Tenant, encoding: str
) -> None:
    b = batch(report(jobs=[job(1), job(2)]))
    status, body, _ = _post(
        client, encode_batch(b, encoding), token=tenant.token, encoding=encoding
    )
    assert status == 200, body
    receipt = wire.BatchReceipt.model_validate(body)
    assert (receipt.batch_id, receipt.status, receipt.jobs_stored) == (b.batch_id, "stored", 2)

    status, body, _ = _post(
        client, encode_batch(b, encoding), token=tenant.token, encoding=encoding
    )
    assert (status, body["status"], body["jobs_stored"]) == (200, "duplicate", 0)


def test_ingest_401_without_or_with_bad_token(client: TestClient, tenant: Tenant) -> None:
    body = encode_batch(batch(report()))
    for token in (None, "fmc_not-a-real-token", "garbage"):
        status, problem, headers = _post(client, body, token=token)
        _assert_problem(status, problem, headers, 401)
        assert headers["www-authenticate"].startswith("Bearer")


def test_ingest_415_bad_type_or_encoding(client: TestClient, tenant: Tenant) -> None:
    body = encode_batch(batch(report()))
    _assert_problem(*_post(client, body, token=tenant.token, content_type="text/plain"), 415)
    _assert_problem(*_post(client, body, token=tenant.token, encoding="br"), 415)


def test_ingest_413_too_large_before_decompressing(client: TestClient, tenant: Tenant) -> None:
    body = b"\0" * (110 * 1024)  # not even valid zstd: it must be refused on size alone
    _assert_problem(*_post(client, body, token=tenant.token), 413)


def test_ingest_413_chunked_body_without_length(client: TestClient, tenant: Tenant) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(30):
            yield b"x" * 8192

    response = client.post(
        INGEST,
        content=chunks(),
        headers={
            "Authorization": f"Bearer {tenant.token}",
            "Content-Type": "application/json",
            "Content-Encoding": "zstd",
        },
    )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("encoding", ["zstd", "gzip"])
def test_ingest_refuses_compression_bomb(client: TestClient, tenant: Tenant, encoding: str) -> None:
    # 64 MB of spaces compresses to a few KB: under the body cap, far over the 16 MB cap.
    payload = b" " * (64 * 1024 * 1024)
    if encoding == "zstd":
        body = zstandard.ZstdCompressor(level=19).compress(payload)
    else:
        body = gzip.compress(payload, compresslevel=9)
    assert len(body) < 100 * 1024
    _assert_problem(*_post(client, body, token=tenant.token, encoding=encoding), 413)


def test_ingest_400_corrupt_compressed_body(client: TestClient, tenant: Tenant) -> None:
    _assert_problem(*_post(client, b"definitely not zstd", token=tenant.token), 400)


def test_ingest_422_names_the_offending_field(client: TestClient, tenant: Tenant) -> None:
    doc = batch(report()).model_dump(mode="json")
    doc["reports"][0]["device"]["serial_number"] = ""
    body = zstandard.ZstdCompressor().compress(json.dumps(doc).encode())
    status, problem, headers = _post(client, body, token=tenant.token)
    _assert_problem(status, problem, headers, 422)
    fields = [e["field"] for e in problem["errors"]]  # type: ignore[attr-defined]
    assert "reports.0.device.serial_number" in fields

    status, problem, headers = _post(
        client, zstandard.ZstdCompressor().compress(b"{not json"), token=tenant.token
    )
    _assert_problem(status, problem, headers, 422)


# --------------------------------------------------------------------------- read API


@pytest.fixture
def ingested(client: TestClient, tenant: Tenant) -> wire.Batch:
    later = T0 + timedelta(hours=3)
    b = batch(
        report(jobs=[job(1), job(2)]),
        report(at=later, jobs=[job(3)], impressions=130),
        report(serial="OTHER-1", jobs=[job(1)]),
    )
    status, body, _ = _post(client, encode_batch(b), token=tenant.token)
    assert status == 200, body
    return b


def test_read_api_needs_authentication(client: TestClient, ingested: wire.Batch) -> None:
    response = client.get("/api/v1/devices")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (
        client.get("/api/v1/devices", headers=_basic("admin@acme.example", "wrong")).status_code
        == 401
    )


def test_session_login_then_devices_jobs_counters(
    client: TestClient, tenant: Tenant, ingested: wire.Batch
) -> None:
    login = client.post("/api/v1/session", json={"email": tenant.email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    assert "httponly" in login.headers["set-cookie"].lower()

    devices = client.get("/api/v1/devices").json()
    assert [d["serial_number"] for d in devices["items"]] == ["OTHER-1", "SG12345678"]
    assert devices["next_offset"] is None
    device = next(d for d in devices["items"] if d["serial_number"] == "SG12345678")
    assert device["engine_state"] == "idle" and device["model"] == "DesignJet T830"

    one = client.get(f"/api/v1/devices/{device['id']}").json()
    assert one["id"] == device["id"]

    expected = {str(j.job_uuid) for r in ingested.reports[:2] for j in r.jobs}
    page1 = client.get(f"/api/v1/devices/{device['id']}/jobs", params={"limit": 2}).json()
    assert len(page1["items"]) == 2 and page1["next_offset"] == 2
    page2 = client.get(
        f"/api/v1/devices/{device['id']}/jobs", params={"limit": 2, "offset": 2}
    ).json()
    assert page2["next_offset"] is None
    assert {j["job_uuid"] for j in page1["items"] + page2["items"]} == expected
    assert page1["items"][0]["sequence_number"] == 3  # newest first

    counters = client.get(f"/api/v1/devices/{device['id']}/counters").json()
    assert counters["meters"]["impressions"] == 130  # the latest of two readings
    assert counters["meters"] == report(impressions=130).usage.meters()  # type: ignore[union-attr]

    since = (T0 + timedelta(minutes=2)).isoformat()
    recent = client.get("/api/v1/jobs", params={"since": since}).json()
    assert sorted(j["sequence_number"] for j in recent["items"]) == [2, 3]
    by_device = client.get("/api/v1/jobs", params={"device_id": device["id"]}).json()
    assert len(by_device["items"]) == 3

    assert client.delete("/api/v1/session").status_code == 204
    assert client.get("/api/v1/devices").status_code == 401


def test_http_basic_works_for_scripts(
    client: TestClient, tenant: Tenant, ingested: wire.Batch
) -> None:
    response = client.get("/api/v1/devices", headers=_basic(tenant.email))
    assert response.status_code == 200 and len(response.json()["items"]) == 2


def test_other_reseller_gets_404_for_a_device_id(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, ingested: wire.Batch
) -> None:
    theirs = client.get("/api/v1/devices", headers=_basic(tenant.email)).json()["items"][0]["id"]
    spy = _basic(other_tenant.email)
    assert client.get("/api/v1/devices", headers=spy).json()["items"] == []
    for path in ("", "/jobs", "/counters"):
        response = client.get(f"/api/v1/devices/{theirs}{path}", headers=spy)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/problem+json")
    assert (
        client.get("/api/v1/jobs", params={"device_id": theirs}, headers=spy).json()["items"] == []
    )
    # Unknown ids answer exactly the same way.
    assert client.get(f"/api/v1/devices/{uuid.uuid4()}", headers=spy).status_code == 404


def test_bad_query_parameters_are_422_problems(client: TestClient, tenant: Tenant) -> None:
    response = client.get("/api/v1/jobs", params={"limit": 0}, headers=_basic(tenant.email))
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["field"] == "query.limit"
    naive = client.get(
        "/api/v1/jobs", params={"since": "2026-01-01T00:00:00"}, headers=_basic(tenant.email)
    )
    assert naive.status_code == 422
    assert client.get("/api/v1/devices/not-a-uuid", headers=_basic(tenant.email)).status_code == 422


def test_healthz_and_security_headers(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert (
        client.get("/no/such/page").headers["content-type"].startswith("application/problem+json")
    )


def test_oversized_login_body_refused(client: TestClient) -> None:
    response = client.post("/api/v1/session", content=b"{" + b" " * 70_000 + b"}")
    assert response.status_code == 413


def test_chunked_login_body_over_the_limit_is_refused_while_reading(client: TestClient) -> None:
    # No Content-Length (chunked): the limit must hold while the body is read, or anyone
    # could make the portal buffer megabytes before authenticating.
    def chunks() -> Iterator[bytes]:
        yield b'{"email": "a@b.c", "password": "'
        for _ in range(64):
            yield b"x" * 65536
        yield b'"}'

    response = client.post(
        "/api/v1/session", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
