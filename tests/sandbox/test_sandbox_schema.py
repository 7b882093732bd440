"""The sandbox migrates its own tables, apart from o2c's, so both can share one database."""

from __future__ import annotations

import sqlalchemy as sa

from adapters.storage import db as o2c_db
from sandbox import db
from sandbox.store import Store, metadata

SANDBOX_TABLES = {"sandbox_documents", "sandbox_idempotency", "sandbox_meter_events"}


def _tables(url: str) -> set[str]:
    engine = db.engine_for(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_a_fresh_database_gets_exactly_the_sandboxs_tables(tmp_path):
    url = f"sqlite:///{tmp_path / 'sandbox.sqlite'}"
    db.upgrade(url)
    db.upgrade(url)  # at head: a no-op
    assert _tables(url) == SANDBOX_TABLES | {db.VERSION_TABLE}


def test_the_migrations_give_the_tables_the_store_describes(tmp_path):
    url = f"sqlite:///{tmp_path / 'sandbox.sqlite'}"
    db.upgrade(url)
    engine = db.engine_for(url)
    try:
        inspector = sa.inspect(engine)
        for table in metadata.sorted_tables:
            assert {c["name"] for c in inspector.get_columns(table.name)} == set(table.columns.keys())
        indexes = {index["name"] for index in inspector.get_indexes("sandbox_documents")}
        assert {"ix_sandbox_documents_listing", "ix_sandbox_documents_num"} <= indexes
    finally:
        engine.dispose()


def test_an_o2c_database_has_no_sandbox_tables(tmp_path):
    url = f"sqlite:///{tmp_path / 'o2c.sqlite'}"
    o2c_db.upgrade(url)
    tables = _tables(url)
    assert not tables & SANDBOX_TABLES
    assert db.VERSION_TABLE not in tables


def test_o2c_and_the_sandbox_share_one_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    o2c_db.upgrade(url)
    db.upgrade(url)
    o2c_db.upgrade(url)
    tables = _tables(url)
    assert SANDBOX_TABLES | {db.VERSION_TABLE, "alembic_version"} <= tables


def _old_o2c_database(url: str) -> None:
    """The sandbox's tables as o2c's migrations 0001 and 0002 left them, before the listing columns."""
    engine = db.engine_for(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE sandbox_documents (seq INTEGER PRIMARY KEY AUTOINCREMENT, system VARCHAR(32) NOT NULL,"
                " type VARCHAR(64) NOT NULL, id VARCHAR(255) NOT NULL, data JSON NOT NULL, created_at FLOAT NOT NULL,"
                " updated_at FLOAT NOT NULL, CONSTRAINT uq_sandbox_documents_key UNIQUE (system, type, id))"
            )
            conn.exec_driver_sql(
                "CREATE TABLE sandbox_idempotency (system VARCHAR(32) NOT NULL, key VARCHAR(300) NOT NULL,"
                " request_hash VARCHAR(64) NOT NULL, status INTEGER NOT NULL, body TEXT NOT NULL,"
                " headers JSON NOT NULL, created_at FLOAT NOT NULL, PRIMARY KEY (system, key))"
            )
            conn.exec_driver_sql(
                "INSERT INTO sandbox_documents (system, type, id, data, created_at, updated_at) VALUES"
                ' (\'netsuite\', \'journalEntry\', \'42\', \'{"id": "42", "tranDate": "2025-03-31",'
                ' "subsidiary": {"id": "1"}}\', 0, 0)'
            )
    finally:
        engine.dispose()
    o2c_db.upgrade(url, "0002_revenue_schedules")


def test_an_older_o2c_database_is_adopted_with_its_documents(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    _old_o2c_database(url)
    store = Store(url)
    try:
        with store.tx() as tx:
            row = tx.row("netsuite", "journalEntry", "42")
    finally:
        store.close()
    assert row is not None and (row.scope, row.day, row.num) == ("1", "2025-03-31", 42)
    o2c_db.upgrade(url)  # o2c's 0003 leaves the adopted tables alone
    assert _tables(url) >= SANDBOX_TABLES
