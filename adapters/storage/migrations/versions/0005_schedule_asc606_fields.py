"""Revenue schedules keep what ASC 606 allocation and modifications add: when the
consideration was booked, the obligation's standalone selling price, and the schedule a
prospective modification terminated to create this one.

Revision ID: 0005_schedule_asc606_fields
Revises: 0004_reconciliation
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_schedule_asc606_fields"
down_revision = "0004_reconciliation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("revenue_schedules") as batch:
        batch.add_column(sa.Column("booked_on", sa.Date, nullable=True))
        batch.add_column(sa.Column("ssp_minor", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("supersedes", sa.String(255), nullable=False, server_default=""))
    op.create_index("ix_revenue_schedules_entity", "revenue_schedules", ["legal_entity", "contract_id"])


def downgrade() -> None:
    op.drop_index("ix_revenue_schedules_entity", table_name="revenue_schedules")
    with op.batch_alter_table("revenue_schedules") as batch:
        batch.drop_column("supersedes")
        batch.drop_column("ssp_minor")
        batch.drop_column("booked_on")
