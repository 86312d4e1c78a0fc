"""The site console: the agent runs with it on 127.0.0.1 port 0, the page and JSON are read."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleetmeter.collector.agent import Started, run_async
from fleetmeter.collector.config import CollectorConfig, load_config
from fleetmeter.collector.state import State

from .conftest import FakeDriver, write_config

pytestmark = pytest.mark.usefixtures("fake_driver")

EVIL = "<script>alert('x')</script>"


def console_config(tmp_path: Path, ca_file: Path, **kw: Any) -> CollectorConfig:
    # The portal is down (nothing listens on port 9): reports stay in the outbox, whose depth
    # and the upload error the console must show.
    path = write_config(
        tmp_path / "collector.toml",
        portal_url="https://127.0.0.1:9",
        ca_file=ca_file,
        targets=["127.0.1.0/29"],
        usage_minutes=30,
        speed=1200.0,
        extra='[console]\nenabled = true\nlisten = "127.0.0.1:0"\n',
        **kw,
    )
    path.write_text('version = "site-7"\n' + path.read_text())
    return load_config(path)


def with_console(
    config: CollectorConfig, body: Callable[[httpx.AsyncClient, str], Awaitable[None]]
) -> None:
    async def go() -> None:
        stop = asyncio.Event()
        started: list[Started] = []
        task = asyncio.create_task(run_async(config, ready=started.append, stop=stop))
        try:
            while not started:
                assert not task.done(), task.exception()
                await asyncio.sleep(0.01)
            url = started[0].console_url
            assert url is not None and url.startswith("http://127.0.0.1:")
            async with httpx.AsyncClient(base_url=url, timeout=5) as client:
                await body(client, url)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(asyncio.wait_for(go(), 14))


async def wait_for_status(
    client: httpx.AsyncClient, predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    for _ in range(200):
        response = await client.get("/api/status")
        assert response.status_code == 200
        doc: dict[str, Any] = response.json()
        if predicate(doc):
            return doc
        await asyncio.sleep(0.05)
    raise AssertionError(f"status never matched: {doc}")


def test_console_shows_devices_outbox_and_upload_status(
    tmp_path: Path, ca_file: Path, fake_driver: FakeDriver
) -> None:
    fake_driver.add("127.0.1.1", "SN-A", jobs=2)
    fake_driver.add("127.0.1.2", "SN-B")
    fake_driver.printers["127.0.1.2"].model = EVIL
    config = console_config(tmp_path, ca_file)

    async def body(client: httpx.AsyncClient, url: str) -> None:
        doc = await wait_for_status(
            client,
            lambda d: (
                d["outbox"]["pending"] >= 2
                and len(d["devices"]) == 2
                and all(dev["state"] for dev in d["devices"])
                and d["upload"]["last_error"] is not None
            ),
        )
        assert doc["collector"]["name"] == "test-collector"
        assert doc["collector"]["config_version"].startswith("site-7 (sha256 ")
        assert doc["outbox"]["quarantined"] == 0
        assert "cannot connect" in doc["upload"]["last_error"]
        assert doc["upload"]["last_success_at"] is None
        assert doc["upload"]["next_retry_at"] is not None  # backing off
        by_serial = {d["serial_number"]: d for d in doc["devices"]}
        assert set(by_serial) == {"SN-A", "SN-B"}
        a = by_serial["SN-A"]
        assert (a["address"], a["driver"], a["state"], a["ok"]) == (
            "127.0.1.1",
            "fake",
            "idle",
            True,
        )
        assert a["alerts"] == [{"code": "inkLow", "severity": "warning", "text": "C low"}]
        assert a["last_success_at"] is not None and a["next_health_at"] is not None
        assert by_serial["SN-B"]["model"] == EVIL  # JSON carries it as data

        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        html = page.text
        assert "127.0.1.1" in html and "SN-A" in html and "SN-B" in html
        assert "site-7" in html and "cannot connect" in html
        assert EVIL not in html and "&lt;script&gt;" in html  # escaped, not run
        assert "<script" not in html

        css = await client.get("/console.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")

    with_console(config, body)


def test_console_is_read_only_and_refuses_foreign_host_names(
    tmp_path: Path, ca_file: Path, fake_driver: FakeDriver
) -> None:
    fake_driver.add("127.0.1.1", "SN-A")
    config = console_config(tmp_path, ca_file)

    async def body(client: httpx.AsyncClient, url: str) -> None:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            for path in ("/", "/api/status"):
                response = await client.request(method, path)
                assert response.status_code == 405, (method, path)
                assert "POST" not in response.headers.get("allow", "")
        head = await client.head("/api/status")
        assert head.status_code == 200
        assert (await client.get("/nope")).status_code == 404
        # DNS rebinding: a page on evil.example resolving to 127.0.0.1 must get nothing.
        rebinding = await client.get("/api/status", headers={"Host": "evil.example"})
        assert rebinding.status_code == 400 and "SN-A" not in rebinding.text
        assert (await client.get("/", headers={"Host": "localhost"})).status_code == 200

    with_console(config, body)
    with State(config.data_dir) as state:
        assert state.quarantined() == []  # nothing the console did changed the state


def test_a_console_port_in_use_is_a_start_up_error(
    tmp_path: Path, ca_file: Path, fake_driver: FakeDriver
) -> None:
    import socket

    from fleetmeter.collector.agent import CollectorError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = console_config(tmp_path, ca_file)
        config = config.model_copy(
            update={"console": config.console.model_copy(update={"listen": f"127.0.0.1:{port}"})}
        )
        with pytest.raises(CollectorError, match=f"console: cannot listen on 127.0.0.1:{port}"):
            asyncio.run(run_async(config, stop=asyncio.Event()))


def test_console_shows_outbox_age_size_and_a_warning_above_the_threshold(
    tmp_path: Path, ca_file: Path, fake_driver: FakeDriver, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(1, 4):
        fake_driver.add(f"127.0.1.{i}", f"SN-{i}", jobs=1)
    config = console_config(tmp_path, ca_file)
    config = config.model_copy(
        update={"upload": config.upload.model_copy(update={"outbox_alert_rows": 2})}
    )

    async def body(client: httpx.AsyncClient, url: str) -> None:
        # The portal is down: the outbox grows past 2 while the upload loop retries many times.
        doc = await wait_for_status(
            client,
            lambda d: d["outbox"]["pending"] >= 6 and d["upload"]["batches_sent"] == 0,
        )
        outbox = doc["outbox"]
        assert outbox["above_alert"] is True and outbox["alert_rows"] == 2
        assert outbox["oldest_pending_at"] is not None and outbox["oldest_pending_age_s"] >= 0
        assert 0 < outbox["used_bytes"] < outbox["max_bytes"] == 2_000_000_000
        assert outbox["at_cap"] is False and outbox["full_since"] is None
        assert outbox["disk_full_since"] is None
        html = (await client.get("/")).text
        assert 'id="outbox-alert"' in html and "more than outbox_alert_rows (2)" in html
        assert "oldest waiting since" in html and 'id="outbox-size"' in html
        assert 'id="outbox-full"' not in html and 'id="disk-full"' not in html

    with_console(config, body)
    attempts = [r for r in caplog.records if r.getMessage().startswith("upload: portal")]
    warnings = [r for r in caplog.records if "above outbox_alert_rows" in r.getMessage()]
    assert len(attempts) >= 2 and len(warnings) == 1  # once per crossing, not per attempt


def test_console_page_without_a_backlog_has_no_outbox_warning(
    tmp_path: Path, ca_file: Path, fake_driver: FakeDriver
) -> None:
    config = console_config(tmp_path, ca_file)

    async def body(client: httpx.AsyncClient, url: str) -> None:
        doc = (await client.get("/api/status")).json()
        assert doc["outbox"]["pending"] == 0 and doc["outbox"]["above_alert"] is False
        assert doc["outbox"]["oldest_pending_at"] is None
        html = (await client.get("/")).text
        assert 'class="banners"' not in html and "oldest waiting since" not in html

    with_console(config, body)


def test_console_page_names_a_full_outbox_and_a_full_disk() -> None:
    from fleetmeter.collector.console import _TEMPLATES

    status = {
        "collector": {
            "name": "site",
            "config_version": "v1",
            "started_at": "2026-01-05T08:00:00+00:00",
            "now": "2026-01-05T09:00:00+00:00",
            "hosts_in_range": 1,
            "drivers": ["fake"],
        },
        "outbox": {
            "pending": 12_345,
            "quarantined": 0,
            "oldest_pending_at": "2026-01-02T08:00:00+00:00",
            "oldest_pending_age_s": 3 * 86_400 + 3_600 + 5,
            "used_bytes": 2_000_000_000,
            "max_bytes": 2_000_000_000,
            "alert_rows": 10_000,
            "above_alert": True,
            "at_cap": True,
            "full_since": "2026-01-05T07:00:00+00:00",
            "disk_full_since": "2026-01-05T08:30:00+00:00",
        },
        "upload": {
            "portal": "https://portal.example",
            "last_attempt_at": None,
            "last_success_at": None,
            "last_error": None,
            "last_error_at": None,
            "next_retry_at": None,
            "batches_sent": 0,
        },
        "devices": [],
    }
    html = _TEMPLATES.get_template("console.html").render(status=status, refresh=30)
    assert 'id="disk-full"' in html and "DISK FULL since 2026-01-05T08:30:00+00:00" in html
    assert 'id="outbox-full"' in html and "Usage polls are stopped, nothing is deleted" in html
    assert "2,000.0 MB" in html and 'id="outbox-at-cap"' not in html  # full says more
    assert 'id="outbox-alert"' in html and "the oldest for 3 d 1 h" in html
