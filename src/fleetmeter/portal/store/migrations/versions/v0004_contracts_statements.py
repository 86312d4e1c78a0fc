"""Contracts, the devices on them, statements, and which statement billed each job.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 03:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}")
    )


def upgrade() -> None:
    op.create_table(
        "contracts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("plan_format", sa.String(length=8), nullable=False),
        sa.Column("plan_text", sa.Text(), nullable=False),
        sa.Column("plan_name", sa.String(length=256), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("billing_period", sa.String(length=16), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("plan_updated_at", sa.DateTime(timezone=True), nullable=False),
        _fk("contracts", "customer_id", "customers"),
        _fk("contracts", "reseller_id", "resellers"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contracts")),
    )
    op.create_index(
        op.f("ix_contracts_reseller_id_customer_id"),
        "contracts",
        ["reseller_id", "customer_id"],
        unique=False,
    )
    op.create_table(
        "contract_devices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("contract_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("placement", sa.String(length=256), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("contract_devices", "contract_id", "contracts"),
        _fk("contract_devices", "device_id", "devices"),
        _fk("contract_devices", "reseller_id", "resellers"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contract_devices")),
    )
    op.create_index(
        op.f("ix_contract_devices_reseller_id_contract_id"),
        "contract_devices",
        ["reseller_id", "contract_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_contract_devices_reseller_id_device_id"),
        "contract_devices",
        ["reseller_id", "device_id"],
        unique=False,
    )
    op.create_table(
        "statements",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("contract_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total", sa.String(length=64), nullable=False),
        sa.Column("plan_text", sa.Text(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("jobs_billed", sa.BigInteger(), nullable=False),
        sa.Column("jobs_late", sa.BigInteger(), nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        _fk("statements", "contract_id", "contracts"),
        _fk("statements", "customer_id", "customers"),
        _fk("statements", "reseller_id", "resellers"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statements")),
        sa.UniqueConstraint(
            "reseller_id",
            "contract_id",
            "period_start",
            name=op.f("uq_statements_reseller_id_contract_id_period_start"),
        ),
    )
    op.create_table(
        "statement_jobs",
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("statement_id", sa.Uuid(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        _fk("statement_jobs", "job_id", "job_records"),
        _fk("statement_jobs", "reseller_id", "resellers"),
        _fk("statement_jobs", "statement_id", "statements"),
        # (reseller, job) is the key: a job can be billed by one statement only.
        sa.PrimaryKeyConstraint("reseller_id", "job_id", name=op.f("pk_statement_jobs")),
    )
    op.create_index(
        op.f("ix_statement_jobs_reseller_id_statement_id"),
        "statement_jobs",
        ["reseller_id", "statement_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_statement_jobs_reseller_id_statement_id"), table_name="statement_jobs")
    op.drop_table("statement_jobs")
    op.drop_table("statements")
    op.drop_index(op.f("ix_contract_devices_reseller_id_device_id"), table_name="contract_devices")
    op.drop_index(
        op.f("ix_contract_devices_reseller_id_contract_id"), table_name="contract_devices"
    )
    op.drop_table("contract_devices")
    op.drop_index(op.f("ix_contracts_reseller_id_customer_id"), table_name="contracts")
    op.drop_table("contracts")
