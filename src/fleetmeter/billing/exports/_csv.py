"""CSV exports: statement line items, per-device usage, reconciliation flags (one file each).

Text cells that come from people or devices (device serials, plan and customer names, flag
messages) are guarded against CSV/formula injection (OWASP "CSV Injection"): a cell that
starts with ``= + - @``, a tab, a carriage return or a line feed (or their full-width forms,
which some spreadsheet locales also evaluate) gets a leading apostrophe, so a spreadsheet
shows it as text instead of running it. Numbers are written by us, never guarded, so a
negative amount stays ``-5.00``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from fleetmeter.billing.exports._common import (
    LineRow,
    base_unit,
    check_currency,
    devices,
    line_rows,
    plain,
)
from fleetmeter.billing.reconcile import Adjustment, Flag
from fleetmeter.billing.statement import Statement
from fleetmeter.billing.usage import PeriodUsage

_FORMULA_STARTS = frozenset("=+-@\t\r\n" + "\uff1d\uff0b\uff0d\uff20")

LINE_COLUMNS = (
    "period_start",
    "period_end",
    "timezone",
    "currency",
    "kind",
    "adjusts_period_start",
    "adjusts_period_end",
    "label",
    "device",
    "meter",
    "filter",
    "unit",
    "quantity",
    "included",
    "billable",
    "unit_price",
    "tier_mode",
    "tier",
    "tier_above",
    "tier_up_to",
    "minimum",
    "minimum_applied",
    "active_days",
    "period_days",
    "usage_amount",
    "subtotal",
    "amount",
)
"""Columns of :func:`statement_lines_csv`, in order."""

DEVICE_COLUMNS = ("device", "meter", "quantity", "unit", "added_on", "removed_on")
"""Columns of :func:`device_usage_csv`: the what-if usage CSV format plus ``unit``."""

FLAG_COLUMNS = (
    "device",
    "kind",
    "size",
    "unit",
    "meter",
    "counters",
    "jobs",
    "difference",
    "since",
    "until",
    "placement",
    "other_device",
    "period_start",
    "period_end",
    "message",
)
"""Columns of :func:`reconciliation_csv`."""


def safe_text(value: str | None) -> str:
    """``value`` made inert for a spreadsheet: a leading apostrophe if it could be a formula."""
    if not value:
        return ""
    return "'" + value if value[0] in _FORMULA_STARTS else value


def _write(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    out = io.StringIO()
    # RFC 4180: CRLF line ends, fields quoted only when they need it.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _number(value: Decimal | int | None) -> str:
    if value is None:
        return ""
    return plain(value) if isinstance(value, Decimal) else str(value)


def _instant(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _line(statement: Statement, row: LineRow) -> list[str]:
    period = statement.period
    return [
        period.start.isoformat(),
        period.end.isoformat(),
        period.timezone,
        statement.currency,
        row.kind,
        row.adjusts.start.isoformat() if row.adjusts else "",
        row.adjusts.end.isoformat() if row.adjusts else "",
        safe_text(row.label),
        safe_text(row.device),
        safe_text(row.meter),
        safe_text(row.filter),
        safe_text(row.unit),
        _number(row.quantity),
        _number(row.included),
        _number(row.billable),
        _number(row.unit_price),
        row.tier_mode or "",
        _number(row.tier + 1 if row.tier is not None else None),
        _number(row.tier_above),
        _number(row.tier_up_to),
        _number(row.minimum),
        "true" if row.minimum_applied else ("false" if row.minimum is not None else ""),
        _number(row.active_days),
        _number(row.period_days),
        _number(row.usage_amount),
        _number(row.subtotal),
        _number(row.amount),
    ]


def statement_lines_csv(statement: Statement, *, adjustments: Sequence[Adjustment] = ()) -> str:
    """The statement's line items: one row per line and per tier slice, then one row per line
    of each late-usage adjustment (``adjusts_period_start``/``_end`` name the closed period
    it changes; its ``quantity``, ``billable`` and ``amount`` are changes).

    ``amount`` is set on line and adjustment rows only (tier rows carry the unrounded
    ``subtotal``), so the ``amount`` column adds up to the total owed; there is no total
    row. Period ends are exclusive, as in :class:`~fleetmeter.billing.Period`. ``tier``
    counts from 1.
    """
    check_currency(statement, adjustments)
    return _write(LINE_COLUMNS, (_line(statement, r) for r in line_rows(statement, adjustments)))


def device_usage_csv(usage: PeriodUsage) -> str:
    """Per-device meter totals in base units, one row per device and meter.

    The format is the what-if usage CSV (docs/billing.md, "Usage files") with a ``unit``
    column added, so the file can be quoted under another plan as it is. A device that used
    nothing gets one ``jobs`` row of 0, so that it (and its fixed fee) is not lost.
    """
    rows: list[list[str]] = []
    for d in devices(usage):
        added = d.added_on.isoformat() if d.added_on else ""
        removed = d.removed_on.isoformat() if d.removed_on else ""
        meters = sorted(d.meters.items()) or [("jobs", 0)]
        for key, quantity in meters:
            rows.append(
                [safe_text(d.device), safe_text(key), str(quantity), base_unit(key), added, removed]
            )
    return _write(DEVICE_COLUMNS, rows)


def reconciliation_csv(flags: Sequence[Flag]) -> str:
    """Reconciliation discrepancies, one row per flag, in the order given (sizes and counts
    are whole numbers in ``unit``; instants are UTC)."""
    rows = (
        [
            safe_text(f.device),
            str(f.kind),
            str(f.size),
            safe_text(f.unit),
            safe_text(f.meter),
            _number(f.counters),
            _number(f.jobs),
            _number(f.difference),
            _instant(f.since),
            _instant(f.until),
            safe_text(f.placement),
            safe_text(f.other_device),
            f.period.start.isoformat() if f.period else "",
            f.period.end.isoformat() if f.period else "",
            safe_text(f.message),
        ]
        for f in flags
    )
    return _write(FLAG_COLUMNS, rows)
