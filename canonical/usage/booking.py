"""What a released usage invoice books: the accrual in the month of use, the invoice that
turns it into a receivable, and the revenue recognised in the month of use."""

from __future__ import annotations

from datetime import date

from canonical.journal import ChartOfAccounts, JournalEntry, JournalLine
from canonical.models import RevenueSchedule, RevenueScheduleLine
from canonical.money import CurrencyError, Money
from canonical.usage.models import UsageRelease, last_day, period_end, period_start

# The obligation of usage schedules. Their revenue is reconciled against the usage accrual
# (the usage check), not with the ratable recognition entries of subscriptions.
USAGE_OBLIGATION = "usage"


def usage_entries(
    *,
    external_id: str,
    subsidiary: str,
    usage_period: str,
    invoice_date: date,
    invoice_id: str,
    revenue: Money,
    tax: Money,
    chart: ChartOfAccounts,
    memo: str,
    contract_id: str = "",
    customer: str = "",
) -> list[JournalEntry]:
    """Two balanced entries: on the last day of the usage period, DR unbilled receivable /
    CR usage revenue (`revenue`, net of credits); on the invoice date, DR receivable (revenue
    + tax) / CR unbilled receivable / CR tax payable. External ids `<external_id>-accrual` and
    `<external_id>-invoice`, the receivable in the name of `customer`. Nothing for a zero
    amount."""
    if revenue.currency != tax.currency:
        raise CurrencyError(f"usage revenue in {revenue.currency} but tax in {tax.currency}")
    if revenue.is_negative:
        # A credit larger than the usage is a credit note, not a usage invoice: booking it
        # here would turn the month's accrual into negative revenue.
        raise ValueError(
            f"usage revenue for {usage_period} is {revenue}, below zero: a credit larger than the usage "
            "is issued as a credit note, not booked as a usage invoice"
        )
    if tax.is_negative:
        raise ValueError(f"tax on a usage invoice cannot be negative, got {tax}")
    entries = []
    if not revenue.is_zero:
        entries.append(
            JournalEntry(
                external_id=f"{external_id}-accrual",
                subsidiary=subsidiary,
                currency=revenue.currency,
                posting_date=last_day(usage_period),
                memo=f"{memo}: usage of {usage_period} accrued",
                lines=[
                    JournalLine(account=chart.unbilled_receivable, debit=revenue, memo="Unbilled receivable"),
                    JournalLine(account=chart.usage_revenue, credit=revenue, memo="Usage revenue"),
                ],
                invoice_id=invoice_id,
                contract_id=contract_id,
            )
        )
    receivable = revenue + tax
    if not receivable.is_zero:
        lines = [JournalLine(account=chart.receivable, debit=receivable, memo="Accounts receivable")]
        if not revenue.is_zero:
            lines.append(JournalLine(account=chart.unbilled_receivable, credit=revenue, memo="Unbilled receivable"))
        if not tax.is_zero:
            lines.append(JournalLine(account=chart.tax_payable, credit=tax, memo="Sales tax payable"))
        entries.append(
            JournalEntry(
                external_id=f"{external_id}-invoice",
                subsidiary=subsidiary,
                currency=revenue.currency,
                posting_date=invoice_date,
                memo=f"{memo}: usage of {usage_period} invoiced",
                lines=lines,
                invoice_id=invoice_id,
                contract_id=contract_id,
                customer=customer,
            )
        )
    return entries


def usage_schedule(release: UsageRelease, *, revenue: Money, contract_id: str) -> RevenueSchedule:
    """Point-in-time revenue in the usage period (variable consideration, ASC 606-10-32-40).

    One line covering the whole usage month, booked on its last day like the accrual, so
    the waterfall shows the consideration booked and recognised in the month of use."""
    if revenue.currency != release.currency:
        raise CurrencyError(f"usage revenue in {revenue.currency} on a {release.currency} release")
    if revenue.is_negative:
        raise ValueError(f"usage revenue for {release.period} is {revenue}, below zero: nothing to recognise")
    start = period_start(release.period).date()
    end = period_end(release.period).date()
    return RevenueSchedule(
        schedule_id=f"{release.workflow_id}-usage",
        contract_id=contract_id,
        account_id=release.customer,
        legal_entity=release.legal_entity,
        obligation=USAGE_OBLIGATION,
        method="point_in_time",
        total=revenue,
        start=start,
        end=end,
        lines=[
            RevenueScheduleLine(period=release.period, start=start, end=end, days=(end - start).days, amount=revenue)
        ],
        booked_on=last_day(release.period),
    )
