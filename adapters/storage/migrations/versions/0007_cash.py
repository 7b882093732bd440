"""Cash application: bank statements and their receipts (one receipt per bank reference and
receiving account), the open receivables they are matched against, the matches and every
amount applied, operators' decisions, the learned payer directory, and card attempts.

Revision ID: 0007_cash
Revises: 0006_usage
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_cash"
down_revision = "0006_usage"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cash_statements",
        sa.Column("statement_id", sa.String(255), primary_key=True),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("bank_account", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opening_minor", sa.BigInteger, nullable=False),
        sa.Column("closing_minor", sa.BigInteger, nullable=False),
        sa.Column("entries", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
    )

    op.create_table(
        "cash_receipts",
        sa.Column("receipt_id", sa.String(255), primary_key=True),
        sa.Column("statement_id", sa.String(255), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("legal_entity", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("value_date", sa.Date, nullable=False),
        sa.Column("bank_account", sa.String(64), nullable=False),
        sa.Column("bank_reference", sa.String(255), nullable=False),
        sa.Column("receipt", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("bank_account", "bank_reference", name="uq_cash_receipts_bank_reference"),
    )
    op.create_index("ix_cash_receipts_statement", "cash_receipts", ["statement_id", "receipt_id"])

    op.create_table(
        "cash_open_items",
        sa.Column("invoice_id", sa.String(255), primary_key=True),
        sa.Column("number", sa.String(255), nullable=False),
        sa.Column("id_key", sa.String(255), nullable=False),
        sa.Column("number_key", sa.String(255), nullable=False),
        sa.Column("customer", sa.String(255), nullable=False),
        sa.Column("legal_entity", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("total_minor", sa.BigInteger, nullable=False),
        sa.Column("balance_minor", sa.BigInteger, nullable=False),
        sa.Column("issued_on", sa.Date, nullable=True),
        sa.Column("due_on", sa.Date, nullable=True),
        sa.Column("erp_document", sa.String(255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("balance_minor >= 0", name="ck_cash_open_items_balance"),
    )
    op.create_index("ix_cash_open_items_id_key", "cash_open_items", ["id_key"])
    op.create_index("ix_cash_open_items_number_key", "cash_open_items", ["number_key"])
    op.create_index("ix_cash_open_items_customer", "cash_open_items", ["customer"])
    op.create_index("ix_cash_open_items_amount", "cash_open_items", ["currency", "total_minor"])

    op.create_table(
        "cash_matches",
        sa.Column("receipt_id", sa.String(255), primary_key=True),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("customer", sa.String(255), nullable=False),
        sa.Column("legal_entity", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("applied_minor", sa.BigInteger, nullable=False),
        sa.Column("unapplied_minor", sa.BigInteger, nullable=False),
        sa.Column("exception", sa.String(32), nullable=True),
        sa.Column("value_date", sa.Date, nullable=False),
        sa.Column("queued", sa.Boolean, nullable=False),
        sa.Column("match", sa.Text, nullable=False),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_cash_matches_queue", "cash_matches", ["queued", "legal_entity", "value_date", "receipt_id"])
    op.create_index("ix_cash_matches_unapplied", "cash_matches", ["legal_entity", "currency"])

    op.create_table(
        "cash_applications",
        sa.Column("receipt_id", sa.String(255), primary_key=True),
        sa.Column("invoice_id", sa.String(255), primary_key=True),
        sa.Column("origin", sa.String(16), primary_key=True),
        sa.Column("customer", sa.String(255), nullable=False),
        sa.Column("legal_entity", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("erp_document", sa.String(255), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_cash_applications_invoice", "cash_applications", ["invoice_id"])
    op.create_index("ix_cash_applications_customer", "cash_applications", ["customer"])

    op.create_table(
        "cash_decisions",
        sa.Column("receipt_id", sa.String(255), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("applied_minor", sa.BigInteger, nullable=False),
        sa.Column("refund_minor", sa.BigInteger, nullable=False),
        sa.Column("decision", sa.Text, nullable=False),
        sa.Column("decided_by", sa.String(255), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    )

    op.create_table(
        "cash_payers",
        sa.Column("payer_key", sa.String(300), primary_key=True),
        sa.Column("customer", sa.String(255), nullable=False),
        sa.Column("learned_from", sa.String(255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )

    op.create_table(
        "card_attempts",
        sa.Column("attempt_key", sa.String(255), primary_key=True),
        sa.Column("card", sa.String(255), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_card_attempts_card", "card_attempts", ["card", "attempted_at"])


def downgrade() -> None:
    op.drop_index("ix_card_attempts_card", table_name="card_attempts")
    op.drop_table("card_attempts")
    op.drop_table("cash_payers")
    op.drop_table("cash_decisions")
    op.drop_index("ix_cash_applications_customer", table_name="cash_applications")
    op.drop_index("ix_cash_applications_invoice", table_name="cash_applications")
    op.drop_table("cash_applications")
    op.drop_index("ix_cash_matches_unapplied", table_name="cash_matches")
    op.drop_index("ix_cash_matches_queue", table_name="cash_matches")
    op.drop_table("cash_matches")
    op.drop_index("ix_cash_open_items_amount", table_name="cash_open_items")
    op.drop_index("ix_cash_open_items_customer", table_name="cash_open_items")
    op.drop_index("ix_cash_open_items_number_key", table_name="cash_open_items")
    op.drop_index("ix_cash_open_items_id_key", table_name="cash_open_items")
    op.drop_table("cash_open_items")
    op.drop_index("ix_cash_receipts_statement", table_name="cash_receipts")
    op.drop_table("cash_receipts")
    op.drop_table("cash_statements")
