"""Contracts and statements API for a reseller's users (docs/billing.md, "Contracts and
statements API").

Reads take any logged-in user (a customer's user sees its own customer's contracts only);
changes take an admin or a billing user. Every route is scoped to the caller's reseller:
another reseller's contract, device, customer or statement id answers 404, exactly like one
that does not exist. Errors are problem documents: 404 unknown, 409 conflicts with stored
state (a closed statement, a device already on a contract), 422 invalid input.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, model_validator

from fleetmeter.portal.api.deps import BillingDep, PrincipalDep, SessionDep
from fleetmeter.portal.api.problems import ProblemError
from fleetmeter.portal.services import contracts, statements
from fleetmeter.portal.services.contracts import (
    ContractConflictError,
    ContractError,
    ContractNotFoundError,
)
from fleetmeter.portal.services.statements import (
    StatementClosedError,
    StatementError,
    StatementNotFoundError,
)

router = APIRouter(prefix="/api/v1", tags=["billing"])

PLAN_TEXT_LIMIT = 60 * 1024


class PlanIn(BaseModel):
    """A price plan: ``plan`` as a JSON object, or ``plan_toml`` as the text of a plan file."""

    plan: dict[str, Any] | None = None
    plan_toml: str | None = Field(default=None, max_length=PLAN_TEXT_LIMIT)

    @model_validator(mode="after")
    def _one(self) -> PlanIn:
        if (self.plan is None) == (self.plan_toml is None):
            raise ValueError("give the plan as 'plan' (JSON object) or 'plan_toml' (text)")
        return self

    def text_and_format(self) -> tuple[str, str]:
        if self.plan is not None:
            return contracts.plan_json_text(self.plan), "json"
        assert self.plan_toml is not None
        return self.plan_toml, "toml"


class ContractIn(PlanIn):
    customer_id: uuid.UUID
    name: str | None = Field(default=None, max_length=256)
    timezone: str = Field(default="UTC", max_length=64)
    start_date: date | None = None
    end_date: date | None = None
    currency: str | None = Field(default=None, max_length=3)
    billing_period: str | None = Field(default=None, max_length=16)


class DeviceIn(BaseModel):
    device_id: uuid.UUID
    valid_from: date | None = None
    placement: str | None = Field(default=None, max_length=256)


class RemoveIn(BaseModel):
    valid_to: date | None = None


class GenerateIn(BaseModel):
    period: str = Field(
        min_length=4, max_length=10, description="2026-03, 2026-Q1, 2026 or a day of it"
    )


def _problem(exc: ContractError | StatementError) -> ProblemError:
    if isinstance(exc, ContractNotFoundError | StatementNotFoundError):
        return ProblemError(404, str(exc))
    if isinstance(exc, ContractConflictError | StatementClosedError):
        return ProblemError(409, str(exc))
    return ProblemError(422, str(exc))


def owned_contract(
    contract_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> uuid.UUID:
    """The path's contract id, if it is the caller's; else 404.

    A dependency, so that it answers before the request body is validated: another
    reseller's id is a 404 whatever the body, never a 422 that would tell it apart.
    """
    try:
        contracts.get_contract(
            session,
            reseller_id=principal.reseller_id,
            contract_id=contract_id,
            customer_id=principal.customer_id,
        )
    except ContractNotFoundError as exc:
        raise ProblemError(404, str(exc)) from None
    return contract_id


def owned_statement(
    statement_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> uuid.UUID:
    """The path's statement id, if it is the caller's; else 404 (before the body, as above)."""
    try:
        statements.get_statement(
            session,
            reseller_id=principal.reseller_id,
            statement_id=statement_id,
            customer_id=principal.customer_id,
        )
    except StatementNotFoundError as exc:
        raise ProblemError(404, str(exc)) from None
    return statement_id


OwnedContract = Annotated[uuid.UUID, Depends(owned_contract)]
OwnedStatement = Annotated[uuid.UUID, Depends(owned_statement)]


def _contract_json(session: SessionDep, contract_id: uuid.UUID, reseller_id: uuid.UUID) -> Any:
    contract = contracts.get_contract(session, reseller_id=reseller_id, contract_id=contract_id)
    placed = contracts.devices_of(session, reseller_id=reseller_id, contract_id=contract.id)
    return contracts.contract_as_dict(contract, placed)


# --------------------------------------------------------------------------- contracts


@router.get("/contracts")
def list_contracts(
    principal: PrincipalDep, session: SessionDep, customer_id: uuid.UUID | None = None
) -> dict[str, Any]:
    if principal.customer_id is not None:
        if customer_id not in (None, principal.customer_id):
            return {"items": []}
        customer_id = principal.customer_id
    rows = contracts.list_contracts(
        session, reseller_id=principal.reseller_id, customer_id=customer_id
    )
    items = [
        contracts.contract_as_dict(
            c, contracts.devices_of(session, reseller_id=principal.reseller_id, contract_id=c.id)
        )
        for c in rows
    ]
    return {"items": items}


@router.post("/contracts", status_code=201)
def create_contract(body: ContractIn, principal: BillingDep, session: SessionDep) -> Any:
    text, plan_format = body.text_and_format()
    try:
        contract = contracts.create_contract(
            session,
            reseller_id=principal.reseller_id,
            customer_id=body.customer_id,
            plan_text=text,
            plan_format=plan_format,
            timezone=body.timezone,
            start_date=body.start_date,
            end_date=body.end_date,
            name=body.name,
            currency=body.currency,
            billing_period=body.billing_period,
        )
        out = _contract_json(session, contract.id, principal.reseller_id)
    except ContractError as exc:
        raise _problem(exc) from None
    session.commit()
    return out


@router.get("/contracts/{contract_id}")
def get_contract(contract_id: OwnedContract, principal: PrincipalDep, session: SessionDep) -> Any:
    try:
        contracts.get_contract(
            session,
            reseller_id=principal.reseller_id,
            contract_id=contract_id,
            customer_id=principal.customer_id,
        )
        return _contract_json(session, contract_id, principal.reseller_id)
    except ContractError as exc:
        raise _problem(exc) from None


@router.put("/contracts/{contract_id}/plan")
def set_plan(
    principal: BillingDep, contract_id: OwnedContract, body: PlanIn, session: SessionDep
) -> Any:
    text, plan_format = body.text_and_format()
    try:
        contracts.set_plan(
            session,
            reseller_id=principal.reseller_id,
            contract_id=contract_id,
            plan_text=text,
            plan_format=plan_format,
        )
        out = _contract_json(session, contract_id, principal.reseller_id)
    except ContractError as exc:
        raise _problem(exc) from None
    session.commit()
    return out


@router.post("/contracts/{contract_id}/devices", status_code=201)
def add_device(
    principal: BillingDep, contract_id: OwnedContract, body: DeviceIn, session: SessionDep
) -> Any:
    try:
        placed = contracts.add_device(
            session,
            reseller_id=principal.reseller_id,
            contract_id=contract_id,
            device_id=body.device_id,
            valid_from=body.valid_from,
            placement=body.placement,
        )
    except ContractError as exc:
        raise _problem(exc) from None
    session.commit()
    return contracts.placed_as_dict(placed)


@router.post("/contracts/{contract_id}/devices/{device_id}/remove")
def remove_device(
    principal: BillingDep,
    contract_id: OwnedContract,
    device_id: uuid.UUID,
    session: SessionDep,
    body: RemoveIn | None = None,
) -> Any:
    try:
        placed = contracts.remove_device(
            session,
            reseller_id=principal.reseller_id,
            contract_id=contract_id,
            device_id=device_id,
            valid_to=(body or RemoveIn()).valid_to,
        )
    except ContractError as exc:
        raise _problem(exc) from None
    session.commit()
    return contracts.placed_as_dict(placed)


# --------------------------------------------------------------------------- statements


@router.get("/contracts/{contract_id}/statements")
def list_statements(
    contract_id: OwnedContract, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    try:
        rows = statements.list_statements(
            session,
            reseller_id=principal.reseller_id,
            contract_id=contract_id,
            customer_id=principal.customer_id,
        )
        return {"items": [statements.summary_of(statements.document_of(r)) for r in rows]}
    except StatementError as exc:
        raise _problem(exc) from None


@router.post("/contracts/{contract_id}/statements")
def generate_statement(
    principal: BillingDep, contract_id: OwnedContract, body: GenerateIn, session: SessionDep
) -> Any:
    """Generate (or regenerate) the open statement of a period; 409 if it is closed."""
    try:
        record = statements.generate_statement(
            session, reseller_id=principal.reseller_id, contract_id=contract_id, period=body.period
        )
        out = statements.document_of(record).as_json()
    except (StatementError, ContractError) as exc:
        raise _problem(exc) from None
    session.commit()
    return out


@router.get("/statements/{statement_id}")
def get_statement(
    statement_id: OwnedStatement, principal: PrincipalDep, session: SessionDep
) -> Any:
    try:
        return statements.statement_document(
            session,
            reseller_id=principal.reseller_id,
            statement_id=statement_id,
            customer_id=principal.customer_id,
        ).as_json()
    except StatementError as exc:
        raise _problem(exc) from None


@router.post("/statements/{statement_id}/close")
def close_statement(
    principal: BillingDep, statement_id: OwnedStatement, session: SessionDep
) -> Any:
    """Close (final generation, then frozen). Closing a closed statement answers it as is."""
    try:
        record = statements.close_statement(
            session, reseller_id=principal.reseller_id, statement_id=statement_id
        )
        out = statements.document_of(record).as_json()
    except (StatementError, ContractError) as exc:
        raise _problem(exc) from None
    session.commit()
    return out
