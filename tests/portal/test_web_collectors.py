"""Collector pages: list with versions, settings form (validation, conflicts, CSRF), one-time
enrolment tokens, tenant scoping."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.portal.portal_builders import PASSWORD, Tenant
from tests.portal.test_web import _csrf, _login


def _settings_page(client: TestClient, tenant: Tenant) -> str:
    page = client.get(f"/collectors/{tenant.collector_id}")
    assert page.status_code == 200
    return page.text


def _save(client: TestClient, tenant: Tenant, html: str, **fields: str) -> object:
    expected = re.search(r'name="expected_version" value="(\d+)"', html)
    assert expected
    data = {"csrf": _csrf(html), "expected_version": expected.group(1), **fields}
    return client.post(f"/collectors/{tenant.collector_id}/settings", data=data)


def test_settings_form_saves_versions_the_collector_fetches(
    client: TestClient, tenant: Tenant
) -> None:
    _login(client, tenant.email)
    listing = client.get("/collectors")
    assert str(tenant.collector_id) in listing.text and "file only" in listing.text
    html = _settings_page(client, tenant)
    saved = _save(
        client,
        tenant,
        html,
        **{"targets-0": "10.0.5.0/29\nplotter.local", "drivers-0": "ipp, snmp", "usage": "45"},
    )
    assert saved.status_code == 200, saved.text  # type: ignore[attr-defined]
    assert "Saved as version 1" in saved.text  # type: ignore[attr-defined]
    api = client.get(
        f"/api/v1/collectors/{tenant.collector_id}/settings", auth=(tenant.email, PASSWORD)
    ).json()
    assert api["version"] == 1
    (only,) = api["settings"]["ranges"]
    assert only["targets"] == ["10.0.5.0/29", "plotter.local"]
    assert only["drivers"] == ["ipp", "snmp"] and only["port"] is None
    assert api["settings"]["schedule"]["usage_interval_minutes"] == 45
    assert api["settings"]["schedule"]["health_interval_minutes"] is None
    # The page shows the saved range again, plus an empty block to add one.
    again = _settings_page(client, tenant)
    assert "plotter.local" in again and 'name="targets-1"' in again
    assert "reaches the collector on its next contact" in again


def test_bad_values_are_shown_not_saved(client: TestClient, tenant: Tenant) -> None:
    _login(client, tenant.email)
    html = _settings_page(client, tenant)
    answer = _save(client, tenant, html, **{"targets-0": "10.0.0.300", "usage": "10"})
    assert answer.status_code == 400  # type: ignore[attr-defined]
    text = answer.text  # type: ignore[attr-defined]
    assert "10.0.0.300" in text and "greater than or equal to 30" in text
    api = client.get(
        f"/api/v1/collectors/{tenant.collector_id}/settings", auth=(tenant.email, PASSWORD)
    ).json()
    assert api["version"] == 0


def test_a_stale_form_is_a_conflict(client: TestClient, tenant: Tenant) -> None:
    _login(client, tenant.email)
    html = _settings_page(client, tenant)
    assert _save(client, tenant, html, usage="60").status_code == 200  # type: ignore[attr-defined]
    stale = _save(client, tenant, html, usage="90")  # rendered before version 1 existed
    assert stale.status_code == 409  # type: ignore[attr-defined]
    assert "reload" in stale.text  # type: ignore[attr-defined]


def test_forms_need_the_csrf_token(client: TestClient, tenant: Tenant) -> None:
    _login(client, tenant.email)
    url = f"/collectors/{tenant.collector_id}/settings"
    assert client.post(url, data={"csrf": "forged", "usage": "60"}).status_code == 403
    token_url = "/collectors/enrolment-tokens"
    forged = {"csrf": "forged", "customer_id": str(tenant.customer_id)}
    assert client.post(token_url, data=forged).status_code == 403


def test_enrolment_token_is_shown_once_with_the_command(client: TestClient, tenant: Tenant) -> None:
    _login(client, tenant.email)
    html = client.get("/collectors").text
    made = client.post(
        "/collectors/enrolment-tokens",
        data={"csrf": _csrf(html), "customer_id": str(tenant.customer_id)},
    )
    assert made.status_code == 200
    token = re.search(r"--token (fme_[A-Za-z0-9_-]+)", made.text)
    assert token, made.text
    assert "fleetmeter collector enroll" in made.text
    assert token.group(1) not in client.get("/collectors").text  # shown once
    enrolled = client.post(
        "/api/v1/enrolment", json={"customer": "Acme customer", "token": token.group(1)}
    )
    assert enrolled.status_code == 201


def test_other_resellers_collectors_are_not_found(
    client: TestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    _login(client, other_tenant.email)
    assert str(tenant.collector_id) not in client.get("/collectors").text
    assert client.get(f"/collectors/{tenant.collector_id}").status_code == 404
    html = client.get("/collectors").text
    answer = client.post(
        f"/collectors/{tenant.collector_id}/settings",
        data={"csrf": _csrf(html), "usage": "60", "expected_version": "0"},
    )
    assert answer.status_code == 404
    foreign = client.post(
        "/collectors/enrolment-tokens",
        data={"csrf": _csrf(html), "customer_id": str(tenant.customer_id)},
    )
    assert foreign.status_code == 404 and "fme_" not in foreign.text


def test_logged_out_is_sent_to_login(client: TestClient, tenant: Tenant) -> None:
    for path in ("/collectors", f"/collectors/{tenant.collector_id}"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/login"
