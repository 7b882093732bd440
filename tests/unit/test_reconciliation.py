"""Reconciliation matching: each class of break found and explained, nothing found where the
systems agree, and the healing entry that books a missing invoice exactly once."""

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canonical.journal import ChartOfAccounts, JournalEntry, JournalLine, invoice_entry
from canonical.models import TAX_PRODUCT, Invoice, InvoiceLine, TaxDocument, TaxLine
from canonical.money import Money
from canonical.reconciliation import (
    BreakKind,
    EntryKind,
    Tolerance,
    billed,
    compare_invoice,
    compare_revenue,
    expected_entry_id,
    ledger_fact,
    needs_approval,
    period_bounds,
    taxed,
)

CHART = ChartOfAccounts()
DAY = date(2026, 10, 14)


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def invoice(revenue="100.00", tax="7.25", status="open", workflow="amendment-A-1", **extra) -> Invoice:
    lines = [InvoiceLine(product="seats", description="seats", amount=usd(revenue))]
    if Decimal(tax):
        lines.append(InvoiceLine(product=TAX_PRODUCT, description="tax", amount=usd(tax)))
    return Invoice(
        id="in_1",
        number="SBX-000001",
        account_id="cus_1",
        status=status,
        currency="USD",
        total=usd(revenue) + usd(tax),
        lines=lines,
        created=DAY,
        metadata={"o2c_workflow": workflow} if workflow else {},
        **extra,
    )


def tax_document(tax="7.25", status="Committed", revenue="100.00", lines=1) -> TaxDocument:
    per_line = [TaxLine(number=str(i + 1), amount=usd(revenue), tax=usd("0")) for i in range(lines)]
    return TaxDocument(
        code="in_1",
        type="SalesInvoice",
        status=status,
        total_amount=usd(revenue),
        total_tax=usd(tax),
        lines=per_line,
        document_date=DAY,
    )


def booking(revenue="100.00", tax="7.25", external_id="amendment-A-1-invoice", currency="USD") -> JournalEntry:
    entry = invoice_entry(
        external_id=external_id,
        subsidiary="1",
        posting_date=DAY,
        memo="booked",
        revenue=Money.of(revenue, currency),
        tax=Money.of(tax, currency),
        chart=CHART,
        invoice_id="in_1",
    )
    return entry


def payment(amount="107.25") -> JournalEntry:
    return JournalEntry(
        external_id="payment-in_1",
        subsidiary="1",
        currency="USD",
        posting_date=DAY,
        memo="cash",
        invoice_id="in_1",
        lines=[
            JournalLine(account=CHART.cash, debit=usd(amount)),
            JournalLine(account=CHART.receivable, credit=usd(amount)),
        ],
    )


def compare(inv=None, tax=None, entries=(), **kw):
    facts = [ledger_fact(e, CHART) for e in entries]
    return compare_invoice(billed(inv) if inv else None, taxed(tax) if tax else None, facts, subsidiary="1", **kw)


def kinds(breaks) -> list[BreakKind]:
    return [b.kind for b in breaks]


# -- facts ----------------------------------------------------------------------------------


def test_entries_are_classified_by_the_accounts_they_move():
    entry = booking()
    assert ledger_fact(entry, CHART).kind == EntryKind.INVOICE
    assert ledger_fact(entry.reversal("r", DAY), CHART).kind == EntryKind.REVERSAL
    assert ledger_fact(payment(), CHART).kind == EntryKind.PAYMENT
    fact = ledger_fact(booking(), CHART)
    assert (fact.receivable, fact.deferred, fact.tax) == (usd("107.25"), usd("100.00"), usd("7.25"))
    recognition = JournalEntry(
        external_id="revrec-C-1-2026-10",
        subsidiary="1",
        currency="USD",
        posting_date=DAY,
        memo="rev",
        contract_id="C-1",
        lines=[
            JournalLine(account=CHART.deferred_revenue, debit=usd("30.00")),
            JournalLine(account=CHART.revenue, credit=usd("30.00")),
        ],
    )
    fact = ledger_fact(recognition, CHART)
    assert (fact.kind, fact.recognised, fact.match_key) == (EntryKind.REVENUE, usd("30.00"), "revenue:C-1")


def test_billing_tax_comes_from_the_tax_line_and_the_erp_key_from_the_booking_process():
    fact = billed(invoice())
    assert (fact.tax, fact.revenue, fact.entry_id) == (usd("7.25"), usd("100.00"), "amendment-A-1-invoice")
    assert expected_entry_id(invoice(workflow="")) == "billing-in_1-invoice"


def test_period_bounds():
    assert period_bounds("2026-12") == (date(2026, 12, 1), date(2027, 1, 1))
    for bad in ("2026-13", "26-10", "2026-1", "october"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            period_bounds(bad)


# -- agreement ------------------------------------------------------------------------------


def test_systems_that_agree_have_no_break():
    assert compare(invoice(), tax_document(), [booking()]) == []
    assert compare(invoice(status="paid"), tax_document(), [booking(), payment()]) == []
    assert compare(invoice(tax="0"), None, [booking(tax="0")]) == []


def test_a_void_invoice_whose_entry_is_reversed_and_tax_voided_agrees():
    entry = booking()
    assert compare(invoice(status="void"), tax_document(status="Cancelled"), [entry, entry.reversal("r", DAY)]) == []


def test_a_draft_is_not_yet_an_invoice():
    assert compare(invoice(status="draft"), None, []) == []


# -- every class of break --------------------------------------------------------------------


def test_missing_in_erp_carries_the_healing_entry_under_the_booking_process_key():
    [found] = compare(invoice(), tax_document(), [])
    assert found.kind == BreakKind.MISSING_IN_ERP and found.owner == "general ledger"
    heal = found.heal
    assert heal is not None and heal.external_id == "amendment-A-1-invoice" and heal.invoice_id == "in_1"
    assert heal.total_debits == usd("107.25") and heal.posting_date == DAY and heal.subsidiary == "1"
    fact = ledger_fact(heal, CHART)
    assert (fact.receivable, fact.deferred, fact.tax) == (usd("107.25"), usd("100.00"), usd("7.25"))
    # Once posted, the same comparison finds nothing.
    assert compare(invoice(), tax_document(), [heal]) == []


def test_a_reversed_entry_is_missing_but_not_healed_over():
    entry = booking()
    [found] = compare(invoice(), tax_document(), [entry, entry.reversal("r", DAY)])
    assert found.kind == BreakKind.MISSING_IN_ERP and found.heal is None and "reversed" in found.explanation


def test_missing_in_billing():
    [found] = compare(None, tax_document(), [booking()])
    assert found.kind == BreakKind.MISSING_IN_BILLING and found.erp == usd("107.25")
    [found] = compare(None, tax_document(), [])
    assert found.kind == BreakKind.MISSING_IN_BILLING and "AvaTax" in found.explanation


def test_duplicate_posting_names_the_entry_to_keep():
    [found] = compare(invoice(), tax_document(), [booking(), booking(external_id="manual-in_1")])
    assert found.kind == BreakKind.DUPLICATE_POSTING
    assert "keep amendment-A-1-invoice" in found.explanation and found.erp == usd("214.50")


def test_amount_mismatch_and_tolerance():
    [found] = compare(invoice(), tax_document(), [booking(revenue="101.00")])
    assert found.kind == BreakKind.AMOUNT_MISMATCH and found.difference == usd("1.00")
    assert compare(invoice(), tax_document(), [booking(revenue="100.01")], tolerance=Tolerance(amount_minor=1)) == []


def test_tax_mismatch_says_which_side_rounded():
    [found] = compare(invoice(), tax_document(tax="7.26", lines=3), [booking()])
    assert found.kind == BreakKind.TAX_MISMATCH and found.owner == "tax"
    assert "per-line rounding" in found.explanation and found.difference == usd("0.01")
    [found] = compare(invoice(), tax_document(tax="9.00"), [booking()])
    assert "Not explained by rounding" in found.explanation
    assert compare(invoice(), tax_document(tax="7.26"), [booking()], tolerance=Tolerance(tax_minor=1)) == []


def test_tax_charged_without_a_committed_document_is_a_tax_break():
    [found] = compare(invoice(), None, [booking()])
    assert found.kind == BreakKind.TAX_MISMATCH and "no tax document" in found.explanation
    [found] = compare(invoice(), tax_document(status="Saved"), [booking()])
    assert "status Saved" in found.explanation


def test_currency_mismatch():
    [found] = compare(invoice(), tax_document(), [booking(currency="EUR")])
    assert found.kind == BreakKind.CURRENCY_MISMATCH and found.difference is None
    assert found.billing == usd("107.25") and found.erp == Money.of("107.25", "EUR")


def test_status_mismatch_paid_in_billing_open_in_the_erp():
    [found] = compare(invoice(status="paid"), tax_document(), [booking()])
    assert found.kind == BreakKind.STATUS_MISMATCH and found.owner == "accounts receivable"
    assert "paid in billing but open in the ERP" in found.explanation
    [found] = compare(invoice(status="void"), tax_document(status="Cancelled"), [booking()])
    assert found.kind == BreakKind.STATUS_MISMATCH and "not reversed" in found.explanation


def test_revenue_mismatch():
    assert compare_revenue("C-1", usd("30.00"), usd("30.00"), period="2026-10") is None
    found = compare_revenue("C-1", usd("30.00"), usd("29.99"), period="2026-10")
    assert found.kind == BreakKind.REVENUE_MISMATCH and found.difference == usd("-0.01")
    assert (
        compare_revenue("C-1", usd("30.00"), usd("29.99"), period="2026-10", tolerance=Tolerance(revenue_minor=1))
        is None
    )
    found = compare_revenue("", None, usd("5.00"), period="2026-10")
    assert "no contract" in found.explanation and "recognise nothing" in found.explanation


def test_heals_above_the_limit_need_approval():
    entry = booking()
    assert not needs_approval(entry, Decimal("107.25"))
    assert needs_approval(entry, Decimal("107.24"))


# -- properties -----------------------------------------------------------------------------

minor = st.integers(min_value=1, max_value=10**9)


@settings(max_examples=200, deadline=None)
@given(revenue=minor, tax=st.integers(min_value=0, max_value=10**7), paid=st.booleans())
def test_consistent_systems_never_break_and_every_heal_balances(revenue, tax, paid):
    r, t = Money.from_minor(revenue, "USD"), Money.from_minor(tax, "USD")
    inv = invoice(revenue=str(r.amount), tax=str(t.amount), status="paid" if paid else "open")
    doc = tax_document(tax=str(t.amount), revenue=str(r.amount)) if tax else None
    entries = [booking(revenue=str(r.amount), tax=str(t.amount))] + ([payment(str((r + t).amount))] if paid else [])
    assert compare(inv, doc, entries) == []
    [missing] = [b for b in compare(inv, doc, entries[1:]) if b.kind == BreakKind.MISSING_IN_ERP]
    heal = missing.heal
    assert heal is not None and heal.total_debits == r + t  # a JournalEntry cannot be unbalanced


@settings(max_examples=200, deadline=None)
@given(revenue=minor, delta=st.integers(min_value=-(10**6), max_value=10**6).filter(bool))
def test_any_difference_in_the_receivable_is_an_amount_break_of_exactly_that_size(revenue, delta):
    r = Money.from_minor(revenue, "USD")
    off = Money.from_minor(revenue + delta, "USD")
    if off.is_negative or off.is_zero:
        return
    found = compare(invoice(revenue=str(r.amount), tax="0"), None, [booking(revenue=str(off.amount), tax="0")])
    assert kinds(found) == [BreakKind.AMOUNT_MISMATCH]
    assert found[0].difference == Money.from_minor(delta, "USD")
