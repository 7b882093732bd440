from __future__ import annotations

from temporalio import activity

from activities.errors import classified, idempotency_key
from activities.inputs import SendNotification, SetRestriction, SetSeats
from adapters.ports import EntitlementPort, NotificationPort
from canonical.models import Entitlement


class CustomerActivities:
    """What the customer sees: entitlements and notices."""

    def __init__(self, entitlements: EntitlementPort, notifications: NotificationPort):
        self.entitlements = entitlements
        self.notifications = notifications

    @activity.defn(name="entitlements.set_seats")
    @classified
    async def set_seats(self, request: SetSeats) -> Entitlement:
        return await self.entitlements.set_seats(
            account_id=request.account_id,
            product=request.product,
            seats=request.seats,
            idempotency_key=idempotency_key(request.step),
        )

    @activity.defn(name="notifications.send")
    @classified
    async def send(self, request: SendNotification) -> str:
        return await self.notifications.send(request.notification, idempotency_key=idempotency_key(request.step))

    @activity.defn(name="entitlements.set_restriction")
    @classified
    async def set_restriction(self, request: SetRestriction) -> None:
        await self.entitlements.set_restriction(
            account_id=request.account_id, restricted=request.restricted, idempotency_key=idempotency_key(request.step)
        )
