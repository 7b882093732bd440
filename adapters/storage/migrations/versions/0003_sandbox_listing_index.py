"""Sandbox listings: indexed columns scope, day and num on sandbox documents.

Reconciliation lists a period of one legal entity page by page (Stripe invoices of an
account, AvaTax transactions of a company, NetSuite journal entries of a subsidiary).
These columns let the sandbox push those filters and keyset cursors down to SQL instead
of reading every document: one index serves (account, day) ranges in insertion order,
the other internal-id keysets. Existing rows of the listed types are backfilled here with a
frozen copy of the rules in sandbox.store.INDEXERS (a migration must not
change when the application code does).

Revision ID: 0003_sandbox_listing_index
Revises: 0002_revenue_schedules
Create Date: 2026-11-30
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003_sandbox_listing_index"
down_revision = "0002_revenue_schedules"
branch_labels = None
depends_on = None

_documents = sa.table(
    "sandbox_documents",
    sa.column("seq", sa.Integer),
    sa.column("system", sa.String),
    sa.column("type", sa.String),
    sa.column("data", sa.JSON),
    sa.column("scope", sa.String),
    sa.column("day", sa.String),
    sa.column("num", sa.BigInteger),
)


def _index(system: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    if (system, type_) == ("stripe", "invoice"):
        created = data.get("created")
        day = None if created is None else datetime.fromtimestamp(int(created), tz=UTC).date().isoformat()
        return {"scope": data.get("_stripe_account") or "", "day": day, "num": None}
    if (system, type_) == ("avatax", "transaction"):
        if data.get("type") not in ("SalesInvoice", "ReturnInvoice"):
            return {"scope": None, "day": None, "num": None}
        return {
            "scope": str(data.get("companyCode") or ""),
            "day": str(data.get("date") or "")[:10] or None,
            "num": None,
        }
    subsidiary = (data.get("subsidiary") or {}).get("id")
    internal_id = str(data.get("id") or "")
    return {
        "scope": None if subsidiary is None else str(subsidiary),
        "day": data.get("tranDate") or None,
        "num": int(internal_id) if internal_id.isdigit() else None,
    }


def upgrade() -> None:
    with op.batch_alter_table("sandbox_documents") as batch:
        batch.add_column(sa.Column("scope", sa.String(64), nullable=True))
        batch.add_column(sa.Column("day", sa.String(10), nullable=True))
        batch.add_column(sa.Column("num", sa.BigInteger, nullable=True))
        batch.create_index("ix_sandbox_documents_listing", ["system", "type", "scope", "day", "seq"])
        # (system, type, num), carrying scope and day as well: a keyset page of one
        # subsidiary's entries (num > cursor ORDER BY num) and its count read the index
        # alone, without a table lookup per entry.
        batch.create_index("ix_sandbox_documents_num", ["system", "type", "num", "scope", "day"])
    conn = op.get_bind()
    listed = sa.or_(
        sa.and_(_documents.c.system == "stripe", _documents.c.type == "invoice"),
        sa.and_(_documents.c.system == "avatax", _documents.c.type == "transaction"),
        sa.and_(_documents.c.system == "netsuite", _documents.c.type == "journalEntry"),
    )
    rows = conn.execute(
        sa.select(_documents.c.seq, _documents.c.system, _documents.c.type, _documents.c.data).where(listed)
    ).fetchall()
    updates = [{"key": seq, **_index(system, type_, dict(data))} for seq, system, type_, data in rows]
    if updates:
        conn.execute(
            _documents.update()
            .where(_documents.c.seq == sa.bindparam("key"))
            .values(scope=sa.bindparam("scope"), day=sa.bindparam("day"), num=sa.bindparam("num")),
            updates,
        )


def downgrade() -> None:
    with op.batch_alter_table("sandbox_documents") as batch:
        batch.drop_index("ix_sandbox_documents_num")
        batch.drop_index("ix_sandbox_documents_listing")
        batch.drop_column("num")
        batch.drop_column("day")
        batch.drop_column("scope")
