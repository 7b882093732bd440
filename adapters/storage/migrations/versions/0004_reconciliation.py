"""Reconciliation: every run, the documents it read (staged while it runs), and every break
it found, so finance can query breaks across runs and see which were fixed.

Amounts are exact integers in the currency's minor unit, as in the revenue schedules.

Revision ID: 0004_reconciliation
Revises: 0003_sandbox_listing_index
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_reconciliation"
down_revision = "0003_sandbox_listing_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recon_runs",
        sa.Column("run_id", sa.String(128), primary_key=True),
        sa.Column("workflow_id", sa.String(255), nullable=False),
        sa.Column("legal_entity", sa.String(32), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),  # YYYY-MM
        sa.Column("status", sa.String(32), nullable=False),  # running, completed, needs_attention
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("billing_documents", sa.Integer, nullable=False, server_default="0"),
        sa.Column("tax_documents", sa.Integer, nullable=False, server_default="0"),
        sa.Column("erp_entries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("contracts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("breaks_found", sa.Integer, nullable=False, server_default="0"),
        sa.Column("healed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("open_breaks", sa.Integer, nullable=False, server_default="0"),
        sa.Column("fixed_since_last_run", sa.Integer, nullable=False, server_default="0"),
        sa.Column("settings", sa.JSON, nullable=False),
    )
    op.create_index("ix_recon_runs_entity_period", "recon_runs", ["legal_entity", "period", "started_at"])

    # What a run read from each system, while it runs: matched batch by batch, then dropped.
    op.create_table(
        "recon_records",
        sa.Column("run_id", sa.String(128), primary_key=True),
        sa.Column("system", sa.String(16), primary_key=True),  # billing, tax, erp, schedules
        sa.Column("record_id", sa.String(255), primary_key=True),
        sa.Column("match_key", sa.String(300), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),  # the canonical fact, as JSON
    )
    op.create_index("ix_recon_records_run_key", "recon_records", ["run_id", "match_key"])

    op.create_table(
        "recon_breaks",
        sa.Column("break_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("legal_entity", sa.String(32), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("match_key", sa.String(300), nullable=False),
        sa.Column("document", sa.String(255), nullable=False),  # the invoice id, or the contract id
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("billing_minor", sa.BigInteger, nullable=True),
        sa.Column("billing_currency", sa.String(3), nullable=True),
        sa.Column("erp_minor", sa.BigInteger, nullable=True),
        sa.Column("erp_currency", sa.String(3), nullable=True),
        sa.Column("difference_minor", sa.BigInteger, nullable=True),
        sa.Column("explanation", sa.Text, nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("documents", sa.JSON, nullable=False),
        # open, healing, awaiting_approval, healed, superseded (found again by a later run),
        # fixed (not found again by a later run), acknowledged (an operator accepted it)
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("heal_entry", sa.Text, nullable=True),  # the JournalEntry that heals it, as JSON
        sa.Column("heal_minor", sa.BigInteger, nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.Text, nullable=True),
        sa.UniqueConstraint("run_id", "kind", "match_key", name="uq_recon_breaks_run_kind_key"),
    )
    op.create_index("ix_recon_breaks_lookup", "recon_breaks", ["legal_entity", "period", "kind", "match_key"])
    op.create_index("ix_recon_breaks_run_status", "recon_breaks", ["run_id", "status", "break_id"])


def downgrade() -> None:
    op.drop_index("ix_recon_breaks_run_status", table_name="recon_breaks")
    op.drop_index("ix_recon_breaks_lookup", table_name="recon_breaks")
    op.drop_table("recon_breaks")
    op.drop_index("ix_recon_records_run_key", table_name="recon_records")
    op.drop_table("recon_records")
    op.drop_index("ix_recon_runs_entity_period", table_name="recon_runs")
    op.drop_table("recon_runs")
