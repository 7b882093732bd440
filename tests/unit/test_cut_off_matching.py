"""One booking across two periods (DOMAIN.md, "Dating a booking"): documents matched by the
invoice's key whatever period each landed in, a cut-off difference with both dates instead of
a missing document, and never a heal for an entry the ERP holds."""

from datetime import date

from canonical.journal import ChartOfAccounts, invoice_entry
from canonical.matching import compare_staged
from canonical.models import TAX_PRODUCT, Invoice, InvoiceLine, TaxDocument, TaxLine
from canonical.money import Money
from canonical.reconciliation import (
    OWNERS,
    BreakKind,
    ReconciliationPolicy,
    billed,
    compare_invoice,
    ledger_fact,
    taxed,
)

CHART = ChartOfAccounts()
NOVEMBER, DECEMBER = "2026-11", "2026-12"
EFFECTIVE, INVOICED = date(2026, 11, 16), date(2026, 12, 1)


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def invoice(created: date = INVOICED) -> Invoice:
    return Invoice(
        id="in_a1001",
        number="SBX-1001",
        account_id="cus_acme",
        status="open",
        currency="USD",
        total=usd("105.00"),
        lines=[
            InvoiceLine(product="seats", description="proration", amount=usd("100.00")),
            InvoiceLine(product=TAX_PRODUCT, description="tax", amount=usd("5.00")),
        ],
        created=created,
        metadata={"o2c_workflow": "amendment-A-1001"},
    )


def tax_document(dated: date) -> TaxDocument:
    return TaxDocument(
        code="in_a1001",
        type="SalesInvoice",
        status="Committed",
        total_amount=usd("100.00"),
        total_tax=usd("5.00"),
        lines=[TaxLine(number="1", amount=usd("100.00"), tax=usd("5.00"))],
        document_date=dated,
    )


def entry(posted: date, receivable_revenue: str = "100.00"):
    return ledger_fact(
        invoice_entry(
            external_id="amendment-A-1001-invoice",
            subsidiary="1",
            posting_date=posted,
            memo="Amendment A-1001",
            revenue=usd(receivable_revenue),
            tax=usd("5.00"),
            chart=CHART,
            invoice_id="in_a1001",
            customer="cus_acme",
        ),
        CHART,
    )


def compare(period: str, *, billed_on=None, taxed_on=None, posted_on=None, revenue="100.00"):
    return compare_invoice(
        billed(invoice(billed_on)) if billed_on else None,
        taxed(tax_document(taxed_on)) if taxed_on else None,
        [entry(posted_on, revenue)] if posted_on else [],
        subsidiary="1",
        period=period,
    )


def test_documents_dated_alike_reconcile_to_nothing_in_their_period():
    assert compare(DECEMBER, billed_on=INVOICED, taxed_on=INVOICED, posted_on=INVOICED) == []


def test_the_invoices_period_reports_a_cut_off_difference_with_both_dates_not_a_missing_entry():
    """Billing invoiced on 1 December; the entry and the tax document were dated 16 November
    (how bookings were dated before o2c-ledger). December's run found them by the key."""
    [found] = compare(DECEMBER, billed_on=INVOICED, taxed_on=EFFECTIVE, posted_on=EFFECTIVE)
    assert found.kind == BreakKind.CUT_OFF_DIFFERENCE and found.heal is None
    assert found.owner == OWNERS[BreakKind.CUT_OFF_DIFFERENCE] == "finance"
    assert "2026-12-01" in found.explanation and "2026-11-16" in found.explanation
    assert "2026-11 and 2026-12" in found.explanation and "not a missing document" in found.explanation
    assert found.billing == usd("105.00") and found.erp == usd("105.00")
    assert set(found.documents) == {"in_a1001", "amendment-A-1001-invoice"}


def test_the_other_period_reports_the_same_cut_off_difference_not_missing_in_billing():
    """November's run holds the entry and the tax document; billing's invoice, looked up by
    key, was created in December. The amounts are December's run's to compare."""
    [found] = compare(NOVEMBER, billed_on=INVOICED, taxed_on=EFFECTIVE, posted_on=EFFECTIVE, revenue="90.00")
    assert found.kind == BreakKind.CUT_OFF_DIFFERENCE
    assert "2026-12-01" in found.explanation and "2026-11-16" in found.explanation


def test_without_the_invoice_anywhere_the_entry_is_still_missing_in_billing():
    [found] = compare(NOVEMBER, taxed_on=EFFECTIVE, posted_on=EFFECTIVE)
    assert found.kind == BreakKind.MISSING_IN_BILLING


def test_an_entry_the_erp_holds_in_another_period_is_never_healed():
    breaks = compare(DECEMBER, billed_on=INVOICED, taxed_on=INVOICED, posted_on=EFFECTIVE)
    assert [b.kind for b in breaks] == [BreakKind.CUT_OFF_DIFFERENCE]
    assert all(b.heal is None for b in breaks)


def test_amounts_are_still_compared_across_periods():
    breaks = compare(DECEMBER, billed_on=INVOICED, taxed_on=INVOICED, posted_on=EFFECTIVE, revenue="90.00")
    assert {b.kind for b in breaks} == {BreakKind.AMOUNT_MISMATCH, BreakKind.CUT_OFF_DIFFERENCE}


def test_a_tax_document_of_another_period_is_a_cut_off_difference():
    [found] = compare(DECEMBER, billed_on=INVOICED, taxed_on=EFFECTIVE, posted_on=INVOICED)
    assert found.kind == BreakKind.CUT_OFF_DIFFERENCE and "AvaTax dates its tax document" in found.explanation


def test_an_entry_truly_missing_everywhere_is_still_healed():
    [found] = compare(DECEMBER, billed_on=INVOICED, taxed_on=INVOICED)
    assert found.kind == BreakKind.MISSING_IN_ERP and found.heal is not None
    assert found.heal.posting_date == INVOICED and found.heal.external_id == "amendment-A-1001-invoice"


def test_the_staged_comparison_passes_its_period():
    breaks = compare_staged(
        "invoice:in_a1001",
        billing=[billed(invoice())],
        tax=[taxed(tax_document(EFFECTIVE))],
        ledger=[entry(EFFECTIVE)],
        revenue=[],
        period=DECEMBER,
        policy=ReconciliationPolicy(),
        subsidiary="1",
        chart=CHART,
    )
    assert [b.kind for b in breaks] == [BreakKind.CUT_OFF_DIFFERENCE]
