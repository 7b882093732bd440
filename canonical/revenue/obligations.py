"""ASC 606 steps 1-3: a contract, its performance obligations and its transaction price."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import model_validator

from canonical.models import Model
from canonical.money import CurrencyError, Money


class ObligationKind(StrEnum):
    SUBSCRIPTION = "subscription"
    PROFESSIONAL_SERVICES = "professional_services"
    USAGE = "usage"


class PerformanceObligation(Model):
    """A distinct promise in a contract, with its standalone selling price (SSP).

    Satisfied over time (ratable over [start, end)) or at a point in time (delivered_on).
    Subscription access is always over time. `direct_price` is the part of the contract's
    transaction price that relates to this obligation alone (variable usage fees, ASC
    606-10-32-40, or a discount that belongs to some obligations only, 32-37): it is
    allocated to it as is, and the rest of the transaction price by relative SSP.
    """

    obligation_id: str
    kind: ObligationKind
    ssp: Money
    start: date | None = None
    end: date | None = None  # exclusive
    delivered_on: date | None = None
    direct_price: Money | None = None

    @model_validator(mode="after")
    def _one_pattern(self) -> PerformanceObligation:
        ratable = self.start is not None or self.end is not None
        if ratable == (self.delivered_on is not None):
            raise ValueError(
                f"obligation {self.obligation_id}: give either a service period (start, end) "
                "or a delivery date, not both or neither"
            )
        if ratable and (self.start is None or self.end is None or self.end <= self.start):
            raise ValueError(f"obligation {self.obligation_id}: the service period needs start < end")
        if self.kind == ObligationKind.SUBSCRIPTION and not ratable:
            raise ValueError(f"obligation {self.obligation_id}: subscription access is satisfied over time")
        if self.ssp.is_negative:
            raise ValueError(f"obligation {self.obligation_id}: a standalone selling price cannot be negative")
        if self.direct_price is not None and self.direct_price.currency != self.ssp.currency:
            raise CurrencyError(f"obligation {self.obligation_id}: direct price and SSP in different currencies")
        return self

    @property
    def method(self) -> str:
        return "point_in_time" if self.delivered_on is not None else "ratable"


class RevenueContract(Model):
    """Step 1-3: the contract, its obligations and its (fixed) transaction price."""

    contract_id: str
    account_id: str
    legal_entity: str
    booked_on: date
    transaction_price: Money
    obligations: list[PerformanceObligation]
