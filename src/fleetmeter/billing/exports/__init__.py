"""Statement exports: CSV, XLSX and PDF renderings of a rated statement (pure: bytes out).

Each renderer takes a :class:`~fleetmeter.billing.Statement`, the period's
:class:`~fleetmeter.billing.PeriodUsage` and, where it shows them, a
:class:`StatementHeader` (reseller, customer, contract), the late-usage adjustments the
statement carries and the reconciliation flags (:mod:`fleetmeter.billing.reconcile`). Nothing
here reads a clock or a database: the same input gives the same output, byte for byte.
docs/billing.md ("Exports") describes every column and sheet.
"""

from fleetmeter.billing.exports._common import StatementHeader, grand_total
from fleetmeter.billing.exports._csv import (
    DEVICE_COLUMNS,
    FLAG_COLUMNS,
    LINE_COLUMNS,
    device_usage_csv,
    reconciliation_csv,
    safe_text,
    statement_lines_csv,
)
from fleetmeter.billing.exports._pdf import statement_pdf
from fleetmeter.billing.exports._xlsx import statement_xlsx

__all__ = [
    "DEVICE_COLUMNS",
    "FLAG_COLUMNS",
    "LINE_COLUMNS",
    "StatementHeader",
    "device_usage_csv",
    "grand_total",
    "reconciliation_csv",
    "safe_text",
    "statement_lines_csv",
    "statement_pdf",
    "statement_xlsx",
]
