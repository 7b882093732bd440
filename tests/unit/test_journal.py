"""Journal entries: balanced by construction, and the invoice entry o2c posts."""

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from canonical.journal import ChartOfAccounts, JournalEntry, JournalLine, invoice_entry
from canonical.money import Money

CHART = ChartOfAccounts()
DAY = date(2027, 3, 15)


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def dr(account: str, amount: str, currency: str = "USD") -> JournalLine:
    return JournalLine(account=account, debit=Money.of(amount, currency))


def cr(account: str, amount: str, currency: str = "USD") -> JournalLine:
    return JournalLine(account=account, credit=Money.of(amount, currency))


def entry(*lines: JournalLine, currency: str = "USD") -> JournalEntry:
    return JournalEntry(
        external_id="je-1", subsidiary="1", currency=currency, posting_date=DAY, memo="test", lines=list(lines)
    )


def sides(je: JournalEntry):
    return [(x.account, "Dr" if x.debit else "Cr", str(x.amount.amount)) for x in je.lines]


def test_balanced_entry_is_accepted():
    je = entry(dr("1200", "108.25"), cr("2400", "100.00"), cr("2200", "8.25"))
    assert je.total_debits == usd("108.25")


@pytest.mark.parametrize(
    "lines",
    [
        [dr("1200", "100.00"), cr("2400", "99.99")],
        [dr("1200", "100.00")],
        [dr("1200", "0.01"), dr("1300", "0.01"), cr("2400", "0.01")],
    ],
)
def test_unbalanced_entry_is_refused(lines):
    with pytest.raises(ValueError, match="unbalanced entry"):
        entry(*lines)


def test_entry_without_lines_is_refused():
    with pytest.raises(ValueError, match="needs lines"):
        entry()


def test_wrong_currency_line_is_refused():
    with pytest.raises(ValueError, match="line in EUR on a USD entry"):
        entry(dr("1200", "10.00", "EUR"), cr("2400", "10.00", "EUR"))
    with pytest.raises(ValueError, match="line in EUR on a USD entry"):
        entry(dr("1200", "10.00"), cr("2400", "10.00", "EUR"))


@pytest.mark.parametrize("amount", ["0", "0.00", "-5.00"])
def test_zero_or_negative_line_amounts_are_refused(amount):
    with pytest.raises(ValueError, match="amounts are positive"):
        JournalLine(account="1200", debit=usd(amount))
    with pytest.raises(ValueError, match="amounts are positive"):
        JournalLine(account="1200", credit=usd(amount))


def test_line_with_both_or_neither_side_is_refused():
    with pytest.raises(ValueError, match="either a debit or a credit"):
        JournalLine(account="1200", debit=usd("1.00"), credit=usd("1.00"))
    with pytest.raises(ValueError, match="either a debit or a credit"):
        JournalLine(account="1200")


def test_invoice_entry_for_a_charge():
    je = invoice_entry(
        external_id="inv-1",
        subsidiary="3",
        posting_date=DAY,
        memo="Invoice 1",
        revenue=usd("169.35"),
        tax=usd("13.97"),
        chart=CHART,
    )
    assert sides(je) == [("1200", "Dr", "183.32"), ("2400", "Cr", "169.35"), ("2200", "Cr", "13.97")]
    assert je.total_debits == usd("183.32")
    assert (je.external_id, je.subsidiary, je.currency, je.posting_date, je.memo) == (
        "inv-1",
        "3",
        "USD",
        DAY,
        "Invoice 1",
    )
    assert [x.memo for x in je.lines] == ["Accounts receivable", "Deferred revenue", "Sales tax payable"]


def test_invoice_entry_for_a_net_credit_books_the_opposite_sides():
    je = invoice_entry(
        external_id="inv-2",
        subsidiary="1",
        posting_date=DAY,
        memo="Credit",
        revenue=usd("-135.48"),
        tax=usd("-11.18"),
        chart=CHART,
    )
    assert sides(je) == [("1200", "Cr", "146.66"), ("2400", "Dr", "135.48"), ("2200", "Dr", "11.18")]
    assert je.total_debits == usd("146.66")


def test_invoice_entry_without_tax_has_two_lines():
    je = invoice_entry(
        external_id="inv-3",
        subsidiary="1",
        posting_date=DAY,
        memo="No tax",
        revenue=usd("50.00"),
        tax=usd("0.00"),
        chart=CHART,
    )
    assert sides(je) == [("1200", "Dr", "50.00"), ("2400", "Cr", "50.00")]


def test_invoice_entry_uses_the_chart_of_accounts():
    chart = ChartOfAccounts(receivable="11000", deferred_revenue="24000", tax_payable="22000")
    je = invoice_entry(
        external_id="inv-4",
        subsidiary="1",
        posting_date=DAY,
        memo="m",
        revenue=Money.of("1000", "JPY"),
        tax=Money.of("100", "JPY"),
        chart=chart,
    )
    assert sides(je) == [("11000", "Dr", "1100"), ("24000", "Cr", "1000"), ("22000", "Cr", "100")]
    assert je.currency == "JPY"


def test_reversal_swaps_every_side_and_balances():
    original = invoice_entry(
        external_id="inv-1",
        subsidiary="3",
        posting_date=DAY,
        memo="Invoice 1",
        revenue=usd("169.35"),
        tax=usd("13.97"),
        chart=CHART,
    )
    reversal = original.reversal("inv-1-reversal", date(2027, 3, 20))
    assert sides(reversal) == [("1200", "Cr", "183.32"), ("2400", "Dr", "169.35"), ("2200", "Dr", "13.97")]
    assert reversal.reverses == "inv-1"
    assert reversal.external_id == "inv-1-reversal"
    assert reversal.posting_date == date(2027, 3, 20)
    assert reversal.subsidiary == "3"
    assert reversal.memo == "Reversal of inv-1: Invoice 1"
    assert reversal.total_debits == original.total_debits
    # reversing twice gives back the original sides
    assert sides(reversal.reversal("x", DAY)) == sides(original)


minor = st.integers(min_value=-(10**11), max_value=10**11)


@settings(max_examples=200, deadline=None)
@given(revenue=minor, tax=minor, currency=st.sampled_from(["USD", "JPY", "BHD"]))
def test_invoice_entry_always_balances(revenue, tax, currency):
    assume(revenue != 0 or tax != 0)
    rev, tx = Money.from_minor(revenue, currency), Money.from_minor(tax, currency)
    je = invoice_entry(external_id="p", subsidiary="1", posting_date=DAY, memo="p", revenue=rev, tax=tx, chart=CHART)
    debits = sum((x.debit.minor for x in je.lines if x.debit), 0)
    credits = sum((x.credit.minor for x in je.lines if x.credit), 0)
    assert debits == credits
    assert all(x.amount.amount > 0 for x in je.lines)
    # signed view: receivable = revenue + tax, on the natural sides
    signed = {x.account: (x.debit.minor if x.debit else -x.credit.minor) for x in je.lines}
    assert signed.get(CHART.receivable, 0) == revenue + tax
    assert signed.get(CHART.deferred_revenue, 0) == -revenue
    assert signed.get(CHART.tax_payable, 0) == -tax
    rev_entry = je.reversal("r", DAY)
    assert {x.account: (x.debit.minor if x.debit else -x.credit.minor) for x in rev_entry.lines} == {
        k: -v for k, v in signed.items()
    }


def test_invoice_entry_of_nothing_is_refused():
    # A zero invoice has no lines to post; callers (the amendment workflow) skip posting.
    with pytest.raises(ValueError, match="needs lines"):
        invoice_entry(
            external_id="z", subsidiary="1", posting_date=DAY, memo="z", revenue=usd("0"), tax=usd("0"), chart=CHART
        )


def test_entry_amounts_are_exact_decimals():
    je = entry(dr("1200", "0.10"), dr("1200", "0.20"), cr("2400", "0.30"))
    assert je.total_debits.amount == Decimal("0.30")
