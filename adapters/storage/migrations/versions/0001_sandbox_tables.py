"""Sandbox state: a document store keyed by system/type/id, and stored idempotent responses.

Revision ID: 0001_sandbox
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_sandbox"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sandbox_documents",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("system", sa.String(32), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("system", "type", "id", name="uq_sandbox_documents_key"),
    )
    op.create_index("ix_sandbox_documents_system_type", "sandbox_documents", ["system", "type", "seq"])
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
    op.drop_index("ix_sandbox_documents_system_type", table_name="sandbox_documents")
    op.drop_table("sandbox_documents")
