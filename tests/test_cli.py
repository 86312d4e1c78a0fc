"""The ``fleetmeter`` command as a user meets it: real subprocesses, one-line errors."""

import json
import socket
import subprocess
import sys
from pathlib import Path

from tests.fixtures_path import shared_fixtures


def fleetmeter(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetmeter", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _assert_one_line_error(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fleetmeter: ")


def test_parse_prints_the_report_of_a_real_capture() -> None:
    capture = shared_fixtures() / "ledm" / "hp_officejet_pro_9022e"
    result = fleetmeter("parse", "--driver", "ledm", str(capture))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["device"]["product_number"] == "226Y0B"
    assert report["usage"]["impressions"] == 875
    assert report["schema_version"].startswith("1.")


def test_parse_of_a_missing_directory_is_a_one_line_error(tmp_path: Path) -> None:
    _assert_one_line_error(fleetmeter("parse", "--driver", "ledm", str(tmp_path / "nope")))


def test_parse_of_a_directory_without_documents_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    _assert_one_line_error(fleetmeter("parse", "--driver", "ledm", str(tmp_path)))


def test_parse_with_an_unknown_driver_is_a_one_line_error(tmp_path: Path) -> None:
    result = fleetmeter("parse", "--driver", "nosuch", str(tmp_path))
    _assert_one_line_error(result)
    assert "nosuch" in result.stderr


def test_probe_of_an_unreachable_device_is_a_one_line_error() -> None:
    # A port on loopback that nothing listens on: bind, learn it, close.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = fleetmeter(
        "probe", "--driver", "ledm", "--port", str(port), "--timeout", "3", "127.0.0.1"
    )
    _assert_one_line_error(result)
    assert "127.0.0.1" in result.stderr


def test_wire_schema_is_json_with_the_batch() -> None:
    result = fleetmeter("wire-schema")
    assert result.returncode == 0
    assert "Batch" in json.loads(result.stdout)["batch"]["title"]


def test_every_program_has_help() -> None:
    for args in (
        ["--help"],
        ["demo", "--help"],
        ["portal", "--help"],
        ["collector", "--help"],
        ["sim", "--help"],
        ["parse", "--help"],
        ["probe", "--help"],
    ):
        result = fleetmeter(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert "usage:" in result.stdout


def test_parse_an_ipp_capture() -> None:
    capture = shared_fixtures() / "ipp" / "get-printer-attributes-epsonxp6000.bin"
    result = fleetmeter("parse", "--driver", "ipp", str(capture))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["device"]["product_name"] == "EPSON XP-6000 Series"
    assert len(report["status"]["cartridges"]) == 5


def test_parse_of_an_ipp_error_capture_is_a_one_line_error() -> None:
    capture = shared_fixtures() / "ipp" / "get-printer-attributes-error-0x0503.bin"
    result = fleetmeter("parse", "--driver", "ipp", str(capture))
    _assert_one_line_error(result)
    assert "0x0503" in result.stderr or "version" in result.stderr.lower()


def test_parse_of_a_missing_ipp_file_is_a_one_line_error(tmp_path: Path) -> None:
    _assert_one_line_error(fleetmeter("parse", "--driver", "ipp", str(tmp_path / "none.bin")))


def test_parse_an_snmp_recording() -> None:
    capture = shared_fixtures() / "snmp" / "ricoh_mpc3002.snmprec"
    result = fleetmeter("parse", "--driver", "snmp", str(capture))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["usage"]["impressions"] == 271871  # prtMarkerLifeCount in the recording
    assert report["device"]["serial_number"] == "W492KB03439"


def test_parse_of_a_file_that_is_no_recording_is_a_one_line_error(tmp_path: Path) -> None:
    bogus = tmp_path / "x.snmprec"
    bogus.write_text("this is not a recording\n")
    _assert_one_line_error(fleetmeter("parse", "--driver", "snmp", str(bogus)))
