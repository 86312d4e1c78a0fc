"""PDF export: a statement fit to send to a customer (A4, fpdf2, Noto Sans embedded).

Text comes partly from people and devices (customer, contract, device serials), so it is
made safe before it is laid out: Unicode is normalised (NFC), control and format characters
(including bidirectional overrides, which could reorder what a reader sees) are removed,
characters the embedded font has no glyph for (emoji, CJK, Arabic, Hebrew: Noto Sans covers
Latin, Greek and Cyrillic) become ``?``, and overlong values are cut with an ellipsis. No
input can make generation fail.

The font is the default instance (Regular) of the variable Noto Sans that the
``fontpkg-noto-sans`` wheel ships (SIL OFL 1.1, embeddable). A bold instance would need
fontTools to instantiate the variable font, ~6 s per document, so emphasis is done with
size, colour and shaded rows instead. (Faux bold by text render mode is no way out either:
fpdf2 2.8.9 never resets the mode, so every later text would be stroked too.)
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from decimal import Decimal
from functools import cache
from importlib.resources import as_file, files
from pathlib import Path
from zoneinfo import ZoneInfo

from fpdf import FPDF
from fpdf.enums import TableBordersLayout, XPos, YPos
from fpdf.fonts import FontFace, TTFFont

from fleetmeter.billing.exports._common import (
    LineRow,
    StatementHeader,
    adjustment_rows,
    check_currency,
    devices,
    grand_total,
    issued_at,
    line_rows,
    long_date,
    money,
    period_text,
    places,
    summary_columns,
    unit_symbol,
    with_unit,
)
from fleetmeter.billing.reconcile import Adjustment
from fleetmeter.billing.statement import LineKind, Statement
from fleetmeter.billing.usage import PeriodUsage

FONT_PACKAGE = "fontpkg_noto_sans"
FONT_FILE = "NotoSans[wdth,wght].ttf"
_FAMILY = "notosans"
_REPLACEMENT = "?"
_SHADE = (235, 235, 235)
_MUTED = (90, 90, 90)
MAX_FIELD = 200
"""Longest untrusted value shown (characters); longer ones end in an ellipsis."""


@cache
def font_path() -> Path:
    """The TTF on disk (wheels install files, so ``as_file`` does not copy it)."""
    resource = files(FONT_PACKAGE).joinpath("files", FONT_FILE)
    with as_file(resource) as path:
        return Path(path)


class _Pdf(FPDF):
    """A4 portrait, mm, with a footer naming the statement on every page."""

    def __init__(self, footer_text: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.footer_text = footer_text
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(auto=True, margin=18)
        self.add_font(_FAMILY, "", str(font_path()))
        font = self.fonts[_FAMILY]
        assert isinstance(font, TTFFont)
        self.glyphs = frozenset(font.cmap)

    def footer(self) -> None:
        self.set_y(-13)
        self.set_font(_FAMILY, size=7.5)
        self.set_text_color(*_MUTED)
        self.cell(0, 5, self.footer_text, align="L")
        self.set_x(self.l_margin)
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="R")
        self.set_text_color(0)

    def safe(self, value: object, limit: int = MAX_FIELD) -> str:
        """``value`` as text the font can draw and no reader can be misled by."""
        text = unicodedata.normalize("NFC", str(value))
        out: list[str] = []
        for char in text:
            category = unicodedata.category(char)
            if category == "Cc":
                out.append(" ")  # tab, newline, NUL...: a space keeps words apart
            elif category == "Cf":
                continue  # bidi overrides, zero-width joiners: invisible, can mislead
            elif ord(char) in self.glyphs and category not in ("Cs", "Co", "Cn"):
                out.append(char)
            else:
                out.append(_REPLACEMENT)
        cleaned = " ".join("".join(out).split())
        if len(cleaned) > limit:
            cleaned = cleaned[: limit - 1].rstrip() + "…"
        return cleaned

    def safe_lines(self, value: str) -> str:
        """As :meth:`safe`, keeping the line breaks that we put in ourselves."""
        return "\n".join(self.safe(part) for part in value.split("\n"))


def _quantity(value: Decimal | None, unit: str | None) -> str:
    return "" if value is None else with_unit(value, unit, exact=True)


def _change(value: Decimal | None, unit: str | None) -> str:
    if value is None or not value:
        return ""
    return ("+" if value > 0 else "") + with_unit(value, unit, exact=True)


def _line_cells(line: LineRow, currency_places: int) -> list[str]:
    """Item, Quantity, Included, Billable, Unit price, Amount."""
    if line.adjusts is not None:
        # Late usage: changes to the closed period's lines, not quantities of this period.
        amount = money(line.amount or Decimal(0), currency_places, grouped=True)
        return [
            line.description(),
            _change(line.quantity, line.unit),
            "",
            _change(line.billable, line.unit),
            "",
            ("+" if (line.amount or 0) > 0 else "") + amount,
        ]
    if line.kind == "tier":
        assert line.subtotal is not None
        return [
            line.description(),
            _quantity(line.quantity, line.unit),
            "",
            "",
            f"{line.unit_price or 0:,f}",
            f"({money(line.subtotal, currency_places, grouped=True)})",
        ]
    amount = money(line.amount or Decimal(0), currency_places, grouped=True)
    if line.kind == LineKind.FIXED_FEE:
        days = f"{line.active_days}/{line.period_days} days" if line.active_days else ""
        price = money(line.unit_price or Decimal(0), currency_places, grouped=True)
        return [line.description(), days, "", "", price, amount]
    if line.kind == LineKind.MINIMUM_COMMITMENT:
        item = line.description()
        if line.minimum is not None and line.usage_amount is not None:
            commitment = money(line.minimum, currency_places, grouped=True)
            used = money(line.usage_amount, currency_places, grouped=True)
            item += f"\ncommitment {commitment}, usage {used}"
        return [item, "", "", "", "", amount]
    if line.kind != LineKind.USAGE:
        # A kind this renderer does not know (e.g. a dated adjustment): label and amount.
        return [line.description(), _quantity(line.quantity, line.unit), "", "", "", amount]
    item = line.description()
    if line.minimum_applied and line.minimum is not None:
        item += f"\nminimum charge {money(line.minimum, currency_places, grouped=True)} applied"
    if line.unit_price is not None:
        price = f"{line.unit_price:,f}"
        if line.unit:
            price += f"/{unit_symbol(line.unit)}"
    else:
        price = line.tier_mode or ""
    return [
        item,
        _quantity(line.quantity, line.unit),
        _quantity(line.included, line.unit) if line.included else "",
        _quantity(line.billable, line.unit),
        price,
        amount,
    ]


_LINE_HEADINGS = ("Item", "Quantity", "Included", "Billable", "Unit price", "Amount")
_LINE_WIDTHS = (56, 27, 27, 25, 22, 23)  # 180 mm: A4 less 15 mm margins


def _facts(pdf: _Pdf, statement: Statement, header: StatementHeader) -> None:
    pdf.set_font(_FAMILY, size=16)
    pdf.multi_cell(0, 8, pdf.safe(header.reseller), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(_FAMILY, size=12)
    title = "Statement"
    if header.number:
        title += f" {pdf.safe(header.number, 60)}"
    if header.draft:
        title += " (DRAFT: not final)"
    pdf.multi_cell(0, 7, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    pdf.set_font(_FAMILY, size=9.5)
    facts = (
        ("Customer", pdf.safe(header.customer)),
        ("Contract", pdf.safe(header.contract)),
        ("Plan", pdf.safe(statement.plan)),
        ("Period", period_text(statement.period)),
        ("Currency", statement.currency),
        ("Issued", long_date(issued_at(statement, header).date())),
    )
    with pdf.table(
        col_widths=(28, 152),
        first_row_as_headings=False,
        borders_layout=TableBordersLayout.NONE,
        text_align="LEFT",
        line_height=5,
    ) as table:
        for label, value in facts:
            row = table.row()
            row.cell(label, style=FontFace(color=_MUTED))
            row.cell(value)
    pdf.ln(4)


def _lines(pdf: _Pdf, statement: Statement, adjustments: Sequence[Adjustment]) -> None:
    currency_places = places(statement)
    pdf.set_font(_FAMILY, size=8.5)
    align = ("LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT")
    section = FontFace(fill_color=_SHADE)
    with pdf.table(
        col_widths=_LINE_WIDTHS,
        headings_style=FontFace(fill_color=_SHADE),
        borders_layout=TableBordersLayout.HORIZONTAL_LINES,
        line_height=4.6,
        padding=(0.8, 1.2),
    ) as table:

        def add(line: LineRow) -> None:
            cells = _line_cells(line, currency_places)
            cells[0] = pdf.safe_lines(cells[0])
            style = FontFace(color=_MUTED, size_pt=7.5) if line.kind == "tier" else None
            row = table.row()
            for text, side in zip(cells, align, strict=True):
                row.cell(text, align=side, style=style)

        def subtotal(label: str, amount: Decimal, style: FontFace) -> None:
            row = table.row()
            row.cell(label, colspan=5, style=style, align="LEFT")
            row.cell(money(amount, currency_places, grouped=True), style=style, align="RIGHT")

        heading = table.row()
        for title, side in zip(_LINE_HEADINGS, align, strict=True):
            heading.cell(title, align=side)
        for line in line_rows(statement):
            add(line)
        if adjustments:
            subtotal("Subtotal, this period", statement.total, section)
        for adjustment in adjustments:
            row = table.row()
            row.cell(pdf.safe(_late_usage_title(adjustment)), colspan=6, style=section)
            for line in adjustment_rows(adjustment):
                add(line)
            subtotal(
                f"Late usage for {period_text(adjustment.period)}", adjustment.amount, FontFace()
            )
        total = grand_total(statement, adjustments)
        subtotal(f"Total {statement.currency}", total, FontFace(fill_color=_SHADE, size_pt=10))
    pdf.ln(5)


def _late_usage_title(adjustment: Adjustment) -> str:
    text = (
        f"Late usage for {period_text(adjustment.period)}: {adjustment.jobs} "
        f"job{'' if adjustment.jobs == 1 else 's'} that arrived after that statement closed"
    )
    first, last = adjustment.first_completed_at, adjustment.last_completed_at
    if first is not None and last is not None:
        zone = ZoneInfo(adjustment.period.timezone)
        first_day, last_day = first.astimezone(zone).date(), last.astimezone(zone).date()
        span = long_date(first_day)
        if last_day != first_day:
            span += f" – {long_date(last_day)}"
        text += f", completed {span}"
    return text


def _devices(pdf: _Pdf, statement: Statement, usage: PeriodUsage) -> None:
    if not usage.devices:
        return
    columns = summary_columns(usage)
    pdf.set_font(_FAMILY, size=11)
    pdf.cell(0, 7, "Usage by device", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(_FAMILY, size=8)
    rest = 180 - 60 - 16
    widths = (60, 16, *([rest / len(columns)] * len(columns)))
    with pdf.table(
        col_widths=widths,
        headings_style=FontFace(fill_color=_SHADE),
        borders_layout=TableBordersLayout.HORIZONTAL_LINES,
        line_height=4.2,
        padding=(0.6, 1.2),
    ) as table:
        heading = table.row()
        heading.cell("Device", align="LEFT")
        heading.cell("Active days", align="RIGHT")
        for column in columns:
            heading.cell(column.title, align="RIGHT")
        period = statement.period
        for d in devices(usage):
            row = table.row()
            row.cell(pdf.safe(d.device), align="LEFT")
            row.cell(str(period.active_days(d.added_on, d.removed_on)), align="RIGHT")
            for column in columns:
                row.cell(f"{column.value(d):,f}", align="RIGHT")
    pdf.ln(4)


def _footnote(pdf: _Pdf, statement: Statement, adjustments: Sequence[Adjustment]) -> None:
    decimals = places(statement)
    unit = f"{decimals} decimal{'s' if decimals != 1 else ''}"
    tiers = any(line.tiers for line in statement.lines)
    late = (
        "Late usage is usage of an earlier period that arrived after that period's statement "
        "closed: it is priced as the change it makes to that period's statement (its "
        "allowances, tiers and minimums applied) and carried here. "
        if adjustments
        else ""
    )
    text = (
        f"Each line's amount is rounded once, half up (halves away from zero), to the "
        f"currency's minor unit ({statement.currency}: {unit}), from exact quantities and "
        "prices; the total is the sum of the rounded line amounts. "
        + ("Tier subtotals in brackets are shown before that rounding. " if tiers else "")
        + "Quantities in hours or square feet are "
        "shown to 6 decimal places; amounts are computed from the exact values. Allowances "
        "and fixed fees of devices added or removed during the period are prorated by their "
        "active days. The period's days are calendar days in "
        f"{statement.period.timezone}; the last day shown is included. " + late
    ).strip()
    pdf.set_font(_FAMILY, size=7.5)
    pdf.set_text_color(*_MUTED)
    pdf.multi_cell(0, 3.8, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0)


def statement_pdf(
    statement: Statement,
    usage: PeriodUsage,
    *,
    header: StatementHeader,
    adjustments: Sequence[Adjustment] = (),
) -> bytes:
    """The statement as a PDF for the customer (bytes).

    Header (reseller, customer, contract, plan, period in the contract's time zone,
    currency, issue date), the lines with quantities, allowances, unit prices and amounts
    (tiered lines with their slices), late-usage adjustments of earlier periods with their
    changes, the total, a per-device usage summary, and a footnote stating the rounding
    rule. Reconciliation flags are for the reseller and are not shown. The PDF's creation
    date is the statement's, so the same input gives the same bytes.
    """
    check_currency(statement, adjustments)
    footer = f"{header.contract} · {period_text(statement.period)}"
    pdf = _Pdf(footer_text="")
    pdf.footer_text = pdf.safe(footer, 120)
    pdf.set_creation_date(issued_at(statement, header))
    pdf.set_producer("FleetMeter")
    pdf.set_creator("FleetMeter")
    pdf.set_title(pdf.safe(f"Statement {header.number or ''} {header.contract}", 120))
    pdf.set_author(pdf.safe(header.reseller, 120))
    pdf.set_lang("en")
    pdf.add_page()
    _facts(pdf, statement, header)
    _lines(pdf, statement, adjustments)
    _devices(pdf, statement, usage)
    _footnote(pdf, statement, adjustments)
    return bytes(pdf.output())
