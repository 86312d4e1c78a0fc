"""Indexes for the jobs and alerts pages (filters by user or account over a date range,
newest alerts first), and the site a collector stands at.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_job_records_reseller_id_submitter_user_completed_at"),
        "job_records",
        ["reseller_id", "submitter_user", "completed_at"],
    )
    op.create_index(
        op.f("ix_job_records_reseller_id_submitter_account_completed_at"),
        "job_records",
        ["reseller_id", "submitter_account", "completed_at"],
    )
    op.create_index(
        op.f("ix_alerts_reseller_id_first_seen"), "alerts", ["reseller_id", "first_seen"]
    )
    with op.batch_alter_table("collectors") as batch:
        batch.add_column(sa.Column("site_id", sa.Uuid(), nullable=True))
        batch.create_foreign_key(op.f("fk_collectors_site_id_sites"), "sites", ["site_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("collectors") as batch:
        batch.drop_constraint(op.f("fk_collectors_site_id_sites"), type_="foreignkey")
        batch.drop_column("site_id")
    op.drop_index(op.f("ix_alerts_reseller_id_first_seen"), table_name="alerts")
    op.drop_index(
        op.f("ix_job_records_reseller_id_submitter_account_completed_at"), table_name="job_records"
    )
    op.drop_index(
        op.f("ix_job_records_reseller_id_submitter_user_completed_at"), table_name="job_records"
    )
