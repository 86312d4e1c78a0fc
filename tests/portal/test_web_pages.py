"""The fleet, device, jobs and alerts pages through the real app, on SQLite and PostgreSQL:
what a technician sees, the filters, keyset paging, the CSV export, escaping, and that
nothing of another tenant (or another customer, for a customer's user) ever shows.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from fleetmeter import wire
from fleetmeter.portal.services import fleet, ingest, jobs, tenancy
from fleetmeter.portal.services.device_page import DailyUsage, UsageSeries, usage_series
from fleetmeter.portal.services.paging import Cursor
from fleetmeter.portal.store.models import Collector, Device, JobRecord, User
from fleetmeter.portal.web.charts import bar_chart
from fleetmeter.wire.codec import encode_batch
from tests.portal.portal_builders import PASSWORD, Tenant, batch, job, report
from tests.portal.sample_fleet import (
    FORMULA_NAME,
    IMG_NAME,
    SCRIPT_NAME,
    SampleFleet,
    seed_sample_fleet,
)


def _login(client: TestClient, email: str, password: str = PASSWORD) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token
    answer = client.post(
        "/login",
        data={"email": email, "password": password, "csrf": token.group(1)},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text[:300]


@pytest.fixture
def sample(session_factory: sessionmaker[Session]) -> SampleFleet:
    fleet.SUPPLY_VERDICTS.clear()  # another test's database may have reused a device id
    return seed_sample_fleet(session_factory, now=datetime.now(UTC))


@pytest.fixture
def browser(client: TestClient, sample: SampleFleet) -> TestClient:
    _login(client, sample.email, sample.password)
    return client


def _tiles(html: str) -> dict[str, int]:
    found = re.findall(r'data-tile="(\w+)">\s*<span class="n">([\d,]+)</span>', html)
    return {name: int(n.replace(",", "")) for name, n in found}


def _serials(html: str) -> list[str]:
    """Serial numbers of the device rows, in page order."""
    rows = re.findall(r'<tr data-device="[^"]+".*?<div class="sub">([^<·]+)', html, re.S)
    return [r.strip() for r in rows]


# --------------------------------------------------------------------------- fleet


def test_fleet_groups_by_customer_and_site_and_counts_what_needs_attention(
    browser: TestClient, sample: SampleFleet
) -> None:
    page = browser.get("/fleet")
    assert page.status_code == 200
    html = page.text
    assert re.findall(r'<tbody class="group" data-group="([^"]+)"', html) == [
        "Contoso Architects › Berlin HQ",
        "Contoso Architects › Hamburg",
        "Fabrikam Engineering › Munich plant",
        "Fabrikam Engineering › no site",
        "Northwind 3D Lab › Workshop",
    ]
    assert len(_serials(html)) == 8
    # PageWide 7300W: error state with an error and a warning alert; 7301W silent for 30 h;
    # the Z9+: a printhead at 18 %; T830 #2: C 9 %, Y 4 %; the OfficeJet: an expired cartridge.
    assert _tiles(html) == {
        "any": 5,
        "alerts": 1,
        "error": 1,
        "offline": 1,
        "printhead": 1,
        "low_ink": 2,
    }
    # The collectors, with a link to manage them.
    assert 'href="/collectors"' in html and "Fabrikam site server" in html


def test_needs_attention_view_is_most_urgent_first_with_reasons(
    browser: TestClient, sample: SampleFleet
) -> None:
    html = browser.get("/fleet?attention=any").text
    assert _serials(html) == [
        "CN0BX7300W",  # open error alert (and error state)
        "CN0BX7301W",  # no contact
        "SG94M1100P",  # printhead
        "TH6AL2210F",  # expired cartridge, and an (info) alert: ahead of low ink alone
        "CN81J4A02K",  # low ink
    ]
    assert "paper_jam: Paper jam in roll 2 — open the drawer (+1 more)" in html
    assert "no contact for 30 h" in html
    assert "printhead C/M: 18 %, low" in html
    assert "ink C: 9 %, very low" in html and "ink Y: 4 %, very low" in html
    assert re.search(r"ink K: 44 %, expired \d{4}-\d\d-\d\d", html)
    for need, serials in (
        ("low_ink", {"CN81J4A02K", "TH6AL2210F"}),
        ("offline", {"CN0BX7301W"}),
        ("printhead", {"SG94M1100P"}),
    ):
        assert set(_serials(browser.get(f"/fleet?attention={need}").text)) == serials


def test_fleet_search_and_filters(browser: TestClient, sample: SampleFleet) -> None:
    assert _serials(browser.get("/fleet?q=z9%2B").text) == ["SG94M1100P"]
    assert _serials(browser.get("/fleet?q=10.20.0.2").text)  # address
    # "%" and "_" are literal characters in a search, not wildcards.
    assert _serials(browser.get("/fleet?q=%25").text) == []
    fabrikam = sample.customers["Fabrikam Engineering"]
    assert len(_serials(browser.get(f"/fleet?customer={fabrikam}").text)) == 3
    assert set(_serials(browser.get("/fleet?state=printing").text)) == {
        "CN81J4A02K",
        "MK4-10442",
    }
    bad = browser.get("/fleet?customer=not-an-id&state=melting")
    assert bad.status_code == 400
    assert "customer: not a valid id" in bad.text and "state: one of" in bad.text
    assert len(_serials(bad.text)) == 8  # the page still shows, without the bad filters


def test_fleet_pages_through_large_fleets(
    client: TestClient, tenant: Tenant, session_factory: sessionmaker[Session]
) -> None:
    reports = [report(f"SER{i:05d}", status=i % 2 == 0) for i in range(fleet.PAGE_SIZE + 5)]
    _ingest(client, tenant, *reports)
    _login(client, tenant.email)
    first = client.get("/fleet").text
    assert len(_serials(first)) == fleet.PAGE_SIZE and "Page 1 of 2" in first
    second = client.get("/fleet?page=2").text
    assert len(_serials(second)) == 5 and "Page 2 of 2" in second
    assert not set(_serials(first)) & set(_serials(second))
    # A group's count is the whole group's, also on a page that shows part of it.
    assert f"{fleet.PAGE_SIZE + 5} devices" in second


# --------------------------------------------------------------------------- device


def test_device_page_shows_supplies_counters_chart_jobs_and_alert_history(
    browser: TestClient, sample: SampleFleet
) -> None:
    z9 = browser.get(f"/devices/{sample.devices['SG94M1100P']}")
    assert z9.status_code == 200
    html = z9.text
    assert 'data-section="cartridges"' in html and html.count('data-supply="cartridge"') == 6
    assert html.count('data-supply="printhead"') == 2
    assert "non-vendor ink</span> (42.0 mL)" in html and "non-vendor ink used" in html
    assert "printhead C/M: 18 %, low" in html  # the same reason as on the fleet page
    assert 'data-section="media"' in html and "38.5" in html  # roll1: 38.5 m left
    assert re.search(r'data-meter="impressions"><td>impressions</td><td class="num">[\d,]+<', html)
    # The usage chart: server-drawn SVG, geometry and classes only (the CSP forbids styles).
    assert html.count("<svg") == 3 and '<rect class="bar"' in html
    assert "style=" not in html and "<script" not in html
    assert 'href="/jobs?device=' in html and html.count("<tr data-alert=") == 0

    t830 = browser.get(f"/devices/{sample.devices['CN81J4A01K']}").text
    # A cleared alert with a hostile text: in the history, as text.
    assert 'class="cleared" data-alert=' in t830
    assert "&lt;img src=x onerror=" in t830 and "<img src=x" not in t830
    assert "&lt;script&gt;window.__pwned" in t830 and "<script>window" not in t830

    officejet = browser.get(f"/devices/{sample.devices['TH6AL2210F']}").text
    assert "(expired)</span>" in officejet

    days = browser.get(f"/devices/{sample.devices['SG94M1100P']}?days=30")
    assert days.status_code == 200 and "last 30 days" in days.text
    assert browser.get(f"/devices/{sample.devices['SG94M1100P']}?days=7").status_code == 400


def test_device_page_of_a_3d_printer_shows_builds_and_materials(
    browser: TestClient, sample: SampleFleet
) -> None:
    html = browser.get(f"/devices/{sample.devices['MK4-10442']}").text
    assert 'data-section="additive"' in html and "nozzle" in html
    assert 'data-section="build"' in html and "Bracket_v7.gcode" in html
    assert "layer 173 of 412" in html
    assert 'data-section="builds"' in html and "Gear_set.gcode" in html and "failed" in html
    assert 'data-section="materials"' in html and "PETG Galaxy Black" in html
    assert 'data-section="cartridges"' not in html


def test_device_page_is_not_found_for_unknown_ids(browser: TestClient) -> None:
    assert browser.get(f"/devices/{uuid.uuid4()}").status_code == 404
    assert browser.get("/devices/not-a-uuid").status_code == 422


# --------------------------------------------------------------------------- jobs


def _job_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-job="([^"]+)"', html)


def _href(html: str, rel: str) -> str | None:
    match = re.search(r'<a href="([^"]+)" rel="' + rel + '"', html)
    return match.group(1).replace("&amp;", "&") if match else None


def test_jobs_page_pages_by_keyset_both_ways(
    browser: TestClient, sample: SampleFleet, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        newest = list(
            session.scalars(
                select(JobRecord.id)
                .where(JobRecord.reseller_id == sample.reseller_id)
                .order_by(JobRecord.completed_at.desc(), JobRecord.id.desc())
                .limit(150)
            )
        )
    first = browser.get("/jobs").text
    assert _job_ids(first) == [str(i) for i in newest[:50]]
    assert _href(first, "prev") is None
    older = _href(first, "next")
    assert older and "before=" in older
    second = browser.get(older).text
    assert _job_ids(second) == [str(i) for i in newest[50:100]]
    third = browser.get(_href(second, "next") or "").text
    assert _job_ids(third) == [str(i) for i in newest[100:150]]
    back = browser.get(_href(third, "prev") or "").text
    assert _job_ids(back) == _job_ids(second)
    assert _job_ids(browser.get(_href(back, "prev") or "").text) == _job_ids(first)
    # Every job exactly once, walking to the end.
    seen: list[str] = []
    url: str | None = "/jobs?limit=500"
    while url:
        html = browser.get(url).text
        seen += _job_ids(html)
        url = _href(html, "next")
    assert len(seen) == len(set(seen)) == sample.jobs
    bad = browser.get("/jobs?before=garbage")
    assert bad.status_code == 400 and "not a page position" in bad.text


def test_jobs_filters(
    browser: TestClient, sample: SampleFleet, session_factory: sessionmaker[Session]
) -> None:
    def count(**where: object) -> int:
        with session_factory() as session:
            stmt = select(func.count()).select_from(JobRecord)
            stmt = stmt.where(JobRecord.reseller_id == sample.reseller_id)
            for column, value in where.items():
                stmt = stmt.where(getattr(JobRecord, column) == value)
            return session.scalar(stmt) or 0

    def shown(query: str) -> int:
        total, url = 0, f"/jobs?limit=500&{query}"
        while url:
            html = browser.get(url).text
            total += len(_job_ids(html))
            url = _href(html, "next") or ""
        return total

    z9 = sample.devices["SG94M1100P"]
    assert shown("device=SG94M1100P") == shown(f"device={z9}") == count(device_id=z9)
    assert shown("user=j.meyer") == count(submitter_user="j.meyer") > 0
    assert shown("account=ENG-07&category=cad") == count(
        submitter_account="ENG-07", application_category="cad"
    )
    assert shown("project=Tender") == count(submitter_project="Tender")
    fabrikam = sample.customers["Fabrikam Engineering"]
    with session_factory() as session:
        of_fabrikam = session.scalar(
            select(func.count())
            .select_from(JobRecord)
            .join(Device, Device.id == JobRecord.device_id)
            .where(Device.customer_id == fabrikam)
        )
    assert shown(f"customer={fabrikam}") == of_fabrikam
    today = datetime.now(UTC).date()
    with session_factory() as session:
        start = datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=2)
        in_range = session.scalar(
            select(func.count())
            .select_from(JobRecord)
            .where(
                JobRecord.reseller_id == sample.reseller_id,
                JobRecord.completed_at >= start,
                JobRecord.completed_at < start + timedelta(days=2),
            )
        )
    day1, day2 = start.date(), (start + timedelta(days=1)).date()
    assert shown(f"from={day1}&to={day2}") == in_range
    assert shown("device=NO-SUCH-SERIAL") == 0
    assert shown("kind=scan") == 0
    bad = browser.get("/jobs?from=yesterday&kind=fax")
    assert bad.status_code == 400
    assert "from: a date as YYYY-MM-DD" in bad.text and "kind: one of" in bad.text


def test_job_page_shows_the_whole_record_escaped(
    browser: TestClient, sample: SampleFleet, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        hostile = session.scalar(select(JobRecord).where(JobRecord.name == SCRIPT_NAME))
        assert hostile is not None
    answer = browser.get(f"/jobs/{hostile.id}")
    assert answer.status_code == 200
    html = answer.text
    assert "&lt;script&gt;window.__pwned" in html and "<script>" not in html
    assert hostile.submitter_user and hostile.submitter_user in html
    assert str(hostile.job_uuid) in html and 'data-section="usage"' in html
    assert f'href="/jobs/{hostile.id}"' in browser.get("/jobs?device=CN81J4A01K").text
    assert browser.get(f"/jobs/{uuid.uuid4()}").status_code == 404


def test_jobs_csv_export_is_complete_and_formula_safe(
    browser: TestClient, sample: SampleFleet
) -> None:
    answer = browser.get("/jobs.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"].startswith('attachment; filename="jobs-')
    text = answer.content.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert len(rows) == sample.jobs
    assert list(rows[0]) == list(jobs.CSV_COLUMNS)
    names = {r["name"] for r in rows}
    assert "'" + FORMULA_NAME in names and FORMULA_NAME not in names
    assert SCRIPT_NAME in names and IMG_NAME in names  # CSV is data, not HTML: kept as is
    assert all(r["completed_at"].endswith("Z") for r in rows)
    assert all(int(r["media_area_mm2"]) > 0 for r in rows)

    z9 = browser.get("/jobs.csv?device=SG94M1100P&user=j.meyer").content.decode()
    filtered = list(csv.DictReader(io.StringIO(z9.lstrip("\ufeff"))))
    assert filtered and {(r["device_serial"], r["user"]) for r in filtered} == {
        ("SG94M1100P", "j.meyer")
    }
    refused = browser.get("/jobs.csv?customer=not-an-id")
    assert refused.status_code == 400 and "customer" in refused.text


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("Plan.pdf", "Plan.pdf"),
        ("", ""),
        ("a=b", "a=b"),
    ],
)
def test_csv_safe(cell: str, safe: str) -> None:
    assert jobs.csv_safe(cell) == safe


# --------------------------------------------------------------------------- alerts


def _alert_codes(html: str) -> list[str]:
    return re.findall(
        r'<tr class="(?:open|cleared)" data-alert="[^"]+">\s*<td>.*?</td>\s*<td>([^<]+)</td>',
        html,
        re.S,
    )


def test_alerts_open_cleared_and_by_severity(browser: TestClient, sample: SampleFleet) -> None:
    html = browser.get("/alerts").text
    assert sorted(_alert_codes(html)) == ["paper_jam", "printhead_temp", "toner_low"]
    assert _tiles(html) == {"critical": 0, "error": 1, "warning": 1, "info": 1}
    cleared = browser.get("/alerts?state=cleared").text
    assert _alert_codes(cleared) == ["door_open"]
    assert "&lt;img src=x" in cleared and "<img src=x" not in cleared
    assert len(_alert_codes(browser.get("/alerts?state=all").text)) == 4
    assert _alert_codes(browser.get("/alerts?severity=error").text) == ["paper_jam"]
    assert _alert_codes(browser.get("/alerts?state=all&device=CN81J4A01K").text) == ["door_open"]
    fabrikam = sample.customers["Fabrikam Engineering"]
    assert len(_alert_codes(browser.get(f"/alerts?customer={fabrikam}").text)) == 3
    assert _alert_codes(browser.get("/alerts?code=paper_jam&state=all").text) == ["paper_jam"]
    assert browser.get("/alerts?severity=apocalyptic").status_code == 400


def test_alerts_page_by_keyset(
    client: TestClient, tenant: Tenant, session_factory: sessionmaker[Session]
) -> None:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    alerts = [
        wire.Alert(
            code=f"a{i:03d}",
            severity=wire.AlertSeverity.WARNING,
            text="x",
            first_seen=at + timedelta(seconds=i),
        )
        for i in range(120)
    ]
    _ingest(client, tenant, report(alerts=alerts))
    _login(client, tenant.email)
    codes: list[str] = []
    url: str | None = "/alerts"
    while url:
        html = client.get(url).text
        codes += _alert_codes(html)
        url = _href(html, "next")
    assert codes == [f"a{i:03d}" for i in reversed(range(120))]


# --------------------------------------------------------------------------- tenancy


def _ingest(client: TestClient, tenant: Tenant, *reports: wire.DeviceReport) -> None:
    answer = client.post(
        "/api/v1/ingest/batches",
        content=encode_batch(batch(*reports)),
        headers={
            "Authorization": f"Bearer {tenant.token}",
            "Content-Type": "application/json",
            "Content-Encoding": "zstd",
        },
    )
    assert answer.status_code == 200, answer.text


VICTIM_ALERT = wire.Alert(
    code="victim_alert",
    severity="critical",
    text="victim alert text",
    first_seen=datetime(2026, 3, 1, tzinfo=UTC),
)


def test_another_resellers_devices_jobs_and_alerts_never_show(
    client: TestClient,
    tenant: Tenant,
    other_tenant: Tenant,
    session_factory: sessionmaker[Session],
) -> None:
    _ingest(
        client,
        tenant,
        report("VICTIM-1", jobs=[job(1, name="victim job")], alerts=[VICTIM_ALERT]),
    )
    _ingest(client, other_tenant, report("OWN-1", jobs=[job(1, name="own job")]))
    with session_factory() as session:
        victim_device = session.scalar(select(Device.id).where(Device.serial_number == "VICTIM-1"))
    _login(client, other_tenant.email)
    victim_customer = tenant.customer_id
    pages = [
        "/fleet",
        "/fleet?attention=any",
        "/fleet?q=VICTIM",
        f"/fleet?customer={victim_customer}",
        "/jobs",
        f"/jobs?device={victim_device}",
        "/jobs?device=VICTIM-1",
        f"/jobs?customer={victim_customer}",
        "/alerts?state=all",
        f"/alerts?device={victim_device}&state=all",
        f"/alerts?customer={victim_customer}&state=all",
        "/jobs.csv",
        f"/jobs.csv?device={victim_device}",
        f"/jobs.csv?customer={victim_customer}",
    ]
    for path in pages:
        answer = client.get(path)
        assert answer.status_code == 200, path
        for secret in ("VICTIM-1", "victim job", "victim_alert", "victim alert text"):
            if secret in path:
                continue  # the filter the caller typed, shown back in its field: no leak
            assert secret not in answer.text, f"{path} leaks {secret!r}"
    assert "OWN-1" in client.get("/fleet").text and "own job" in client.get("/jobs").text
    assert client.get(f"/devices/{victim_device}").status_code == 404
    with session_factory() as session:
        victim_job = session.scalar(select(JobRecord.id).where(JobRecord.name == "victim job"))
    victim_page = client.get(f"/jobs/{victim_job}")
    assert victim_page.status_code == 404 and "victim job" not in victim_page.text
    # A page cursor made of the victim's job positions the list, and shows only one's own.
    cursor = Cursor(datetime(2030, 1, 1, tzinfo=UTC), victim_job or uuid.uuid4()).encode()
    paged = client.get(f"/jobs?before={cursor}").text
    assert "own job" in paged and "victim job" not in paged
    # Counting is scoped too: the victim's critical alert is in no tile.
    assert _tiles(client.get("/alerts").text)["critical"] == 0


def test_a_customers_user_sees_only_that_customers_devices(
    client: TestClient, tenant: Tenant, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        reseller = tenancy.find_reseller(session, name="Acme")
        other = tenancy.get_or_create_customer(session, reseller=reseller, name="Second customer")
        session.flush()
        collector = tenancy.add_collector(session, reseller=reseller, customer=other)
        user = tenancy.add_user(
            session, reseller=reseller, email="viewer@customer.example", password=PASSWORD
        )
        session.flush()
        session.execute(
            update(User).where(User.id == user.id).values(role="customer", customer_id=other.id)
        )
        session.commit()
        sender = ingest.Sender.of_collector(session.get_one(Collector, collector.collector_id))
    _ingest(
        client, tenant, report("FIRST-1", jobs=[job(1, name="first job")], alerts=[VICTIM_ALERT])
    )
    with session_factory() as session:
        ingest.ingest_batch(
            session,
            batch=batch(report("SECOND-1", jobs=[job(1, name="second job")])),
            sender=sender,
        )
        first_device = session.scalar(select(Device.id).where(Device.serial_number == "FIRST-1"))
    _login(client, "viewer@customer.example")
    for path in (
        "/fleet",
        "/jobs",
        "/alerts?state=all",
        "/jobs.csv",
        f"/jobs?customer={tenant.customer_id}",
    ):
        text = client.get(path).text
        assert "FIRST-1" not in text and "first job" not in text and "victim_alert" not in text, (
            path
        )
    assert "SECOND-1" in client.get("/fleet").text and "second job" in client.get("/jobs").text
    assert client.get(f"/devices/{first_device}").status_code == 404
    with session_factory() as session:
        first_job = session.scalar(select(JobRecord.id).where(JobRecord.name == "first job"))
    assert client.get(f"/jobs/{first_job}").status_code == 404
    assert "Collectors</h2>" not in client.get("/fleet").text


def test_pages_send_a_logged_out_browser_to_the_login(client: TestClient) -> None:
    for path in (
        "/jobs",
        "/jobs.csv",
        "/alerts",
        f"/devices/{uuid.uuid4()}",
        "/fleet?attention=any",
    ):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/login", path


# --------------------------------------------------------------------------- units


def test_supply_verdict_follows_a_new_snapshot(client: TestClient, tenant: Tenant) -> None:
    _ingest(client, tenant, report("INK-1", at=datetime.now(UTC) - timedelta(minutes=2)))
    _login(client, tenant.email)
    assert _tiles(client.get("/fleet").text)["low_ink"] == 1  # K at 9 %
    refilled = report("INK-1", at=datetime.now(UTC) - timedelta(minutes=1))
    assert refilled.status is not None
    refilled.status.cartridges[1].level_percent = 80
    refilled.status.cartridges[1].status = wire.SupplyState.OK
    _ingest(client, tenant, refilled)
    assert _tiles(client.get("/fleet").text)["low_ink"] == 0


def test_cursor_round_trip_and_refusals() -> None:
    cursor = Cursor(datetime(2026, 3, 1, 8, 0, 0, 123456, tzinfo=UTC), uuid.uuid4())
    assert Cursor.decode(cursor.encode()) == cursor
    for bad in ("", "x", "20260301T080000.000000Z", "20260301T080000.000000Z~nothex", "~" * 80):
        with pytest.raises(ValueError):
            Cursor.decode(bad)


def test_usage_per_day_from_counter_readings_with_a_reset(
    client: TestClient, tenant: Tenant, session_factory: sessionmaker[Session]
) -> None:
    day0 = datetime(2026, 3, 1, 18, tzinfo=UTC)
    readings = [(0, 100), (1, 150), (1, 170), (3, 20), (4, 45)]  # (day, impressions)
    _ingest(
        client,
        tenant,
        *(
            report(at=day0 + timedelta(days=d, minutes=i), impressions=v)
            for i, (d, v) in enumerate(readings)
        ),
    )
    with session_factory() as session:
        device_id = session.scalar(select(Device.id))
        assert device_id is not None
        series = usage_series(
            session,
            reseller_id=tenant.reseller_id,
            device_id=device_id,
            meter="impressions",
            days=5,
            today=(day0 + timedelta(days=4)).date(),
        )
    assert [d.value for d in series.days] == [0, 70, 0, None, 25]


def test_bar_chart_geometry() -> None:
    today = datetime(2026, 3, 10, tzinfo=UTC).date()
    series = UsageSeries(
        "impressions",
        [
            DailyUsage(today - timedelta(days=2), 120),
            DailyUsage(today - timedelta(days=1), None),
            DailyUsage(today, 0),
        ],
    )
    chart = bar_chart(series)
    assert [b.css for b in chart.bars] == ["bar", "bar reset", "bar"]
    assert chart.bars[0].height > 0 and chart.bars[2].height == 0
    assert [t.label for t in chart.y_ticks] == ["0", "100", "200"]
    assert chart.summary == "120 pages in 3 days"
