"""Price plans: the TOML file format (docs/billing.md) parsed into validated pydantic models.

Numbers are read as :class:`~decimal.Decimal` (``tomllib``'s ``parse_float=Decimal``), so
``unit_price = 0.1`` means exactly one tenth, as it would written ``"0.1"``. Every validation
error becomes one :class:`PlanError` line naming the file and the key path, e.g.
``cad.toml: components[1].tiers[2].up_to: must be greater than the tier before (1000)``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fleetmeter.billing import meters as mk
from fleetmeter.billing.currency import MINOR_UNITS
from fleetmeter.billing.errors import PlanError, key_path
from fleetmeter.billing.meters import DEFAULT_UNIT, METER_ALIASES, UNITS, Meter

NonNegativeDecimal = Annotated[Decimal, Field(ge=0)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
FilterValue = Annotated[str, Field(min_length=1, max_length=256)]


class BillingPeriod(StrEnum):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    YEARLY = "yearly"


class TierMode(StrEnum):
    GRADUATED = "graduated"
    """Each slice of the quantity is priced at its own tier's price."""
    VOLUME = "volume"
    """The whole quantity is priced at the price of the tier it reaches."""


class _KeyError(ValueError):
    """A semantic check failed at ``key`` below the model that raised it (for the error path)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class _PlanModel(BaseModel):
    # A misspelt key (``unit_pric``) must be an error, not a silently free component.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(_PlanModel):
    """One price step. ``up_to`` is inclusive, in the component's display unit."""

    up_to: NonNegativeDecimal | None = Field(
        default=None, description="Upper bound of this tier (inclusive); omitted on the last."
    )
    unit_price: NonNegativeDecimal = Field(description="Price per display unit in this tier.")


class Component(_PlanModel):
    """Prices one meter, optionally narrowed by one filter, in one display unit."""

    name: Name = Field(description="Shown on the statement line; unique within the plan.")
    meter: Meter
    media_type: FilterValue | None = Field(default=None, description="media_area only.")
    application_category: FilterValue | None = Field(default=None, description="media_area only.")
    color: FilterValue | None = Field(default=None, description="ink only; omitted: all colours.")
    job_kind: Literal["print", "scan", "copy"] | None = Field(
        default=None, description="jobs (print/scan/copy) or scan_area (scan/copy) only."
    )
    material: FilterValue | None = Field(
        default=None, description="material_3d and material_3d_volume only."
    )
    unit: str | None = Field(
        default=None, description="Display unit; the meter's default if omitted."
    )
    included: NonNegativeDecimal = Field(
        default=Decimal(0), description="Allowance per device per period, in display units."
    )
    unit_price: NonNegativeDecimal | None = None
    tier_mode: TierMode | None = None
    tiers: tuple[Tier, ...] | None = None
    minimum_charge: NonNegativeDecimal | None = Field(
        default=None, description="Least this line costs per period (contract-level)."
    )

    @field_validator("meter", mode="before")
    @classmethod
    def _alias(cls, value: Any) -> Any:
        return METER_ALIASES.get(value, value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> Component:
        self._check_filters()
        if self.unit is not None and self.unit not in UNITS[self.meter]:
            choices = ", ".join(UNITS[self.meter])
            raise _KeyError("unit", f"{self.unit!r} is not a unit of {self.meter}: use {choices}")
        if (self.unit_price is None) == (self.tiers is None):
            raise _KeyError("unit_price", "give either unit_price or tiers (exactly one)")
        if self.tiers is None:
            if self.tier_mode is not None:
                raise _KeyError("tier_mode", "only a component with tiers takes tier_mode")
            return self
        if self.tier_mode is None:
            raise _KeyError("tier_mode", "required with tiers: 'graduated' or 'volume'")
        self._check_tiers(self.tiers)
        return self

    def _check_filters(self) -> None:
        allowed = {
            "media_type": {Meter.MEDIA_AREA},
            "application_category": {Meter.MEDIA_AREA},
            "color": {Meter.INK},
            "job_kind": {Meter.JOBS, Meter.SCAN_AREA},
            "material": {Meter.MATERIAL_3D, Meter.MATERIAL_3D_VOLUME},
        }
        for key, meters in allowed.items():
            if getattr(self, key) is not None and self.meter not in meters:
                takers = " or ".join(sorted(meters))
                raise _KeyError(key, f"only components with meter {takers} take {key}")
        if self.media_type is not None and self.application_category is not None:
            raise _KeyError("application_category", "give media_type or application_category")
        if self.meter is Meter.SCAN_AREA and self.job_kind == "print":
            raise _KeyError("job_kind", "scan_area counts scan and copy jobs only")

    @staticmethod
    def _check_tiers(tiers: tuple[Tier, ...]) -> None:
        if not tiers:
            raise _KeyError("tiers", "give at least one tier")
        last = len(tiers) - 1
        previous: Decimal | None = None
        for i, tier in enumerate(tiers):
            if i == last:
                if tier.up_to is not None:
                    raise _KeyError(f"tiers[{i}].up_to", "the last tier is open-ended: omit up_to")
                continue
            if tier.up_to is None:
                raise _KeyError(f"tiers[{i}].up_to", "required on every tier but the last")
            if tier.up_to <= (previous if previous is not None else 0):
                bound = "the tier before" if previous is not None else "zero"
                shown = f" ({previous})" if previous is not None else ""
                raise _KeyError(f"tiers[{i}].up_to", f"must be greater than {bound}{shown}")
            previous = tier.up_to

    @property
    def display_unit(self) -> str:
        return self.unit if self.unit is not None else DEFAULT_UNIT[self.meter]

    @property
    def factor(self) -> Fraction:
        """Base units (mm², µL, page, job, g, s) in one display unit."""
        return UNITS[self.meter][self.display_unit]

    @property
    def filter_label(self) -> str:
        """The filter as ``key=value``, or ``""`` when the component prices the whole meter."""
        for key in ("media_type", "application_category", "color", "job_kind", "material"):
            value = getattr(self, key)
            if value is not None:
                return f"{key}={value}"
        return ""

    def meter_keys(self) -> tuple[str, ...]:
        """The per-device meter keys whose sum this component prices (base units)."""
        m = self.meter
        if m is Meter.MEDIA_AREA:
            if self.media_type is not None:
                return (mk.media_key(self.media_type),)
            if self.application_category is not None:
                return (mk.category_key(self.application_category),)
            return (mk.TOTAL_MEDIA_AREA,)
        if m is Meter.INK:
            return (mk.ink_key(self.color),) if self.color is not None else (mk.TOTAL_INK,)
        if m is Meter.IMPRESSIONS:
            return (mk.IMPRESSIONS,)
        if m is Meter.SCAN_AREA:
            by_kind = {"scan": (mk.SCANNED_AREA,), "copy": (mk.COPIED_AREA,)}
            return by_kind.get(self.job_kind or "", (mk.SCANNED_AREA, mk.COPIED_AREA))
        if m is Meter.JOBS:
            jobs = {"print": mk.PRINT_JOBS, "scan": mk.SCAN_JOBS, "copy": mk.COPY_JOBS}
            return (jobs.get(self.job_kind or "", mk.JOBS),)
        if m is Meter.MATERIAL_3D:
            if self.material is not None:
                return (mk.material_key(self.material),)
            return (mk.MATERIAL,)
        if m is Meter.MATERIAL_3D_VOLUME:
            if self.material is not None:
                return (mk.material_volume_key(self.material),)
            return (mk.MATERIAL_VOLUME,)
        if m is Meter.BUILDS:
            return (mk.BUILDS,)
        if m is Meter.BUILD_VOLUME:
            return (mk.BUILD_VOLUME,)
        return (mk.BUILD_TIME,)


class PricePlan(_PlanModel):
    """A price plan: currency, billing period, fixed fee, minimum commitment, components."""

    version: Literal[1] = Field(default=1, description="Plan file format version.")
    name: Name
    description: Annotated[str, Field(max_length=2000)] | None = None
    currency: str = Field(description="ISO 4217 code, e.g. 'EUR'.")
    period: BillingPeriod = BillingPeriod.MONTHLY
    fixed_fee: NonNegativeDecimal | None = Field(
        default=None, description="Per device per period, prorated by the device's active days."
    )
    minimum_commitment: NonNegativeDecimal | None = Field(
        default=None, description="Least the usage lines add up to per period (contract-level)."
    )
    components: tuple[Component, ...] = ()

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if value not in MINOR_UNITS:
            raise ValueError(f"{value!r} is not an ISO 4217 currency code (e.g. 'EUR', 'USD')")
        return value

    @model_validator(mode="after")
    def _check(self) -> PricePlan:
        places = MINOR_UNITS[self.currency]
        money = [("fixed_fee", self.fixed_fee), ("minimum_commitment", self.minimum_commitment)]
        money += [
            (f"components[{i}].minimum_charge", c.minimum_charge)
            for i, c in enumerate(self.components)
        ]
        for key, value in money:
            if value is not None and (Fraction(value) * 10**places).denominator != 1:
                raise _KeyError(
                    key, f"{value} has more decimals than {self.currency} has ({places})"
                )
        names: dict[str, int] = {}
        priced: dict[tuple[Meter, str], int] = {}
        for i, c in enumerate(self.components):
            if c.name in names:
                raise _KeyError(
                    f"components[{i}].name",
                    f"{c.name!r} is already used by components[{names[c.name]}]",
                )
            names[c.name] = i
            # The same meter priced twice by identical components is a copy-paste slip;
            # overlapping ones (all media + a surcharge on one type) are allowed on purpose.
            what = (c.meter, c.filter_label)
            if what in priced:
                raise _KeyError(
                    f"components[{i}].meter", f"same meter and filter as components[{priced[what]}]"
                )
            priced[what] = i
        return self


# ---------------------------------------------------------------------------- loading


_MESSAGES = {"missing": "required", "extra_forbidden": "unknown key"}


def _one_line(exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    loc = tuple(first["loc"])
    error = first.get("ctx", {}).get("error")
    if isinstance(error, _KeyError):
        loc = (*loc, error.key)
        message = str(error)
    elif isinstance(error, ValueError):
        message = str(error)
    else:
        message = _MESSAGES.get(first["type"], first["msg"])
    path = key_path(loc) or "plan"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{path}: {message}{more}"


def plan_from_dict(data: Mapping[str, Any], *, source: str = "plan") -> PricePlan:
    """Validate an already-parsed plan document; :class:`PlanError` names ``source`` and the key."""
    try:
        return PricePlan.model_validate(data)
    except ValidationError as exc:
        raise PlanError(f"{source}: {_one_line(exc)}") from exc


def parse_plan(text: str, *, source: str = "plan") -> PricePlan:
    """Parse a plan from TOML text (numbers read as exact Decimals)."""
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{source}: not valid TOML: {exc}") from exc
    return plan_from_dict(data, source=source)


def load_plan(path: str | Path) -> PricePlan:
    """Read and validate a plan file. The only I/O in this module."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"{path}: cannot read: {exc}") from exc
    return parse_plan(text, source=str(path))
