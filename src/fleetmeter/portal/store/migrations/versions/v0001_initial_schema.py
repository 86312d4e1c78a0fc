"""Initial schema: tenancy, devices, counter readings, job records, alerts, batches.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21 23:43:22.610364
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "resellers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resellers")),
        sa.UniqueConstraint("name", name=op.f("uq_resellers_name")),
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["reseller_id"], ["resellers.id"], name=op.f("fk_customers_reseller_id_resellers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("reseller_id", "name", name=op.f("uq_customers_reseller_id_name")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["reseller_id"], ["resellers.id"], name=op.f("fk_users_reseller_id_resellers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_index(
        op.f("ix_users_reseller_id_email"), "users", ["reseller_id", "email"], unique=False
    )

    op.create_table(
        "collectors",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_collectors_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["reseller_id"], ["resellers.id"], name=op.f("fk_collectors_reseller_id_resellers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collectors")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_collectors_token_hash")),
    )
    op.create_index(
        op.f("ix_collectors_reseller_id_customer_id"),
        "collectors",
        ["reseller_id", "customer_id"],
        unique=False,
    )

    op.create_table(
        "sites",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_sites_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["reseller_id"], ["resellers.id"], name=op.f("fk_sites_reseller_id_resellers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
        sa.UniqueConstraint(
            "reseller_id", "customer_id", "name", name=op.f("uq_sites_reseller_id_customer_id_name")
        ),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=True),
        sa.Column("vendor", sa.String(length=256), nullable=False),
        sa.Column("serial_number", sa.String(length=256), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=True),
        sa.Column("product_number", sa.String(length=256), nullable=True),
        sa.Column("firmware", sa.String(length=256), nullable=True),
        sa.Column("driver", sa.String(length=256), nullable=False),
        sa.Column("device_class", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=256), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("engine_state", sa.String(length=32), nullable=True),
        sa.Column("status", sa.JSON(), nullable=True),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_devices_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["reseller_id"], ["resellers.id"], name=op.f("fk_devices_reseller_id_resellers")
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_devices_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint(
            "reseller_id",
            "vendor",
            "serial_number",
            name=op.f("uq_devices_reseller_id_vendor_serial_number"),
        ),
    )
    op.create_index(
        op.f("ix_devices_reseller_id_customer_id"),
        "devices",
        ["reseller_id", "customer_id"],
        unique=False,
    )

    op.create_table(
        "ingested_batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("collector_id", sa.Uuid(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reports", sa.BigInteger(), nullable=False),
        sa.Column("jobs_stored", sa.BigInteger(), nullable=False),
        sa.Column("jobs_duplicate", sa.BigInteger(), nullable=False),
        sa.Column("counter_readings", sa.BigInteger(), nullable=False),
        sa.Column("alerts", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collector_id"],
            ["collectors.id"],
            name=op.f("fk_ingested_batches_collector_id_collectors"),
        ),
        sa.ForeignKeyConstraint(
            ["reseller_id"],
            ["resellers.id"],
            name=op.f("fk_ingested_batches_reseller_id_resellers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingested_batches")),
        sa.UniqueConstraint(
            "reseller_id", "batch_id", name=op.f("uq_ingested_batches_reseller_id_batch_id")
        ),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=256), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("text", sa.String(length=2048), nullable=False),
        sa.Column("component", sa.String(length=256), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_alerts_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["reseller_id"], ["resellers.id"], name=op.f("fk_alerts_reseller_id_resellers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint(
            "reseller_id",
            "device_id",
            "code",
            "first_seen",
            name=op.f("uq_alerts_reseller_id_device_id_code_first_seen"),
        ),
    )
    op.create_index(
        op.f("ix_alerts_reseller_id_cleared_at"),
        "alerts",
        ["reseller_id", "cleared_at"],
        unique=False,
    )

    op.create_table(
        "counter_readings",
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("meter", sa.String(length=256), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_counter_readings_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["reseller_id"],
            ["resellers.id"],
            name=op.f("fk_counter_readings_reseller_id_resellers"),
        ),
        sa.PrimaryKeyConstraint(
            "reseller_id", "device_id", "meter", "read_at", name=op.f("pk_counter_readings")
        ),
    )
    op.create_table(
        "job_records",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("job_uuid", sa.Uuid(), nullable=False),
        sa.Column("sequence_number", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=2048), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=256), nullable=True),
        sa.Column("submitter_project", sa.String(length=256), nullable=True),
        sa.Column("submitter_application", sa.String(length=256), nullable=True),
        sa.Column("submitter_account", sa.String(length=256), nullable=True),
        sa.Column("submitter_user", sa.String(length=256), nullable=True),
        sa.Column("submitter_user_defined", sa.String(length=256), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("print_time_s", sa.BigInteger(), nullable=True),
        sa.Column("duration_s", sa.BigInteger(), nullable=True),
        sa.Column("coverage_category", sa.String(length=256), nullable=True),
        sa.Column("application_category", sa.String(length=256), nullable=True),
        sa.Column("print_quality", sa.String(length=256), nullable=True),
        sa.Column("pages", sa.BigInteger(), nullable=False),
        sa.Column("copies", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(length=256), nullable=True),
        sa.Column("media_width_mm", sa.BigInteger(), nullable=True),
        sa.Column("media_length_mm", sa.BigInteger(), nullable=True),
        sa.Column("media_area_mm2", sa.BigInteger(), nullable=False),
        sa.Column("printed_area_mm2", sa.BigInteger(), nullable=False),
        sa.Column("scan_area_mm2", sa.BigInteger(), nullable=False),
        sa.Column("ink_ul", sa.JSON(), nullable=False),
        sa.Column("total_ink_ul", sa.BigInteger(), nullable=False),
        sa.Column("pixel_coverage_ppm", sa.JSON(), nullable=False),
        sa.Column("category_usage", sa.JSON(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_job_records_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["reseller_id"], ["resellers.id"], name=op.f("fk_job_records_reseller_id_resellers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_records")),
        sa.UniqueConstraint(
            "reseller_id",
            "device_id",
            "job_uuid",
            name=op.f("uq_job_records_reseller_id_device_id_job_uuid"),
        ),
    )
    op.create_index(
        op.f("ix_job_records_reseller_id_completed_at"),
        "job_records",
        ["reseller_id", "completed_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_job_records_reseller_id_device_id_completed_at"),
        "job_records",
        ["reseller_id", "device_id", "completed_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_job_records_reseller_id_device_id_completed_at"), table_name="job_records"
    )
    op.drop_index(op.f("ix_job_records_reseller_id_completed_at"), table_name="job_records")

    op.drop_table("job_records")
    op.drop_table("counter_readings")
    op.drop_index(op.f("ix_alerts_reseller_id_cleared_at"), table_name="alerts")

    op.drop_table("alerts")
    op.drop_table("ingested_batches")
    op.drop_index(op.f("ix_devices_reseller_id_customer_id"), table_name="devices")

    op.drop_table("devices")
    op.drop_table("sites")
    op.drop_index(op.f("ix_collectors_reseller_id_customer_id"), table_name="collectors")

    op.drop_table("collectors")
    op.drop_index(op.f("ix_users_reseller_id_email"), table_name="users")

    op.drop_table("users")
    op.drop_table("customers")
    op.drop_table("resellers")
