"""Revenue schedules: how a price is recognised over the service period (ASC 606 step 5)."""

from __future__ import annotations

from datetime import date

from o2c.canonical.models import RevenueSchedule, RevenueScheduleLine
from o2c.canonical.money import Money


def calendar_months(start: date, end: date) -> list[tuple[date, date]]:
    """The calendar-month slices of [start, end): the first and last may be partial."""
    if end <= start:
        raise ValueError(f"empty service period {start}..{end}")
    slices = []
    cursor = start
    while cursor < end:
        next_month = date(cursor.year + (cursor.month == 12), cursor.month % 12 + 1, 1)
        slices.append((cursor, min(next_month, end)))
        cursor = next_month
    return slices


def ratable_schedule(
    *, schedule_id: str, contract_id: str, account_id: str, legal_entity: str, obligation: str,
    total: Money, start: date, end: date,
) -> RevenueSchedule:
    """Recognise `total` evenly per day of [start, end), reported per calendar month. The
    monthly amounts are a largest-remainder split by days, so they add up to the total."""
    months = calendar_months(start, end)
    days = [(e - s).days for s, e in months]
    amounts = total.allocate(days)
    return RevenueSchedule(
        schedule_id=schedule_id, contract_id=contract_id, account_id=account_id, legal_entity=legal_entity,
        obligation=obligation, method="ratable", total=total, start=start, end=end,
        lines=[RevenueScheduleLine(period=f"{s:%Y-%m}", start=s, end=e, days=d, amount=a)
               for (s, e), d, a in zip(months, days, amounts)],
    )
