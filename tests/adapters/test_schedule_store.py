"""The revenue schedule store against SQLite and, when O2C_DATABASE_URL names one,
PostgreSQL: migrations create the tables, saving twice keeps one schedule, amounts
come back exactly."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import date

import pytest
import sqlalchemy as sa

from adapters.errors import IntegrationBug
from adapters.storage.db import engine_for
from adapters.storage.schedules import SqlRevenueSchedules
from canonical.models import RevenueScheduleLine
from canonical.money import Money
from canonical.revenue import (
    ContractModification,
    ObligationKind,
    PerformanceObligation,
    RevenueContract,
    modify,
    ratable_schedule,
    recognise,
)


@pytest.fixture
async def store(database_url) -> AsyncIterator[SqlRevenueSchedules]:
    store = SqlRevenueSchedules(database_url)
    yield store
    await store.aclose()


def schedule(schedule_id: str, total: Money, start=date(2026, 1, 15), end=date(2027, 1, 15)):
    return ratable_schedule(
        schedule_id=schedule_id,
        contract_id="C-100",
        account_id="cus_acme",
        legal_entity="US01",
        obligation="prod_seats",
        total=total,
        start=start,
        end=end,
    )


def new_id(prefix: str = "renewal-C-100-2026/seats") -> str:
    return f"{prefix}/{secrets.token_hex(4)}"  # PostgreSQL is shared across runs


def line_count(url: str, schedule_id: str) -> int:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT count(*) FROM revenue_schedule_lines WHERE schedule_id = :id"), {"id": schedule_id}
            ).scalar_one()
    finally:
        engine.dispose()


async def test_save_twice_keeps_one_schedule_with_exact_amounts(store, database_url):
    schedule_id = new_id()
    saved = schedule(schedule_id, Money.of("7563.33", "USD"))
    await store.save_schedule(saved)
    await store.save_schedule(saved)
    read = await store.get_schedule(schedule_id)
    assert read == saved
    assert sum((line.amount for line in read.lines), Money.zero("USD")) == read.total
    assert line_count(database_url, schedule_id) == 13


async def test_save_replaces_the_lines(store, database_url):
    schedule_id = new_id()
    await store.save_schedule(schedule(schedule_id, Money.of("1200.00", "USD")))
    shorter = schedule(schedule_id, Money.of("999.99", "USD"), start=date(2026, 1, 1), end=date(2026, 4, 1))
    await store.save_schedule(shorter)
    assert await store.get_schedule(schedule_id) == shorter
    assert line_count(database_url, schedule_id) == 3


@pytest.mark.parametrize(
    "amount, currency",
    [
        ("98765432109876.54", "USD"),  # beyond a float's exact range in cents
        ("1234567", "JPY"),
        ("1000.001", "BHD"),
        ("0.01", "EUR"),
    ],
)
async def test_amounts_round_trip_exactly_in_every_minor_unit(store, amount, currency):
    schedule_id = new_id(f"exact/{currency}")
    saved = schedule(schedule_id, Money.of(amount, currency))
    await store.save_schedule(saved)
    read = await store.get_schedule(schedule_id)
    assert read == saved
    assert read.total.amount.as_tuple() == saved.total.amount.as_tuple()


async def test_delete_removes_the_schedule_and_its_lines(store, database_url):
    schedule_id = new_id()
    await store.save_schedule(schedule(schedule_id, Money.of("100.00", "USD")))
    await store.delete_schedule(schedule_id)
    assert await store.get_schedule(schedule_id) is None
    assert line_count(database_url, schedule_id) == 0
    await store.delete_schedule(schedule_id)  # deleting again changes nothing
    assert await store.get_schedule("never-saved") is None


async def test_a_schedule_mixing_currencies_is_refused(store):
    saved = schedule(new_id(), Money.of("100.00", "USD"))
    bad = saved.model_copy(
        update={
            "lines": [
                RevenueScheduleLine(
                    period="2026-01",
                    start=date(2026, 1, 1),
                    end=date(2026, 2, 1),
                    days=31,
                    amount=Money.of("100.00", "EUR"),
                )
            ]
        }
    )
    with pytest.raises(IntegrationBug):
        await store.save_schedule(bad)
    assert await store.get_schedule(saved.schedule_id) is None


async def test_construction_migrates_an_empty_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    store = SqlRevenueSchedules(url)
    try:
        tables = set(sa.inspect(store.engine).get_table_names())
        assert {"revenue_schedules", "revenue_schedule_lines", "alembic_version"} <= tables
    finally:
        await store.aclose()
    await SqlRevenueSchedules(url).aclose()  # a second construction finds it migrated


async def test_a_reversal_on_the_modification_day_round_trips_before_the_spread(store, database_url):
    # A reduction beyond what was unrecognised: a one-day line reversing revenue at once,
    # then the (zero) spread over the rest of the term, both in October.
    prefix = new_id("reversal")
    contract = RevenueContract(
        contract_id=prefix,
        account_id="cus_1",
        legal_entity="US01",
        booked_on=date(2026, 1, 1),
        transaction_price=Money.of("12000.00", "USD"),
        obligations=[
            PerformanceObligation(
                obligation_id="seats",
                kind=ObligationKind.SUBSCRIPTION,
                ssp=Money.of("12000.00", "USD"),
                start=date(2026, 1, 1),
                end=date(2027, 1, 1),
            )
        ],
    )
    change = ContractModification(modification_id="M1", added_price=Money.of("-5000.00", "USD"))
    _past, reversed_ = modify(recognise(contract), change, date(2026, 10, 1))
    await store.save_schedule(reversed_)
    read = await store.get_schedule(reversed_.schedule_id)
    assert read == reversed_
    assert [(line.period, line.days, str(line.amount.amount)) for line in read.lines] == [
        ("2026-10", 1, "-1975.34"),
        ("2026-10", 31, "0.00"),
        ("2026-11", 30, "0.00"),
        ("2026-12", 31, "0.00"),
    ]
    assert line_count(database_url, reversed_.schedule_id) == 4
