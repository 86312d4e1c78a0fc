"""The fleet-polling benchmark runs end to end on a tiny fleet and reports every figure.

No timing is asserted: on a shared CI machine only the presence and sanity of the fields is
stable. The numbers themselves live in docs/performance.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import poll_fleet

pytestmark = pytest.mark.slow

SUMMARY_FIELDS = {
    "devices",
    "baseline_usage_devices_per_s",
    "collector_usage_devices_per_s",
    "usage_ratio",
    "baseline_health_devices_per_s",
    "collector_health_devices_per_s",
    "health_ratio",
    "collector_usage_peak_rss_mb",
    "collector_health_peak_rss_mb",
    "usage_bytes_per_device",
    "health_bytes_per_device",
    "usage_wall_s",
    "health_wall_s",
    "baseline_usage_wall_s",
    "baseline_health_wall_s",
}


def test_smoke_run_reports_every_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = poll_fleet.main(
        ["--devices", "20", "--subnet", "127.22.0.0/24", "--results-dir", str(tmp_path)]
    )
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:] + out.out[-2000:]
    (path,) = tmp_path.glob("poll_fleet-20-*.json")
    result = json.loads(path.read_text())

    assert result["problems"] == []
    summary = result["summary"]
    assert set(summary) >= SUMMARY_FIELDS
    assert summary["devices"] == 20
    for name in SUMMARY_FIELDS - {"devices"}:
        assert isinstance(summary[name], int | float) and summary[name] > 0, name
    assert result["upload"]["usage"]["reports"]["usage"] >= 20
    assert result["upload"]["health"]["reports"]["health"] >= 20
    assert result["collector"]["usage"]["devices_found"] == 20
    assert set(result["simulator"]["cpu_share_of_one_core"]) == {
        "baseline_usage",
        "collector_usage",
        "baseline_health",
        "collector_health",
    }
    assert "usage" in out.out and "health" in out.out  # the table
