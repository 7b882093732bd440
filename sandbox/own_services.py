"""Two tiny o2c-own services: entitlements (seats per account and product) and
notifications (queued messages). Both honour an `Idempotency-Key` header."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.core import ApiError, json_response, new_id, request_hash
from sandbox.routing import Handler, Routes, Runner, System
from sandbox.store import Store, Tx


def error(status: int, code: str, message: str) -> ApiError:
    return ApiError(status, {"error": {"code": code, "message": message}})


def fault_response(status: int) -> Response:
    code = "rate_limited" if status == 429 else "unavailable"
    return json_response(status, {"error": {"code": code, "message": "Injected fault"}})


def authenticate(request: Request) -> Response | None:
    return None  # internal services: no authentication in the sandbox


# -- entitlements ---------------------------------------------------------------------------


def put_entitlement(tx: Tx, request: Request, body: Any, account: str, product: str) -> tuple[int, Any]:
    if not isinstance(body, dict) or "seats" not in body:
        raise error(400, "invalid_request", "seats is required")
    seats = body["seats"]
    if isinstance(seats, bool) or not isinstance(seats, int) or seats < 0:
        raise error(400, "invalid_request", "seats must be a whole number, at least 0")
    key = f"{account}:{product}"
    current = tx.get("entitlements", "entitlement", key)
    entitlement = {
        "account_id": account,
        "product": product,
        "seats": seats,
        "status": "active" if seats > 0 else "inactive",
        "updated": time.time(),
        "version": (current or {}).get("version", 0) + 1,
    }
    tx.put("entitlements", "entitlement", key, entitlement)
    tx.put(
        "entitlements",
        "entitlement_change",
        new_id("entchg"),
        {"account_id": account, "product": product, "seats": seats, "previous_seats": (current or {}).get("seats")},
    )
    return 200, entitlement


def get_entitlement(tx: Tx, request: Request, body: Any, account: str, product: str) -> tuple[int, Any]:
    entitlement = tx.get("entitlements", "entitlement", f"{account}:{product}")
    if entitlement is None:
        raise error(404, "not_found", f"No entitlement for {account} / {product}")
    return 200, entitlement


def put_restriction(tx: Tx, request: Request, body: Any, account: str) -> tuple[int, Any]:
    """Restricted: no expansion (seat increases are o2c's to refuse), existing access kept."""
    if not isinstance(body, dict) or not isinstance(body.get("restricted"), bool):
        raise error(400, "invalid_request", "restricted (true or false) is required")
    current = tx.get("entitlements", "restriction", account)
    restriction = {
        "account_id": account,
        "restricted": body["restricted"],
        "reason": body.get("reason", ""),
        "updated": time.time(),
        "version": (current or {}).get("version", 0) + 1,
    }
    tx.put("entitlements", "restriction", account, restriction)
    tx.put(
        "entitlements",
        "restriction_change",
        new_id("rstchg"),
        {"account_id": account, "restricted": body["restricted"], "previous": (current or {}).get("restricted")},
    )
    return 200, restriction


def get_restriction(tx: Tx, request: Request, body: Any, account: str) -> tuple[int, Any]:
    restriction = tx.get("entitlements", "restriction", account)
    return 200, restriction or {"account_id": account, "restricted": False, "reason": "", "version": 0}


# -- notifications --------------------------------------------------------------------------


def post_message(tx: Tx, request: Request, body: Any) -> tuple[int, Any]:
    if not isinstance(body, dict):
        raise error(400, "invalid_request", "JSON object expected")
    for name in ("recipient", "template"):
        if not body.get(name):
            raise error(400, "invalid_request", f"{name} is required")
    message = {
        "id": new_id("msg"),
        "recipient": body["recipient"],
        "template": body["template"],
        "subject": body.get("subject", ""),
        "body": body.get("body", ""),
        "account_id": body.get("account_id", ""),
        "status": "queued",
        "idempotency_key": request.headers.get("idempotency-key"),
        "created": time.time(),
    }
    tx.put("notifications", "message", message["id"], message)
    return 201, message


def list_messages(tx: Tx, request: Request, body: Any) -> tuple[int, Any]:
    messages = tx.list("notifications", "message")
    account = request.query_params.get("account_id")
    if account:
        messages = [m for m in messages if m.get("account_id") == account]
    return 200, {"data": messages}


ENTITLEMENT_ROUTES: Routes = [
    ("PUT", "/v1/accounts/{account}/products/{product}", put_entitlement),
    ("GET", "/v1/accounts/{account}/products/{product}", get_entitlement),
    ("PUT", "/v1/accounts/{account}/restriction", put_restriction),
    ("GET", "/v1/accounts/{account}/restriction", get_restriction),
]
NOTIFICATION_ROUTES: Routes = [
    ("POST", "/v1/messages", post_message),
    ("GET", "/v1/messages", list_messages),
]


def make_runner(system: str, *, replay_status: int | None, check_params: bool) -> Runner:
    """Idempotent execution for one service. `replay_status` overrides the replayed
    status (notifications answer 200 for a replayed create); `check_params` refuses a
    reused key with other parameters."""

    def run(
        store: Store, handler: Handler, method: str, path: str, request: Request, body: Any, path_params: dict[str, str]
    ) -> Response:
        key = request.headers.get("idempotency-key") if method in ("POST", "PUT") else None
        fingerprint = request_hash(method, path, body)
        try:
            with store.tx() as tx:
                if key:
                    stored = tx.stored_response(system, key)
                    if stored is not None:
                        if check_params and stored.request_hash != fingerprint:
                            raise error(
                                400, "idempotency_error", f"Idempotency key {key} was used with other parameters"
                            )
                        return Response(
                            stored.body.encode(),
                            replay_status or stored.status,
                            {"Idempotent-Replayed": "true"},
                            media_type="application/json",
                        )
                status, out = handler(tx, request, body, **path_params)
                if key:
                    tx.store_response(system, key, fingerprint, status, out, {})
            return json_response(status, out)
        except ApiError as exc:
            return json_response(exc.status, exc.body, exc.headers)

    return run


def not_found(message: str) -> Response:
    return json_response(404, {"error": {"code": "not_found", "message": message}})


ENTITLEMENTS = System(
    "entitlements",
    ENTITLEMENT_ROUTES,
    authenticate,
    fault_response,
    not_found,
    make_runner("entitlements", replay_status=None, check_params=True),
)
NOTIFICATIONS = System(
    "notifications",
    NOTIFICATION_ROUTES,
    authenticate,
    fault_response,
    not_found,
    make_runner("notifications", replay_status=200, check_params=False),
)
