"""What the customer may use: seats and the restriction of an unpaid account."""

from __future__ import annotations

from temporalio import activity

from activities.errors import classified, idempotency_key
from activities.inputs import SetRestriction, SetSeats
from adapters.ports import EntitlementPort
from canonical.models import Entitlement


class EntitlementActivities:
    def __init__(self, entitlements: EntitlementPort):
        self.entitlements = entitlements

    @activity.defn(name="entitlements.set_seats")
    @classified
    async def set_seats(self, request: SetSeats) -> Entitlement:
        return await self.entitlements.set_seats(
            account_id=request.account_id,
            product=request.product,
            seats=request.seats,
            idempotency_key=idempotency_key(request.step),
        )

    @activity.defn(name="entitlements.set_restriction")
    @classified
    async def set_restriction(self, request: SetRestriction) -> None:
        await self.entitlements.set_restriction(
            account_id=request.account_id, restricted=request.restricted, idempotency_key=idempotency_key(request.step)
        )
