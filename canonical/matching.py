"""Matching one batch: the facts each system holds under a match key, compared, and the status
each break starts in.

The reconciliation run stages every system's facts keyed by the document they concern
(`invoice:<id>`, `ledger_revenue:<revenue posting reference>` for an entity-month's revenue,
`revenue:<contract>` for another revenue entry, or `entry:<id>` for an ERP entry that names none).
compare_staged() compares what one key gathered; initial_status() says whether a break is
healed at once, waits for approval, or waits for a person.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from canonical.journal import ChartOfAccounts
from canonical.models import ContractRevenue
from canonical.money import Money
from canonical.policy_amounts import PerCurrency
from canonical.reconciliation import (
    BilledInvoice,
    Break,
    BreakKind,
    BreakStatus,
    LedgerFact,
    ReconciliationPolicy,
    TaxRecord,
    compare_invoice,
    compare_revenue,
    needs_approval,
)
from canonical.revenue.ledger_check import LEDGER_REVENUE, compare_posted_month
from canonical.revenue.posting import PostedLine


def compare_staged(
    key: str,
    *,
    billing: Sequence[BilledInvoice],
    tax: Sequence[TaxRecord],
    ledger: Sequence[LedgerFact],
    revenue: Sequence[ContractRevenue],
    period: str,
    policy: ReconciliationPolicy,
    subsidiary: str,
    chart: ChartOfAccounts,
    posted: Sequence[PostedLine] = (),
    names_customer: bool = False,
) -> list[Break]:
    """The breaks among the facts staged under one match key. `posted`: the lines of the
    entity's revenue postings, for a `ledger_revenue:` key."""
    if key.startswith(LEDGER_REVENUE):
        return [
            Break(
                kind=BreakKind.REVENUE_MISMATCH,
                key=f.external_id,
                currency=f.currency,
                billing=f.expected,
                erp=f.actual,
                explanation=f.explanation,
                documents=[f.external_id, *sorted({r.contract_id for r in revenue})],
            )
            for f in compare_posted_month(
                key,
                scheduled=revenue,
                ledger=[x.recognised for x in ledger],
                posted=posted,
                tolerance_minor=policy.tolerance.revenue_minor,
            )
        ]
    if key.startswith("revenue:"):
        contract = key.split(":", 1)[1]
        found = compare_revenue(
            contract,
            dominant_total(r.amount for r in revenue),
            dominant_total(f.recognised for f in ledger),
            period=period,
            tolerance=policy.tolerance,
        )
        return [found] if found else []
    if not key.startswith("invoice:"):
        return []  # an ERP entry that names no invoice or contract: nothing to compare it with
    # Of several tax documents under the invoice's code, the committed sales invoice is the one that counts.
    documents = sorted(tax, key=lambda t: (t.type != "SalesInvoice", not t.committed))
    return compare_invoice(
        billing[0] if billing else None,
        documents[0] if documents else None,
        ledger,
        tolerance=policy.tolerance,
        subsidiary=subsidiary,
        chart=chart,
        period=period,
        names_customer=names_customer,
    )


def dominant_total(amounts: Iterable[Money]) -> Money | None:
    """Amounts added up; of several currencies, the one holding the most (the mix itself is
    a revenue break, which the other side's currency then shows)."""
    by_currency: dict[str, Money] = {}
    for amount in amounts:
        by_currency[amount.currency] = by_currency.get(amount.currency, Money.zero(amount.currency)) + amount
    if not by_currency:
        return None
    return max(by_currency.values(), key=lambda m: abs(m.minor))


def initial_status(found: Break, heal_limit: Decimal | PerCurrency) -> BreakStatus:
    """A break with a safe heal is healed at once, or after approval when the heal is above the
    limit; any other break waits for a person."""
    if found.heal is None:
        return BreakStatus.OPEN
    return BreakStatus.AWAITING_APPROVAL if needs_approval(found.heal, heal_limit) else BreakStatus.HEALING
