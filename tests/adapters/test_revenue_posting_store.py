"""What o2c posted of recognised revenue, and what the schedules recognise per month and
obligation: on SQLite and, when O2C_DATABASE_URL names one, PostgreSQL (shared between runs,
so every test books under an entity of its own)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import date

import pytest

from adapters.errors import IntegrationBug
from adapters.storage.revenue_postings import SqlRevenuePostings
from adapters.storage.schedules import SqlRevenueSchedules
from canonical.journal import ChartOfAccounts
from canonical.money import Money
from canonical.revenue import point_in_time_schedule, ratable_schedule
from canonical.revenue.posting import Recognition, build_postings
from canonical.usage.booking import USAGE_OBLIGATION


@pytest.fixture
async def stores(database_url) -> AsyncIterator[tuple[SqlRevenueSchedules, SqlRevenuePostings]]:
    schedules, postings = SqlRevenueSchedules(database_url), SqlRevenuePostings(database_url)
    yield schedules, postings
    await schedules.aclose()
    await postings.aclose()


def entity() -> str:
    return f"E{secrets.token_hex(4)}"


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


async def test_recognition_per_month_and_obligation_paged_without_usage(stores):
    schedules, _ = stores
    code = entity()
    # Seats 3,000.00 over [2026-10-16, 2027-01-16): 92 days; October 16 days = 521.74,
    # November 30 days = 978.26, December 31 days = 1,010.87, January 15 days = 489.13.
    await schedules.save_schedules(
        [
            ratable_schedule(
                schedule_id=f"{code}-seats",
                contract_id=f"{code}-C1",
                account_id="cus",
                legal_entity=code,
                obligation="seats",
                total=eur("3000.00"),
                start=date(2026, 10, 16),
                end=date(2027, 1, 16),
            ),
            point_in_time_schedule(
                schedule_id=f"{code}-setup",
                contract_id=f"{code}-C2",
                account_id="cus",
                legal_entity=code,
                obligation="setup",
                total=eur("500.00"),
                delivered_on=date(2026, 11, 3),
            ),
            point_in_time_schedule(
                schedule_id=f"{code}-usage",
                contract_id=f"{code}-C2",
                account_id="cus",
                legal_entity=code,
                obligation=USAGE_OBLIGATION,
                total=eur("77.00"),
                delivered_on=date(2026, 11, 30),
            ),
        ]
    )
    found: list[Recognition] = []
    cursor = ""
    while True:
        page = await schedules.recognition_of_entity(legal_entity=code, through="2026-11", cursor=cursor, limit=2)
        found += page.items
        cursor = page.next_cursor
        if not cursor:
            break
    assert [(r.period, r.obligation, r.amount) for r in found] == [
        ("2026-10", "seats", eur("521.74")),
        ("2026-11", "seats", eur("978.26")),
        ("2026-11", "setup", eur("500.00")),
    ]


async def test_a_posting_recorded_twice_is_kept_once_and_read_back_by_entity(stores):
    _, postings = stores
    code = entity()
    (october,) = build_postings(
        legal_entity=code,
        subsidiary="1",
        period="2026-10",
        recognised=[Recognition(period="2026-10", obligation="seats", amount=eur("521.74"))],
        posted=[],
        chart=ChartOfAccounts(),
    )
    await postings.record_posting(october.lines)
    await postings.record_posting(october.lines)
    assert await postings.postings_of_entity(code) == october.lines
    assert await postings.posting(f"revenue-{code}-2026-10-EUR") == october.lines
    assert await postings.postings_of_entity(code, through="2026-09") == []

    (november,) = build_postings(
        legal_entity=code,
        subsidiary="1",
        period="2026-11",
        recognised=[
            Recognition(period="2026-10", obligation="seats", amount=eur("500.00")),
            Recognition(period="2026-11", obligation="seats", amount=eur("978.26")),
        ],
        posted=october.lines,
        chart=ChartOfAccounts(),
    )
    await postings.record_posting(november.lines)
    held = await postings.postings_of_entity(code)
    assert [(x.period, x.recognised_period, x.amount) for x in held] == [
        ("2026-10", "2026-10", eur("521.74")),
        ("2026-11", "2026-10", eur("-21.74")),
        ("2026-11", "2026-11", eur("978.26")),
    ]
    changed = [november.lines[0].model_copy(update={"amount": eur("1.00")})]
    with pytest.raises(IntegrationBug, match="recorded already with other lines"):
        await postings.record_posting(changed)
