"""o2c's notification service: queue a message once per idempotency key."""

from __future__ import annotations

from typing import Any

import httpx

from adapters.entitlements import read_service_error, service_errors
from adapters.http import HttpAdapter, json_content, read_json
from adapters.http import send as _send
from canonical.models import Notification

SYSTEM = "notifications"
ERRORS = service_errors(SYSTEM)


class HttpNotifications(HttpAdapter):
    """NotificationPort over o2c's notifications HTTP service."""

    def __init__(self, base_url: str, timeout: float = 10.0, *, client: httpx.AsyncClient | None = None):
        super().__init__(base_url, timeout, {"Content-Type": "application/json"}, client)

    async def send(self, notification: Notification, *, idempotency_key: str) -> str:
        response = await _send(
            self._client,
            SYSTEM,
            "POST",
            "/messages",
            content=json_content(notification.model_dump(mode="json")),
            headers={"Idempotency-Key": idempotency_key},
        )
        if response.status_code >= 400:
            raise ERRORS.classify(read_service_error(response))
        return str(read_json(response)["id"])

    async def list(self, account_id: str = "") -> list[dict[str, Any]]:
        response = await _send(
            self._client, SYSTEM, "GET", "/messages", params={"account_id": account_id} if account_id else None
        )
        if response.status_code >= 400:
            raise ERRORS.classify(read_service_error(response))
        return list(read_json(response)["data"])
