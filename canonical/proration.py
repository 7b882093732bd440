"""Day-based proration of a mid-period amendment, co-termed to the existing term."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from canonical.models import (
    AmendedLine,
    Proration,
    ProrationKind,
    ProrationLine,
    Subscription,
    SubscriptionLine,
)
from canonical.money import Money, total

HUNDRED = Decimal(100)


def period_fraction(effective: date, period_start: date, period_end: date) -> tuple[int, int]:
    """(days remaining, days in period) for a period [start, end) changed on `effective`."""
    days_in_period = (period_end - period_start).days
    if days_in_period <= 0:
        raise ValueError(f"empty billing period {period_start}..{period_end}")
    if not period_start <= effective < period_end:
        raise ValueError(f"{effective} is not inside the period {period_start}..{period_end}")
    return (period_end - effective).days, days_in_period


def monthly_amount(quantity: int, unit_price: Money, discount_percent: Decimal) -> Money:
    """What one billing period of a line costs, rounded once to the minor unit."""
    factor = Decimal(quantity) * (HUNDRED - discount_percent) / HUNDRED
    return unit_price.times(factor)


def line_amount(line: SubscriptionLine) -> Money:
    return monthly_amount(line.quantity, line.unit_price, line.discount_percent)


def amended_lines(subscription: Subscription, changes: list[AmendedLine]) -> list[SubscriptionLine]:
    """The subscription's lines after the amendment: changed lines replaced, new ones added,
    quantity-zero lines removed, untouched lines kept as they were."""
    by_product = {line.product: line for line in subscription.lines}
    result: dict[str, SubscriptionLine] = dict(by_product)
    for change in changes:
        old = by_product.get(change.product)
        result[change.product] = SubscriptionLine(
            item_id=old.item_id if old else "",
            product=change.product,
            description=change.description or (old.description if old else change.product),
            quantity=change.quantity,
            unit_price=Money.of(change.unit_price, subscription.currency),
            discount_percent=change.discount_percent,
        )
    return [line for line in result.values() if line.quantity > 0]


def prorate(subscription: Subscription, changes: list[AmendedLine], effective: date) -> Proration:
    """Credit the unused part of each changed old line and charge the rest of the period
    on its new version. Lines whose price and quantity do not change produce nothing."""
    remaining, in_period = period_fraction(
        effective, subscription.current_period_start, subscription.current_period_end
    )
    currency = subscription.currency
    before = {line.product: line for line in subscription.lines}
    after = {line.product: line for line in amended_lines(subscription, changes)}

    lines: list[ProrationLine] = []
    for product in dict.fromkeys([*before, *after]):
        old, new = before.get(product), after.get(product)
        old_amount = line_amount(old) if old else Money.zero(currency)
        new_amount = line_amount(new) if new else Money.zero(currency)
        if old and new and old_amount == new_amount and old.quantity == new.quantity:
            continue
        period = f"{effective.isoformat()} to {subscription.current_period_end.isoformat()}"
        if old and not old_amount.is_zero:
            lines.append(
                ProrationLine(
                    product=product,
                    kind=ProrationKind.CREDIT,
                    quantity=old.quantity,
                    amount=-_prorated(old_amount, remaining, in_period),
                    description=f"Unused time on {old.quantity} x {old.description or product} ({period})",
                )
            )
        if new and not new_amount.is_zero:
            lines.append(
                ProrationLine(
                    product=product,
                    kind=ProrationKind.CHARGE,
                    quantity=new.quantity,
                    amount=_prorated(new_amount, remaining, in_period),
                    description=f"Remaining time on {new.quantity} x {new.description or product} ({period})",
                )
            )
    # A line that prorates to less than half a minor unit bills nothing: leave it off the invoice.
    lines = [line for line in lines if not line.amount.is_zero]
    return Proration(
        period_start=subscription.current_period_start,
        period_end=subscription.current_period_end,
        effective_date=effective,
        days_remaining=remaining,
        days_in_period=in_period,
        lines=lines,
        net=total((line.amount for line in lines), currency),
        monthly_before=total((line_amount(x) for x in before.values()), currency),
        monthly_after=total((line_amount(x) for x in after.values()), currency),
        max_discount_percent=max((x.discount_percent for x in after.values()), default=Decimal(0)),
    )


def _prorated(amount: Money, remaining: int, in_period: int) -> Money:
    # Multiply before dividing and round once: rounding remaining/in_period to a Decimal
    # first (e.g. 1/28) turns exact half-cents into x.xx4999... and rounds them down.
    return Money.of(amount.amount * remaining / in_period, amount.currency, rounded=True)
