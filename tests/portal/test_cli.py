"""``fleetmeter portal`` admin commands, run in-process through ``register``'s parser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fleetmeter.portal.app import create_app
from fleetmeter.portal.cli import main
from fleetmeter.portal.settings import PortalSettings
from fleetmeter.wire.codec import encode_batch
from tests.portal.portal_builders import batch, report


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["portal", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_create_tenant_and_add_collector_round_trip(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--database-url", database_url, "--data-dir", str(tmp_path)]
    tenant_args = ["create-tenant", "--reseller", "R1", "--customer", "C1", *db]
    code, out, err = _run(
        capsys, *tenant_args, "--admin-email", "ops@r1.example", "--admin-password", "s3cret-pass"
    )
    assert code == 0, err
    first = json.loads(out)
    assert set(first) == {"reseller_id", "customer_id", "user_id"}

    # Idempotent: the same names give the same ids.
    code, out, _ = _run(capsys, *tenant_args)
    assert code == 0
    again = json.loads(out)
    assert (again["reseller_id"], again["customer_id"]) == (
        first["reseller_id"],
        first["customer_id"],
    )

    code, out, err = _run(capsys, "add-collector", "--reseller", "R1", "--customer", "C1", *db)
    assert code == 0, err
    created = json.loads(out)
    assert set(created) == {"collector_id", "token"} and len(created["token"]) > 40

    code, out, err = _run(
        capsys,
        "add-user",
        "--reseller",
        "R1",
        "--email",
        "two@r1.example",
        "--password",
        "pw-12345678",
        *db,
    )
    assert code == 0, err

    # The token works for ingest; the new user sees the device.
    settings = PortalSettings(database_url=database_url, data_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/api/v1/ingest/batches",
            content=encode_batch(batch(report())),
            headers={
                "Authorization": f"Bearer {created['token']}",
                "Content-Type": "application/json",
                "Content-Encoding": "zstd",
            },
        )
        assert response.status_code == 200, response.text
        login = client.post(
            "/api/v1/session", json={"email": "two@r1.example", "password": "pw-12345678"}
        )
        assert login.status_code == 200
        assert len(client.get("/api/v1/devices").json()["items"]) == 1


def test_errors_are_one_line_without_traceback(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--database-url", database_url, "--data-dir", str(tmp_path)]
    code, out, err = _run(capsys, "add-collector", "--reseller", "Nope", "--customer", "C", *db)
    assert code != 0 and out == ""
    assert err.count("\n") == 1 and "no reseller named 'Nope'" in err
    assert "Traceback" not in err


def test_unmigrated_database_and_migrate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--data-dir", str(tmp_path / "data")]
    code, _, err = _run(capsys, "create-tenant", "--reseller", "R", "--customer", "C", *db)
    assert code != 0 and "fleetmeter portal migrate" in err and err.count("\n") == 1

    code, out, err = _run(capsys, "migrate", *db)
    assert code == 0, err
    assert json.loads(out) == {"migrated": True}
    assert (tmp_path / "data" / "portal.db").is_file()
    code, _, err = _run(capsys, "create-tenant", "--reseller", "R", "--customer", "C", *db)
    assert code == 0, err


def test_bad_database_url_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "migrate", "--database-url", "nosuchdb://x")
    assert code != 0 and err.count("\n") == 1 and "Traceback" not in err
