"""o2c's entitlements service: seats per account and product (PUT with an
Idempotency-Key)."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from adapters.errors import AdapterError, BusinessError, IntegrationBug, TransientError
from adapters.http import HttpAdapter, json_content, read_json, send
from canonical.models import Entitlement

SYSTEM = "entitlements"


def classify(system: str, response: httpx.Response) -> AdapterError:
    status = response.status_code
    body = read_json(response)
    err = body.get("error", {}) if isinstance(body, dict) else {}
    code = err.get("code", "") if isinstance(err, dict) else ""
    message = (err.get("message") if isinstance(err, dict) else None) or f"HTTP {status}"
    if status in (401, 403) or code == "idempotency_error":
        return IntegrationBug(system, message, code=code, status=status)
    if status in (408, 409, 429) or status >= 500:
        return TransientError(system, message, code=code, status=status)
    return BusinessError(system, message, code=code, status=status)


class HttpEntitlements(HttpAdapter):
    """EntitlementPort over o2c's entitlements HTTP service."""

    def __init__(self, base_url: str, timeout: float = 10.0, *, client: httpx.AsyncClient | None = None):
        super().__init__(base_url, timeout, {"Content-Type": "application/json"}, client)

    async def set_seats(self, *, account_id: str, product: str, seats: int, idempotency_key: str) -> Entitlement:
        path = f"/accounts/{quote(account_id, safe='')}/products/{quote(product, safe='')}"
        response = await send(
            self._client,
            SYSTEM,
            "PUT",
            path,
            content=json_content({"seats": seats}),
            headers={"Idempotency-Key": idempotency_key},
        )
        if response.status_code >= 400:
            raise classify(SYSTEM, response)
        data = read_json(response)
        return Entitlement(
            account_id=data["account_id"],
            product=data["product"],
            seats=int(data["seats"]),
            status=data.get("status", "active"),
        )

    async def get(self, *, account_id: str, product: str) -> Entitlement | None:
        path = f"/accounts/{quote(account_id, safe='')}/products/{quote(product, safe='')}"
        response = await send(self._client, SYSTEM, "GET", path)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise classify(SYSTEM, response)
        data = read_json(response)
        return Entitlement(
            account_id=data["account_id"],
            product=data["product"],
            seats=int(data["seats"]),
            status=data.get("status", "active"),
        )

    async def set_restriction(self, *, account_id: str, restricted: bool, idempotency_key: str) -> None:
        """Restricted: no expansion, existing access kept. A PUT of the whole state, with
        the key, so a retry replays instead of recording a second change."""
        path = f"/accounts/{quote(account_id, safe='')}/restriction"
        response = await send(
            self._client,
            SYSTEM,
            "PUT",
            path,
            content=json_content({"restricted": restricted}),
            headers={"Idempotency-Key": idempotency_key},
        )
        if response.status_code >= 400:
            raise classify(SYSTEM, response)

    async def get_restriction(self, account_id: str) -> bool:
        response = await send(self._client, SYSTEM, "GET", f"/accounts/{quote(account_id, safe='')}/restriction")
        if response.status_code >= 400:
            raise classify(SYSTEM, response)
        return bool(read_json(response).get("restricted"))
