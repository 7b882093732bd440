"""ASC 606 step 4: the transaction price allocated across the obligations by relative SSP."""

from __future__ import annotations

from collections.abc import Sequence

from canonical.money import CurrencyError, Money
from canonical.revenue.obligations import PerformanceObligation


def allocate(transaction_price: Money, obligations: Sequence[PerformanceObligation]) -> dict[str, Money]:
    """Allocate the transaction price by relative standalone selling price.

    Obligations with a `direct_price` get exactly that; the transaction price is split
    across the others in proportion to their SSPs, largest remainder, so the parts add up
    to the transaction price to the minor unit. Returns obligation_id -> allocated price.
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
    if not shared:
        if not transaction_price.is_zero:
            raise ValueError("a transaction price but no obligation to allocate it to")
    elif all(o.ssp.is_zero for o in shared):
        raise ValueError("cannot allocate by relative SSP when every SSP is zero")
    else:
        for o, part in zip(shared, transaction_price.allocate([o.ssp.amount for o in shared]), strict=False):
            result[o.obligation_id] = part
    return {i: result[i] for i in ids}
