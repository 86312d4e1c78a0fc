"""Billing periods: calendar days in the customer's time zone, and a device's active days.

A period is ``[start, end)`` in local dates. A job belongs to the period in which its
``completed_at`` falls on the customer's calendar, so a job at 23:30 UTC on 31 March is an
April job for a customer in Berlin.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from fleetmeter.billing.plan import BillingPeriod

_MONTHS = {BillingPeriod.MONTHLY: 1, BillingPeriod.QUARTERLY: 3, BillingPeriod.YEARLY: 12}


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


class Period(BaseModel):
    """``[start, end)`` in local dates of ``timezone`` (an IANA name)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: date
    end: date
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone name") from exc
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self

    @classmethod
    def month(cls, year: int, month: int, *, timezone: str = "UTC") -> Period:
        start = date(year, month, 1)
        return cls(start=start, end=_add_months(start, 1), timezone=timezone)

    @classmethod
    def containing(
        cls, day: date, billing_period: BillingPeriod, *, timezone: str = "UTC"
    ) -> Period:
        """The calendar month, quarter or year that contains ``day``."""
        months = _MONTHS[billing_period]
        first_month = (day.month - 1) // months * months + 1
        start = date(day.year, first_month, 1)
        return cls(start=start, end=_add_months(start, months), timezone=timezone)

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def local_date(self, instant: datetime) -> date:
        """The customer's calendar date of an aware instant."""
        return instant.astimezone(ZoneInfo(self.timezone)).date()

    def active_days(self, added_on: date | None, removed_on: date | None) -> int:
        """Days of this period in ``[added_on, removed_on)`` (``None``: open on that side)."""
        first = max(self.start, added_on) if added_on is not None else self.start
        stop = min(self.end, removed_on) if removed_on is not None else self.end
        return max(0, (stop - first).days)

    def active_dates(self, added_on: date | None, removed_on: date | None) -> set[int]:
        """Ordinals of the active days, for the union over a contract's devices."""
        first = max(self.start, added_on) if added_on is not None else self.start
        stop = min(self.end, removed_on) if removed_on is not None else self.end
        return set(range(first.toordinal(), stop.toordinal()))

    def __str__(self) -> str:
        return f"{self.start}..{self.end} ({self.timezone})"
