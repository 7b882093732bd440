"""Formerly the sandbox's listing columns (scope, day, num); now a no-op.

The sandbox's own first migration (sandbox/migrations/versions/0001_sandbox_tables.py)
creates those columns and their indexes, and adds and backfills them on a database that
has the sandbox's tables without them. The revision id stays: databases have it applied,
and o2c's later revisions follow it.

Revision ID: 0003_sandbox_listing_index
Revises: 0002_revenue_schedules
Create Date: 2026-11-30
"""

from __future__ import annotations

revision = "0003_sandbox_listing_index"
down_revision = "0002_revenue_schedules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
