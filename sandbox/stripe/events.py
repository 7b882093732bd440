"""Events as Stripe shapes them, and the webhook endpoints they are delivered to."""

from __future__ import annotations

import json
import secrets
import time
from decimal import Decimal
from typing import Any

from sandbox import webhooks
from sandbox.core import dumps, new_id
from sandbox.store import Tx, documents
from sandbox.stripe import SYSTEM
from sandbox.stripe.accounts import current_account, current_request
from sandbox.stripe.errors import invalid, missing, no_such
from sandbox.stripe.params import integer, list_object, merge_metadata

API_VERSION = "2024-06-20"


def _snapshot(obj: dict[str, Any]) -> dict[str, Any]:
    snapshot: dict[str, Any] = json.loads(dumps(obj), parse_float=Decimal)
    return snapshot


def emit(
    tx: Tx, type_: str, obj: dict[str, Any], *, previous_attributes: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Store an event as Stripe shapes it and, once the unit of work commits, deliver it
    to every enabled endpoint whose `enabled_events` match (endpoints as of now)."""
    endpoints = [e for e in tx.list(SYSTEM, "webhook_endpoint") if webhooks.matches(e, type_)]
    data: dict[str, Any] = {"object": _snapshot(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = _snapshot(previous_attributes)
    event: dict[str, Any] = {
        "id": new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()),
        "data": data,
        "livemode": False,
        "pending_webhooks": len(endpoints),
        "request": current_request.get() or {"id": None, "idempotency_key": None},
        "type": type_,
    }
    account = current_account.get()
    if account:
        event["account"] = account
    tx.put(SYSTEM, "event", event["id"], event)
    dispatcher = tx.store.webhooks if tx.store is not None else None
    if endpoints and dispatcher is not None:
        tx.after_commit.append(lambda: dispatcher.schedule(event, endpoints))
    return event


def get_event(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    event = tx.get(SYSTEM, "event", id)
    if event is None:
        raise no_such("event", id)
    return 200, event


def list_events(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    limit = integer(params.get("limit", 10), "limit")
    if not 1 <= limit <= 100:
        raise invalid("limit must be between 1 and 100", param="limit")
    events = list(reversed(tx.list(SYSTEM, "event")))
    if params.get("type"):
        pattern = params["type"]
        if pattern.endswith(".*"):
            events = [e for e in events if e["type"].startswith(pattern[:-1])]
        else:
            events = [e for e in events if e["type"] == pattern]
    after = params.get("starting_after")
    if after:
        ids = [e["id"] for e in events]
        if after not in ids:
            raise no_such("event", after, status=400, param="starting_after")
        events = events[ids.index(after) + 1 :]
    return 200, list_object("/v1/events", events[:limit], has_more=len(events) > limit)


def create_webhook_endpoint(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    if not params.get("url"):
        raise missing("url")
    enabled = params.get("enabled_events")
    if not enabled or not isinstance(enabled, list):
        raise missing("enabled_events")
    endpoint = {
        "id": new_id("we"),
        "object": "webhook_endpoint",
        "api_version": params.get("api_version") or None,
        "application": None,
        "created": int(time.time()),
        "description": params.get("description") or None,
        "enabled_events": [str(e) for e in enabled],
        "livemode": False,
        "metadata": merge_metadata({}, params.get("metadata")),
        "secret": "whsec_" + secrets.token_hex(24),
        "status": "enabled",
        "url": params["url"],
    }
    tx.put(SYSTEM, "webhook_endpoint", endpoint["id"], endpoint)
    return 200, endpoint


def _public_endpoint(endpoint: dict[str, Any]) -> dict[str, Any]:
    # Stripe shows the signing secret only in the answer to the create call.
    return {k: v for k, v in endpoint.items() if k != "secret"}


def get_webhook_endpoint(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    endpoint = tx.get(SYSTEM, "webhook_endpoint", id)
    if endpoint is None:
        raise no_such("webhook_endpoint", id)
    return 200, _public_endpoint(endpoint)


def list_webhook_endpoints(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    endpoints = [_public_endpoint(e) for e in reversed(tx.list(SYSTEM, "webhook_endpoint"))]
    return 200, list_object("/v1/webhook_endpoints", endpoints)


def delete_webhook_endpoint(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    endpoint = tx.get(SYSTEM, "webhook_endpoint", id)
    if endpoint is None:
        raise no_such("webhook_endpoint", id)
    tx.conn.execute(
        documents.delete().where(
            documents.c.system == SYSTEM, documents.c.type == "webhook_endpoint", documents.c.id == id
        )
    )
    return 200, {"id": id, "object": "webhook_endpoint", "deleted": True}
