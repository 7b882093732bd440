"""Alembic migrations of the o2c database (applied by `o2c.db.upgrade`)."""
