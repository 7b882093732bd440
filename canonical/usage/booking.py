"""What a released usage invoice books: the accrual in the month of use, the invoice that
turns it into a receivable, and the revenue recognised in the month of use."""

from __future__ import annotations

from datetime import date

from canonical.journal import ChartOfAccounts, JournalEntry
from canonical.models import RevenueSchedule
from canonical.money import Money
from canonical.usage.models import UsageRelease


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
) -> list[JournalEntry]:
    """Two balanced entries: on the last day of the usage period, DR unbilled receivable /
    CR usage revenue (`revenue`, net of credits); on the invoice date, DR receivable (revenue
    + tax) / CR unbilled receivable / CR tax payable. External ids `<external_id>-accrual` and
    `<external_id>-invoice`. Nothing for a zero amount."""
    raise NotImplementedError


def usage_schedule(release: UsageRelease, *, revenue: Money, contract_id: str) -> RevenueSchedule:
    """Point-in-time revenue in the usage period (variable consideration, ASC 606-10-32-40)."""
    raise NotImplementedError
