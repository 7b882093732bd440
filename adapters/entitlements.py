"""o2c's entitlements service: seats per account and product (PUT with an
Idempotency-Key)."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from adapters.errors import Answer, ErrorKind, ErrorTable, Rule
from adapters.http import HttpAdapter, json_content, read_json, send
from canonical.models import Entitlement

SYSTEM = "entitlements"


def service_errors(system: str) -> ErrorTable:
    """o2c's own services (entitlements, notifications) refuse alike: in their own words,
    with an idempotency mismatch a bug whatever the status."""
    return ErrorTable(system, codes={"idempotency_error": Rule(ErrorKind.BUG)})


def read_service_error(response: httpx.Response) -> Answer:
    """An o2c service's error answer: `{"error": {code, message}}`."""
    status = response.status_code
    body = read_json(response)
    err = body.get("error", {}) if isinstance(body, dict) else {}
    code = err.get("code", "") if isinstance(err, dict) else ""
    message = (err.get("message") if isinstance(err, dict) else None) or f"HTTP {status}"
    return Answer(status, code, message)


ERRORS = service_errors(SYSTEM)


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
            raise ERRORS.classify(read_service_error(response))
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
            raise ERRORS.classify(read_service_error(response))
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
            raise ERRORS.classify(read_service_error(response))

    async def get_restriction(self, account_id: str) -> bool:
        response = await send(self._client, SYSTEM, "GET", f"/accounts/{quote(account_id, safe='')}/restriction")
        if response.status_code >= 400:
            raise ERRORS.classify(read_service_error(response))
        return bool(read_json(response).get("restricted"))
