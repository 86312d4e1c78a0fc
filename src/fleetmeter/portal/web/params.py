"""Query-string parsing for the list pages (fleet, jobs, alerts): forgiving, never raising.

A page with a bad filter (a mistyped date, a stale cursor) still renders: the bad value is
left out and named in ``errors``, which the page shows with status 400. Links built back
from the parsed values (``query_string``) carry only what was understood.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from fleetmeter.portal.services.paging import Cursor

MAX_TEXT = 256  # the longest text the store keeps in a filterable column


@dataclass
class Params:
    """The request's query string, read one typed field at a time."""

    raw: QueryParams
    errors: list[str] = field(default_factory=list)

    def text(self, key: str) -> str | None:
        value = self.raw.get(key, "").strip()
        if len(value) > MAX_TEXT:
            self.errors.append(f"{key}: longer than {MAX_TEXT} characters")
            return None
        return value or None

    def uuid(self, key: str) -> uuid.UUID | None:
        value = self.text(key)
        if value is None:
            return None
        try:
            return uuid.UUID(value)
        except ValueError:
            self.errors.append(f"{key}: not a valid id")
            return None

    def choice(self, key: str, choices: Collection[str]) -> str | None:
        value = self.text(key)
        if value is None or value in choices:
            return value
        self.errors.append(f"{key}: one of {', '.join(choices)}")
        return None

    def day(self, key: str) -> date | None:
        value = self.text(key)
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.errors.append(f"{key}: a date as YYYY-MM-DD")
            return None

    def number(self, key: str, *, default: int, low: int, high: int) -> int:
        value = self.text(key)
        if value is None:
            return default
        if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
            self.errors.append(f"{key}: a whole number from {low} to {high}")
            return default
        return int(value)

    def cursor(self, key: str) -> Cursor | None:
        value = self.text(key)
        if value is None:
            return None
        try:
            return Cursor.decode(value)
        except ValueError:
            self.errors.append(f"{key}: not a page position; start again from the first page")
            return None


def start_of(day: date | None) -> datetime | None:
    """Midnight UTC starting ``day``."""
    return None if day is None else datetime(day.year, day.month, day.day, tzinfo=UTC)


def end_of(day: date | None) -> datetime | None:
    """Midnight UTC after ``day``: a "to" date includes the whole day."""
    start = start_of(day)
    return None if start is None else start + timedelta(days=1)


def query_string(values: Mapping[str, object], **extra: object) -> str:
    """``a=1&b=x`` of the values that are set (None and "" are left out)."""
    merged = {**values, **extra}
    return urlencode(
        [(key, str(value)) for key, value in merged.items() if value is not None and value != ""]
    )
