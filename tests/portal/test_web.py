"""Server-rendered pages: login with CSRF, the fleet page, escaping of untrusted job names."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from fleetmeter.wire.codec import encode_batch
from tests.portal.portal_builders import PASSWORD, Tenant, batch, job, report

EVIL = "<script>alert(1)</script>"


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF token in the form"
    return match.group(1)


def _login(client: TestClient, email: str, password: str = PASSWORD) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    response = client.post(
        "/login",
        data={"email": email, "password": password, "csrf": _csrf(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/fleet"


def _ingest(client: TestClient, tenant: Tenant) -> None:
    b = batch(report(jobs=[job(1, name=EVIL), job(2)]), report(serial="SECOND-2"))
    response = client.post(
        "/api/v1/ingest/batches",
        content=encode_batch(b),
        headers={
            "Authorization": f"Bearer {tenant.token}",
            "Content-Type": "application/json",
            "Content-Encoding": "zstd",
        },
    )
    assert response.status_code == 200, response.text


def test_pages_redirect_to_login_when_logged_out(client: TestClient) -> None:
    for path in ("/", "/fleet"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/login"


def test_login_needs_the_csrf_token(client: TestClient, tenant: Tenant) -> None:
    client.get("/login")
    response = client.post(
        "/login", data={"email": tenant.email, "password": PASSWORD, "csrf": "forged"}
    )
    assert response.status_code == 403


def test_wrong_password_shows_the_form_again(client: TestClient, tenant: Tenant) -> None:
    page = client.get("/login")
    response = client.post(
        "/login", data={"email": tenant.email, "password": "nope-nope", "csrf": _csrf(page.text)}
    )
    assert response.status_code == 401 and "Wrong email or password" in response.text


def test_fleet_page_lists_devices_with_supplies_and_usage(
    client: TestClient, tenant: Tenant
) -> None:
    _ingest(client, tenant)
    _login(client, tenant.email)
    page = client.get("/fleet")
    assert page.status_code == 200
    html = page.text
    assert html.count("data-device=") == 2
    assert "SG12345678" in html and "SECOND-2" in html and "DesignJet T830" in html
    assert 'data-supply="cartridge"' in html and '<meter min="0" max="100"' in html
    assert 'value="71"' in html and 'data-supply="printhead"' in html
    assert '<meta http-equiv="refresh" content="10">' in html
    assert "192.0.2.10" in html
    # 25 000 µL → 25.0 mL; 3 000 000 mm² → 3.00 m²
    assert ">25.0<" in html and ">3.00<" in html
    assert "<script" not in html.lower()
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_device_page_escapes_job_names(client: TestClient, tenant: Tenant) -> None:
    _ingest(client, tenant)
    _login(client, tenant.email)
    devices = client.get("/api/v1/devices").json()["items"]
    device_id = next(d["id"] for d in devices if d["serial_number"] == "SG12345678")
    page = client.get(f"/devices/{device_id}")
    assert page.status_code == 200
    assert EVIL not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_other_reseller_sees_an_empty_fleet_and_no_device_page(
    client: TestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    _ingest(client, tenant)
    _login(client, tenant.email)
    device_id = re.search(r'href="/devices/([0-9a-f-]+)"', client.get("/fleet").text)
    assert device_id
    client.cookies.clear()
    _login(client, other_tenant.email)
    assert "data-device=" not in client.get("/fleet").text
    assert client.get(f"/devices/{device_id.group(1)}").status_code == 404


def test_logout(client: TestClient, tenant: Tenant) -> None:
    _login(client, tenant.email)
    token = _csrf(client.get("/fleet").text)
    response = client.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert response.status_code == 303
    assert client.get("/fleet", follow_redirects=False).status_code == 303


def test_stylesheet_is_served(client: TestClient) -> None:
    response = client.get("/static/portal.css")
    assert response.status_code == 200 and "text/css" in response.headers["content-type"]
