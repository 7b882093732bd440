"""Remaining performance obligations (ASC 606-10-50-13): the transaction price allocated to
what is not yet recognised at a date, and when it will be: within the next 12 months, later.

Per contract and obligation, from the schedules as they stand (a modification's terminated
schedule has been truncated, its new one carries the rest). Usage is left out: consideration
that varies with use and is allocated to the period it is used in is not remaining
consideration (the optional exemption of ASC 606-10-50-14A(b)), and it has no schedule
before it is used.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import date, timedelta

from canonical.models import Model, RevenueSchedule
from canonical.money import Money
from canonical.revenue.schedules import recognised_before
from canonical.usage.booking import USAGE_OBLIGATION


def months_later(day: date, months: int) -> date:
    """The same day `months` later (the month's last day when it has fewer days)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


class RpoLine(Model):
    legal_entity: str
    contract_id: str
    obligation: str
    allocated: Money  # the schedule's total: the price allocated to the obligation
    recognised: Money  # through the as-of date
    within_12_months: Money  # recognised after the as-of date, up to 12 months after it
    later: Money

    @property
    def remaining(self) -> Money:
        return self.within_12_months + self.later


class RpoTotal(Model):
    legal_entity: str
    currency: str
    remaining: Money
    within_12_months: Money
    later: Money


class RpoReport(Model):
    as_of: date
    lines: list[RpoLine]
    totals: list[RpoTotal]


def remaining_obligations(schedules: Iterable[RevenueSchedule], *, as_of: date) -> RpoReport:
    """What is left to recognise after the end of `as_of`, split at 12 months after it."""
    after = as_of + timedelta(days=1)  # recognised "through as_of": service before the next day
    horizon = months_later(after, 12)
    merged: dict[tuple[str, str, str, str], list[Money]] = {}
    for s in schedules:
        if s.obligation == USAGE_OBLIGATION:
            continue
        done, by_horizon = recognised_before(s, after), recognised_before(s, horizon)
        slot = (s.legal_entity, s.contract_id, s.obligation, s.total.currency)
        parts = [s.total, done, by_horizon - done, s.total - by_horizon]
        held = merged.get(slot)
        merged[slot] = parts if held is None else [a + b for a, b in zip(held, parts, strict=True)]
    lines = [
        RpoLine(
            legal_entity=entity,
            contract_id=contract,
            obligation=obligation,
            allocated=allocated,
            recognised=done,
            within_12_months=within,
            later=later,
        )
        for (entity, contract, obligation, _), (allocated, done, within, later) in sorted(merged.items())
        if not (within.is_zero and later.is_zero)
    ]
    totals: dict[tuple[str, str], list[Money]] = {}
    for line in lines:
        entity_slot = (line.legal_entity, line.allocated.currency)
        sums = [line.within_12_months, line.later]
        before = totals.get(entity_slot)
        totals[entity_slot] = sums if before is None else [a + b for a, b in zip(before, sums, strict=True)]
    return RpoReport(
        as_of=as_of,
        lines=lines,
        totals=[
            RpoTotal(
                legal_entity=entity, currency=currency, remaining=within + later, within_12_months=within, later=later
            )
            for (entity, currency), (within, later) in sorted(totals.items())
        ],
    )
