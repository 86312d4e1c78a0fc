"""The site's privacy setting (issue 11): job names and submitter fields kept, pseudonymised
or dropped at the collector, before the outbox: checked in the pseudonym function, the key
file, the config, the outbox on disk and the batches the portal stub receives."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest

from fleetmeter.collector import cli as collector_cli
from fleetmeter.collector.agent import poll_once
from fleetmeter.collector.config import ConfigError, load_config
from fleetmeter.collector.privacy import (
    KEY_BYTES,
    FieldPolicy,
    Privacy,
    PrivacyError,
    load_or_create_key,
    pseudonym,
)
from fleetmeter.wire import DeviceReport, JobRecord, Submitter

from .conftest import FakeDriver, PortalStub, write_config

pytestmark = pytest.mark.usefixtures("fake_driver")

KEY = bytes(range(32))
PEOPLE = [
    ("Alice Martin", "ACC-7", "Bridge A", "AutoCAD", "cost centre 12", "Site plan, rev 3.pdf"),
    (
        "alice martin ",
        "ACC-7",
        "Bridge A",
        "AutoCAD",
        None,
        "Facade.dwg",
    ),  # same user, other spelling
    ("Bob", "ACC-9", None, "Photoshop", None, "poster.tif"),
]


def _with_submitters(printer_jobs: list[JobRecord]) -> None:
    for i, (user, account, project, application, user_defined, name) in enumerate(PEOPLE):
        printer_jobs[i] = printer_jobs[i].model_copy(
            update={
                "name": name,
                "submitter": Submitter(
                    user=user,
                    account=account,
                    project=project,
                    application=application,
                    user_defined=user_defined,
                ),
            }
        )


def test_a_pseudonym_is_stable_per_field_and_key_and_ignores_case_and_spaces() -> None:
    alice = pseudonym(KEY, "user", "Alice Martin")
    assert alice.startswith("p-") and len(alice) == 18
    assert pseudonym(KEY, "user", "  alice MARTIN ") == alice
    assert pseudonym(KEY, "account", "Alice Martin") != alice  # the field is part of it
    assert pseudonym(bytes(32), "user", "Alice Martin") != alice  # so is the site's key
    assert pseudonym(KEY, "user", "Alice Marti") != alice


def test_the_key_is_created_once_private_and_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "data" / "privacy.key"
    key = load_or_create_key(path)
    assert len(key) == KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key  # the same key in every run
    path.write_text("not a key\n")
    with pytest.raises(PrivacyError, match="not a privacy key"):
        load_or_create_key(path)
    assert path.read_text() == "not a key\n"  # left for the operator to restore


def test_policies_keep_pseudonymise_and_drop_each_field() -> None:
    privacy = Privacy(
        policies={
            "job_name": FieldPolicy.DROP,
            "user": FieldPolicy.PSEUDONYMISE,
            "account": FieldPolicy.KEEP,
            "project": FieldPolicy.PSEUDONYMISE,
            "application": FieldPolicy.DROP,
            "user_defined": FieldPolicy.DROP,
        },
        key=KEY,
    )
    job = JobRecord.model_validate(
        {
            "job_uuid": "00000000-0000-4000-8000-000000000001",
            "sequence_number": 1,
            "name": "Payroll.xlsx",
            "completed_at": "2026-01-05T08:00:00Z",
            "submitter": {
                "user": "Alice",
                "account": "ACC-7",
                "project": "   ",
                "application": "X",
            },
        }
    )
    out = privacy.job(job)
    assert out.name is None
    assert out.submitter.user == pseudonym(KEY, "user", "Alice")
    assert out.submitter.account == "ACC-7"
    assert out.submitter.project is None  # blank: nothing to hide, nothing sent
    assert out.submitter.application is None
    assert out.job_uuid == job.job_uuid and out.completed_at == job.completed_at
    assert job.submitter.user == "Alice"  # the input is not changed in place


def test_config_defaults_to_a_pseudonym_for_the_user_and_refuses_unknown_values(
    tmp_path: Path,
) -> None:
    config = load_config(write_config(tmp_path / "c.toml"))
    assert config.privacy.policies() == {
        "job_name": FieldPolicy.KEEP,
        "user": FieldPolicy.PSEUDONYMISE,
        "account": FieldPolicy.KEEP,
        "project": FieldPolicy.KEEP,
        "application": FieldPolicy.KEEP,
        "user_defined": FieldPolicy.KEEP,
    }
    assert config.privacy_key_file == config.data_dir / "privacy.key"
    for bad in ('[privacy]\nuser = "hash"\n', '[privacy]\nemail = "drop"\n'):
        with pytest.raises(ConfigError) as caught:
            load_config(write_config(tmp_path / "bad.toml", extra=bad))
        assert any("privacy." in line for line in caught.value.errors), caught.value.errors


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fleetmeter")
    collector_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_the_portal_receives_what_the_site_set_and_the_outbox_holds_no_more(
    tmp_path: Path,
    portal: PortalStub,
    ca_file: Path,
    fake_driver: FakeDriver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    printer = fake_driver.add("127.0.1.1", "SN-P", jobs=len(PEOPLE))
    _with_submitters(printer.jobs)
    privacy = (
        "[privacy]\n"
        'job_name = "pseudonymise"\n'
        'user = "pseudonymise"\n'
        'account = "keep"\n'
        'project = "drop"\n'
        'user_defined = "drop"\n'
    )
    path = write_config(
        tmp_path / "collector.toml", portal_url=portal.url, ca_file=ca_file, extra=privacy
    )
    # First with the portal unreachable: the reports wait in the outbox, which is scanned.
    down = write_config(
        tmp_path / "down.toml", portal_url="https://127.0.0.1:9", ca_file=ca_file, extra=privacy
    )
    assert not poll_once(load_config(down)).ok  # read, queued, not sent
    outbox = (tmp_path / "data").glob("*")
    on_disk = b"".join(p.read_bytes() for p in outbox if p.is_file())
    for plain in (b"Alice", b"alice martin", b"Bridge A", b"cost centre", b"Site plan"):
        assert plain not in on_disk, plain
    assert b"ACC-7" in on_disk  # kept, as configured (and proof the scan sees the outbox)

    result = poll_once(load_config(path))
    assert result.ok, result
    jobs = [job for r in portal.received for rep in r.batch.reports for job in rep.jobs]
    assert len(jobs) == len(PEOPLE)
    key = load_or_create_key(tmp_path / "data" / "privacy.key")
    by_seq = {job.sequence_number: job for job in jobs}
    alice = pseudonym(key, "user", "Alice Martin")
    assert by_seq[1].submitter.user == by_seq[2].submitter.user == alice  # one user, one token
    assert by_seq[3].submitter.user == pseudonym(key, "user", "Bob")
    assert [by_seq[i].submitter.account for i in (1, 2, 3)] == ["ACC-7", "ACC-7", "ACC-9"]
    assert all(by_seq[i].submitter.project is None for i in (1, 2, 3))
    assert all(by_seq[i].submitter.user_defined is None for i in (1, 2, 3))
    assert by_seq[1].submitter.application == "AutoCAD"  # not set: kept
    assert by_seq[1].name == pseudonym(key, "job_name", "Site plan, rev 3.pdf")

    # Customer IT can find Alice's jobs in the portal from her name, with the site's key.
    capsys.readouterr()
    assert cli(["collector", "pseudonym", "--config", str(path), "Alice Martin"]) == 0
    assert capsys.readouterr().out.strip() == alice
    assert cli(["collector", "pseudonym", "--config", str(path), "--field", "account", "X"]) == 0
    assert "does not send it so" in capsys.readouterr().err


def test_a_damaged_key_stops_the_collector_with_one_line(
    tmp_path: Path, portal: PortalStub, ca_file: Path, fake_driver: FakeDriver
) -> None:
    fake_driver.add("127.0.1.1", "SN-P", jobs=1)
    path = write_config(tmp_path / "collector.toml", portal_url=portal.url, ca_file=ca_file)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "privacy.key").write_text("00" * 5)
    assert cli(["collector", "poll-once", "--config", str(path)]) == 1
    assert portal.received == []
    assert os.path.getsize(tmp_path / "data" / "privacy.key") == 10


def test_a_3d_build_name_in_the_status_follows_the_job_name_setting() -> None:
    privacy = Privacy(policies={"job_name": FieldPolicy.DROP}, key=KEY)
    report = DeviceReport.model_validate(
        {
            "kind": "health",
            "collected_at": "2026-01-05T08:00:00Z",
            "device": {"vendor": "Sim", "serial_number": "AM-1", "driver": "additive"},
            "additive": {
                "build_job": {"id": "b2", "name": "Prototype for client X"},
                "recent_builds": [{"id": "b1", "name": "Bracket v2"}],
            },
        }
    )
    out = privacy.report(report)
    assert out.additive is not None and out.additive.build_job is not None
    assert out.additive.build_job.name is None and out.additive.build_job.id == "b2"
    assert [b.name for b in out.additive.recent_builds] == [None]
    keep = Privacy(policies={"job_name": FieldPolicy.KEEP}, key=KEY)
    assert keep.report(report) is report
