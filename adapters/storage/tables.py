"""o2c's own tables, defined once: the stores query them and the Alembic environment compares
them with what the migrations build (tests/adapters/test_migrations.py).

The migrations remain the only way the schema changes; a change here comes with a new
migration, and the comparison fails until both agree. Amounts are exact integers in the
currency's minor unit next to their ISO currency; `end_date` columns are exclusive.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypedDict

import sqlalchemy as sa

metadata = sa.MetaData()

# -- revenue schedules (migrations 0002, 0005) -------------------------------------------------

revenue_schedules = sa.Table(
    "revenue_schedules",
    metadata,
    sa.Column("schedule_id", sa.String(255), primary_key=True),
    sa.Column("contract_id", sa.String(255), nullable=False),
    sa.Column("account_id", sa.String(255), nullable=False),
    sa.Column("legal_entity", sa.String(32), nullable=False),
    sa.Column("obligation", sa.String(255), nullable=False),
    sa.Column("method", sa.String(32), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("total_minor", sa.BigInteger, nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("booked_on", sa.Date, nullable=True),
    sa.Column("ssp_minor", sa.BigInteger, nullable=True),
    # Written as SQL: Alembic compares an empty-string default on SQLite only in this form.
    sa.Column("supersedes", sa.String(255), nullable=False, server_default=sa.text("''")),
    sa.Index("ix_revenue_schedules_contract", "contract_id"),
    sa.Index("ix_revenue_schedules_account", "account_id"),
    sa.Index("ix_revenue_schedules_entity", "legal_entity", "contract_id"),
)

revenue_schedule_lines = sa.Table(
    "revenue_schedule_lines",
    metadata,
    sa.Column(
        "schedule_id",
        sa.String(255),
        sa.ForeignKey("revenue_schedules.schedule_id", ondelete="CASCADE", name="fk_revenue_schedule_lines_schedule"),
        primary_key=True,
    ),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("period", sa.String(7), nullable=False),  # YYYY-MM
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date, nullable=False),
    sa.Column("days", sa.Integer, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Index("ix_revenue_schedule_lines_period", "period"),
)

# -- reconciliation (migration 0004) ------------------------------------------------------------

recon_runs = sa.Table(
    "recon_runs",
    metadata,
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
    sa.Index("ix_recon_runs_entity_period", "legal_entity", "period", "started_at"),
)

# What a run read from each system, while it runs: matched batch by batch, then dropped.
recon_records = sa.Table(
    "recon_records",
    metadata,
    sa.Column("run_id", sa.String(128), primary_key=True),
    sa.Column("system", sa.String(16), primary_key=True),  # billing, tax, erp, schedules
    sa.Column("record_id", sa.String(255), primary_key=True),
    sa.Column("match_key", sa.String(300), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # the canonical fact, as JSON
    sa.Index("ix_recon_records_run_key", "run_id", "match_key"),
)

recon_breaks = sa.Table(
    "recon_breaks",
    metadata,
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
    sa.Index("ix_recon_breaks_lookup", "legal_entity", "period", "kind", "match_key"),
    sa.Index("ix_recon_breaks_run_status", "run_id", "status", "break_id"),
)


# -- usage (migration 0006) ---------------------------------------------------------------------

# Raw accepted events, kept for lineage. `period` is the period the event counts in (for a
# late event's adjustment, the open period after `late_from`). An identifier counts once per
# period: the primary key is the duplicate check. On PostgreSQL the table is partitioned by
# period (one partition per month, created on demand: adapters/storage/usage.py).
usage_events = sa.Table(
    "usage_events",
    metadata,
    sa.Column("period", sa.String(7), primary_key=True),  # YYYY-MM
    sa.Column("identifier", sa.String(100), primary_key=True),
    sa.Column("meter", sa.String(100), nullable=False),
    sa.Column("customer", sa.String(255), nullable=False),
    sa.Column("value", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
    sa.Column("dimensions", sa.Text, nullable=False),  # JSON object of strings
    sa.Column("source", sa.String(64), nullable=False),  # the sending system (its API key's name)
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("late_from", sa.String(7), nullable=False, server_default=sa.text("''")),
    sa.Index("ix_usage_events_aggregate", "period", "customer", "meter"),
    postgresql_partition_by="LIST (period)",
)

# Refused events, with their reason, until an operator replays or discards them.
usage_quarantine = sa.Table(
    "usage_quarantine",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("identifier", sa.String(255), nullable=False),
    sa.Column("event", sa.Text, nullable=False),  # the event as received, JSON
    sa.Column("reason", sa.String(32), nullable=False),  # a Refusal code
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # open, replayed, discarded
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("resolved_by", sa.String(64), nullable=True),
    sa.Column("resolution", sa.Text, nullable=True),
    sa.Index("ix_usage_quarantine_status", "status", "id"),
)

# Master data the validation uses, synced from billing (`o2c usage sync`): the canonical
# model as JSON next to the columns it is looked up by.
usage_meters = sa.Table(
    "usage_meters",
    metadata,
    sa.Column("event_name", sa.String(100), primary_key=True),
    sa.Column("meter", sa.Text, nullable=False),  # canonical Meter, JSON
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

usage_customers = sa.Table(
    "usage_customers",
    metadata,
    sa.Column("customer", sa.String(255), primary_key=True),
    sa.Column("subscription_id", sa.String(255), nullable=False),
    sa.Column("legal_entity", sa.String(32), nullable=False),
    sa.Column("usage_customer", sa.Text, nullable=False),  # canonical UsageCustomer, JSON
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

usage_closed_periods = sa.Table(
    "usage_closed_periods",
    metadata,
    sa.Column("customer", sa.String(255), primary_key=True),
    sa.Column("period", sa.String(7), primary_key=True),
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
)

usage_releases = sa.Table(
    "usage_releases",
    metadata,
    sa.Column("workflow_id", sa.String(255), primary_key=True),
    sa.Column("subscription_id", sa.String(255), nullable=False),
    sa.Column("customer", sa.String(255), nullable=False),
    sa.Column("legal_entity", sa.String(32), nullable=False),
    sa.Column("period", sa.String(7), nullable=False),
    sa.Column("invoice_id", sa.String(255), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("quantities", sa.Text, nullable=False),  # meter -> quantity, JSON
    sa.Column("subtotal_minor", sa.BigInteger, nullable=False),
    sa.Column("credit_minor", sa.BigInteger, nullable=False),
    sa.Column("tax_minor", sa.BigInteger, nullable=False),
    sa.Column("total_minor", sa.BigInteger, nullable=False),
    sa.Column("released_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("journal_entries", sa.Text, nullable=False),  # JSON list of entry ids
    sa.Index("ix_usage_releases_entity_period", "legal_entity", "period", "invoice_id"),
    sa.Index("ix_usage_releases_customer_period", "customer", "period"),
)

# The sending systems' API keys: only a key's SHA-256 is kept, never the key.
usage_api_keys = sa.Table(
    "usage_api_keys",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("key_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("key_sha256", name="uq_usage_api_keys_sha256"),
)

# -- cash application (migration 0007) ----------------------------------------------------------

# A validated bank statement, once: its id is deterministic (format family, account, the
# bank's statement id), so importing the file again finds it here.
cash_statements = sa.Table(
    "cash_statements",
    metadata,
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

# One incoming payment. The bank's reference is unique per receiving account, so the same
# entry imported twice (two statements, two formats) is one receipt.
cash_receipts = sa.Table(
    "cash_receipts",
    metadata,
    sa.Column("receipt_id", sa.String(255), primary_key=True),
    sa.Column("statement_id", sa.String(255), nullable=False),  # '' for a Stripe receipt
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("legal_entity", sa.String(32), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("value_date", sa.Date, nullable=False),
    sa.Column("bank_account", sa.String(64), nullable=False),
    sa.Column("bank_reference", sa.String(255), nullable=False),
    sa.Column("receipt", sa.Text, nullable=False),  # canonical Receipt, JSON
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("bank_account", "bank_reference", name="uq_cash_receipts_bank_reference"),
    sa.Index("ix_cash_receipts_statement", "statement_id", "receipt_id"),
)

# Receivables as cash application sees them. id_key and number_key are the normalised forms
# a remittance is compared in (canonical.cash.matching.normalise_reference). The balance
# never goes below zero: applications lower it with a guarded update, the check is the floor.
cash_open_items = sa.Table(
    "cash_open_items",
    metadata,
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
    sa.Index("ix_cash_open_items_id_key", "id_key"),
    sa.Index("ix_cash_open_items_number_key", "number_key"),
    sa.Index("ix_cash_open_items_customer", "customer"),
    # By total, not balance: lowering a balance then rewrites no index entry of it.
    sa.Index("ix_cash_open_items_amount", "currency", "total_minor"),
)

# What matching (then an operator) made of each receipt: one row a receipt, the first kept.
# `queued`: cash still unapplied that waits for a person (no decision yet).
cash_matches = sa.Table(
    "cash_matches",
    metadata,
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
    sa.Column("match", sa.Text, nullable=False),  # canonical CashMatch, JSON
    sa.Column("matched_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_cash_matches_queue", "queued", "legal_entity", "value_date", "receipt_id"),
    sa.Index("ix_cash_matches_unapplied", "legal_entity", "currency"),
)

# Every amount applied to an invoice, once: by matching (`match`) or an operator (`decision`).
cash_applications = sa.Table(
    "cash_applications",
    metadata,
    sa.Column("receipt_id", sa.String(255), primary_key=True),
    sa.Column("invoice_id", sa.String(255), primary_key=True),
    sa.Column("origin", sa.String(16), primary_key=True),  # match, decision
    sa.Column("customer", sa.String(255), nullable=False),
    sa.Column("legal_entity", sa.String(32), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("erp_document", sa.String(255), nullable=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_cash_applications_invoice", "invoice_id"),
    sa.Index("ix_cash_applications_customer", "customer"),
)

# An operator's answer to a queued receipt; the primary key makes it the only one.
cash_decisions = sa.Table(
    "cash_decisions",
    metadata,
    sa.Column("receipt_id", sa.String(255), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("applied_minor", sa.BigInteger, nullable=False),
    sa.Column("refund_minor", sa.BigInteger, nullable=False),
    sa.Column("decision", sa.Text, nullable=False),  # canonical CashDecision, JSON
    sa.Column("decided_by", sa.String(255), nullable=False),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
)

# The payer directory, learned from applied receipts (and seeded by hand): a payer account,
# or a normalised payer name, under canonical.cash.payers' keys, to its one customer
# ('' once two customers were seen under the key: ambiguous, it maps to nobody).
cash_payers = sa.Table(
    "cash_payers",
    metadata,
    sa.Column("payer_key", sa.String(300), primary_key=True),
    sa.Column("customer", sa.String(255), nullable=False),
    sa.Column("learned_from", sa.String(255), nullable=False),  # the receipt, or who seeded it
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Payment attempts per card: the networks' retry limit holds per card, across invoices.
card_attempts = sa.Table(
    "card_attempts",
    metadata,
    sa.Column("attempt_key", sa.String(255), primary_key=True),
    sa.Column("card", sa.String(255), nullable=False),
    sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_card_attempts_card", "card", "attempted_at"),
)

# -- revenue posted to the ledger (migration 0008) ----------------------------------------------

# One line of a revenue entry o2c posted: what the entry of `period` posted as revenue of
# `recognised_period` (the same month, or an earlier one for a true-up) for one obligation.
# Signed: a positive amount credited revenue. Recording an entry again changes nothing.
revenue_postings = sa.Table(
    "revenue_postings",
    metadata,
    sa.Column("external_id", sa.String(255), primary_key=True),
    sa.Column("recognised_period", sa.String(7), primary_key=True),
    sa.Column("line_key", sa.String(255), primary_key=True),
    sa.Column("legal_entity", sa.String(32), nullable=False),
    sa.Column("period", sa.String(7), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_revenue_postings_entity", "legal_entity", "period"),
)

# -- who is who (migration 0009) ------------------------------------------------------------

# A person who signs in to o2c. Only the argon2 hash of the password is kept; a disabled user
# keeps their row (the audit log names them) but signs in no more.
users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
)

# A personal API token (kind "personal", owner a user) or a machine's API key (kind
# "machine", owner the machine's name). The SHA-256 of the secret is the key: the secret
# itself is shown once and never stored. `token_id` names it for revocation.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("token_id", sa.String(16), nullable=False, unique=True),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_api_tokens_owner", "owner"),
)

# Every sign-in, token change and decision, appended and never edited.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index("ix_audit_log_actor", "actor", "at"),
)

# PostgreSQL's per-period partitions of usage_events (usage_events_2026_03): created on
# demand, not by a migration, so the comparison with the tables above leaves them out.
USAGE_PARTITION = re.compile(r"usage_events_\d{4}_\d{2}")


def is_o2c_table(name: str | None, type_: str, _parent_names: object) -> bool:
    """The sandbox keeps its own tables in the same database; they are none of these. Nor
    are the partitions of usage_events, which the store creates as periods arrive."""
    if type_ != "table" or name is None:
        return True
    return not (name.startswith("sandbox_") or USAGE_PARTITION.fullmatch(name))


class Comparison(TypedDict):
    include_name: Callable[[str | None, str, object], bool]
    compare_server_default: bool


# How Alembic compares these tables with a database (autogenerate, and the migration test):
# o2c's tables only, server defaults included.
COMPARISON: Comparison = {"include_name": is_o2c_table, "compare_server_default": True}
