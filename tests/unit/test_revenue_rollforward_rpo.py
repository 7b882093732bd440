"""The deferred revenue roll-forward month by month with its documents, and the remaining
performance obligations, on worked examples computed by hand."""

from __future__ import annotations

from datetime import date

from canonical.money import Money
from canonical.revenue import Billing, point_in_time_schedule, ratable_schedule
from canonical.revenue.reports import DocumentAmount, monthly_roll_forward
from canonical.revenue.rpo import months_later, remaining_obligations


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


# C1: 3,650.00 over [2026-10-01, 2027-10-01), 365 days: 10.00 a day.
ANNUAL = ratable_schedule(
    schedule_id="C1-seats",
    contract_id="C1",
    account_id="cus_1",
    legal_entity="US01",
    obligation="seats",
    total=usd("3650.00"),
    start=date(2026, 10, 1),
    end=date(2027, 10, 1),
)
# C2: set-up 500.00 delivered on 2026-11-20.
SETUP = point_in_time_schedule(
    schedule_id="C2-setup",
    contract_id="C2",
    account_id="cus_2",
    legal_entity="US01",
    obligation="setup",
    total=usd("500.00"),
    delivered_on=date(2026, 11, 20),
)
BILLINGS = [
    Billing(legal_entity="US01", billed_on=date(2026, 10, 1), amount=usd("3650.00"), contract_id="C1", document="in_1"),
    Billing(legal_entity="US01", billed_on=date(2026, 11, 10), amount=usd("500.00"), contract_id="C2", document="in_2"),
]


def test_the_roll_forward_month_by_month_names_the_invoices_and_contracts_behind_it():
    rows = monthly_roll_forward([ANNUAL, SETUP], BILLINGS, first="2026-10", last="2026-12")
    # October: 0 + 3,650.00 (in_1) - 310.00 (31 days of C1) = 3,340.00.
    # November: 3,340.00 + 500.00 (in_2) - (300.00 of C1 + 500.00 of C2) = 3,040.00.
    # December: 3,040.00 + 0 - 310.00 = 2,730.00.
    assert [(r.period, r.opening, r.billed, r.recognised, r.closing) for r in rows] == [
        ("2026-10", usd("0.00"), usd("3650.00"), usd("310.00"), usd("3340.00")),
        ("2026-11", usd("3340.00"), usd("500.00"), usd("800.00"), usd("3040.00")),
        ("2026-12", usd("3040.00"), usd("0.00"), usd("310.00"), usd("2730.00")),
    ]
    november = rows[1]
    assert november.billed_by == [DocumentAmount(document="in_2", amount=usd("500.00"))]
    assert november.recognised_by == [
        DocumentAmount(document="C1", amount=usd("300.00")),
        DocumentAmount(document="C2", amount=usd("500.00")),
    ]
    assert rows[0].billed_by == [DocumentAmount(document="in_1", amount=usd("3650.00"))]


def test_remaining_performance_obligations_within_12_months_and_later():
    # C3: 7,310.00 over [2026-12-01, 2028-12-01), 731 days (2027: 365, 2028: 366): 10.00 a day.
    two_years = ratable_schedule(
        schedule_id="C3-seats",
        contract_id="C3",
        account_id="cus_3",
        legal_entity="US01",
        obligation="seats",
        total=usd("7310.00"),
        start=date(2026, 12, 1),
        end=date(2028, 12, 1),
    )
    report = remaining_obligations([ANNUAL, SETUP, two_years], as_of=date(2026, 11, 30))
    # C1: recognised through Nov 30 = 61 days = 610.00; the rest, 3,040.00, ends before
    # 2027-12-01, so all of it is within 12 months. C2 is delivered: nothing remains.
    # C3: [2026-12-01, 2027-12-01) is 365 days = 3,650.00 within; 366 days = 3,660.00 later.
    assert [(x.contract_id, x.recognised, x.within_12_months, x.later) for x in report.lines] == [
        ("C1", usd("610.00"), usd("3040.00"), usd("0.00")),
        ("C3", usd("0.00"), usd("3650.00"), usd("3660.00")),
    ]
    (total,) = report.totals
    assert (total.within_12_months, total.later, total.remaining) == (usd("6690.00"), usd("3660.00"), usd("10350.00"))
    assert report.lines[1].remaining == usd("7310.00")


def test_twelve_months_later_keeps_the_day_or_takes_the_month_end():
    assert months_later(date(2026, 12, 1), 12) == date(2027, 12, 1)
    assert months_later(date(2027, 1, 31), 1) == date(2027, 2, 28)
