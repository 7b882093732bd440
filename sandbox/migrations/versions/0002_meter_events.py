"""Stripe's meter events: one row per accepted event, kept apart from the documents so a
meter's aggregate over a period is one indexed query.

Revision ID: sandbox_0002
Revises: sandbox_0001
Create Date: 2027-01-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sandbox_0002"
down_revision = "sandbox_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sandbox_meter_events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("event_name", sa.String(100), nullable=False),
        sa.Column("identifier", sa.String(100), nullable=False),
        sa.Column("customer", sa.String(255), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("received", sa.BigInteger, nullable=False),
        sa.Column("cancelled", sa.Boolean, nullable=False),
    )
    # A meter's usage of one customer over a time range (aggregates, summaries, invoices).
    op.create_index(
        "ix_sandbox_meter_events_usage", "sandbox_meter_events", ["account", "event_name", "customer", "timestamp"]
    )
    # The identifier's duplicate check and cancellation.
    op.create_index(
        "ix_sandbox_meter_events_identifier", "sandbox_meter_events", ["account", "event_name", "identifier"]
    )


def downgrade() -> None:
    op.drop_table("sandbox_meter_events")
