"""The reports finance closes the month with: the revenue waterfall and the deferred revenue
roll-forward."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from canonical.models import Model, RevenueSchedule
from canonical.money import Money


def _period(d: date) -> str:
    return f"{d:%Y-%m}"


def _check_period(p: str) -> str:
    try:
        date.fromisoformat(f"{p}-01")
    except ValueError:
        raise ValueError(f"a period is YYYY-MM, got {p!r}") from None
    return p


class WaterfallRow(Model):
    """The consideration booked in one month, and the months it is recognised in."""

    legal_entity: str
    currency: str
    booked_period: str  # YYYY-MM
    booked: Money
    recognised: dict[str, Money]  # recognition period (YYYY-MM) -> amount, only non-zero months
    remaining: Money  # booked - recognised through the waterfall's last period


class Waterfall(Model):
    periods: list[str]  # the recognition months, in order
    rows: list[WaterfallRow]  # by legal entity, currency, booked period


def waterfall(schedules: Iterable[RevenueSchedule], *, through: str | None = None) -> Waterfall:
    """Bookings by month against the months they are recognised in, per legal entity and
    currency. A schedule is booked in the month of its `booked_on` (else its start); after a
    prospective modification the terminated schedule books only what it recognised and the
    new one books the carried and added consideration (terminate and create). Recognition
    after `through` (YYYY-MM, default: none is cut off) shows as remaining."""
    if through is not None:
        _check_period(through)
    rows: dict[tuple[str, str, str], tuple[Money, dict[str, Money]]] = {}
    periods: set[str] = set()
    for s in schedules:
        currency = s.total.currency
        key = (s.legal_entity, currency, _period(s.booked_on or s.start))
        booked, recognised = rows.get(key, (Money.zero(currency), {}))
        for line in s.lines:
            if through is not None and line.period > through:
                continue
            periods.add(line.period)
            recognised[line.period] = recognised.get(line.period, Money.zero(currency)) + line.amount
        rows[key] = (booked + s.total, recognised)
    result = []
    for (entity, currency, booked_period), (booked, recognised) in sorted(rows.items()):
        done = Money.zero(currency)
        for amount in recognised.values():
            done = done + amount
        result.append(
            WaterfallRow(
                legal_entity=entity,
                currency=currency,
                booked_period=booked_period,
                booked=booked,
                remaining=booked - done,
                recognised={p: a for p, a in sorted(recognised.items()) if not a.is_zero},
            )
        )
    return Waterfall(periods=sorted(periods), rows=result)


class Billing(Model):
    """An amount invoiced against deferred revenue (excluding tax), on its document date."""

    legal_entity: str
    billed_on: date
    amount: Money
    contract_id: str = ""
    document: str = ""


class RollForward(Model):
    """Deferred revenue for one legal entity and currency over the periods first..last.
    A negative balance is revenue recognised ahead of billing (a contract asset)."""

    legal_entity: str
    currency: str
    first: str  # YYYY-MM
    last: str  # YYYY-MM, inclusive
    opening: Money
    billed: Money
    recognised: Money
    closing: Money  # opening + billed - recognised


def deferred_revenue_roll_forward(
    schedules: Iterable[RevenueSchedule], billings: Iterable[Billing], *, first: str, last: str | None = None
) -> list[RollForward]:
    """Opening + billed - recognised = closing, per legal entity and currency, for the
    calendar months first..last (inclusive; last defaults to first). The opening balance is
    everything billed before `first` less everything recognised before it."""
    last = last or first
    _check_period(first), _check_period(last)
    if last < first:
        raise ValueError(f"period {first}..{last} runs backwards")
    # (entity, currency) -> [billed before, billed in, recognised before, recognised in]
    sums: dict[tuple[str, str], list[Money]] = {}

    def add(entity: str, when: str, amount: Money, offset: int) -> None:
        if when > last:
            return
        bucket = sums.setdefault((entity, amount.currency), [Money.zero(amount.currency)] * 4)
        i = offset + (0 if when < first else 1)
        bucket[i] = bucket[i] + amount

    for b in billings:
        add(b.legal_entity, _period(b.billed_on), b.amount, 0)
    for s in schedules:
        for line in s.lines:
            add(s.legal_entity, line.period, line.amount, 2)
    result = []
    for (entity, currency), (billed_before, billed, recognised_before_, recognised) in sorted(sums.items()):
        opening = billed_before - recognised_before_
        result.append(
            RollForward(
                legal_entity=entity,
                currency=currency,
                first=first,
                last=last,
                opening=opening,
                billed=billed,
                recognised=recognised,
                closing=opening + billed - recognised,
            )
        )
    return result


class DocumentAmount(Model):
    """One document behind a figure: an invoice behind `billed`, a contract behind `recognised`."""

    document: str
    amount: Money


class RollForwardMonth(Model):
    """One month of an entity's deferred revenue in one currency, with the documents behind
    each movement: opening + billed - recognised = closing."""

    legal_entity: str
    currency: str
    period: str  # YYYY-MM
    opening: Money
    billed: Money
    recognised: Money
    closing: Money
    billed_by: list[DocumentAmount] = []  # invoices, by document id
    recognised_by: list[DocumentAmount] = []  # contracts, by contract id


def _months(first: str, last: str) -> list[str]:
    months, cursor = [], first
    while cursor <= last:
        months.append(cursor)
        year, month = int(cursor[:4]), int(cursor[5:])
        cursor = f"{year + (month == 12)}-{month % 12 + 1:02d}"
    return months


def monthly_roll_forward(
    schedules: Iterable[RevenueSchedule], billings: Iterable[Billing], *, first: str, last: str | None = None
) -> list[RollForwardMonth]:
    """deferred_revenue_roll_forward month by month (first..last), each month's billed and
    recognised broken down by the invoices and contracts behind them, so every figure can be
    traced. Each month's closing is the next month's opening."""
    last = last or first
    schedules, billings = list(schedules), list(billings)
    rows: list[RollForwardMonth] = []
    for month in _months(_check_period(first), _check_period(last)):
        billed_by: dict[tuple[str, str, str], Money] = {}
        for b in billings:
            if _period(b.billed_on) == month:
                slot = (b.legal_entity, b.amount.currency, b.document or b.contract_id or "(no document)")
                billed_by[slot] = billed_by.get(slot, Money.zero(b.amount.currency)) + b.amount
        recognised_by: dict[tuple[str, str, str], Money] = {}
        for s in schedules:
            for line in s.lines:
                if line.period == month:
                    slot = (s.legal_entity, s.total.currency, s.contract_id)
                    recognised_by[slot] = recognised_by.get(slot, Money.zero(s.total.currency)) + line.amount
        for totals in deferred_revenue_roll_forward(schedules, billings, first=month):
            key = (totals.legal_entity, totals.currency)

            def of(found: dict[tuple[str, str, str], Money], key: tuple[str, str] = key) -> list[DocumentAmount]:
                return [
                    DocumentAmount(document=doc, amount=amount)
                    for (entity, currency, doc), amount in sorted(found.items())
                    if (entity, currency) == key and not amount.is_zero
                ]

            rows.append(
                RollForwardMonth(
                    legal_entity=totals.legal_entity,
                    currency=totals.currency,
                    period=month,
                    opening=totals.opening,
                    billed=totals.billed,
                    recognised=totals.recognised,
                    closing=totals.closing,
                    billed_by=of(billed_by),
                    recognised_by=of(recognised_by),
                )
            )
    return sorted(rows, key=lambda r: (r.legal_entity, r.currency, r.period))
