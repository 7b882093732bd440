"""The revenue schedules of an amendment: a modification of the contract.

The change in the contract's value over the rest of the term (the prorated rest of the
current period plus the monthly change for the whole months after it) is new
consideration. When o2c holds the contract's schedules, the modification is prospective
(the remaining services are distinct days of access): what is unrecognised plus the change
is spread over what remains, weighed by the request's remaining SSPs where it states them
(a reduction beyond what is unrecognised reverses revenue at once). Otherwise the change gets a schedule of its own over the rest
of the term.
"""

from __future__ import annotations

from canonical.models import AmendmentRequest, Model, Proration, RevenueSchedule, Subscription
from canonical.money import Money
from canonical.renewal import months_between
from canonical.revenue.modifications import ContractModification, modify
from canonical.revenue.schedules import ratable_schedule


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
    reverse_excess: bool = True,
) -> ScheduleChange:
    """The schedules the amendment changes, creates and removes (nothing when the contract's
    value does not change). `reverse_excess`: see modify()."""
    change = contract_value_change(subscription, proration)
    if change.is_zero:
        return ScheduleChange()
    as_of = request.effective_date
    open_ = [s for s in existing if s.end > as_of]
    if open_:
        modification = ContractModification(
            modification_id=request.amendment_id,
            booked_on=as_of,
            added_price=change,
            remaining_ssp={k: Money.of(v, change.currency) for k, v in request.remaining_ssp.items()},
        )
        after = modify(open_, modification, as_of, reverse_excess=reverse_excess)
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
