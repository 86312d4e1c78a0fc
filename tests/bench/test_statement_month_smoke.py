"""The statement benchmark runs end to end on a tiny contract and agrees with itself.

No timing is asserted (docs/performance.md holds the figures); what is checked is that every
step ran, reported its figures, and that the portal's generator, billing's own Python path
and rating the plain SQL aggregate all give the same total.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import statement_month

pytestmark = pytest.mark.slow


def test_smoke_run_reports_every_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = statement_month.main(
        [
            *("--devices", "3", "--jobs", "600", "--backends", "sqlite"),
            *("--skip", "regenerate", "--results-dir", str(tmp_path)),
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:] + out.out[-3000:]
    (path,) = tmp_path.glob("statement_month-3-600-*.json")
    result = json.loads(path.read_text())

    assert result["problems"] == []
    sqlite = result["backends"]["sqlite"]
    assert 0 < sqlite["jobs_in_period"] < 600  # ~2 % fall just outside the month
    assert sqlite["baseline"]["rows"] == sqlite["jobs_in_period"]
    totals = {sqlite[step]["total"] for step in ("rate", "reference", "generate")}
    assert len(totals) == 1, totals
    for step in ("baseline", "reference", "generate", "rate", "exports"):
        assert sqlite[step]["seconds"] > 0, step
        assert sqlite[step]["peak_rss_mb"] > 0, step
    assert sqlite["generate"]["jobs_billed"] == sqlite["jobs_in_period"]
    assert sqlite["exports"]["pdf_bytes"] > 0
    assert "generate_over_baseline" in sqlite
    assert "baseline" in out.out  # the table
