"""Contracts: a customer's devices over time, the price plan, the period, time zone, currency.

A contract's plan is stored as the text it was given in (TOML, docs/billing.md, or the same
document as JSON), validated by :mod:`fleetmeter.billing` before anything is stored. Devices
join and leave a contract by date (``ContractDevice``: ``valid_from`` is the first active
day, ``valid_to`` the first day no longer active, as ``added_on``/``removed_on`` in billing).

Rules that keep closed statements true (a closed statement never changes, so nothing that
would have changed it may change either):

- a device cannot join or leave on a day inside or before a period whose statement is
  closed;
- a device is on at most one contract on any day, and on one contract at most once per
  billing period (rating prorates one stretch per device and period);
- a new plan must keep the contract's currency and billing period.

Errors::

    ContractError                 invalid request (bad plan, date, time zone): 422
     ├── ContractNotFoundError    no such contract or device for this reseller: 404
     └── ContractConflictError    the request contradicts stored state: 409
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleetmeter.billing import (
    BillingPeriod,
    Period,
    PlanError,
    PricePlan,
    parse_plan,
    plan_from_dict,
)
from fleetmeter.portal.errors import PortalError
from fleetmeter.portal.store.models import (
    Contract,
    ContractDevice,
    Customer,
    Device,
    StatementRecord,
)
from fleetmeter.wire import now_utc

PLAN_FORMATS = ("toml", "json")
MAX_PLAN_BYTES = 64 * 1024


class ContractError(PortalError):
    """A contract request that cannot be done as given (one line for a person)."""


class ContractNotFoundError(ContractError):
    """No such contract, customer or device for this reseller."""


class ContractConflictError(ContractError):
    """The request contradicts what is stored (a closed period, a device already placed)."""


@dataclass(frozen=True)
class PlacedDevice:
    """A device on a contract: the slot and the device it holds."""

    slot: ContractDevice
    device: Device

    @property
    def label(self) -> str:
        """How the device is named on statements: its serial number."""
        return self.device.serial_number


# --------------------------------------------------------------------------- plans


def plan_format_of(filename: str) -> str:
    """``json`` for a ``.json`` file, else ``toml`` (the documented plan file format)."""
    return "json" if filename.lower().endswith(".json") else "toml"


def parse_contract_plan(text: str, *, plan_format: str, source: str = "plan") -> PricePlan:
    """Validate a plan given as TOML or JSON text; ``ContractError`` names the key path."""
    if plan_format not in PLAN_FORMATS:
        raise ContractError(f"plan format {plan_format!r}: use toml or json")
    if len(text.encode()) > MAX_PLAN_BYTES:
        raise ContractError(f"{source}: a plan is at most {MAX_PLAN_BYTES // 1024} KiB")
    try:
        if plan_format == "toml":
            return parse_plan(text, source=source)
        try:
            # parse_float=Decimal: "0.85" stays exactly 0.85, as the TOML loader does.
            data: Any = json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise ContractError(f"{source}: not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ContractError(f"{source}: a plan is a JSON object")
        return plan_from_dict(data, source=source)
    except PlanError as exc:
        raise ContractError(str(exc)) from exc


def plan_json_text(plan: dict[str, Any]) -> str:
    """A plan object received as JSON, written back as the text that is stored.

    JSON numbers arrive as floats; their shortest repr (``0.85``) is what the sender wrote,
    and it is read back as an exact Decimal by :func:`parse_contract_plan`.
    """
    return json.dumps(plan, indent=2, sort_keys=False)


def contract_plan(contract: Contract) -> PricePlan:
    """The contract's current plan (stored text, validated again on the way out)."""
    return parse_contract_plan(
        contract.plan_text, plan_format=contract.plan_format, source=f"contract {contract.id}"
    )


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ContractError(
            f"time zone {name!r} is not an IANA name (e.g. 'Europe/Berlin', 'UTC')"
        ) from None
    return name


def today_in(timezone: str) -> date:
    return now_utc().astimezone(ZoneInfo(timezone)).date()


# --------------------------------------------------------------------------- contracts


def create_contract(
    session: Session,
    *,
    reseller_id: uuid.UUID,
    customer_id: uuid.UUID,
    plan_text: str,
    plan_format: str = "toml",
    timezone: str = "UTC",
    start_date: date | None = None,
    end_date: date | None = None,
    name: str | None = None,
    currency: str | None = None,
    billing_period: str | None = None,
) -> Contract:
    """A new contract for one of the reseller's customers (the caller commits).

    ``currency`` and ``billing_period`` default to the plan's and, if given, must equal
    them: the plan prices in one currency and its tiers and allowances are per period.
    ``start_date`` defaults to today in the contract's time zone.
    """
    customer = session.scalar(
        select(Customer).where(Customer.reseller_id == reseller_id, Customer.id == customer_id)
    )
    if customer is None:
        raise ContractNotFoundError(f"no customer {customer_id}")
    timezone = _check_timezone(timezone)
    plan = parse_contract_plan(plan_text, plan_format=plan_format)
    if currency is not None and currency != plan.currency:
        raise ContractError(f"the plan prices in {plan.currency}, not {currency}")
    if billing_period is not None and billing_period != plan.period:
        raise ContractError(f"the plan is {plan.period}, not {billing_period}")
    start = start_date or today_in(timezone)
    if end_date is not None and end_date <= start:
        raise ContractError(f"end date {end_date} must be after the start date {start}")
    label = (name or f"{plan.name} from {start}").strip()
    if not label or len(label) > 256:
        raise ContractError("a contract name has 1 to 256 characters")
    now = now_utc()
    contract = Contract(
        reseller_id=reseller_id,
        customer_id=customer.id,
        name=label,
        plan_format=plan_format,
        plan_text=plan_text,
        plan_name=plan.name[:256],
        currency=plan.currency,
        billing_period=str(plan.period),
        timezone=timezone,
        start_date=start,
        end_date=end_date,
        created_at=now,
        plan_updated_at=now,
    )
    session.add(contract)
    session.flush()
    return contract


def get_contract(
    session: Session,
    *,
    reseller_id: uuid.UUID,
    contract_id: uuid.UUID,
    customer_id: uuid.UUID | None = None,
) -> Contract:
    """The reseller's contract (and the customer's, if given), else ``ContractNotFoundError``."""
    query = select(Contract).where(Contract.reseller_id == reseller_id, Contract.id == contract_id)
    if customer_id is not None:
        query = query.where(Contract.customer_id == customer_id)
    contract = session.scalar(query)
    if contract is None:
        raise ContractNotFoundError(f"no contract {contract_id}")
    return contract


def list_contracts(
    session: Session, *, reseller_id: uuid.UUID, customer_id: uuid.UUID | None = None
) -> list[Contract]:
    query = select(Contract).where(Contract.reseller_id == reseller_id)
    if customer_id is not None:
        query = query.where(Contract.customer_id == customer_id)
    return list(session.scalars(query.order_by(Contract.created_at, Contract.id)))


def set_plan(
    session: Session,
    *,
    reseller_id: uuid.UUID,
    contract_id: uuid.UUID,
    plan_text: str,
    plan_format: str = "toml",
) -> Contract:
    """Replace the contract's plan. Closed statements keep the plan they were rated with;
    open ones take the new plan when they are next generated."""
    contract = get_contract(session, reseller_id=reseller_id, contract_id=contract_id)
    plan = parse_contract_plan(plan_text, plan_format=plan_format)
    if plan.currency != contract.currency:
        raise ContractConflictError(
            f"the contract is in {contract.currency}; a plan in {plan.currency} needs a new "
            "contract"
        )
    if plan.period != contract.billing_period:
        raise ContractConflictError(
            f"the contract is billed {contract.billing_period}; a {plan.period} plan needs a "
            "new contract"
        )
    contract.plan_text = plan_text
    contract.plan_format = plan_format
    contract.plan_name = plan.name[:256]
    contract.plan_updated_at = now_utc()
    session.flush()
    return contract


def reseller_of_contract(session: Session, *, contract_id: uuid.UUID) -> uuid.UUID:
    """The reseller owning a contract: for the admin CLI, which is not a tenant's session."""
    reseller_id = session.scalar(select(Contract.reseller_id).where(Contract.id == contract_id))
    if reseller_id is None:
        raise ContractNotFoundError(f"no contract {contract_id}")
    return reseller_id


def period_of(contract: Contract, day: date) -> Period:
    """The contract's billing period (calendar month, quarter or year) containing ``day``."""
    return Period.containing(
        day, BillingPeriod(contract.billing_period), timezone=contract.timezone
    )


# --------------------------------------------------------------------------- devices


def find_device(
    session: Session, *, reseller_id: uuid.UUID, serial_number: str, vendor: str | None = None
) -> Device:
    """The reseller's device with this serial (and vendor, when two vendors share it)."""
    query = select(Device).where(
        Device.reseller_id == reseller_id, Device.serial_number == serial_number.strip()
    )
    found = list(session.scalars(query))
    if vendor is not None:
        found = [d for d in found if d.vendor.casefold() == vendor.strip().casefold()]
    if not found:
        raise ContractNotFoundError(f"no device with serial number {serial_number!r}")
    if len(found) > 1:
        raise ContractError(
            f"serial number {serial_number!r} is used by devices of several vendors: give one"
        )
    return found[0]


def devices_of(
    session: Session, *, reseller_id: uuid.UUID, contract_id: uuid.UUID
) -> list[PlacedDevice]:
    """Every slot the contract ever had, oldest first, with its device."""
    rows = session.execute(
        select(ContractDevice, Device)
        .join(Device, Device.id == ContractDevice.device_id)
        .where(
            ContractDevice.reseller_id == reseller_id,
            ContractDevice.contract_id == contract_id,
            Device.reseller_id == reseller_id,
        )
        .order_by(ContractDevice.valid_from, Device.serial_number, ContractDevice.id)
    )
    return [PlacedDevice(slot=slot, device=device) for slot, device in rows]


def _closed_periods(
    session: Session, contract: Contract, *, first_day: date, until: date | None
) -> list[StatementRecord]:
    """Closed statements whose period has a day in ``[first_day, until)``."""
    query = select(StatementRecord).where(
        StatementRecord.reseller_id == contract.reseller_id,
        StatementRecord.contract_id == contract.id,
        StatementRecord.status == "closed",
        StatementRecord.period_end > first_day,
    )
    if until is not None:
        query = query.where(StatementRecord.period_start < until)
    return list(session.scalars(query.order_by(StatementRecord.period_start)))


def _refuse_closed(
    session: Session, contract: Contract, *, first_day: date, until: date | None, what: str
) -> None:
    closed = _closed_periods(session, contract, first_day=first_day, until=until)
    if closed:
        last = closed[-1]
        raise ContractConflictError(
            f"{what}: the statement for {last.period_start}..{last.period_end} is closed and "
            f"would change; use a day from {last.period_end} on"
        )


def _overlaps(a_from: date, a_to: date | None, b_from: date, b_to: date | None) -> bool:
    return (b_to is None or a_from < b_to) and (a_to is None or b_from < a_to)


def add_device(
    session: Session,
    *,
    reseller_id: uuid.UUID,
    contract_id: uuid.UUID,
    device_id: uuid.UUID,
    valid_from: date | None = None,
    placement: str | None = None,
) -> PlacedDevice:
    """Put one of the customer's devices on the contract from ``valid_from`` (default: today,
    or the contract's start if later). ``placement`` defaults to the device's network address
    (a replacement printer usually takes over the old one's address), else its serial."""
    contract = get_contract(session, reseller_id=reseller_id, contract_id=contract_id)
    device = session.scalar(
        select(Device).where(Device.reseller_id == reseller_id, Device.id == device_id)
    )
    if device is None:
        raise ContractNotFoundError(f"no device {device_id}")
    if device.customer_id != contract.customer_id:
        raise ContractConflictError(
            f"device {device.serial_number} belongs to another customer than the contract's"
        )
    first = valid_from or max(contract.start_date, today_in(contract.timezone))
    if first < contract.start_date:
        raise ContractError(f"the contract starts on {contract.start_date}, after {first}")
    if contract.end_date is not None and first >= contract.end_date:
        raise ContractError(f"the contract ends on {contract.end_date}, before {first}")
    place = (placement or device.address or device.serial_number).strip()
    if not place or len(place) > 256:
        raise ContractError("a placement has 1 to 256 characters")
    _refuse_closed(
        session,
        contract,
        first_day=first,
        until=None,
        what=f"device {device.serial_number} cannot join on {first}",
    )
    # Every slot of this device on any of the reseller's contracts: a device is billed
    # under one contract at a time.
    for other in session.scalars(
        select(ContractDevice).where(
            ContractDevice.reseller_id == reseller_id, ContractDevice.device_id == device.id
        )
    ):
        if _overlaps(first, None, other.valid_from, other.valid_to):
            where = "this" if other.contract_id == contract.id else f"contract {other.contract_id}"
            raise ContractConflictError(
                f"device {device.serial_number} is on {where} from {other.valid_from}"
                + (f" to {other.valid_to}" if other.valid_to else "")
            )
        if other.contract_id == contract.id and other.valid_to is not None:
            ended_in = period_of(contract, date.fromordinal(other.valid_to.toordinal() - 1))
            if ended_in.start <= first < ended_in.end:
                raise ContractConflictError(
                    f"device {device.serial_number} left this contract on {other.valid_to}; "
                    f"it can come back from {ended_in.end} (one stretch per device and period)"
                )
    for placed in devices_of(session, reseller_id=reseller_id, contract_id=contract.id):
        if placed.device.id != device.id and placed.label == device.serial_number:
            raise ContractConflictError(
                f"another device with serial number {device.serial_number} is on this contract"
            )
    slot = ContractDevice(
        reseller_id=reseller_id,
        contract_id=contract.id,
        device_id=device.id,
        placement=place,
        valid_from=first,
        valid_to=None,  # open-ended; statements stop at the contract's end date anyway
    )
    session.add(slot)
    session.flush()
    return PlacedDevice(slot=slot, device=device)


def remove_device(
    session: Session,
    *,
    reseller_id: uuid.UUID,
    contract_id: uuid.UUID,
    device_id: uuid.UUID,
    valid_to: date | None = None,
) -> PlacedDevice:
    """Take a device off the contract: ``valid_to`` (default today) is its first day off."""
    contract = get_contract(session, reseller_id=reseller_id, contract_id=contract_id)
    placed = [
        p
        for p in devices_of(session, reseller_id=reseller_id, contract_id=contract.id)
        if p.device.id == device_id
    ]
    if not placed:
        raise ContractNotFoundError(f"device {device_id} is not on contract {contract_id}")
    stop = valid_to or today_in(contract.timezone)
    current = [p for p in placed if p.slot.valid_to is None or p.slot.valid_to > stop]
    if not current:
        raise ContractConflictError(
            f"device {placed[-1].label} is already off the contract by {stop}"
        )
    target = current[-1]
    if stop <= target.slot.valid_from:
        raise ContractError(
            f"device {target.label} joined on {target.slot.valid_from}: remove it on a later day"
        )
    _refuse_closed(
        session,
        contract,
        first_day=stop,
        until=target.slot.valid_to,
        what=f"device {target.label} cannot leave on {stop}",
    )
    target.slot.valid_to = stop
    session.flush()
    return target


# --------------------------------------------------------------------------- views


def contract_as_dict(contract: Contract, devices: list[PlacedDevice]) -> dict[str, Any]:
    """The JSON shape of a contract (docs/billing.md, "Contracts API")."""
    return {
        "id": str(contract.id),
        "customer_id": str(contract.customer_id),
        "name": contract.name,
        "plan_name": contract.plan_name,
        "plan_format": contract.plan_format,
        "plan_text": contract.plan_text,
        "currency": contract.currency,
        "billing_period": contract.billing_period,
        "timezone": contract.timezone,
        "start_date": contract.start_date.isoformat(),
        "end_date": contract.end_date.isoformat() if contract.end_date else None,
        "created_at": _iso(contract.created_at),
        "plan_updated_at": _iso(contract.plan_updated_at),
        "devices": [placed_as_dict(p) for p in devices],
    }


def placed_as_dict(placed: PlacedDevice) -> dict[str, Any]:
    slot, device = placed.slot, placed.device
    return {
        "device_id": str(device.id),
        "vendor": device.vendor,
        "serial_number": device.serial_number,
        "model": device.model,
        "placement": slot.placement,
        "valid_from": slot.valid_from.isoformat(),
        "valid_to": slot.valid_to.isoformat() if slot.valid_to else None,
    }


def _iso(value: datetime) -> str:
    return value.isoformat()
