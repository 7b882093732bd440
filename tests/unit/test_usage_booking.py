"""What a released usage invoice books: the accrual in the month of use, the invoice that
turns it into a receivable, and the revenue schedule in the month of use."""

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canonical.journal import ChartOfAccounts, JournalEntry
from canonical.money import CurrencyError, Money
from canonical.revenue import recognised_before, waterfall
from canonical.usage import usage_entries, usage_schedule
from canonical.usage.models import UsageRelease

CHART = ChartOfAccounts()


def book(revenue: str, tax: str, currency: str = "USD", period: str = "2026-03", **extra) -> list[JournalEntry]:
    return usage_entries(
        external_id="usage-sub_1-2026-03",
        subsidiary="US01",
        usage_period=period,
        invoice_date=date(2026, 4, 2),
        invoice_id="in_123",
        revenue=Money.of(revenue, currency),
        tax=Money.of(tax, currency),
        chart=CHART,
        memo="Usage sub_1 2026-03",
        **extra,
    )


def sides(entry: JournalEntry) -> list[tuple[str, str, str]]:
    return [(x.account, "Dr" if x.debit else "Cr", str(x.amount.amount)) for x in entry.lines]


@pytest.mark.parametrize(
    ("currency", "revenue", "tax", "receivable"),
    [
        ("USD", "1234.56", "101.85", "1336.41"),
        ("JPY", "150000", "15000", "165000"),
        ("BHD", "12.345", "1.235", "13.580"),
    ],
)
def test_the_accrual_and_the_invoice_balance_to_the_minor_unit(currency, revenue, tax, receivable):
    accrual, invoice = book(revenue, tax, currency)
    assert accrual.external_id == "usage-sub_1-2026-03-accrual"
    assert accrual.posting_date == date(2026, 3, 31)
    assert accrual.currency == currency
    assert sides(accrual) == [("1250", "Dr", revenue), ("4100", "Cr", revenue)]
    assert invoice.external_id == "usage-sub_1-2026-03-invoice"
    assert invoice.posting_date == date(2026, 4, 2)
    assert sides(invoice) == [("1200", "Dr", receivable), ("1250", "Cr", revenue), ("2200", "Cr", tax)]
    for entry in (accrual, invoice):
        assert entry.invoice_id == "in_123"
        assert entry.subsidiary == "US01"
        debits = sum(x.debit.minor for x in entry.lines if x.debit)
        credits = sum(x.credit.minor for x in entry.lines if x.credit)
        assert debits == credits
    # The unbilled receivable the accrual raised is exactly what the invoice clears.
    assert sides(accrual)[0][2] == sides(invoice)[1][2]


@pytest.mark.parametrize(
    ("period", "last"),
    [("2026-02", date(2026, 2, 28)), ("2028-02", date(2028, 2, 29)), ("2026-12", date(2026, 12, 31))],
)
def test_the_accrual_is_dated_the_last_day_of_the_usage_month(period, last):
    assert book("10.00", "0.00", period=period)[0].posting_date == last


def test_without_tax_the_invoice_has_no_tax_line():
    accrual, invoice = book("99.99", "0.00")
    assert sides(accrual) == [("1250", "Dr", "99.99"), ("4100", "Cr", "99.99")]
    assert sides(invoice) == [("1200", "Dr", "99.99"), ("1250", "Cr", "99.99")]


def test_when_credits_cancel_the_usage_only_the_tax_is_booked():
    [invoice] = book("0.00", "7.25")
    assert invoice.external_id.endswith("-invoice")
    assert sides(invoice) == [("1200", "Dr", "7.25"), ("2200", "Cr", "7.25")]


def test_nothing_is_booked_for_nothing():
    assert book("0.00", "0.00") == []


def test_a_credit_larger_than_the_usage_is_refused():
    with pytest.raises(ValueError, match=r"usage revenue for 2026-03 is -5.00 USD, below zero"):
        book("-5.00", "0.00")


def test_negative_tax_is_refused():
    with pytest.raises(ValueError, match="tax on a usage invoice cannot be negative"):
        book("10.00", "-1.00")


def test_revenue_and_tax_in_two_currencies_are_refused():
    with pytest.raises(CurrencyError):
        usage_entries(
            external_id="x",
            subsidiary="US01",
            usage_period="2026-03",
            invoice_date=date(2026, 4, 2),
            invoice_id="in_1",
            revenue=Money.of("10.00", "USD"),
            tax=Money.of("1.00", "EUR"),
            chart=CHART,
            memo="m",
        )


def test_the_contract_id_is_carried_when_given_and_the_chart_is_followed():
    chart = ChartOfAccounts(unbilled_receivable="1255", usage_revenue="4150", receivable="1201", tax_payable="2201")
    entries = usage_entries(
        external_id="e",
        subsidiary="DE01",
        usage_period="2026-03",
        invoice_date=date(2026, 4, 1),
        invoice_id="in_9",
        revenue=Money.of("10.00", "EUR"),
        tax=Money.of("1.90", "EUR"),
        chart=chart,
        memo="m",
        contract_id="ctr_1",
    )
    assert [e.contract_id for e in entries] == ["ctr_1", "ctr_1"]
    assert [x.account for e in entries for x in e.lines] == ["1255", "4150", "1201", "1255", "2201"]


@given(
    revenue=st.integers(min_value=0, max_value=10**12),
    tax=st.integers(min_value=0, max_value=10**11),
    currency=st.sampled_from(["USD", "JPY", "BHD"]),
)
def test_every_booking_balances_and_the_unbilled_receivable_nets_to_zero(revenue, tax, currency):
    entries = usage_entries(
        external_id="e",
        subsidiary="US01",
        usage_period="2026-03",
        invoice_date=date(2026, 4, 2),
        invoice_id="in_1",
        revenue=Money.from_minor(revenue, currency),
        tax=Money.from_minor(tax, currency),
        chart=CHART,
        memo="m",
    )
    net: dict[str, int] = {}
    for entry in entries:
        for line in entry.lines:
            net[line.account] = net.get(line.account, 0) + (line.debit.minor if line.debit else -line.credit.minor)
    assert sum(net.values()) == 0
    assert net.get("1250", 0) == 0
    assert net.get("1200", 0) == revenue + tax
    assert net.get("4100", 0) == -revenue
    assert net.get("2200", 0) == -tax
    assert len(entries) == (revenue > 0) + (revenue + tax > 0)


# -- the revenue schedule ---------------------------------------------------------------------


def release(period: str = "2026-02", currency: str = "USD", revenue: str = "900.00") -> UsageRelease:
    zero = Money.zero(currency)
    return UsageRelease(
        workflow_id=f"usage-sub_1-{period}",
        subscription_id="sub_1",
        customer="cus_1",
        legal_entity="US01",
        period=period,
        invoice_id="in_1",
        currency=currency,
        quantities={"api_calls": 90000},
        subtotal=Money.of(revenue, currency),
        credit=zero,
        tax=zero,
        total=Money.of(revenue, currency),
        released_at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
    )


def test_usage_revenue_is_recognised_in_the_month_of_use():
    schedule = usage_schedule(release(), revenue=Money.of("900.00", "USD"), contract_id="ctr_1")
    assert schedule.schedule_id == "usage-sub_1-2026-02-usage"
    assert schedule.contract_id == "ctr_1"
    assert schedule.account_id == "cus_1"
    assert schedule.legal_entity == "US01"
    assert schedule.obligation == "usage"
    assert schedule.method == "point_in_time"
    assert schedule.total == Money.of("900.00", "USD")
    assert (schedule.start, schedule.end) == (date(2026, 2, 1), date(2026, 3, 1))
    assert schedule.booked_on == date(2026, 2, 28)
    [line] = schedule.lines
    assert (line.period, line.start, line.end, line.days, line.amount) == (
        "2026-02",
        date(2026, 2, 1),
        date(2026, 3, 1),
        28,
        Money.of("900.00", "USD"),
    )
    # All of it by the end of the month, none of it before the month.
    assert recognised_before(schedule, date(2026, 3, 1)) == schedule.total
    assert recognised_before(schedule, date(2026, 2, 1)).is_zero
    [row] = waterfall([schedule]).rows
    assert row.booked_period == "2026-02" and row.recognised == {"2026-02": schedule.total}


@pytest.mark.parametrize(
    ("period", "days", "end"),
    [("2026-12", 31, date(2027, 1, 1)), ("2028-02", 29, date(2028, 3, 1)), ("2026-04", 30, date(2026, 5, 1))],
)
def test_the_schedule_line_covers_the_calendar_month(period, days, end):
    schedule = usage_schedule(release(period, "JPY", "5000"), revenue=Money.of("5000", "JPY"), contract_id="c")
    assert (schedule.lines[0].days, schedule.end) == (days, end)


def test_the_schedule_refuses_another_currency_or_a_negative_revenue():
    with pytest.raises(CurrencyError):
        usage_schedule(release(), revenue=Money.of("1.000", "BHD"), contract_id="c")
    with pytest.raises(ValueError, match="below zero"):
        usage_schedule(release(), revenue=Money.of("-1.00", "USD"), contract_id="c")


def test_the_invoice_entry_names_the_customer_whose_receivable_it_books():
    accrual, invoice = book("100.00", "8.00", customer="cus_acme")
    assert (accrual.customer, invoice.customer) == ("", "cus_acme")
    assert invoice.reversal("r", date(2026, 4, 3)).customer == "cus_acme"
