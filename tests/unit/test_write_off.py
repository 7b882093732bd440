"""Write-offs by policy: direct or against the allowance, the tax relieved where the
jurisdiction allows, and service billed ahead and cancelled credited rather than lost."""

from datetime import date

import pytest

from canonical.journal import (
    ChartOfAccounts,
    JournalEntry,
    WriteOffMethod,
    WriteOffPolicy,
    split_write_off,
    unserved_amount,
    write_off_entry,
)
from canonical.models import InvoiceLine
from canonical.money import Money

CHART = ChartOfAccounts()


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def entry(balance: Money, policy: WriteOffPolicy | None = None, **split: object) -> JournalEntry:
    return write_off_entry(
        external_id="dunning-in_1-write-off",
        subsidiary="1",
        posting_date=date(2027, 3, 31),
        memo="Write-off of invoice in_1",
        amount=balance,
        chart=CHART,
        invoice_id="in_1",
        policy=policy,
        split=split_write_off(balance, **split) if split else None,  # type: ignore[arg-type]
    )


def lines(e: JournalEntry) -> dict[tuple[str, str], Money]:
    """(account, side) -> amount, tax payable lines added up."""
    out: dict[tuple[str, str], Money] = {}
    for line in e.lines:
        key = (line.account, "dr" if line.debit else "cr")
        out[key] = out.get(key, Money.zero(e.currency)) + line.amount
    return out


def test_without_a_policy_all_of_it_is_bad_debt_expense():
    e = entry(usd("1070.00"))
    assert lines(e) == {(CHART.bad_debt_expense, "dr"): usd("1070.00"), (CHART.receivable, "cr"): usd("1070.00")}


def test_direct_method_keeps_the_tax_in_the_bad_debt_where_it_is_not_relieved():
    e = entry(usd("1070.00"), WriteOffPolicy(), invoice_total=usd("1070.00"), invoice_tax=usd("70.00"))
    assert lines(e) == {(CHART.bad_debt_expense, "dr"): usd("1070.00"), (CHART.receivable, "cr"): usd("1070.00")}


def test_allowance_method_with_the_tax_relieved():
    policy = WriteOffPolicy(method=WriteOffMethod.ALLOWANCE, tax_relief_jurisdictions=["US-CA"])
    e = entry(usd("1070.00"), policy, invoice_total=usd("1070.00"), invoice_tax=usd("70.00"), relieve_tax=True)
    assert lines(e) == {
        (CHART.tax_payable, "dr"): usd("70.00"),
        (CHART.allowance_doubtful, "dr"): usd("1000.00"),
        (CHART.receivable, "cr"): usd("1070.00"),
    }


def test_a_partly_paid_balance_carries_the_invoice_tax_share_exactly():
    # 100.00 left of an invoice of 1,070.00 with 70.00 tax: tax share 6.542..., to the cent.
    split = split_write_off(usd("100.00"), invoice_total=usd("1070.00"), invoice_tax=usd("70.00"), relieve_tax=True)
    assert (split.relieved_tax, split.bad_debt) == (usd("6.54"), usd("93.46"))
    split = split_write_off(usd("0.01"), invoice_total=usd("1070.00"), invoice_tax=usd("70.00"), relieve_tax=True)
    assert split.relieved_tax + split.bad_debt == usd("0.01")


@pytest.mark.parametrize(
    ("jurisdictions", "country", "region", "relieved"),
    [
        (["US-CA"], "US", "CA", True),
        (["US-CA"], "us", "ca", True),
        (["US-CA"], "US", "NY", False),
        (["GB"], "GB", "", True),
        (["GB"], "GB", "ENG", True),  # the whole country listed
        ([], "US", "CA", False),
        (["US-CA"], "", "CA", False),
    ],
)
def test_the_policy_lists_the_jurisdictions_that_relieve_tax(jurisdictions, country, region, relieved):
    assert WriteOffPolicy(tax_relief_jurisdictions=jurisdictions).relieves_tax(country, region) is relieved


def test_service_after_cancellation_is_credited_not_written_off():
    # A year billed ahead on 1 January (1,200.00 + 84.00 tax), cancelled on 1 April: 275 of 365
    # days unserved. Nothing was paid.
    annual = InvoiceLine(
        product="pro",
        description="Pro, 2027",
        amount=usd("1200.00"),
        period_start=date(2027, 1, 1),
        period_end=date(2028, 1, 1),
    )
    unserved = unserved_amount([annual], date(2027, 4, 1), "USD")
    assert unserved == usd("904.11")  # 1,200 x 275/365 = 904.109...
    policy = WriteOffPolicy(method=WriteOffMethod.ALLOWANCE)
    e = entry(usd("1284.00"), policy, invoice_total=usd("1284.00"), invoice_tax=usd("84.00"), unserved_net=unserved)
    got = lines(e)
    assert got[(CHART.deferred_revenue, "dr")] == usd("904.11")
    assert got[(CHART.tax_payable, "dr")] == usd("63.29")  # 84 x 904.11/1200 = 63.2877
    assert got[(CHART.allowance_doubtful, "dr")] == usd("316.60")  # 295.89 served + its 20.71 tax
    assert got[(CHART.receivable, "cr")] == usd("1284.00")
    assert e.total_debits == usd("1284.00")


def test_lines_without_a_service_period_or_ended_before_cancellation_are_served():
    lines_ = [
        InvoiceLine(product="setup", description="Setup", amount=usd("500.00")),
        InvoiceLine(
            product="pro",
            description="Jan",
            amount=usd("100.00"),
            period_start=date(2027, 1, 1),
            period_end=date(2027, 2, 1),
        ),
        InvoiceLine(
            product="pro",
            description="Q2",
            amount=usd("300.00"),
            period_start=date(2027, 4, 1),
            period_end=date(2027, 7, 1),
        ),
    ]
    # Cancelled before Q2 begins: all of Q2 is unserved, January and setup are not.
    assert unserved_amount(lines_, date(2027, 3, 15), "USD") == usd("300.00")
    assert unserved_amount(lines_, date(2027, 7, 1), "USD") == usd("0.00")


def test_splits_add_up_in_yen_and_with_awkward_weights():
    split = split_write_off(
        Money.of(9999, "JPY"),
        invoice_total=Money.of(11000, "JPY"),
        invoice_tax=Money.of(1000, "JPY"),
        unserved_net=Money.of(3333, "JPY"),
        relieve_tax=True,
    )
    assert split.deferred_revenue + split.credited_tax + split.relieved_tax + split.bad_debt == Money.of(9999, "JPY")


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="positive balance"):
        split_write_off(usd("0.00"), invoice_total=usd("10.00"), invoice_tax=None)
    with pytest.raises(ValueError, match="more than the invoice's net"):
        split_write_off(usd("10.00"), invoice_total=usd("10.00"), invoice_tax=usd("1.00"), unserved_net=usd("9.50"))
    with pytest.raises(ValueError, match="not of the balance"):
        write_off_entry(
            external_id="x",
            subsidiary="1",
            posting_date=date(2027, 1, 1),
            memo="m",
            amount=usd("5.00"),
            chart=CHART,
            split=split_write_off(usd("4.00"), invoice_total=usd("10.00"), invoice_tax=None),
        )
