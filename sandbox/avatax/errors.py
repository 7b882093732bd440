"""AvaTax's error answers (`{"error": {code, message, target, details}}`), its
authentication and its answers to injected faults."""

from __future__ import annotations

import base64

from starlette.requests import Request
from starlette.responses import Response

from sandbox.core import ApiError, json_response

ERROR_NUMBERS = {
    "EntityNotFoundError": 4,
    "AuthenticationException": 30,
    "ModelRequiredException": 38,
    "ValueRequiredError": 5,
    "TransactionAlreadyCancelled": 198,
    "DocumentCodeConflict": 303,
    "MissingAddress": 304,
    "MissingLine": 311,
    "SyntaxError": 19,
    "ServerConfiguration": 1,
    "TooManyRequests": 0,  # unverified: the name AvaTax uses for throttling
}


def error(
    status: int, code: str, message: str, *, target: str = "IncorrectData", description: str = "", fault: str = "Client"
) -> ApiError:
    return ApiError(
        status,
        {
            "error": {
                "code": code,
                "message": message,
                "target": target,
                "details": [
                    {
                        "code": code,
                        "number": ERROR_NUMBERS.get(code, 0),
                        "message": message,
                        "description": description or message,
                        "faultCode": fault,
                        "helpLink": f"https://developer.avalara.com/avatax/errors/{code}",
                        "severity": "Error",
                    }
                ],
            }
        },
    )


def fault_response(status: int) -> Response:
    if status == 429:
        err = error(429, "TooManyRequests", "Too many requests (injected fault)", target="HttpRequest", fault="Server")
    else:
        err = error(
            status,
            "ServerConfiguration",
            "The AvaTax service is unavailable (injected fault)",
            target="AvaTaxApiServer",
            fault="Server",
        )
    return json_response(err.status, err.body)


def authenticate(request: Request) -> Response | None:
    header = request.headers.get("authorization", "")
    ok = False
    if header.lower().startswith("basic "):
        try:
            account, _, license_key = base64.b64decode(header[6:].strip()).decode().partition(":")
            ok = bool(account) and bool(license_key) and not license_key.startswith("invalid")
        except Exception:
            ok = False
    elif header.lower().startswith("bearer "):
        token = header[7:].strip()
        ok = bool(token) and not token.startswith("invalid")
    if ok:
        return None
    err = error(
        401,
        "AuthenticationException",
        "Authentication failed.",
        target="HttpRequestHeaders",
        description="The account id / license key you provided were not accepted.",
    )
    return json_response(401, err.body)
