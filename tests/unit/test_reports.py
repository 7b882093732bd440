"""What finance reads, rendered: the waterfall as a table, breaks as CSV."""

import csv
import io
from datetime import UTC, date, datetime, timedelta

from canonical.money import Money
from canonical.reconciliation import BreakKind, BreakRecord
from canonical.revenue import ratable_schedule, waterfall
from starter.console import text_of
from starter.reports import breaks_csv, waterfall_table


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def test_the_waterfall_table_has_a_column_per_recognition_month_and_what_remains():
    schedule = ratable_schedule(
        schedule_id="S",
        contract_id="C",
        account_id="A",
        legal_entity="US01",
        obligation="seats",
        total=usd("3000.00"),
        start=date(2026, 11, 1),
        end=date(2027, 2, 1),
        booked_on=date(2026, 10, 20),
    )
    lines = text_of(waterfall_table(waterfall([schedule], through="2026-12"))).splitlines()
    assert lines[0].split() == ["entity", "cur", "booked", "in", "booked", "2026-11", "2026-12", "remaining"]
    assert lines[2].split() == ["US01", "USD", "2026-10", "3000.00", "978.26", "1010.87", "1010.87"]


def test_breaks_as_csv_with_their_age():
    seen = datetime.now(UTC) - timedelta(days=3, hours=1)
    record = BreakRecord(
        break_id=7,
        run_id="R",
        legal_entity="US01",
        period="2026-10",
        kind=BreakKind.AMOUNT_MISMATCH,
        document="in_1",
        currency="USD",
        billing=usd("10.00"),
        erp=usd("11.00"),
        difference=usd("1.00"),
        explanation='off by "one", really',
        owner="general ledger",
        status="open",
        first_seen_at=seen,
        detected_at=seen,
    )
    [row] = csv.DictReader(io.StringIO(breaks_csv([record])))
    assert (row["break_id"], row["kind"], row["billing"], row["erp"], row["difference"]) == (
        "7",
        "amount_mismatch",
        "10.00",
        "11.00",
        "1.00",
    )
    assert row["age_days"] == "3" and row["explanation"] == 'off by "one", really'
