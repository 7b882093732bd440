"""The revenue schedules of a renewal: a contract of its own. Each product of the new term is
a subscription obligation whose standalone selling price is its price-book price over the
term, and the term's price (uplift and discounts included) is allocated across them by
relative SSP."""

from __future__ import annotations

from datetime import date

from canonical.models import RevenueSchedule, SubscriptionLine
from canonical.money import Money
from canonical.renewal import RenewalPolicy, months_between
from canonical.revenue.allocation import allocate
from canonical.revenue.obligations import ObligationKind, PerformanceObligation
from canonical.revenue.schedules import schedule_for


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
