"""o2c's notification service: queue a message once per idempotency key."""

from __future__ import annotations

import httpx

from o2c.adapters._http import json_content, read_json
from o2c.adapters._http import send as _send
from o2c.adapters.entitlements import classify
from o2c.canonical.models import Notification

SYSTEM = "notifications"


class HttpNotifications:
    """NotificationPort over o2c's notifications HTTP service."""

    def __init__(self, base_url: str, timeout: float = 10.0, *, client: httpx.AsyncClient | None = None):
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                                   headers={"Content-Type": "application/json"})

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, notification: Notification, *, idempotency_key: str) -> str:
        response = await _send(self._client, SYSTEM, "POST", "/messages",
                              content=json_content(notification.model_dump(mode="json")),
                              headers={"Idempotency-Key": idempotency_key})
        if response.status_code >= 400:
            raise classify(SYSTEM, response)
        return str(read_json(response)["id"])

    async def list(self, account_id: str = "") -> list[dict]:
        response = await _send(self._client, SYSTEM, "GET", "/messages",
                              params={"account_id": account_id} if account_id else None)
        if response.status_code >= 400:
            raise classify(SYSTEM, response)
        return list(read_json(response)["data"])
