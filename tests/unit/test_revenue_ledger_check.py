"""Reconciliation of posted revenue: an entity-month's entry in the ledger against what o2c
posted, and the schedules against what was posted for the month, each break with its cause."""

from __future__ import annotations

from decimal import Decimal

from canonical.journal import ChartOfAccounts
from canonical.matching import compare_staged
from canonical.models import ContractRevenue
from canonical.money import Money
from canonical.reconciliation import BreakKind, ReconciliationPolicy, ledger_fact
from canonical.revenue.ledger_check import ledger_revenue_key
from canonical.revenue.posting import PostedLine, Recognition, build_postings

CHART = ChartOfAccounts()
POLICY = ReconciliationPolicy(heal_limit=Decimal(100))
KEY = ledger_revenue_key("DE01", "2026-10", "EUR")


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def october(amount: str = "310.00"):
    (posting,) = build_postings(
        legal_entity="DE01",
        subsidiary="1010",
        period="2026-10",
        recognised=[Recognition(period="2026-10", obligation="seats", amount=eur(amount))],
        posted=[],
        chart=CHART,
    )
    return posting


def compare(scheduled: list[ContractRevenue], ledger, posted: list[PostedLine]):
    return compare_staged(
        KEY,
        billing=[],
        tax=[],
        ledger=ledger,
        revenue=scheduled,
        period="2026-10",
        policy=POLICY,
        subsidiary="1010",
        chart=CHART,
        posted=posted,
    )


def test_the_posting_entry_is_matched_by_its_reference_and_a_posted_month_reconciles():
    posting = october()
    fact = ledger_fact(posting.entry, CHART)
    assert fact.match_key == KEY
    assert compare([ContractRevenue(contract_id="C1", amount=eur("310.00"))], [fact], posting.lines) == []


def test_a_month_not_posted_yet():
    (found,) = compare(
        [
            ContractRevenue(contract_id="C1", amount=eur("200.00")),
            ContractRevenue(contract_id="C2", amount=eur("110.00")),
        ],
        [],
        [],
    )
    assert found.kind == BreakKind.REVENUE_MISMATCH and found.key == "revenue-DE01-2026-10-EUR"
    assert found.billing == eur("310.00") and found.erp is None
    assert found.explanation.startswith(
        "Month not posted yet: o2c's schedules recognise 310.00 EUR for DE01 in 2026-10"
    )
    assert found.documents == ["revenue-DE01-2026-10-EUR", "C1", "C2"]


def test_a_schedule_changed_after_posting_names_the_month_the_true_up_is_due_in():
    posting = october()
    # A credit took October down to 300.00 after it was posted (310.00).
    (found,) = compare(
        [ContractRevenue(contract_id="C1", amount=eur("300.00"))], [ledger_fact(posting.entry, CHART)], posting.lines
    )
    assert found.explanation.startswith("Schedule changed after posting: true-up due in 2026-11.")
    assert (found.billing, found.erp, found.difference) == (eur("300.00"), eur("310.00"), eur("10.00"))


def test_a_true_up_posted_in_the_next_month_settles_the_month():
    posting = october()
    (november,) = build_postings(
        legal_entity="DE01",
        subsidiary="1010",
        period="2026-11",
        recognised=[Recognition(period="2026-10", obligation="seats", amount=eur("300.00"))],
        posted=posting.lines,
        chart=CHART,
    )
    assert (
        compare(
            [ContractRevenue(contract_id="C1", amount=eur("300.00"))],
            [ledger_fact(posting.entry, CHART)],
            posting.lines + november.lines,
        )
        == []
    )


def test_a_ledger_entry_that_differs_from_what_o2c_posted():
    posting = october()
    changed = october("350.00").entry  # edited in the ERP: 350.00 instead of 310.00
    (found,) = compare(
        [ContractRevenue(contract_id="C1", amount=eur("310.00"))], [ledger_fact(changed, CHART)], posting.lines
    )
    assert found.explanation == (
        "Posted amount differs: the ledger's revenue-DE01-2026-10-EUR credits 350.00 EUR of revenue; "
        "o2c posted 310.00 EUR under it."
    )
    (lost,) = compare([ContractRevenue(contract_id="C1", amount=eur("310.00"))], [], posting.lines)
    assert "credits nothing of revenue; o2c posted 310.00 EUR" in lost.explanation
