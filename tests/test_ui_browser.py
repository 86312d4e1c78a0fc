"""The portal's pages in headless Chromium (Debian's, driven by Playwright) against a real
``fleetmeter portal serve`` process: a technician logs in, walks the fleet, opens a device,
filters and pages the jobs and downloads them as CSV; script injected through job names
and alert texts never runs, and every page carries the CSP.

Screenshots of the main pages go to ``$FLEETMETER_SCREENSHOTS`` when it is set (that is
how ``docs/screenshots/`` is regenerated, see docs/portal.md), else to the test's tmp dir.
"""

from __future__ import annotations

import csv
import io
import json
import os
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fleetmeter.portal.store.db import make_engine, make_session_factory
from fleetmeter.portal.store.migrate import upgrade
from tests.portal.sample_fleet import IMG_NAME, SCRIPT_NAME, SampleFleet, seed_sample_fleet

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 900}


@pytest.fixture(scope="module")
def playwright_api() -> Any:
    api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium not installed (scripts/install-test-peers chromium)")
    return api


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, SampleFleet]]:
    """A portal process on SQLite holding the sample fleet; yields its URL and the fleet."""
    data = tmp_path_factory.mktemp("portal")
    url = f"sqlite:///{data / 'portal.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        fleet = seed_sample_fleet(make_session_factory(engine), now=datetime.now(UTC))
    finally:
        engine.dispose()
    env = {**os.environ, "FLEETMETER_DATA_DIR": str(data), "FLEETMETER_DATABASE_URL": url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetmeter.portal.cli", "portal", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        assert line, f"portal did not start: {proc.stderr.read() if proc.stderr else ''}"
        yield json.loads(line)["url"], fleet
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("FLEETMETER_SCREENSHOTS")
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def page(playwright_api: Any, portal: tuple[str, SampleFleet]) -> Iterator[Any]:
    url, fleet = portal
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(url + "/login")
        page.fill("input[name=email]", fleet.email)
        page.fill("input[name=password]", fleet.password)
        page.click("button[type=submit]")
        page.wait_for_url(url + "/fleet")
        try:
            yield page
        finally:
            browser.close()


def _serials(page: Any) -> list[str]:
    return [
        text.split("·")[0].strip()
        for text in page.locator("tr[data-device] td:first-child .sub").all_inner_texts()
    ]


def test_a_technician_walks_the_fleet_opens_a_device_and_exports_jobs(
    page: Any, portal: tuple[str, SampleFleet], shots: Path, tmp_path: Path
) -> None:
    url, fleet = portal
    # The fleet, by customer and site.
    assert len(_serials(page)) == 8
    assert page.locator("tbody.group").count() == 5
    page.screenshot(path=str(shots / "fleet.png"), full_page=True)

    # What needs attention, most urgent first.
    page.click("[data-tile=any]")
    page.wait_for_url("**/fleet?attention=any")
    assert _serials(page)[0] == "CN0BX7300W"
    assert "Paper jam in roll 2" in page.inner_text("tr[data-device] [data-field=attention]")
    page.screenshot(path=str(shots / "needs-attention.png"), full_page=True)

    # Filter by customer, then search.
    page.goto(url + "/fleet")
    page.select_option("select[name=customer]", label="Fabrikam Engineering")
    page.click("form.filters button[type=submit]")
    assert sorted(_serials(page)) == ["CN0BX7300W", "CN0BX7301W", "TH6AL2210F"]
    page.fill("input[name=q]", "7301")
    page.click("form.filters button[type=submit]")
    assert _serials(page) == ["CN0BX7301W"]

    # Open a device: supplies, the usage chart (drawn: the bars have a size), its jobs.
    page.goto(url + "/fleet")
    page.click("text=DesignJet Z9+ PostScript")
    page.wait_for_url(f"**/devices/{fleet.devices['SG94M1100P']}")
    assert page.locator("[data-supply=cartridge]").count() == 6
    assert page.locator("[data-field=non-vendor]").count() == 2
    box = page.locator("svg.usage").first.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 50
    assert page.locator("svg.usage rect.bar").count() == 3 * 90
    page.screenshot(path=str(shots / "device.png"), full_page=True)
    page.goto(url + f"/devices/{fleet.devices['MK4-10442']}")
    assert "Bracket_v7.gcode" in page.inner_text("[data-section=build]")
    page.screenshot(path=str(shots / "device-3d.png"), full_page=True)

    # Jobs: filter by device and user, page by keyset, export what the filters match.
    page.goto(url + "/jobs")
    page.screenshot(path=str(shots / "jobs.png"), full_page=False)
    page.fill("input[name=device]", "CN81J4A01K")
    page.select_option("select[name=limit]", "50")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/jobs?*device=CN81J4A01K*")
    first = page.locator("tr[data-job]").evaluate_all("rows => rows.map(r => r.dataset.job)")
    assert len(first) == 50
    page.click("a[data-page=older]")
    second = page.locator("tr[data-job]").evaluate_all("rows => rows.map(r => r.dataset.job)")
    assert second and not set(first) & set(second)
    page.click("a[data-page=newer]")
    assert page.locator("tr[data-job]").evaluate_all("r => r.map(x => x.dataset.job)") == first

    page.fill("input[name=user]", "j.meyer")
    page.click("form.filters button[type=submit]")
    cells = page.locator("tr[data-job] td:nth-child(10)").all_inner_texts()
    assert cells and set(cells) == {"j.meyer"}
    with page.expect_download() as download_info:
        page.click("[data-field=export]")
    download = download_info.value
    assert download.suggested_filename.startswith("jobs-")
    saved = tmp_path / "jobs.csv"
    download.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text("utf-8-sig"))))
    assert rows and {(r["device_serial"], r["user"]) for r in rows} == {("CN81J4A01K", "j.meyer")}

    page.goto(url + "/alerts")
    page.screenshot(path=str(shots / "alerts.png"), full_page=True)


def test_script_in_job_names_and_alert_texts_does_not_run(
    page: Any, portal: tuple[str, SampleFleet]
) -> None:
    url, fleet = portal
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    device = fleet.devices[fleet.hostile_device]
    for path in (
        f"/jobs?device={fleet.hostile_device}",
        f"/devices/{device}",
        "/alerts?state=cleared",
        "/fleet",
    ):
        response = page.goto(url + path)
        assert response is not None and response.status == 200
        csp = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
        page.wait_for_load_state("load")
        # Each payload would set window.__pwned and retitle the page if it ever ran.
        assert page.evaluate("typeof window.__pwned") == "undefined", path
        assert "PWNED" not in page.title(), path
    # The payloads are on the pages as the text they are.
    page.goto(url + f"/jobs?device={fleet.hostile_device}")
    names = page.locator("[data-field=name]").all_inner_texts()
    assert SCRIPT_NAME in names and IMG_NAME in names
    page.goto(url + f"/devices/{device}")
    assert IMG_NAME in page.inner_text("[data-section=alerts]")
    # The <img src=x> never became an element: nothing ever asked for "x".
    assert not [r for r in requests if r.rstrip("/").endswith("/x")]
    assert dialogs == []
