"""Stripe's error answers: `{"error": {type, message, code, param, ...}}` with
`Stripe-Should-Retry`."""

from __future__ import annotations

from typing import Any

from sandbox.core import ApiError


def error(
    status: int,
    type_: str,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    decline_code: str | None = None,
    store: bool = False,
) -> ApiError:
    body: dict[str, Any] = {"type": type_, "message": message}
    if code:
        body["code"] = code
    if param:
        body["param"] = param
    if decline_code:
        body["decline_code"] = decline_code
    retry = "true" if status >= 500 or status in (409, 429) else "false"
    return ApiError(status, {"error": body}, {"Stripe-Should-Retry": retry}, store=store)


def invalid(message: str, *, param: str | None = None, code: str = "parameter_invalid") -> ApiError:
    return error(400, "invalid_request_error", message, code=code, param=param)


def missing(param: str) -> ApiError:
    return invalid(f"Missing required param: {param}.", param=param, code="parameter_missing")


def no_such(kind: str, id_: str, *, status: int = 404, param: str | None = None) -> ApiError:
    return error(status, "invalid_request_error", f"No such {kind}: '{id_}'", code="resource_missing", param=param)
