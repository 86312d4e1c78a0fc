"""Accounts and access: user roles and customer limits, API tokens, platform operators with
explicit grants, the audit log, login throttling.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 03:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}")
    )


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        # Users made before roles existed were their reseller's administrators.
        batch.add_column(
            sa.Column("role", sa.String(length=16), server_default="admin", nullable=False)
        )
        batch.add_column(sa.Column("customer_id", sa.Uuid(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_users_customer_id_customers"), "customers", ["customer_id"], ["id"]
        )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        _fk("api_tokens", "reseller_id", "resellers"),
        _fk("api_tokens", "user_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(
        op.f("ix_api_tokens_reseller_id_user_id"), "api_tokens", ["reseller_id", "user_id"]
    )
    op.create_table(
        "operators",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
        sa.UniqueConstraint("email", name=op.f("uq_operators_email")),
    )
    op.create_table(
        "operator_grants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("operator_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=2048), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        _fk("operator_grants", "reseller_id", "resellers"),
        _fk("operator_grants", "operator_id", "operators"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_grants")),
    )
    op.create_index(
        op.f("ix_operator_grants_reseller_id_operator_id"),
        "operator_grants",
        ["reseller_id", "operator_id"],
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=256), nullable=False),
        sa.Column("action", sa.String(length=256), nullable=False),
        sa.Column("detail", sa.String(length=2048), nullable=True),
        _fk("audit_events", "reseller_id", "resellers"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_reseller_id_at"), "audit_events", ["reseller_id", "at"])
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_failures")),
    )


def downgrade() -> None:
    op.drop_table("login_failures")
    op.drop_index(op.f("ix_audit_events_reseller_id_at"), table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index(op.f("ix_operator_grants_reseller_id_operator_id"), table_name="operator_grants")
    op.drop_table("operator_grants")
    op.drop_table("operators")
    op.drop_index(op.f("ix_api_tokens_reseller_id_user_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f("fk_users_customer_id_customers"), type_="foreignkey")
        batch.drop_column("customer_id")
        batch.drop_column("role")
