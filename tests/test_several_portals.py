"""Several portal processes on one PostgreSQL database, several collectors at once (issue 8).

Two ``fleetmeter portal serve`` processes share a PostgreSQL schema; four collectors read the
same simulated printers (overlapping ranges, as when two sites' ranges both cover a shared
printer room) and upload at the same moment, two to each portal process. Every job then
arrives four times, concurrently, through different processes: the ledger must still hold it
exactly once, with the latest counters. Nothing here is faked; PostgreSQL is the machine's
(the test skips with the reason when it is unreachable).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from fleetmeter.demo import write_collector_config
from fleetmeter.supervise import programs, run_command
from tests.conftest import POSTGRES_URL
from tests.e2e_stack import (
    TENANT,
    assert_ledger_equals_truth,
    control,
    prepare_portal,
    random_subnet,
    start_simulator,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DEVICES = 6
COLLECTORS = 4
SPEED = 3600.0


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    """An empty schema of its own on the machine's PostgreSQL, as a URL for the programs."""
    admin = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL unreachable ({str(exc.orig).strip()[:120]})")
    schema = f"fm_multi_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_two_portal_processes_and_four_collectors_keep_the_ledger_exact(
    tmp_path: Path, postgres_schema: str
) -> None:
    portal = prepare_portal(tmp_path, database_url=postgres_schema)
    tokens = [portal.token] + [
        json.loads(
            run_command(
                ["portal", "add-collector", *TENANT, "--name", f"collector-{i}"], env=portal.env
            )
        )["token"]
        for i in range(1, COLLECTORS)
    ]
    subnet = random_subnet()
    with programs() as running:
        portals = [dataclasses.replace(portal) for _ in range(2)]
        urls = [p.start(running, tmp_path, name=f"portal-{i}") for i, p in enumerate(portals)]
        assert len(set(urls)) == 2
        fleet = start_simulator(
            running, tmp_path, devices=DEVICES, seed=11, speed=SPEED, subnet=subnet
        )
        configs = []
        for i, token in enumerate(tokens):
            config = tmp_path / f"collector-{i}.toml"
            write_collector_config(
                config,
                portal_url=urls[i % 2],
                token=token,
                ca_file=portal.ca_file,
                data_dir=tmp_path / f"collector-{i}",
                targets=[subnet],  # all four read every printer
                port=int(fleet["port"]),
                speed=1.0,
            )
            configs.append(config)

        def poll_all_at_once() -> None:
            with concurrent.futures.ThreadPoolExecutor(COLLECTORS) as pool:
                outs = list(
                    pool.map(
                        lambda c: run_command(
                            ["collector", "poll-once", "--config", str(c)], timeout_s=180
                        ),
                        configs,
                    )
                )
            for out in outs:
                assert f"{DEVICES} devices found" in out, out

        def truth() -> list[dict[str, object]]:
            result: list[dict[str, object]] = control(fleet["control_url"], "GET", "/truth")
            return result

        totals = []
        for _ in range(2):
            time.sleep(2)  # two simulated hours of printing
            control(fleet["control_url"], "POST", "/pause")
            poll_all_at_once()
            totals.append(assert_ledger_equals_truth(portals[0], truth()))
            assert assert_ledger_equals_truth(portals[1], truth()) == totals[-1]
            control(fleet["control_url"], "POST", "/resume")
        assert 0 < totals[0] < totals[-1], totals  # the fleet printed: the test proves something
        for p in portals:
            assert p.program is not None and p.program.running(), p.program
