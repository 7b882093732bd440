"""The revenue schedules the booking processes record, through ASC 606 (canonical/asc606.py).

A renewal is a contract of its own: each product of the new term is a subscription
obligation whose standalone selling price is its price-book price over the term, and the
term's price (uplift and discounts included) is allocated across them by relative SSP.

An amendment modifies the contract: the change in its value over the rest of the term (the
prorated rest of the current period plus the monthly change for the whole months after it)
is new consideration. When o2c holds the contract's schedules, the modification is
prospective (the remaining services are distinct days of access): what is unrecognised plus
the change is spread over what remains. Otherwise the change gets a schedule of its own over
the rest of the term.
"""

from __future__ import annotations

from datetime import date

from canonical.asc606 import (
    ContractModification,
    ObligationKind,
    PerformanceObligation,
    allocate,
    modify,
    schedule_for,
)
from canonical.models import AmendmentRequest, Model, Proration, RevenueSchedule, Subscription, SubscriptionLine
from canonical.money import Money
from canonical.renewal import RenewalPolicy, months_between
from canonical.revenue import ratable_schedule


def term_obligations(
    lines: list[SubscriptionLine], start: date, end: date, currency: str, policy: RenewalPolicy
) -> list[PerformanceObligation]:
    """One subscription obligation per product, at its price-book price over the term (a
    product not in the book stands alone at its own unit price)."""
    months = months_between(start, end)
    obligations = []
    for line in lines:
        listed = policy.price_book.get(line.product)
        unit = Money.of(listed, currency, rounded=True) if listed is not None else line.unit_price
        obligations.append(
            PerformanceObligation(
                obligation_id=line.product,
                kind=ObligationKind.SUBSCRIPTION,
                ssp=unit.times(line.quantity * months),
                start=start,
                end=end,
            )
        )
    return obligations


def renewal_schedules(
    *,
    lines: list[SubscriptionLine],
    start: date,
    end: date,
    value: Money,
    policy: RenewalPolicy,
    id_prefix: str,
    contract_id: str,
    account_id: str,
    legal_entity: str,
    booked_on: date,
) -> list[RevenueSchedule]:
    obligations = term_obligations(lines, start, end, value.currency, policy)
    allocation = allocate(value, obligations)
    return [
        schedule_for(
            o,
            allocation[o.obligation_id],
            schedule_id=f"{id_prefix}-{o.obligation_id}",
            contract_id=contract_id,
            account_id=account_id,
            legal_entity=legal_entity,
            booked_on=booked_on,
        )
        for o in obligations
    ]


def contract_value_change(subscription: Subscription, proration: Proration) -> Money:
    """What the amendment adds to (or takes from) the contract's value over the rest of its term."""
    months_after = max(0, months_between(proration.period_end, subscription.term_end))
    return proration.net + (proration.monthly_after - proration.monthly_before).times(months_after)


class ScheduleChange(Model):
    """What a modification does to the stored schedules: save these, delete those (a schedule
    that had recognised nothing before the modification is replaced, not cut)."""

    save: list[RevenueSchedule] = []
    delete: list[str] = []


def amendment_schedules(
    existing: list[RevenueSchedule],
    subscription: Subscription,
    proration: Proration,
    request: AmendmentRequest,
    *,
    legal_entity: str,
    id_prefix: str,
) -> ScheduleChange:
    """The schedules the amendment changes, creates and removes (nothing when the contract's
    value does not change)."""
    change = contract_value_change(subscription, proration)
    if change.is_zero:
        return ScheduleChange()
    as_of = request.effective_date
    open_ = [s for s in existing if s.end > as_of]
    if open_:
        modification = ContractModification(modification_id=request.amendment_id, booked_on=as_of, added_price=change)
        after = modify(open_, modification, as_of)
        before = {s.schedule_id: s for s in open_}
        kept = {s.schedule_id for s in after}
        return ScheduleChange(
            save=[s for s in after if before.get(s.schedule_id) != s], delete=[i for i in before if i not in kept]
        )
    return ScheduleChange(
        save=[
            ratable_schedule(
                schedule_id=f"{id_prefix}-subscription",
                contract_id=request.contract_id,
                account_id=request.account_id,
                legal_entity=legal_entity,
                obligation="subscription",
                total=change,
                start=as_of,
                end=subscription.term_end,
                booked_on=as_of,
            )
        ]
    )
