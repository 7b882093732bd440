"""Revenue schedules as computed: one row per schedule, one per recognition period.

Amounts are exact integers in the currency's minor unit (cents for USD, yen for JPY,
fils for BHD), next to the schedule's ISO currency: exact on SQLite and PostgreSQL
alike (SQLite has no exact decimal type).

Revision ID: 0002_revenue_schedules
Revises: 0001_sandbox
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_revenue_schedules"
down_revision = "0001_sandbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "revenue_schedules",
        sa.Column("schedule_id", sa.String(255), primary_key=True),
        sa.Column("contract_id", sa.String(255), nullable=False),
        sa.Column("account_id", sa.String(255), nullable=False),
        sa.Column("legal_entity", sa.String(32), nullable=False),
        sa.Column("obligation", sa.String(255), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("total_minor", sa.BigInteger, nullable=False),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("end_date", sa.Date, nullable=False),  # exclusive
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_revenue_schedules_contract", "revenue_schedules", ["contract_id"])
    op.create_index("ix_revenue_schedules_account", "revenue_schedules", ["account_id"])
    op.create_table(
        "revenue_schedule_lines",
        sa.Column(
            "schedule_id",
            sa.String(255),
            sa.ForeignKey(
                "revenue_schedules.schedule_id", ondelete="CASCADE", name="fk_revenue_schedule_lines_schedule"
            ),
            primary_key=True,
        ),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("period", sa.String(7), nullable=False),  # YYYY-MM
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("end_date", sa.Date, nullable=False),  # exclusive
        sa.Column("days", sa.Integer, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_revenue_schedule_lines_period", "revenue_schedule_lines", ["period"])


def downgrade() -> None:
    op.drop_index("ix_revenue_schedule_lines_period", table_name="revenue_schedule_lines")
    op.drop_table("revenue_schedule_lines")
    op.drop_index("ix_revenue_schedules_account", table_name="revenue_schedules")
    op.drop_index("ix_revenue_schedules_contract", table_name="revenue_schedules")
    op.drop_table("revenue_schedules")
