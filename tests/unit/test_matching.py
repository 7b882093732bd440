"""Matching one batch: which comparison a match key gets, and the status each break starts in."""

from datetime import date
from decimal import Decimal

from canonical.journal import ChartOfAccounts, invoice_entry
from canonical.matching import compare_staged, dominant_total, initial_status
from canonical.models import ContractRevenue, Invoice, InvoiceLine
from canonical.money import Money
from canonical.reconciliation import (
    BreakKind,
    BreakStatus,
    ReconciliationPolicy,
    TaxRecord,
    billed,
    ledger_fact,
)

CHART = ChartOfAccounts()
DAY = date(2026, 10, 14)
POLICY = ReconciliationPolicy(heal_limit=Decimal(100))


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def billed_invoice(amount: str = "50.00"):
    return billed(
        Invoice(
            id="in_1",
            account_id="cus_1",
            status="open",
            currency="USD",
            total=usd(amount),
            lines=[InvoiceLine(product="seats", description="seats", amount=usd(amount))],
            created=DAY,
            metadata={"o2c_workflow": "amendment-A-1"},
        )
    )


def tax_record(type_: str, status: str, tax: str) -> TaxRecord:
    return TaxRecord(code="in_1", type=type_, status=status, amount=usd("50.00"), tax=usd(tax), document_date=DAY)


def staged(key: str, *, billing=(), tax=(), ledger=(), revenue=()):
    return compare_staged(
        key,
        billing=list(billing),
        tax=list(tax),
        ledger=list(ledger),
        revenue=list(revenue),
        period="2026-10",
        policy=POLICY,
        subsidiary="1",
        chart=CHART,
    )


def test_an_invoice_missing_in_the_erp_heals_at_once_below_the_limit_and_after_approval_above_it():
    (below,) = staged("invoice:in_1", billing=[billed_invoice("50.00")])
    assert below.kind == BreakKind.MISSING_IN_ERP and below.heal is not None
    assert initial_status(below, POLICY.heal_limit) == BreakStatus.HEALING
    (above,) = staged("invoice:in_1", billing=[billed_invoice("150.00")])
    assert initial_status(above, POLICY.heal_limit) == BreakStatus.AWAITING_APPROVAL


def test_a_break_without_a_heal_waits_for_a_person():
    entry = invoice_entry(
        external_id="amendment-A-1-invoice",
        subsidiary="1",
        posting_date=DAY,
        memo="booked",
        revenue=usd("60.00"),
        tax=usd("0"),
        chart=CHART,
        invoice_id="in_1",
    )
    (found,) = staged("invoice:in_1", billing=[billed_invoice("50.00")], ledger=[ledger_fact(entry, CHART)])
    assert found.kind == BreakKind.AMOUNT_MISMATCH and found.heal is None
    assert initial_status(found, POLICY.heal_limit) == BreakStatus.OPEN


def test_the_committed_sales_invoice_is_the_tax_document_that_counts():
    documents = [tax_record("SalesOrder", "Committed", "9.99"), tax_record("SalesInvoice", "Committed", "0.00")]
    breaks = staged("invoice:in_1", billing=[billed_invoice()], tax=documents)
    assert BreakKind.TAX_MISMATCH not in [b.kind for b in breaks]


def test_revenue_keys_compare_schedules_with_the_revenue_account_and_bare_entries_are_left_alone():
    (found,) = staged("revenue:C-1", revenue=[ContractRevenue(contract_id="C-1", amount=usd("30.00"))])
    assert found.kind == BreakKind.REVENUE_MISMATCH and found.key == "C-1" and found.erp is None
    assert staged("entry:je-9") == []


def test_of_several_currencies_the_total_holding_the_most_stands():
    assert dominant_total([]) is None
    amounts = [usd("10.00"), Money.of("-30.00", "EUR"), usd("15.00")]
    assert dominant_total(amounts) == Money.of("-30.00", "EUR")
