"""ASC 606 step 5: revenue schedules, how a price is recognised over the service period.

A schedule's lines are calendar months (the first and last prorated by days) for ratable
obligations, or one line in the delivery month for an obligation satisfied at a point in
time. Every split is a largest-remainder split, so the lines add up to the schedule's total
to the minor unit. Service periods are half-open: [start, end).
"""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction

from canonical.models import RevenueSchedule, RevenueScheduleLine
from canonical.money import Money, largest_remainder
from canonical.revenue.allocation import allocate
from canonical.revenue.obligations import PerformanceObligation, RevenueContract


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
    *,
    schedule_id: str,
    contract_id: str,
    account_id: str,
    legal_entity: str,
    obligation: str,
    total: Money,
    start: date,
    end: date,
    booked_on: date | None = None,
    ssp: Money | None = None,
    supersedes: str = "",
) -> RevenueSchedule:
    """Recognise `total` evenly per day of [start, end), reported per calendar month. The
    monthly amounts are a largest-remainder split by days, so they add up to the total."""
    months = calendar_months(start, end)
    days = [(e - s).days for s, e in months]
    amounts = total.allocate(days)
    return RevenueSchedule(
        schedule_id=schedule_id,
        contract_id=contract_id,
        account_id=account_id,
        legal_entity=legal_entity,
        obligation=obligation,
        method="ratable",
        total=total,
        start=start,
        end=end,
        lines=[
            RevenueScheduleLine(period=f"{s:%Y-%m}", start=s, end=e, days=d, amount=a)
            for (s, e), d, a in zip(months, days, amounts, strict=False)
        ],
        booked_on=booked_on,
        ssp=ssp,
        supersedes=supersedes,
    )


def point_in_time_schedule(
    *,
    schedule_id: str,
    contract_id: str,
    account_id: str,
    legal_entity: str,
    obligation: str,
    total: Money,
    delivered_on: date,
    booked_on: date | None = None,
    ssp: Money | None = None,
    supersedes: str = "",
) -> RevenueSchedule:
    """Recognise `total` at once when control transfers: one line, in the delivery month.
    The line covers the delivery day, [delivered_on, delivered_on + 1)."""
    end = delivered_on + timedelta(days=1)
    return RevenueSchedule(
        schedule_id=schedule_id,
        contract_id=contract_id,
        account_id=account_id,
        legal_entity=legal_entity,
        obligation=obligation,
        method="point_in_time",
        total=total,
        start=delivered_on,
        end=end,
        lines=[RevenueScheduleLine(period=f"{delivered_on:%Y-%m}", start=delivered_on, end=end, days=1, amount=total)],
        booked_on=booked_on,
        ssp=ssp,
        supersedes=supersedes,
    )


def prorated(amount: Money, days: int, of_days: int) -> Money:
    """amount x days / of_days, rounded half away from zero to the minor unit (once)."""
    if of_days <= 0 or days < 0:
        raise ValueError(f"cannot prorate over {days}/{of_days} days")
    exact = Fraction(abs(amount.minor) * days, of_days)
    minor = int(exact + Fraction(1, 2))
    return Money.from_minor(-minor if amount.minor < 0 else minor, amount.currency)


def split_line(line: RevenueScheduleLine, at: date) -> tuple[Money, Money]:
    """A line's amount before and from `at`, split by days (largest remainder, exact)."""
    if at <= line.start:
        return Money.zero(line.amount.currency), line.amount
    if at >= line.end:
        return line.amount, Money.zero(line.amount.currency)
    before, after = largest_remainder(line.amount.minor, [(at - line.start).days, (line.end - at).days])
    currency = line.amount.currency
    return Money.from_minor(before, currency), Money.from_minor(after, currency)


def recognised_before(schedule: RevenueSchedule, as_of: date) -> Money:
    """What the schedule has recognised for service before `as_of` (days before it; a
    point-in-time line counts once its delivery day is before `as_of`)."""
    result = Money.zero(schedule.total.currency)
    for line in schedule.lines:
        result = result + split_line(line, as_of)[0]
    return result


def truncated(schedule: RevenueSchedule, as_of: date) -> RevenueSchedule | None:
    """The part of the schedule recognised before `as_of`, as a schedule that ends there:
    what a prospective modification leaves of the terminated contract. None if nothing
    had been recognised."""
    if as_of <= schedule.start:
        return None
    if as_of >= schedule.end:
        return schedule
    lines = []
    for line in schedule.lines:
        if line.start >= as_of:
            break
        if line.end <= as_of:
            lines.append(line)
        else:
            before, _ = split_line(line, as_of)
            lines.append(line.model_copy(update={"end": as_of, "days": (as_of - line.start).days, "amount": before}))
    recognised = Money.zero(schedule.total.currency)
    for line in lines:
        recognised = recognised + line.amount
    ssp = (
        None
        if schedule.ssp is None
        else prorated(schedule.ssp, (as_of - schedule.start).days, (schedule.end - schedule.start).days)
    )
    return schedule.model_copy(update={"end": as_of, "total": recognised, "lines": lines, "ssp": ssp})


def schedule_for(
    obligation: PerformanceObligation,
    allocated: Money,
    *,
    schedule_id: str,
    contract_id: str,
    account_id: str,
    legal_entity: str,
    booked_on: date | None,
    supersedes: str = "",
    ssp: Money | None = None,
) -> RevenueSchedule:
    """The schedule of one obligation's allocated price: at delivery or ratable over its period."""
    if obligation.delivered_on is not None:
        return point_in_time_schedule(
            schedule_id=schedule_id,
            contract_id=contract_id,
            account_id=account_id,
            legal_entity=legal_entity,
            obligation=obligation.obligation_id,
            total=allocated,
            delivered_on=obligation.delivered_on,
            booked_on=booked_on,
            ssp=obligation.ssp if ssp is None else ssp,
            supersedes=supersedes,
        )
    assert obligation.start is not None and obligation.end is not None
    return ratable_schedule(
        schedule_id=schedule_id,
        contract_id=contract_id,
        account_id=account_id,
        legal_entity=legal_entity,
        obligation=obligation.obligation_id,
        total=allocated,
        start=obligation.start,
        end=obligation.end,
        booked_on=booked_on,
        ssp=obligation.ssp if ssp is None else ssp,
        supersedes=supersedes,
    )


def recognise(contract: RevenueContract) -> list[RevenueSchedule]:
    """One schedule per obligation, each summing exactly to its allocated price."""
    allocation = allocate(contract.transaction_price, contract.obligations)
    return [
        schedule_for(
            o,
            allocation[o.obligation_id],
            schedule_id=f"{contract.contract_id}-{o.obligation_id}",
            contract_id=contract.contract_id,
            account_id=contract.account_id,
            legal_entity=contract.legal_entity,
            booked_on=contract.booked_on,
        )
        for o in contract.obligations
    ]
