"""Formerly the sandbox's tables; now the root of o2c's chain and a no-op.

The sandbox owns its tables (`sandbox_documents`, `sandbox_idempotency`) and migrates
them itself (sandbox/migrations, version table `sandbox_alembic_version`), so o2c's chain
creates none of them on a new database. The revision id stays: databases have it applied.
A database this revision once gave sandbox tables keeps them; the sandbox adopts them.

Revision ID: 0001_sandbox
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

revision = "0001_sandbox"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
