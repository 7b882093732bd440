"""The sandbox's tables: documents keyed by system/type/id, with the indexed listing
columns scope, day and num, and stored idempotent responses.

A database that o2c's own migrations used to give these tables (o2c's 0001_sandbox, and
0003_sandbox_listing_index for the listing columns) is adopted as it is: the tables are
created only where absent, and the listing columns added (and backfilled) only where an
older database lacks them.

Revision ID: sandbox_0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "sandbox_0001"
down_revision = None
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


def _listing_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("scope", sa.String(64), nullable=True),
        sa.Column("day", sa.String(10), nullable=True),
        sa.Column("num", sa.BigInteger, nullable=True),
    ]


def _create_listing_indexes(create_index: Callable[[str, list[str]], object]) -> None:
    # (system, type, scope, day, seq): one legal entity's period in insertion order.
    create_index("ix_sandbox_documents_listing", ["system", "type", "scope", "day", "seq"])
    # (system, type, num), carrying scope and day as well: a keyset page of one
    # subsidiary's entries (num > cursor ORDER BY num) and its count read the index
    # alone, without a table lookup per entry.
    create_index("ix_sandbox_documents_num", ["system", "type", "num", "scope", "day"])


def _index(system: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    """A frozen copy of the rules in sandbox.store.INDEXERS (a migration must not change
    when the application code does)."""
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


def _backfill_listing_columns() -> None:
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


def _documents_table() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("sandbox_documents"):
        op.create_table(
            "sandbox_documents",
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("system", sa.String(32), nullable=False),
            sa.Column("type", sa.String(64), nullable=False),
            sa.Column("id", sa.String(255), nullable=False),
            sa.Column("data", sa.JSON, nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("updated_at", sa.Float, nullable=False),
            *_listing_columns(),
            sa.UniqueConstraint("system", "type", "id", name="uq_sandbox_documents_key"),
        )
        op.create_index("ix_sandbox_documents_system_type", "sandbox_documents", ["system", "type", "seq"])
        _create_listing_indexes(lambda name, columns: op.create_index(name, "sandbox_documents", columns))
        return
    if "scope" in {column["name"] for column in inspector.get_columns("sandbox_documents")}:
        return  # adopted with its listing columns
    with op.batch_alter_table("sandbox_documents") as batch:
        for column in _listing_columns():
            batch.add_column(column)
        _create_listing_indexes(batch.create_index)
    _backfill_listing_columns()


def upgrade() -> None:
    _documents_table()
    if not sa.inspect(op.get_bind()).has_table("sandbox_idempotency"):
        op.create_table(
            "sandbox_idempotency",
            sa.Column("system", sa.String(32), primary_key=True),
            sa.Column("key", sa.String(300), primary_key=True),
            sa.Column("request_hash", sa.String(64), nullable=False),
            sa.Column("status", sa.Integer, nullable=False),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("headers", sa.JSON, nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("sandbox_idempotency")
    op.drop_table("sandbox_documents")
