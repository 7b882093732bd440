"""o2c's own rating of the usage it counted: what each meter's quantity costs at the
subscription's metered prices.

Billing's draft is made when the period ends and carries what the meters held then; o2c
reports its totals afterwards, so until billing finalises the draft its amounts are stale.
The review weighs and the tax is quoted on this rating instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from canonical.money import CurrencyError, Money
from canonical.usage.models import MeteredPrice


def rate_quantity(quantity: int, price: MeteredPrice, currency: str) -> Money:
    """quantity x the exact unit price (unit_amount_decimal, else unit_amount), rounded half up
    once, to the currency's minor unit. Whether Stripe rounds a sub-cent line amount the same
    way (half up, per line) is not verified against Stripe itself."""
    if price.unit_amount.currency != currency:
        raise CurrencyError(f"the price {price.price_id} is in {price.unit_amount.currency}, not {currency}")
    if price.unit_amount_decimal is None:
        return price.unit_amount.times(quantity)
    return Money.of(price.unit_amount_decimal * quantity, currency, rounded=True)


def rate_usage(quantities: Mapping[str, int], prices: Sequence[MeteredPrice], currency: str) -> dict[str, Money]:
    """The amount per meter of `quantities` that has a price: a meter on several prices (items)
    is billed once on each. A meter without a price is left out: the caller decides what its
    amount is."""
    rated: dict[str, Money] = {}
    for price in prices:
        if price.meter in quantities:
            amount = rate_quantity(quantities[price.meter], price, currency)
            rated[price.meter] = rated.get(price.meter, Money.zero(currency)) + amount
    return rated
