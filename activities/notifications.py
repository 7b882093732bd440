"""What the customer is told: the notices a process sends them."""

from __future__ import annotations

from temporalio import activity

from activities.errors import classified, idempotency_key
from activities.inputs import SendNotification
from adapters.ports import NotificationPort


class NotificationActivities:
    def __init__(self, notifications: NotificationPort):
        self.notifications = notifications

    @activity.defn(name="notifications.send")
    @classified
    async def send(self, request: SendNotification) -> str:
        return await self.notifications.send(request.notification, idempotency_key=idempotency_key(request.step))
