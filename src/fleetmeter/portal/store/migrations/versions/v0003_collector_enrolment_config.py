"""Collector enrolment tokens, versioned remote settings, the version a collector runs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 03:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("collectors") as batch:
        batch.add_column(sa.Column("running_config_version", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("config_reported_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "enrolment_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("collector_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["collector_id"],
            ["collectors.id"],
            name=op.f("fk_enrolment_tokens_collector_id_collectors"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_enrolment_tokens_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["reseller_id"],
            ["resellers.id"],
            name=op.f("fk_enrolment_tokens_reseller_id_resellers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrolment_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_enrolment_tokens_token_hash")),
    )
    op.create_index(
        op.f("ix_enrolment_tokens_reseller_id_customer_id"),
        "enrolment_tokens",
        ["reseller_id", "customer_id"],
        unique=False,
    )
    op.create_table(
        "collector_config_versions",
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("collector_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=True),
        sa.ForeignKeyConstraint(
            ["collector_id"],
            ["collectors.id"],
            name=op.f("fk_collector_config_versions_collector_id_collectors"),
        ),
        sa.ForeignKeyConstraint(
            ["reseller_id"],
            ["resellers.id"],
            name=op.f("fk_collector_config_versions_reseller_id_resellers"),
        ),
        sa.PrimaryKeyConstraint(
            "reseller_id", "collector_id", "version", name=op.f("pk_collector_config_versions")
        ),
    )


def downgrade() -> None:
    op.drop_table("collector_config_versions")
    op.drop_index(
        op.f("ix_enrolment_tokens_reseller_id_customer_id"), table_name="enrolment_tokens"
    )
    op.drop_table("enrolment_tokens")
    with op.batch_alter_table("collectors") as batch:
        batch.drop_column("config_reported_at")
        batch.drop_column("running_config_version")
