"""Alembic migrations of the o2c database (applied by `adapters.storage.db.upgrade`)."""
