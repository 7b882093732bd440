"""The reconciliation's usage check: o2c's release against billing's metered lines and the
ERP's accrual, each difference named in words with the numbers, nothing where they agree."""

from datetime import date
from decimal import Decimal

from canonical.matching import initial_status
from canonical.reconciliation import (
    OWNERS,
    USAGE_BREAKS,
    BreakKind,
    BreakStatus,
    EntryKind,
    billed,
    compare_invoice,
    ledger_fact,
)
from canonical.usage.reconciliation import (
    accrual_to_look_up,
    compare_usage,
    usage_fact,
    without_usage_heals,
)
from tests.usage_recon_fakes import CHART, accrual, metered_invoice, usage_invoice_entry, usage_release

RUN = "2026-10"  # the run's period: September's usage is invoiced in it, October's accrued
UNITS = {"api_calls": "API calls", "storage_gb": "GB-months"}


def invoiced_side(**release):
    """September's release (invoiced on 1 October) and billing's invoice for it."""
    fact = usage_release("in_1", period="2026-09", **release)
    return fact, billed(metered_invoice(fact))


def test_billed_reads_the_metered_quantities_and_the_usage_period():
    release, _ = invoiced_side(quantities={"api_calls": 10_000, "storage_gb": 12})
    fact = billed(metered_invoice(release))
    assert fact.metered == {"api_calls": 10_000, "storage_gb": 12}
    assert fact.usage_period == "2026-09"
    assert fact.subscription_id == "sub_1"
    assert fact.document_date == date(2026, 10, 1)


def test_a_release_billing_invoiced_as_counted_has_no_break():
    release, invoice = invoiced_side()
    assert compare_usage("invoice:in_1", [usage_fact(release)], invoice, [], period=RUN) == []


def test_billing_invoicing_fewer_calls_than_o2c_released_is_a_quantity_break_in_words():
    release = usage_release("in_1", period="2026-09")
    invoice = billed(metered_invoice(release, quantities={"api_calls": 9_800}))
    [found] = compare_usage("invoice:in_1", [usage_fact(release)], invoice, [], period=RUN, units=UNITS)
    assert found.kind == BreakKind.USAGE_QUANTITY_MISMATCH
    assert "billing invoiced 9,800 API calls on in_1; o2c released 10,000" in found.explanation
    assert found.owner == "billing operations"
    assert found.heal is None
    assert initial_status(found, Decimal(1_000_000)) == BreakStatus.OPEN


def test_a_meter_missing_on_the_invoice_and_one_o2c_never_counted_are_both_named():
    release = usage_release("in_1", period="2026-09", quantities={"api_calls": 10_000})
    invoice = billed(metered_invoice(release, quantities={"storage_gb": 5}))
    [found] = compare_usage("invoice:in_1", [usage_fact(release)], invoice, [], period=RUN, units=UNITS)
    assert "billing invoiced no API calls on in_1; o2c released 10,000 API calls" in found.explanation
    assert "billing invoiced 5 GB-months on in_1; o2c released none" in found.explanation


def test_a_release_whose_invoice_billing_does_not_have_is_usage_counted_but_not_invoiced():
    release = usage_release("in_1", period="2026-09")
    [found] = compare_usage("invoice:in_1", [usage_fact(release)], None, [], period=RUN, units=UNITS)
    assert found.kind == BreakKind.USAGE_NOT_INVOICED
    assert "o2c released 10,000 API calls of 2026-09 usage" in found.explanation
    assert "billing has no invoice in_1 created in 2026-10" in found.explanation
    assert release.workflow_id in found.documents


def test_a_release_whose_invoice_billing_voided_or_still_holds_as_draft_is_not_invoiced():
    release = usage_release("in_1", period="2026-09")
    for status in ("void", "draft"):
        invoice = billed(metered_invoice(release, status=status))
        [found] = compare_usage("invoice:in_1", [usage_fact(release)], invoice, [], period=RUN)
        assert found.kind == BreakKind.USAGE_NOT_INVOICED
        assert f"holds invoice in_1 as {status}" in found.explanation


def test_metered_usage_billing_invoiced_without_a_release_is_usage_billed_without_review():
    release = usage_release("in_7", period="2026-09")
    invoice = billed(metered_invoice(release))
    [found] = compare_usage("invoice:in_7", [], invoice, [], period=RUN, units=UNITS)
    assert found.kind == BreakKind.USAGE_NOT_RELEASED
    assert "10,000 API calls for 2026-09" in found.explanation
    assert "without o2c's count and review" in found.explanation
    assert found.billing == release.total


def test_invoices_without_metered_lines_or_not_issued_are_not_usage():
    release = usage_release("in_7", period="2026-09")
    seats = billed(metered_invoice(release, quantities={}))
    draft = billed(metered_invoice(release, status="draft"))
    assert compare_usage("invoice:in_7", [], seats, [], period=RUN) == []
    assert compare_usage("invoice:in_7", [], draft, [], period=RUN) == []


# -- the accrual, in the month of use -----------------------------------------------------------


def accrued_side(**release):
    """October's release: invoiced in November, accrued on 31 October."""
    return usage_release("in_2", period=RUN, **release)


def test_an_accrual_of_the_release_net_revenue_on_the_last_day_of_the_month_has_no_break():
    release = accrued_side(subtotal="120.00", credit="20.00")
    ledger = [ledger_fact(accrual(release), CHART)]
    assert ledger[0].kind == EntryKind.ACCRUAL
    assert ledger[0].usage_revenue is not None and str(ledger[0].usage_revenue.amount) == "100.00"
    assert compare_usage("invoice:in_2", [usage_fact(release)], None, ledger, period=RUN) == []
    assert accrual_to_look_up([usage_fact(release)], ledger, period=RUN) == ""


def test_an_accrual_that_differs_from_the_release_is_a_mismatch_with_the_difference():
    release = accrued_side(subtotal="120.00", credit="20.00")
    ledger = [ledger_fact(accrual(release, revenue="120.00"), CHART)]
    [found] = compare_usage("invoice:in_2", [usage_fact(release)], None, ledger, period=RUN)
    assert found.kind == BreakKind.USAGE_ACCRUAL_MISMATCH
    assert "o2c released 100.00 USD of 2026-10 usage revenue" in found.explanation
    assert "difference 20.00 USD" in found.explanation
    assert found.owner == "finance"
    assert found.difference is not None and str(found.difference.amount) == "20.00"


def test_no_accrual_anywhere_is_a_missing_accrual_naming_the_entry_expected():
    release = accrued_side()
    fact = usage_fact(release)
    assert accrual_to_look_up([fact], [], period=RUN) == f"{release.workflow_id}-accrual"
    [found] = compare_usage("invoice:in_2", [fact], None, [], period=RUN)
    assert found.kind == BreakKind.USAGE_ACCRUAL_MISSING
    assert f"expected {release.workflow_id}-accrual on 2026-10-31" in found.explanation


def test_a_reversed_accrual_is_missing():
    release = accrued_side()
    entry = accrual(release)
    ledger = [
        ledger_fact(entry, CHART),
        ledger_fact(entry.reversal(f"{entry.external_id}-r", date(2026, 10, 31)), CHART),
    ]
    [found] = compare_usage("invoice:in_2", [usage_fact(release)], None, ledger, period=RUN)
    assert found.kind == BreakKind.USAGE_ACCRUAL_MISSING


def test_an_accrual_dated_in_the_next_month_is_a_cut_off_difference_with_both_dates():
    release = accrued_side()
    late = [ledger_fact(accrual(release, posting_date=date(2026, 11, 3)), CHART)]
    [found] = compare_usage("invoice:in_2", [usage_fact(release)], None, [], period=RUN, elsewhere=late)
    assert found.kind == BreakKind.USAGE_CUT_OFF
    assert "is dated 2026-11-03, in 2026-11, not on 2026-10-31" in found.explanation
    assert "not a missing entry" in found.explanation


def test_a_release_with_nothing_to_accrue_expects_no_accrual():
    release = accrued_side(subtotal="50.00", credit="50.00", tax="0.00")
    assert accrual_to_look_up([usage_fact(release)], [], period=RUN) == ""
    assert compare_usage("invoice:in_2", [usage_fact(release)], None, [], period=RUN) == []


# -- the usage invoice's entry: the ordinary invoice comparison, reused --------------------------


def test_the_usage_invoice_entry_is_an_invoice_entry_even_without_tax():
    release = usage_release("in_1", period="2026-09", tax="0.00")
    fact = ledger_fact(usage_invoice_entry(release, date(2026, 10, 1)), CHART)
    assert fact.kind == EntryKind.INVOICE
    assert fact.unbilled is not None and str(fact.unbilled.amount) == "-100.00"


def test_the_invoice_comparison_finds_the_usage_invoice_booked_under_its_release():
    release, invoice = invoiced_side(tax="0.00")  # untaxed: no tax document to compare
    invoice = invoice.model_copy(update={"entry_id": usage_fact(release).invoice_entry_id})
    entry = usage_invoice_entry(release, date(2026, 10, 1))
    assert compare_invoice(invoice, None, [ledger_fact(entry, CHART)], chart=CHART) == []
    short = entry.model_copy(
        update={
            "lines": [
                entry.lines[0].model_copy(update={"debit": release.total.times(2)}),
                entry.lines[1].model_copy(update={"credit": release.total.times(2)}),
            ]
        }
    )
    [found] = compare_invoice(invoice, None, [ledger_fact(short, CHART)], chart=CHART)
    assert found.kind == BreakKind.AMOUNT_MISMATCH


def test_a_missing_usage_invoice_entry_is_reported_once_and_never_healed_with_deferred_revenue():
    release, invoice = invoiced_side()
    invoice = invoice.model_copy(update={"entry_id": usage_fact(release).invoice_entry_id})
    breaks = compare_invoice(invoice, None, [], chart=CHART)
    missing = [b for b in breaks if b.kind == BreakKind.MISSING_IN_ERP]
    assert missing and missing[0].heal is not None  # the generic comparison would heal it
    [kept] = [
        b for b in without_usage_heals(breaks, invoice, [usage_fact(release)]) if b.kind == BreakKind.MISSING_IN_ERP
    ]
    assert kept.heal is None
    assert f"expected {release.workflow_id}-invoice" in kept.explanation
    assert "usage invoice" in kept.explanation
    assert initial_status(kept, Decimal(1_000_000)) == BreakStatus.OPEN
    # and the usage check adds nothing of its own for the entry
    assert compare_usage("invoice:in_1", [usage_fact(release)], invoice, [], period=RUN) == []


def test_every_usage_break_has_an_owner():
    assert USAGE_BREAKS and all(kind in OWNERS for kind in USAGE_BREAKS)
    assert {OWNERS[k] for k in USAGE_BREAKS} == {"billing operations", "finance"}
