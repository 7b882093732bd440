"""Alembic environment: runs online against the connection adapters.storage.db.upgrade passes in,
or against `sqlalchemy.url` when invoked through the alembic CLI."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from adapters.storage.tables import COMPARISON, metadata

config = context.config


def _run(connection: Connection) -> None:
    # The tables the code defines: `alembic revision --autogenerate` proposes what the
    # migrations lack.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, **COMPARISON)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from adapters.storage.db import engine_for

    url = config.get_main_option("sqlalchemy.url")
    assert url is not None, "the alembic CLI needs sqlalchemy.url"
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
