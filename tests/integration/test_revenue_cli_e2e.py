"""`o2c revenue post | rollforward | rpo` as a user runs them: a process of its own against the
dev server, the worker, the NetSuite stand-in and o2c's database, for the CLI's own entity."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from adapters.netsuite import NetSuiteErp
from adapters.storage.schedules import SqlRevenueSchedules
from canonical.journal import ChartOfAccounts, invoice_entry
from canonical.money import Money
from canonical.revenue import ratable_schedule
from tests.integration.test_cli import CLI_ENTITY, CLI_SUBSIDIARY, cli  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


async def test_post_a_month_then_read_the_roll_forward_and_the_rpo(cli, settings):  # noqa: F811
    # 9,200.00 over [2026-05-01, 2026-08-01), 92 days: 100.00 a day; invoiced up front on May 1.
    schedules = SqlRevenueSchedules(settings.database_url)
    try:
        await schedules.save_schedule(
            ratable_schedule(
                schedule_id=f"{CLI_ENTITY}-seats",
                contract_id=f"{CLI_ENTITY}-C1",
                account_id="cus_1",
                legal_entity=CLI_ENTITY,
                obligation="seats",
                total=usd("9200.00"),
                start=date(2026, 5, 1),
                end=date(2026, 8, 1),
            )
        )
    finally:
        await schedules.aclose()
    erp = NetSuiteErp(settings.netsuite_base_url, settings.netsuite_token, timeout=5)
    try:
        await erp.post_journal_entry(
            invoice_entry(
                external_id=f"{CLI_ENTITY}-invoice-1",
                subsidiary=CLI_SUBSIDIARY,
                posting_date=date(2026, 5, 1),
                memo="annual seats, invoiced up front",
                revenue=usd("9200.00"),
                tax=usd("0.00"),
                chart=ChartOfAccounts(),
                invoice_id=f"in_{CLI_ENTITY}",
            )
        )
    finally:
        await erp.aclose()

    code, out, err = await cli("revenue", "post", "--entity", CLI_ENTITY, "--period", "2026-05", "--wait")
    assert code == 0, (out, err)
    assert f"revenue-{CLI_ENTITY}-2026-05" in out

    code, out, err = await cli(
        "revenue", "rollforward", "--entity", CLI_ENTITY, "--from", "2026-05", "--to", "2026-06", "--detail", "--csv"
    )
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    # May: 0 + 9,200.00 (the invoice) - 3,100.00 (31 days) = 6,100.00; June: - 3,000.00 = 3,100.00.
    months = [
        (r["period"], r["opening"], r["billed"], r["recognised"], r["closing"]) for r in rows if r["line"] == "month"
    ]
    assert months == [
        ("2026-05", "0.00", "9200.00", "3100.00", "6100.00"),
        ("2026-06", "6100.00", "0.00", "3000.00", "3100.00"),
    ]
    behind = [(r["line"], r["period"], r["document"]) for r in rows if r["line"] != "month"]
    assert behind == [
        ("billed", "2026-05", f"in_{CLI_ENTITY}"),
        ("recognised", "2026-05", f"{CLI_ENTITY}-C1"),
        ("recognised", "2026-06", f"{CLI_ENTITY}-C1"),
    ]

    code, out, err = await cli("revenue", "rpo", "--entity", CLI_ENTITY, "--as-of", "2026-05-31", "--csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    # After May 31: June and July, 61 days = 6,100.00, all within 12 months.
    assert [(r["contract"], r["within_12_months"], r["later"]) for r in rows] == [
        (f"{CLI_ENTITY}-C1", "6100.00", "0.00"),
        ("total", "6100.00", "0.00"),
    ]
