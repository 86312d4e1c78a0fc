"""What-if quotes from usage files (JSON and CSV), and the terminal rendering."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from fleetmeter.billing import Period, UsageError
from fleetmeter.billing.whatif import load_usage, quote, render_text

PLANS = Path(__file__).resolve().parents[2] / "docs" / "examples" / "plans"
CAD = PLANS / "cad-studio.toml"

USAGE = {
    "version": 1,
    "period": {"start": "2026-03-01", "end": "2026-04-01", "timezone": "Europe/Berlin"},
    "devices": [
        {
            "device": "SG81A001",
            "meters": {
                "media.bond.area_mm2": 123_456_789,
                "ink.C.total_ul": 40_500,
                # counters no component prices are skipped, not refused
                "ink.C.vendor_ul": 40_500,
                "mono_impressions": 3,
            },
        },
        {"device": "SG82B002", "added_on": "2026-03-10", "meters": {"impressions": 620}},
    ],
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_quote_from_json(tmp_path: Path) -> None:
    s = quote(CAD, write(tmp_path, "u.json", json.dumps(USAGE)))
    # Fees: 49.00 + 49 × 22/31 = 34.77
    # Bond: included 50 + 50 × 22/31 m² = 50 + 35.483871 = 85.483871 m²;
    #       123.456789 − 85.483871 = 37.972918 m² × 0.85 = 32.2769803 → 32.28
    # Cyan: 40.5 mL × 0.12 = 4.86; the other components 0.00
    # Usage 32.28 + 4.86 = 37.14 < 150.00 (some device active all month): top-up 112.86
    # Total 49.00 + 34.77 + 37.14 + 112.86 = 233.77
    assert s.period == Period.month(2026, 3, timezone="Europe/Berlin")
    assert s.lines[-1].amount == Decimal("112.86")
    assert s.total == Decimal("233.77")
    text = render_text(s)
    assert "Bond paper [m²]" in text
    assert "233.77" in text.splitlines()[-1]


def test_quote_from_csv_needs_a_period(tmp_path: Path) -> None:
    csv_text = (
        "device,meter,quantity,added_on,removed_on\n"
        "SG81A001,media.bond.area_mm2,123456789,,\n"
        "SG81A001,ink.C.total_ul,40500,,\n"
        "SG82B002,impressions,620,2026-03-10,\n"
    )
    path = write(tmp_path, "u.csv", csv_text)
    with pytest.raises(UsageError, match="no period"):
        quote(CAD, path)
    s = quote(CAD, path, period=Period.month(2026, 3, timezone="Europe/Berlin"))
    assert s.total == Decimal("233.77")  # as the JSON file above


def test_render_shows_tier_slices(tmp_path: Path) -> None:
    usage = {"devices": [{"device": "R1", "meters": {"impressions": 6200}}]}
    s = quote(
        PLANS / "print-room-tiers.toml",
        write(tmp_path, "u.json", json.dumps(usage)),
        period=Period.month(2026, 3),
    )
    text = render_text(s)
    assert "tier 2: above 1000 up to 5000" in text
    assert "(160.00)" in text
    assert "10.00 (minimum)" in text  # scans: nothing used, minimum charge 10.00


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("u.json", "{", r"u\.json: not valid JSON"),
        (
            "u.json",
            '{"devices": [{"device": "A", "meters": {"toner": 1}}]}',
            "unknown meter 'toner'",
        ),
        (
            "u.json",
            '{"devices": [{"device": "A", "meters": {"impressions": 1.5}}]}',
            r"devices\[0\]\.meters\.impressions: Input should be a valid integer",
        ),
        ("u.json", '{"devices": [], "extra": 1}', "extra: unknown key"),
        ("u.csv", "device,meter\nA,impressions\n", "missing column.*quantity"),
        ("u.csv", "device,meter,quantity\nA,impressions,-3\n", "line 2: quantity '-3'"),
        ("u.csv", "device,meter,quantity\nA,impressions,1\nA,impressions,2\n", "twice"),
        (
            "u.csv",
            "device,meter,quantity,added_on\nA,impressions,1,2026-03-02\nA,jobs,1,\n",
            "differ from A's earlier rows",
        ),
        ("u.txt", "", "a usage file is .json or .csv"),
    ],
)
def test_usage_file_errors_are_one_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        load_usage(write(tmp_path, name, text))
    assert "\n" not in str(caught.value)
