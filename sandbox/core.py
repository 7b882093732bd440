"""Shared machinery of the sandbox: nested form parsing, JSON responses, ids and API errors."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import secrets
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

SYSTEMS = ("stripe", "avatax", "netsuite", "sap", "entitlements", "notifications", "salesforce", "bank")


# -- form encoding ----------------------------------------------------------------------

_KEY_PART = re.compile(r"\[([^\]]*)\]")


def parse_nested(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Turn Stripe-style form pairs (`items[0][price_data][currency]=usd`,
    `metadata[k]=v`) into nested dicts; dicts whose keys are all integers become lists
    ordered by index."""
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        head, _, rest = raw_key.partition("[")
        parts = [head] + (_KEY_PART.findall("[" + rest) if rest else [])
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    # Stripe's parameters have names: the top level stays a dict even when every name is a
    # digit, so such a form meets the handler's check of unknown parameters, not a crash.
    return {key: _listify(value) for key, value in root.items()}


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def request_hash(method: str, path: str, params: Any) -> str:
    canonical = json.dumps([method, path, params], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


# -- responses ----------------------------------------------------------------------------


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # JSON numbers, as the real APIs send them. Amounts here have at most a few
        # decimals, so the float's shortest repr is exactly the decimal.
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(body: Any) -> str:
    return json.dumps(body, default=_default)


def bearer_accepted(request: Request) -> bool:
    """The sandbox takes any bearer token except those starting with "invalid", so tests can
    provoke an authentication failure."""
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    return bool(token) and not token.startswith("invalid")


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    content = b"" if body is None else dumps(body).encode()
    return Response(
        content=content,
        status_code=status,
        headers=headers or {},
        media_type=None if body is None else "application/json",
    )


_counter = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(7)}{next(_counter):04d}"


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    return json.loads(raw, parse_float=Decimal)


class ApiError(Exception):
    """Raised by a handler to answer with a system-specific error."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None, *, store: bool = False):
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.store = store  # whether an idempotent replay store keeps this response
