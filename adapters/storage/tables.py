"""o2c's own tables, defined once: the stores query them and the Alembic environment compares
them with what the migrations build (tests/adapters/test_migrations.py).

The migrations remain the only way the schema changes; a change here comes with a new
migration, and the comparison fails until both agree. Amounts are exact integers in the
currency's minor unit next to their ISO currency; `end_date` columns are exclusive.
"""

from __future__ import annotations

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


def is_o2c_table(name: str | None, type_: str, _parent_names: object) -> bool:
    """The sandbox keeps its own tables in the same database; they are none of these."""
    return not (type_ == "table" and name is not None and name.startswith("sandbox_"))


class Comparison(TypedDict):
    include_name: Callable[[str | None, str, object], bool]
    compare_server_default: bool


# How Alembic compares these tables with a database (autogenerate, and the migration test):
# o2c's tables only, server defaults included.
COMPARISON: Comparison = {"include_name": is_o2c_table, "compare_server_default": True}
