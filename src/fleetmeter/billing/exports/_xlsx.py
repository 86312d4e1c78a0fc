"""XLSX export: one workbook with the sheets "Statement", "Devices" and "Reconciliation".

Every text cell is written with ``write_string`` and the workbook refuses to turn strings
into formulas, URLs or numbers, so a device named ``=HYPERLINK(...)`` stays text (OWASP
"CSV Injection" applies to spreadsheets too). Numbers are real numbers (Excel has only
binary floating point, so an amount is exact to the cent but a long quantity may show
rounded after 15 digits: the CSV and JSON carry exact decimals); money cells are formatted
with the currency's minor-unit places.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import xlsxwriter

from fleetmeter.billing.exports._common import (
    LineRow,
    StatementHeader,
    check_currency,
    devices,
    grand_total,
    issued_at,
    line_rows,
    meter_keys,
    period_text,
    places,
)
from fleetmeter.billing.reconcile import Adjustment, Flag
from fleetmeter.billing.statement import Statement
from fleetmeter.billing.usage import PeriodUsage

_LINE_HEADINGS = (
    ("Item", 44),
    ("Kind", 18),
    ("Adjusts period", 24),
    ("Device", 18),
    ("Meter", 14),
    ("Filter", 22),
    ("Unit", 8),
    ("Quantity", 14),
    ("Included", 14),
    ("Billable", 14),
    ("Unit price", 12),
    ("Tier mode", 11),
    ("Minimum", 12),
    ("Minimum applied", 9),
    ("Active days", 8),
    ("Period days", 8),
    ("Tier subtotal", 14),
    ("Amount", 14),
)

Format = Any  # xlsxwriter.format.Format: the package ships no type information


class _Sheet:
    """A worksheet with typed writers: strings are always strings, never formulas."""

    def __init__(self, worksheet: Any, formats: dict[str, Format]) -> None:
        self.ws = worksheet
        self.f = formats

    def text(self, row: int, col: int, value: str | None, fmt: str | None = None) -> None:
        if value:
            self.ws.write_string(row, col, value, self.f.get(fmt or ""))

    def number(
        self, row: int, col: int, value: Decimal | int | None, fmt: str | None = None
    ) -> None:
        if value is not None:
            self.ws.write_number(row, col, float(value), self.f.get(fmt or ""))

    def day(self, row: int, col: int, value: date | None) -> None:
        if value is not None:
            self.ws.write_datetime(row, col, value, self.f["date"])

    def headings(self, row: int, headings: Sequence[tuple[str, float]]) -> None:
        for col, (title, width) in enumerate(headings):
            self.ws.write_string(row, col, title, self.f["heading"])
            self.ws.set_column(col, col, width)


def _formats(book: Any, places: int) -> dict[str, Format]:
    money = "#,##0" + ("." + "0" * places if places else "")
    return {
        "title": book.add_format({"bold": True, "font_size": 14}),
        "label": book.add_format({"bold": True}),
        "heading": book.add_format({"bold": True, "bottom": 1, "text_wrap": True}),
        "money": book.add_format({"num_format": money}),
        "total": book.add_format({"num_format": money, "bold": True, "top": 1}),
        "total_label": book.add_format({"bold": True, "top": 1}),
        "date": book.add_format({"num_format": "yyyy-mm-dd", "align": "left"}),
        "tier": book.add_format({"indent": 1, "italic": True}),
    }


def _statement_sheet(
    sheet: _Sheet,
    statement: Statement,
    header: StatementHeader | None,
    adjustments: Sequence[Adjustment],
) -> None:
    title = "Statement" + (" (DRAFT)" if header is not None and header.draft else "")
    sheet.text(0, 0, title, "title")
    facts: list[tuple[str, str]] = []
    if header is not None:
        facts += [
            ("Reseller", header.reseller),
            ("Customer", header.customer),
            ("Contract", header.contract),
        ]
        if header.number:
            facts.append(("Statement number", header.number))
    facts += [
        ("Plan", statement.plan),
        ("Period", period_text(statement.period)),
        ("Currency", statement.currency),
    ]
    row = 1
    for label, value in facts:
        sheet.text(row, 0, label, "label")
        sheet.text(row, 1, value)
        row += 1
    sheet.text(row, 0, "Issued", "label")
    sheet.day(row, 1, issued_at(statement, header).date())
    row += 1
    total = grand_total(statement, adjustments)
    if adjustments:
        sheet.text(row, 0, "This period", "label")
        sheet.number(row, 1, statement.total, "money")
        row += 1
        for adjustment in adjustments:
            sheet.text(row, 0, f"Late usage, {period_text(adjustment.period)}", "label")
            sheet.number(row, 1, adjustment.amount, "money")
            row += 1
    sheet.text(row, 0, "Total", "label")
    sheet.number(row, 1, total, "money")
    row += 2

    sheet.headings(row, _LINE_HEADINGS)
    sheet.ws.freeze_panes(row + 1, 1)
    row += 1
    for line in line_rows(statement, adjustments):
        _line(sheet, row, line)
        row += 1
    sheet.text(row, 0, f"Total {statement.currency}", "total_label")
    for col in range(1, len(_LINE_HEADINGS) - 1):
        sheet.ws.write_blank(row, col, None, sheet.f["total_label"])
    sheet.number(row, len(_LINE_HEADINGS) - 1, total, "total")


def _line(sheet: _Sheet, row: int, line: LineRow) -> None:
    tier = line.kind == "tier"
    sheet.text(row, 0, line.description(), "tier" if tier else None)
    sheet.text(row, 1, line.kind)
    sheet.text(row, 2, period_text(line.adjusts) if line.adjusts else None)
    sheet.text(row, 3, line.device)
    sheet.text(row, 4, line.meter)
    sheet.text(row, 5, line.filter)
    sheet.text(row, 6, line.unit)
    sheet.number(row, 7, line.quantity)
    sheet.number(row, 8, line.included)
    sheet.number(row, 9, line.billable)
    sheet.number(row, 10, line.unit_price)
    sheet.text(row, 11, line.tier_mode)
    sheet.number(row, 12, line.minimum, "money")
    if line.minimum is not None:
        sheet.text(row, 13, "yes" if line.minimum_applied else "no")
    sheet.number(row, 14, line.active_days)
    sheet.number(row, 15, line.period_days)
    sheet.number(row, 16, line.subtotal)
    sheet.number(row, 17, line.amount, "money")


def _devices_sheet(sheet: _Sheet, statement: Statement, usage: PeriodUsage) -> None:
    keys = meter_keys(usage)
    headings = [
        ("Device", 22),
        ("Added on", 11),
        ("Removed on", 11),
        ("Active days", 8),
        ("Jobs outside period", 10),
    ] + [(key, max(12, len(key) + 2)) for key in keys]
    sheet.headings(0, headings)
    sheet.ws.freeze_panes(1, 1)
    period = statement.period
    for row, d in enumerate(devices(usage), start=1):
        sheet.text(row, 0, d.device)
        sheet.day(row, 1, d.added_on)
        sheet.day(row, 2, d.removed_on)
        sheet.number(row, 3, period.active_days(d.added_on, d.removed_on))
        sheet.number(row, 4, d.jobs_outside)
        for col, key in enumerate(keys, start=5):
            sheet.number(row, col, d.meters.get(key, 0))
    sheet.ws.autofilter(0, 0, max(1, len(usage.devices)), len(headings) - 1)


_FLAG_HEADINGS = (
    ("Device", 22),
    ("Kind", 18),
    ("Size", 12),
    ("Unit", 10),
    ("Meter", 22),
    ("Counters", 12),
    ("Jobs", 12),
    ("Difference", 12),
    ("Since (UTC)", 20),
    ("Until (UTC)", 20),
    ("Placement", 16),
    ("Other device", 16),
    ("Period", 30),
    ("Message", 80),
)


def _instant(value: datetime | None) -> str | None:
    # Text, not an Excel date: Excel dates have no time zone, and these are UTC instants.
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value is not None else None


def _reconciliation_sheet(sheet: _Sheet, flags: Sequence[Flag] | None) -> None:
    sheet.headings(0, _FLAG_HEADINGS)
    sheet.ws.freeze_panes(1, 1)
    if flags is None:
        sheet.text(1, 0, "Not reconciled.")
        return
    if not flags:
        sheet.text(1, 0, "No discrepancies found.")
        return
    for row, f in enumerate(flags, start=1):
        sheet.text(row, 0, f.device)
        sheet.text(row, 1, str(f.kind))
        sheet.number(row, 2, f.size)
        sheet.text(row, 3, f.unit)
        sheet.text(row, 4, f.meter)
        sheet.number(row, 5, f.counters)
        sheet.number(row, 6, f.jobs)
        sheet.number(row, 7, f.difference)
        sheet.text(row, 8, _instant(f.since))
        sheet.text(row, 9, _instant(f.until))
        sheet.text(row, 10, f.placement)
        sheet.text(row, 11, f.other_device)
        sheet.text(row, 12, period_text(f.period) if f.period else None)
        sheet.text(row, 13, f.message)
    sheet.ws.autofilter(0, 0, len(flags), len(_FLAG_HEADINGS) - 1)


def statement_xlsx(
    statement: Statement,
    usage: PeriodUsage,
    *,
    header: StatementHeader | None = None,
    adjustments: Sequence[Adjustment] = (),
    flags: Sequence[Flag] | None = None,
) -> bytes:
    """The statement as an XLSX workbook (bytes).

    Sheets: "Statement" (header facts, then one row per line and per tier slice, one row
    per line of each late-usage adjustment, and the total), "Devices" (one row per device:
    active days and every meter total in base units) and "Reconciliation" (one row per
    flag; "Not reconciled." when ``flags`` is None). The
    workbook's creation date is the statement's (:class:`StatementHeader` ``issued_at``,
    else the period's end), so the same statement gives the same bytes.
    """
    check_currency(statement, adjustments)  # before the workbook exists: nothing half-made
    out = io.BytesIO()
    book = xlsxwriter.Workbook(
        out,
        {
            "in_memory": True,
            # Untrusted text must never become a formula, a link or a number.
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
        },
    )
    created = issued_at(statement, header).replace(tzinfo=None)  # core.xml writes it as UTC
    # No untrusted text in the document properties: XlsxWriter does not escape control
    # characters there, and one would make the file unreadable.
    book.set_properties({"title": "Statement", "created": created})
    formats = _formats(book, places(statement))
    statement_sheet = _Sheet(book.add_worksheet("Statement"), formats)
    _statement_sheet(statement_sheet, statement, header, adjustments)
    _devices_sheet(_Sheet(book.add_worksheet("Devices"), formats), statement, usage)
    _reconciliation_sheet(_Sheet(book.add_worksheet("Reconciliation"), formats), flags)
    book.close()
    return out.getvalue()
