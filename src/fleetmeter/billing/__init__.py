"""Pure rating: contract + usage → statement lines (Decimal), reconciliation. Imports wire only.

Public API (docs/billing.md): price plans from TOML (:func:`load_plan`, :func:`parse_plan`),
usage from job records (:func:`usage_from_jobs`), :func:`rate` → :class:`Statement`, and the
what-if helpers in :mod:`fleetmeter.billing.whatif`.
"""

from fleetmeter.billing.errors import BillingError, PlanError, UsageError
from fleetmeter.billing.meters import Meter
from fleetmeter.billing.period import Period
from fleetmeter.billing.plan import (
    BillingPeriod,
    Component,
    PricePlan,
    Tier,
    TierMode,
    load_plan,
    parse_plan,
    plan_from_dict,
)
from fleetmeter.billing.rating import rate
from fleetmeter.billing.statement import LineKind, Statement, StatementLine, TierSlice
from fleetmeter.billing.usage import DeviceUsage, PeriodUsage, usage_from_jobs

__all__ = [
    "BillingError",
    "BillingPeriod",
    "Component",
    "DeviceUsage",
    "LineKind",
    "Meter",
    "Period",
    "PeriodUsage",
    "PlanError",
    "PricePlan",
    "Statement",
    "StatementLine",
    "Tier",
    "TierMode",
    "TierSlice",
    "UsageError",
    "load_plan",
    "parse_plan",
    "plan_from_dict",
    "rate",
    "usage_from_jobs",
]
