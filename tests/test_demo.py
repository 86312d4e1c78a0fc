"""``fleetmeter demo`` as a user runs it: URL and login printed, every printer on the fleet page
with status, supplies and usage within a minute (seen in headless Chromium), Ctrl-C stops all.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
DEVICES = 3
ADDITIVE = 1  # industrial 3D printers: no page impressions, so not counted below


def _read_banner(proc: subprocess.Popen[bytes], timeout_s: float) -> str:
    """Demo stdout up to its 'Press Ctrl-C' line."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    text = b""
    deadline = time.monotonic() + timeout_s
    while b"Press Ctrl-C" not in text:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"demo did not start: {text.decode(errors='replace')}")
        if sel.select(timeout=0.5):
            text += os.read(proc.stdout.fileno(), 65536)
    sel.close()
    return text.decode()


def _processes_mentioning(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            pids.append(int(entry.name))
    return pids


def test_demo_shows_the_fleet_within_a_minute_and_stops_cleanly(tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium not installed (scripts/install-test-peers chromium)")
    data_dir = tmp_path / "demo-data"
    started = time.monotonic()
    proc = subprocess.Popen(  # the demo as a user starts it
        [
            sys.executable,
            "-m",
            "fleetmeter",
            "demo",
            "--data-dir",
            str(data_dir),
            "--port",
            "0",
            "--devices",
            str(DEVICES),
            "--additive",
            str(ADDITIVE),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        banner = _read_banner(proc, timeout_s=60)
        url = re.search(r"Portal:\s+(https://\S+)", banner)
        login = re.search(r"Login:\s+(\S+)\s+/\s+(\S+)", banner)
        assert url and login, banner

        with playwright.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(ignore_https_errors=True).new_page()
            page.goto(url.group(1))
            page.fill("input[name=email]", login.group(1))
            page.fill("input[name=password]", login.group(2))
            page.click("button[type=submit]")
            # Reload until every printer shows status, supplies and non-zero usage.
            rows: list[dict[str, str]] = []
            while time.monotonic() - started < 60:
                page.goto(url.group(1) + "/")
                rows = page.eval_on_selector_all(
                    "[data-device]",
                    """els => els.map(e => ({
                        state: e.querySelector('[data-field=state]')?.textContent.trim() ?? '',
                        supplies: String(e.querySelectorAll('[data-supply]').length),
                        impressions:
                          e.querySelector('[data-field=impressions]')?.textContent.trim() ?? '',
                    }))""",
                )
                if (
                    len(rows) == DEVICES + ADDITIVE
                    and all(r["state"] and r["supplies"] != "0" for r in rows)
                    and len(_printing(rows)) == DEVICES
                ):
                    break
                time.sleep(2)
            page.screenshot(path=str(tmp_path / "fleet.png"), full_page=True)
            browser.close()
        assert len(rows) == DEVICES + ADDITIVE, rows
        for row in rows:
            assert row["state"], row
            assert row["supplies"] != "0", row
        assert len(_printing(rows)) == DEVICES, rows  # every 2D printer shows usage
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, proc.stderr.read().decode() if proc.stderr else code
    time.sleep(0.5)
    assert _processes_mentioning(str(data_dir)) == [], "demo left processes running"


def _printing(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Rows with non-zero lifetime impressions (the large-format printers)."""
    return [r for r in rows if re.sub(r"\D", "", r["impressions"]).strip("0")]
