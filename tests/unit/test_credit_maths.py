"""Credit maths to the cent: what may be credited, its tax, its booking and its revenue."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from canonical.credit import (
    CreditAmounts,
    CreditedSoFar,
    CreditPolicy,
    CreditSplit,
    credit_amounts,
    credit_approval,
    credit_entry,
    credit_problems,
    line_taxes,
    revenue_concession,
    settlement_split,
)
from canonical.credits import CreditedLine, CreditReason, CreditRequest, CreditSettlement
from canonical.journal import ChartOfAccounts
from canonical.models import TAX_PRODUCT, ApproverRole, Invoice, InvoiceLine, RevenueSchedule
from canonical.money import Money, total
from canonical.policy_amounts import UncoveredCurrency, per_currency
from canonical.revenue.schedules import ratable_schedule

CHART = ChartOfAccounts()


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def invoice(status: str = "open", paid: str = "0.00", **overrides) -> Invoice:
    lines = [
        InvoiceLine(product="seats", description="Platform seats", amount=usd("100.00"), line_id="il_seats"),
        InvoiceLine(product="support", description="Premium support", amount=usd("33.33"), line_id="il_support"),
        InvoiceLine(product=TAX_PRODUCT, description="Sales tax", amount=usd("13.33"), line_id="il_tax"),
    ]
    fields = dict(
        id="in_1",
        account_id="cus_acme",
        status=status,
        currency="USD",
        total=usd("146.66"),
        lines=lines,
        amount_paid=usd(paid),
        amount_remaining=usd("146.66") - usd(paid),
        tax=usd("13.33"),
    )
    fields.update(overrides)
    return Invoice(**fields)


def request(**overrides) -> CreditRequest:
    fields = dict(
        credit_id="CR-1",
        invoice_id="in_1",
        reason=CreditReason.PRODUCT_UNSATISFACTORY,
        explanation="support hours not delivered",
        requested_by="cindy.success",
        lines=[CreditedLine(line_id="il_support", amount=usd("33.33"))],
    )
    fields.update(overrides)
    return CreditRequest(**fields)


NONE = CreditedSoFar(amount=usd("0.00"))


def test_a_credit_of_an_open_invoices_line_is_accepted():
    assert credit_problems(request(), invoice(), NONE) == []


@pytest.mark.parametrize(
    ("change", "found"),
    [
        (dict(lines=[CreditedLine(line_id="il_support", amount=usd("33.34"))]), "has 33.33 USD left to credit"),
        (dict(lines=[CreditedLine(line_id="il_nope", amount=usd("1.00"))]), "has no line il_nope"),
        (dict(lines=[CreditedLine(line_id="il_tax", amount=usd("1.00"))]), "has no line il_tax"),
        (dict(lines=[], amount=usd("133.34")), "133.33 USD left to credit before tax"),
        (dict(lines=[], amount=None), "either the invoice lines"),
        (dict(amount=usd("1.00")), "not both"),
        (dict(lines=[], amount=Money.of("10.00", "EUR")), "the credit is in EUR"),
        (dict(lines=[], amount=usd("-1.00")), "positive"),
        (dict(reason=CreditReason.DUPLICATE), "credits the whole invoice"),
        (dict(reason=CreditReason.SERVICE_CREDIT, explanation="SLA"), "says what it compensates"),
        (
            dict(
                lines=[
                    CreditedLine(line_id="il_seats", amount=usd("1")),
                    CreditedLine(line_id="il_seats", amount=usd("1")),
                ]
            ),
            "named twice",
        ),
    ],
)
def test_requests_that_cannot_be_credited_say_why(change, found):
    problems = credit_problems(request(**change), invoice(), NONE)
    assert any(found in p for p in problems), problems


def test_only_a_finalised_invoice_is_credited_and_an_unknown_one_is_named():
    assert "only a finalised invoice" in credit_problems(request(), invoice(status="draft"), NONE)[0]
    assert "void" in credit_problems(request(), invoice(status="void"), NONE)[0]
    assert credit_problems(request(), None, NONE) == ["invoice in_1 does not exist in billing"]


def test_what_was_credited_before_is_no_longer_left():
    before = CreditedSoFar(amount=usd("20.00"), lines={"il_support": usd("20.00")})
    problems = credit_problems(request(), invoice(), before)
    assert problems == ["line il_support (Premium support) has 13.33 USD left to credit, not 33.33 USD"]
    assert credit_problems(request(lines=[], amount=usd("113.33")), invoice(), before) == []
    assert credit_problems(request(lines=[], amount=usd("113.34")), invoice(), before)


def test_a_duplicate_credits_the_whole_invoice():
    whole = request(reason=CreditReason.DUPLICATE, lines=[], amount=usd("133.33"))
    assert credit_problems(whole, invoice(), NONE) == []


def test_the_invoices_tax_splits_over_its_lines_exactly():
    taxes = line_taxes(invoice())
    # 13.33 over 100.00 : 33.33 -> 10.0008.. and 3.3292..: largest remainder gives the cent to seats.
    assert taxes == {"il_seats": usd("10.00"), "il_support": usd("3.33")}
    assert total(taxes.values(), "USD") == usd("13.33")


def test_billings_own_line_tax_wins():
    inv = invoice()
    lines = [x.model_copy(update={"tax": usd("9.00") if x.line_id == "il_seats" else usd("4.33")}) for x in inv.lines]
    assert line_taxes(inv.model_copy(update={"lines": lines}))["il_support"] == usd("4.33")


def test_a_line_credited_in_pieces_gives_back_exactly_its_tax():
    inv = invoice()
    pieces = ["11.11", "11.11", "11.11"]
    so_far = NONE
    taxes = []
    for piece in pieces:
        r = request(lines=[CreditedLine(line_id="il_support", amount=usd(piece))])
        amounts = credit_amounts(r, inv, so_far)
        taxes.append(amounts.tax)
        credited = so_far.lines.get("il_support", usd("0")) + usd(piece)
        so_far = CreditedSoFar(amount=so_far.amount + usd(piece), lines={"il_support": credited})
    assert taxes == [usd("1.11"), usd("1.11"), usd("1.11")]
    assert total(taxes, "USD") == usd("3.33")


def test_an_amount_credit_takes_its_share_of_the_invoices_tax():
    amounts = credit_amounts(request(lines=[], amount=usd("50.00")), invoice(), NONE)
    # 13.33 x 50 / 133.33 = 4.99887... -> 5.00
    assert amounts == CreditAmounts(net=usd("50.00"), tax=usd("5.00"))
    whole = credit_amounts(request(lines=[], amount=usd("133.33")), invoice(), NONE)
    assert whole.tax == usd("13.33") and whole.total == usd("146.66")


def test_settlement_takes_what_is_due_first_then_balance_or_refund():
    amounts = CreditAmounts(net=usd("100.00"), tax=usd("10.00"))
    part_paid = invoice(paid="100.00")  # 46.66 still due
    split = settlement_split(amounts, part_paid, CreditSettlement.CUSTOMER_BALANCE)
    assert split == CreditSplit(off_receivable=usd("46.66"), to_balance=usd("63.34"), refunded=usd("0"))
    split = settlement_split(amounts, invoice(status="paid", paid="146.66"), CreditSettlement.REFUND)
    assert split == CreditSplit(off_receivable=usd("0"), to_balance=usd("0"), refunded=usd("110.00"))
    assert settlement_split(amounts, invoice(), CreditSettlement.REFUND).off_receivable == usd("110.00")


def test_approval_by_the_credits_currency_and_reason():
    policy = CreditPolicy(
        finance=per_currency(USD=100, JPY=15000),
        controller=per_currency(USD=5000, JPY=750000),
        service_controller=per_currency(USD=1000, JPY=150000),
    )
    assert credit_approval(request(), usd("100.00"), policy) is None
    needs = credit_approval(request(), usd("100.01"), policy)
    assert needs and needs.required_role == ApproverRole.FINANCE and needs.requested_by == "cindy.success"
    assert credit_approval(request(), usd("5000.01"), policy).required_role == ApproverRole.CONTROLLER
    service = request(reason=CreditReason.SERVICE_CREDIT, explanation="four hours down on 3 Nov")
    assert credit_approval(service, usd("1000.01"), policy).required_role == ApproverRole.CONTROLLER
    # 12,000 yen is about 80 dollars: a finance approval is not needed for it.
    assert credit_approval(request(), Money.of(12000, "JPY"), policy) is None
    with pytest.raises(UncoveredCurrency, match="not stated in CHF"):
        credit_approval(request(), Money.of("10.00", "CHF"), policy)
    assert "CHF" in (policy.uncovered(CreditReason.ORDER_CHANGE, "CHF") or "")
    assert policy.uncovered(CreditReason.ORDER_CHANGE, "USD") is None


def test_every_credit_needs_a_person_by_default():
    needs = credit_approval(request(), usd("0.01"), CreditPolicy())
    assert needs and needs.required_role == ApproverRole.FINANCE


def schedule(start: date = date(2026, 1, 1), end: date = date(2027, 1, 1), amount: str = "1200.00") -> RevenueSchedule:
    return ratable_schedule(
        schedule_id="rs-1",
        contract_id="C-1",
        account_id="cus_acme",
        legal_entity="US01",
        obligation="subscription",
        total=usd(amount),
        start=start,
        end=end,
    )


def test_a_concession_reduces_what_is_left_prospectively():
    s = schedule()
    change = revenue_concession([s], usd("100.00"), date(2026, 7, 1))
    [changed] = change.save
    assert change.deferred == usd("100.00") and change.recognised == usd("0")
    assert changed.total == usd("1100.00") == total((x.amount for x in changed.lines), "USD")
    # Before July nothing changes; July to December carry the 100.00 by their size.
    assert [x.amount for x in changed.lines[:6]] == [x.amount for x in s.lines[:6]]
    cut = [a.amount - b.amount for a, b in zip(s.lines[6:], changed.lines[6:], strict=True)]
    assert total(cut, "USD") == usd("100.00")


def test_a_concession_above_what_is_unrecognised_reverses_revenue_at_once():
    s = schedule()
    unrecognised = total((x.amount for x in s.lines[11:]), "USD")  # December
    change = revenue_concession([s], usd("300.00"), date(2026, 12, 1))
    [changed] = change.save
    assert change.deferred == unrecognised
    assert change.recognised == usd("300.00") - unrecognised
    assert changed.total == usd("900.00")
    assert changed.lines[11].amount == -(usd("300.00") - unrecognised)


def test_no_schedule_no_concession():
    change = revenue_concession([], usd("10.00"), date(2026, 7, 1))
    assert change.save == [] and change.deferred == usd("0")


def amounts_and_split(settlement=CreditSettlement.CUSTOMER_BALANCE, status="open", paid="0.00"):
    amounts = CreditAmounts(net=usd("100.00"), tax=usd("10.00"))
    return amounts, settlement_split(amounts, invoice(status=status, paid=paid), settlement)


def lines_of(entry):
    return {(x.account, x.debit, x.credit) for x in entry.lines}


def test_an_open_invoice_credit_books_deferred_revenue_and_tax_against_the_receivable():
    amounts, split = amounts_and_split()
    entry = credit_entry(
        external_id="credit-CR-1",
        subsidiary="1",
        posting_date=date(2026, 12, 1),
        memo="Credit CR-1",
        amounts=amounts,
        split=split,
        recognised=usd("30.00"),
        chart=CHART,
        memo_posted=False,
    )
    assert lines_of(entry) == {
        ("2400", usd("70.00"), None),
        ("4000", usd("30.00"), None),
        ("2200", usd("10.00"), None),
        ("1200", None, usd("110.00")),
    }


def test_with_the_memo_the_entry_moves_the_clearing_account_and_the_paid_part():
    for settlement, account in ((CreditSettlement.CUSTOMER_BALANCE, "2160"), (CreditSettlement.REFUND, "1010")):
        amounts, split = amounts_and_split(settlement, status="paid", paid="146.66")
        entry = credit_entry(
            external_id="credit-CR-1",
            subsidiary="1",
            posting_date=date(2026, 12, 1),
            memo="Credit CR-1",
            amounts=amounts,
            split=split,
            recognised=usd("0"),
            chart=CHART,
        )
        assert lines_of(entry) == {
            ("2400", usd("100.00"), None),
            ("2190", None, usd("100.00")),
            ("1200", usd("110.00"), None),
            (account, None, usd("110.00")),
        }
        # The memo booked Dr clearing 100 + Dr tax 10 / Cr receivable 110: together they
        # are the DOMAIN entry (Dr deferred 100, Dr tax 10 / Cr customer credit or cash 110).


def test_an_entry_refuses_a_reversal_larger_than_the_credit():
    amounts, split = amounts_and_split()
    with pytest.raises(ValueError, match="more than"):
        credit_entry(
            external_id="x",
            subsidiary="1",
            posting_date=date(2026, 12, 1),
            memo="x",
            amounts=amounts,
            split=split,
            recognised=usd("100.01"),
            chart=CHART,
        )


def test_money_stays_exact_in_yen():
    inv = Invoice(
        id="in_jp",
        account_id="cus_jp",
        status="open",
        currency="JPY",
        total=Money.of(11000, "JPY"),
        lines=[InvoiceLine(product="seats", description="Seats", amount=Money.of(10000, "JPY"), line_id="l1")],
        amount_remaining=Money.of(11000, "JPY"),
        tax=Money.of(1000, "JPY"),
    )
    r = request(invoice_id="in_jp", lines=[CreditedLine(line_id="l1", amount=Money.of(3333, "JPY"))])
    so_far = CreditedSoFar(amount=Money.of(0, "JPY"))
    assert credit_problems(r, inv, so_far) == []
    assert credit_amounts(r, inv, so_far).tax == Money.of(333, "JPY")
    assert Decimal(credit_amounts(r, inv, so_far).total.amount) == Decimal(3666)
