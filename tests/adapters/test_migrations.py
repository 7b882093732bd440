"""The migrations build exactly the tables the code defines (adapters/storage/tables.py)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from adapters.storage.db import engine_for, upgrade
from adapters.storage.tables import COMPARISON, metadata


def differences(url: str, target: sa.MetaData) -> list:
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            return compare_metadata(MigrationContext.configure(connection, opts=COMPARISON), target)
    finally:
        engine.dispose()


def test_upgrading_a_database_yields_the_tables_the_code_defines(database_url):
    upgrade(database_url)
    assert differences(database_url, metadata) == []


def test_the_comparison_sees_a_table_that_parts_from_the_migrations(database_url):
    upgrade(database_url)
    parted = sa.MetaData()
    for table in metadata.tables.values():
        table.to_metadata(parted)
    parted.tables["recon_runs"].append_column(sa.Column("closed_by", sa.String(64)))
    sa.Index("ix_revenue_schedules_method", parted.tables["revenue_schedules"].c.method)
    found = {
        (diff[0], diff[2] if diff[0] == "add_column" else diff[1].name) for diff in differences(database_url, parted)
    }
    assert found == {("add_column", "recon_runs"), ("add_index", "ix_revenue_schedules_method")}
