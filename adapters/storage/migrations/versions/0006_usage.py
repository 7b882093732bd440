"""Usage to invoice: raw accepted events (partitioned by period on PostgreSQL), the
quarantine of refused ones, the master data validation uses, closed periods, what each
release billed, and the sending systems' API keys (hashed).

The partitions of usage_events are not created here: the store adds one per period as
events for it arrive (`CREATE TABLE IF NOT EXISTS ... PARTITION OF usage_events`).

Revision ID: 0006_usage
Revises: 0005_schedule_asc606_fields
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_usage"
down_revision = "0005_schedule_asc606_fields"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_events",
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("identifier", sa.String(100), primary_key=True),
        sa.Column("meter", sa.String(100), nullable=False),
        sa.Column("customer", sa.String(255), nullable=False),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dimensions", sa.Text, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("late_from", sa.String(7), nullable=False, server_default=sa.text("''")),
        postgresql_partition_by="LIST (period)",
    )
    op.create_index("ix_usage_events_aggregate", "usage_events", ["period", "customer", "meter"])

    op.create_table(
        "usage_quarantine",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("identifier", sa.String(255), nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(64), nullable=True),
        sa.Column("resolution", sa.Text, nullable=True),
    )
    op.create_index("ix_usage_quarantine_status", "usage_quarantine", ["status", "id"])

    op.create_table(
        "usage_meters",
        sa.Column("event_name", sa.String(100), primary_key=True),
        sa.Column("meter", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "usage_customers",
        sa.Column("customer", sa.String(255), primary_key=True),
        sa.Column("subscription_id", sa.String(255), nullable=False),
        sa.Column("legal_entity", sa.String(32), nullable=False),
        sa.Column("usage_customer", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "usage_closed_periods",
        sa.Column("customer", sa.String(255), primary_key=True),
        sa.Column("period", sa.String(7), primary_key=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
    )

    op.create_table(
        "usage_releases",
        sa.Column("workflow_id", sa.String(255), primary_key=True),
        sa.Column("subscription_id", sa.String(255), nullable=False),
        sa.Column("customer", sa.String(255), nullable=False),
        sa.Column("legal_entity", sa.String(32), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("invoice_id", sa.String(255), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("quantities", sa.Text, nullable=False),
        sa.Column("subtotal_minor", sa.BigInteger, nullable=False),
        sa.Column("credit_minor", sa.BigInteger, nullable=False),
        sa.Column("tax_minor", sa.BigInteger, nullable=False),
        sa.Column("total_minor", sa.BigInteger, nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("journal_entries", sa.Text, nullable=False),
    )
    op.create_index("ix_usage_releases_entity_period", "usage_releases", ["legal_entity", "period", "invoice_id"])
    op.create_index("ix_usage_releases_customer_period", "usage_releases", ["customer", "period"])

    op.create_table(
        "usage_api_keys",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("key_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("key_sha256", name="uq_usage_api_keys_sha256"),
    )


def downgrade() -> None:
    op.drop_table("usage_api_keys")
    op.drop_index("ix_usage_releases_customer_period", table_name="usage_releases")
    op.drop_index("ix_usage_releases_entity_period", table_name="usage_releases")
    op.drop_table("usage_releases")
    op.drop_table("usage_closed_periods")
    op.drop_table("usage_customers")
    op.drop_table("usage_meters")
    op.drop_index("ix_usage_quarantine_status", table_name="usage_quarantine")
    op.drop_table("usage_quarantine")
    op.drop_index("ix_usage_events_aggregate", table_name="usage_events")
    op.drop_table("usage_events")  # its partitions go with it
