"""An in-memory usage store for the reconciliation's usage check: o2c's own database as the
usage release leaves it (totals, closed periods, the releases), in a dict."""

from __future__ import annotations

from datetime import UTC, date, datetime

from canonical.journal import ChartOfAccounts, JournalEntry, JournalLine
from canonical.models import TAX_PRODUCT, Invoice, InvoiceLine
from canonical.money import Money
from canonical.usage.models import UsageRelease, UsageTotal, last_day, period_end, period_start


class InMemoryUsageStore:
    """Implements adapters.ports.UsageStorePort."""

    def __init__(self) -> None:
        self.usage_totals: dict[tuple[str, str], list[UsageTotal]] = {}
        self.closed: set[tuple[str, str]] = set()
        self.by_workflow: dict[str, UsageRelease] = {}

    async def totals(self, customer: str, period: str) -> list[UsageTotal]:
        return list(self.usage_totals.get((customer, period), []))

    async def close_period(self, customer: str, period: str) -> None:
        self.closed.add((customer, period))

    async def reopen_period(self, customer: str, period: str) -> None:
        self.closed.discard((customer, period))

    async def history(self, customer: str, meter: str, *, before: str, periods: int) -> list[int]:
        released = sorted(
            (r for r in self.by_workflow.values() if r.customer == customer and r.period < before),
            key=lambda r: r.period,
        )
        return [r.quantities.get(meter, 0) for r in released][-periods:]

    async def previous_release(self, customer: str, *, before: str) -> UsageRelease | None:
        earlier = [r for r in self.by_workflow.values() if r.customer == customer and r.period < before]
        return max(earlier, key=lambda r: r.period, default=None)

    async def record_release(self, release: UsageRelease) -> None:
        self.by_workflow[release.workflow_id] = release

    async def delete_release(self, workflow_id: str) -> None:
        self.by_workflow.pop(workflow_id, None)

    async def releases(
        self, *, legal_entity: str, period: str, cursor: str = "", limit: int = 1000
    ) -> tuple[list[UsageRelease], str]:
        found = sorted(
            (r for r in self.by_workflow.values() if r.legal_entity == legal_entity and r.period == period),
            key=lambda r: r.invoice_id,
        )
        start = int(cursor or 0)
        more = start + limit < len(found)
        return found[start : start + limit], str(start + limit) if more else ""


# -- a usage release as each system holds it ---------------------------------------------------
# Built by hand here (not by canonical.usage.booking) so the reconciliation's tests state the
# entries the usage release books in the ERP, line by line.

CHART = ChartOfAccounts()


def usage_release(
    invoice_id: str,
    *,
    period: str = "2026-09",
    quantities: dict[str, int] | None = None,
    subtotal: str = "100.00",
    credit: str = "0.00",
    tax: str = "10.00",
    customer: str = "cus_acme",
    legal_entity: str = "US01",
) -> UsageRelease:
    subscription = f"sub_{invoice_id.removeprefix('in_')}"
    net = Money.of(subtotal, "USD") - Money.of(credit, "USD")
    return UsageRelease(
        workflow_id=f"usage-{subscription}-{period}",
        subscription_id=subscription,
        customer=customer,
        legal_entity=legal_entity,
        period=period,
        invoice_id=invoice_id,
        currency="USD",
        quantities=quantities if quantities is not None else {"api_calls": 10_000},
        subtotal=Money.of(subtotal, "USD"),
        credit=Money.of(credit, "USD"),
        tax=Money.of(tax, "USD"),
        total=net + Money.of(tax, "USD"),
        released_at=datetime(2026, 10, 2, 9, 0, tzinfo=UTC),
    )


def metered_invoice(
    release: UsageRelease, *, quantities: dict[str, int] | None = None, status: str = "open"
) -> Invoice:
    """Billing's invoice for the release: one metered line per meter, the tax, created at period end."""
    usage_from, usage_to = period_start(release.period).date(), period_end(release.period).date()
    billed = quantities if quantities is not None else release.quantities
    net = release.subtotal - release.credit
    lines = [
        InvoiceLine(
            product=meter,
            description=f"{meter} usage",
            amount=net if n == 0 else Money.zero("USD"),
            meter=meter,
            quantity=quantity,
            line_id=f"il_{release.invoice_id}_{meter}",
            period_start=usage_from,
            period_end=usage_to,
        )
        for n, (meter, quantity) in enumerate(sorted(billed.items()))
    ]
    return Invoice(
        id=release.invoice_id,
        number=f"N-{release.invoice_id}",
        account_id=release.customer,
        subscription_id=release.subscription_id,
        status=status,
        currency="USD",
        total=release.total,
        tax=release.tax,
        lines=[*lines, InvoiceLine(product=TAX_PRODUCT, description="tax", amount=release.tax)],
        created=usage_to,
    )


def accrual(release: UsageRelease, *, revenue: str | None = None, posting_date: date | None = None) -> JournalEntry:
    """DR unbilled receivable / CR usage revenue, on the last day of the month of use."""
    amount = Money.of(revenue, "USD") if revenue is not None else release.subtotal - release.credit
    return JournalEntry(
        external_id=f"{release.workflow_id}-accrual",
        subsidiary="1",
        currency="USD",
        posting_date=posting_date or last_day(release.period),
        memo=f"Usage of {release.period} accrued",
        lines=[
            JournalLine(account=CHART.unbilled_receivable, debit=amount),
            JournalLine(account=CHART.usage_revenue, credit=amount),
        ],
        invoice_id=release.invoice_id,
    )


def usage_invoice_entry(release: UsageRelease, posting_date: date) -> JournalEntry:
    """DR receivable / CR unbilled receivable / CR tax payable, on the invoice date."""
    net = release.subtotal - release.credit
    lines = [
        JournalLine(account=CHART.receivable, debit=release.total),
        JournalLine(account=CHART.unbilled_receivable, credit=net),
    ]
    if not release.tax.is_zero:
        lines.append(JournalLine(account=CHART.tax_payable, credit=release.tax))
    return JournalEntry(
        external_id=f"{release.workflow_id}-invoice",
        subsidiary="1",
        currency="USD",
        posting_date=posting_date,
        memo=f"Usage invoice {release.invoice_id}",
        lines=lines,
        invoice_id=release.invoice_id,
    )


# -- a period with one of every usage break --------------------------------------------------

USAGE_INVOICED = date(2026, 10, 1)


async def seed_usage_period(systems) -> None:
    """One of every usage break, beside releases where all three systems agree."""
    for n in (101, 102, 103, 105):  # September's usage, invoiced on 1 October
        release = usage_release(f"in_{n}", period="2026-09", tax="0.00")
        await systems.usage.record_release(release)
        if n == 103:
            continue  # billing has no such invoice
        quantities = {"api_calls": 9_800} if n == 102 else None
        systems.billing.invoices[release.invoice_id] = metered_invoice(release, quantities=quantities)
        if n != 105:  # in_105's invoice entry is missing in the ERP
            entry = usage_invoice_entry(release, USAGE_INVOICED)
            systems.erp.entries[entry.external_id] = entry
    unreleased = usage_release("in_104", period="2026-09", tax="0.00")  # never recorded: billed without o2c
    systems.billing.invoices["in_104"] = metered_invoice(unreleased)
    entry = usage_invoice_entry(unreleased, USAGE_INVOICED)
    systems.erp.entries[entry.external_id] = entry
    for n in (201, 202, 203):  # October's usage, accrued on 31 October (invoiced in November)
        release = usage_release(f"in_{n}", period="2026-10", tax="0.00")
        await systems.usage.record_release(release)
        if n == 201:
            systems.erp.entries[f"{release.workflow_id}-accrual"] = accrual(release)
        if n == 203:  # October was closed: the accrual went to November
            systems.erp.entries[f"{release.workflow_id}-accrual"] = accrual(release, posting_date=date(2026, 11, 2))
