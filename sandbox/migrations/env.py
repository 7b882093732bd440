"""Alembic environment of the sandbox: runs against the connection sandbox.db.upgrade passes
in, or against `sqlalchemy.url` through the alembic CLI. Its revisions are recorded in
their own version table, apart from o2c's."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from sandbox.db import VERSION_TABLE, engine_for

config = context.config


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, render_as_batch=True, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None, "the alembic CLI needs sqlalchemy.url"
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
