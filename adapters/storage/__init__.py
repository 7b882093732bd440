"""o2c's own database: table definitions, the stores that implement ports on them, and the Alembic migrations."""
