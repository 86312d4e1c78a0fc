"""Direct connection: device signing credentials, seen nonces, batches sent by devices.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 00:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "device_credentials",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("vendor", sa.String(length=256), nullable=False),
        sa.Column("serial_number", sa.String(length=256), nullable=False),
        sa.Column("secret_encrypted", sa.String(length=256), nullable=False),
        sa.Column("previous_secret_encrypted", sa.String(length=256), nullable=True),
        sa.Column("previous_valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_device_credentials_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["reseller_id"],
            ["resellers.id"],
            name=op.f("fk_device_credentials_reseller_id_resellers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_credentials")),
        sa.UniqueConstraint("key_id", name=op.f("uq_device_credentials_key_id")),
    )
    op.create_index(
        op.f("ix_device_credentials_reseller_id_customer_id"),
        "device_credentials",
        ["reseller_id", "customer_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_device_credentials_reseller_id_vendor_serial_number"),
        "device_credentials",
        ["reseller_id", "vendor", "serial_number"],
        unique=False,
    )
    op.create_table(
        "seen_nonces",
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["reseller_id"], ["resellers.id"], name=op.f("fk_seen_nonces_reseller_id_resellers")
        ),
        sa.PrimaryKeyConstraint("reseller_id", "key_id", "nonce", name=op.f("pk_seen_nonces")),
    )
    op.create_index(
        op.f("ix_seen_nonces_reseller_id_expires_at"),
        "seen_nonces",
        ["reseller_id", "expires_at"],
        unique=False,
    )
    # Batch mode: SQLite cannot ALTER a column's nullability or add a foreign key in place.
    with op.batch_alter_table("ingested_batches") as batch:
        batch.alter_column("collector_id", existing_type=sa.Uuid(), nullable=True)
        batch.add_column(sa.Column("device_credential_id", sa.Uuid(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_ingested_batches_device_credential_id_device_credentials"),
            "device_credentials",
            ["device_credential_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("ingested_batches") as batch:
        batch.drop_constraint(
            op.f("fk_ingested_batches_device_credential_id_device_credentials"),
            type_="foreignkey",
        )
        batch.drop_column("device_credential_id")
        # Batches sent by devices have no collector: they cannot survive the downgrade.
    op.execute("DELETE FROM ingested_batches WHERE collector_id IS NULL")
    with op.batch_alter_table("ingested_batches") as batch:
        batch.alter_column("collector_id", existing_type=sa.Uuid(), nullable=False)
    op.drop_index(op.f("ix_seen_nonces_reseller_id_expires_at"), table_name="seen_nonces")
    op.drop_table("seen_nonces")
    op.drop_index(
        op.f("ix_device_credentials_reseller_id_vendor_serial_number"),
        table_name="device_credentials",
    )
    op.drop_index(
        op.f("ix_device_credentials_reseller_id_customer_id"), table_name="device_credentials"
    )
    op.drop_table("device_credentials")
