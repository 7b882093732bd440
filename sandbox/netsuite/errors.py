"""NetSuite's error answers (RFC 9457 problem details with `o:errorDetails`), its
authentication and its answers to injected faults."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.core import ApiError, bearer_accepted, json_response

_TYPES = {
    400: "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1",
    401: "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.2",
    404: "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.5",
    429: "https://www.rfc-editor.org/rfc/rfc6585.html#section-4",
    500: "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.6.1",
}


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def error(status: int, code: str, detail: str, *, path: str | None = None) -> ApiError:
    item: dict[str, Any] = {"detail": detail, "o:errorCode": code}
    if path:
        item["o:errorPath"] = path
    return ApiError(
        status,
        {
            "type": _TYPES.get(status, _TYPES[500] if status >= 500 else _TYPES[400]),
            "title": _TITLES.get(status, "Error"),
            "status": status,
            "o:errorDetails": [item],
        },
    )


def fault_response(status: int) -> Response:
    if status == 429:
        # unverified: NetSuite's concurrency-limit answer; PROTOCOLS.md assumes 429.
        err = error(429, "CONCURRENCY_LIMIT_EXCEEDED", "Concurrent request limit exceeded (injected fault).")
    else:
        err = error(status, "UNEXPECTED_ERROR", "An unexpected error occurred (injected fault).")
    return json_response(err.status, err.body)


def authenticate(request: Request) -> Response | None:
    if bearer_accepted(request):
        return None
    err = error(401, "INVALID_LOGIN_ATTEMPT", "Invalid login attempt. For more details, see the Login Audit Trail.")
    return json_response(401, err.body)


def checked_amount(value: Any, path: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise error(400, "INVALID_VALUE", f"Invalid number {value!r}.", path=path) from None
    if not result.is_finite() or result < 0:
        raise error(400, "INVALID_VALUE", f"Invalid amount {value!r}.", path=path)
    return result
