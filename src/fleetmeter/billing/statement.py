"""What rating produces: a statement of lines with Decimal amounts that add up to the total.

Money values (``amount``, ``total``, ``minimum``) have exactly the currency's minor-unit
decimals. Quantities are in the component's display unit and exact, except where the unit
gives no finite decimal (hours, ft²): those are shown to 6 places and are display only, the
amount having been computed from the exact value (docs/billing.md, "Rounding").
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, model_validator

from fleetmeter.billing.period import Period
from fleetmeter.billing.plan import TierMode


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LineKind(StrEnum):
    FIXED_FEE = "fixed_fee"
    """One per device active in the period, prorated by its active days."""
    USAGE = "usage"
    """One per plan component, in plan order, on the usage of all devices pooled."""
    MINIMUM_COMMITMENT = "minimum_commitment"
    """The top-up when the usage lines add up to less than the commitment."""


class TierSlice(_Frozen):
    """The part of a line's billable quantity priced at one tier's price."""

    tier: NonNegativeInt = Field(description="Index of the tier in the plan.")
    above: Decimal = Field(description="Lower bound (exclusive), display units.")
    up_to: Decimal | None = Field(description="Upper bound (inclusive); None: open-ended.")
    quantity: Decimal
    unit_price: Decimal
    subtotal: Decimal = Field(description="quantity × unit_price, before the line is rounded.")


class StatementLine(_Frozen):
    kind: LineKind
    label: str = Field(description="Component name, 'Fixed fee' or 'Minimum commitment'.")
    device: str | None = Field(default=None, description="Fixed-fee lines: the device.")
    meter: str | None = None
    filter: str = Field(default="", description="e.g. 'media_type=bond'; '' for the whole meter.")
    unit: str | None = Field(default=None, description="Display unit of the quantities.")
    quantity: Decimal | None = None
    included: Decimal | None = Field(default=None, description="Prorated allowance, pooled.")
    billable: Decimal | None = Field(default=None, description="quantity − included, ≥ 0.")
    unit_price: Decimal | None = Field(default=None, description="Flat price or fixed fee.")
    tier_mode: TierMode | None = None
    tiers: tuple[TierSlice, ...] = ()
    active_days: NonNegativeInt | None = Field(
        default=None, description="Days the proration counted (device, or contract for minimums)."
    )
    period_days: NonNegativeInt | None = None
    minimum: Decimal | None = Field(
        default=None, description="Prorated minimum charge or commitment that was checked."
    )
    minimum_applied: bool = False
    usage_amount: Decimal | None = Field(
        default=None, description="Commitment line: what the usage lines added up to."
    )
    amount: Decimal


class Statement(_Frozen):
    """A rated period. ``total`` is the exact sum of the line amounts."""

    plan: str
    currency: str
    period: Period
    lines: tuple[StatementLine, ...]
    total: Decimal

    @model_validator(mode="after")
    def _adds_up(self) -> Statement:
        if Fraction(self.total) != sum((Fraction(line.amount) for line in self.lines), Fraction()):
            raise ValueError(f"total {self.total} is not the sum of the line amounts")
        return self
