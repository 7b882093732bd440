"""ASC 606 step 4: the transaction price allocated across the obligations by relative SSP."""

from __future__ import annotations

from collections.abc import Sequence

from canonical.money import CurrencyError, Money
from canonical.revenue.obligations import PerformanceObligation


def allocate(transaction_price: Money, obligations: Sequence[PerformanceObligation]) -> dict[str, Money]:
    """Allocate the transaction price by relative standalone selling price.

    The transaction price is the contract's whole price, directly allocated parts
    included. An obligation with a `direct_price` gets exactly that (variable
    consideration or a discount that relates to it alone, ASC 606-10-32-40 and 32-37);
    what remains of the transaction price is split across the other obligations in
    proportion to their SSPs (32-41), largest remainder. The parts add up to the
    transaction price to the minor unit. Returns obligation_id -> allocated price.
    """
    currency = transaction_price.currency
    ids = [o.obligation_id for o in obligations]
    if len(set(ids)) != len(ids):
        raise ValueError(f"obligation ids must be unique: {ids}")
    for o in obligations:
        if o.ssp.currency != currency:
            raise CurrencyError(f"obligation {o.obligation_id} is in {o.ssp.currency}, the contract in {currency}")
    shared = [o for o in obligations if o.direct_price is None]
    result = {o.obligation_id: o.direct_price for o in obligations if o.direct_price is not None}
    rest = transaction_price
    for part in result.values():
        rest = rest - part
    if not shared:
        if not rest.is_zero:
            raise ValueError(f"{rest} of the transaction price is allocated to no obligation")
    elif result and rest.is_negative:
        raise ValueError(
            f"the directly allocated prices exceed the transaction price {transaction_price} "
            f"by {-rest}: nothing is left for the other obligations"
        )
    elif all(o.ssp.is_zero for o in shared):
        raise ValueError("cannot allocate by relative SSP when every SSP is zero")
    else:
        for o, part in zip(shared, rest.allocate([o.ssp.amount for o in shared]), strict=True):
            result[o.obligation_id] = part
    return {i: result[i] for i in ids}
