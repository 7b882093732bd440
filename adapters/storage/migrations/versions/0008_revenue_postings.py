"""Revenue posted to the ledger: every line of every entity-month-currency revenue entry o2c
posted, the month it is revenue of (a true-up names an earlier month), and when.

Revision ID: 0008_revenue_postings
Revises: 0007_cash
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_revenue_postings"
down_revision = "0007_cash"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "revenue_postings",
        sa.Column("external_id", sa.String(255), primary_key=True),
        sa.Column("recognised_period", sa.String(7), primary_key=True),
        sa.Column("line_key", sa.String(255), primary_key=True),
        sa.Column("legal_entity", sa.String(32), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_revenue_postings_entity", "revenue_postings", ["legal_entity", "period"])


def downgrade() -> None:
    op.drop_index("ix_revenue_postings_entity", table_name="revenue_postings")
    op.drop_table("revenue_postings")
