"""Stripe's v2 events ("thin" events): what `v1.billing.meter.*` error reports arrive as.

Delivered signed like every event, but thin: the webhook body names the event and its
related object without its `data`, which `GET /v2/core/events/{id}` gives. In Stripe they go
to event destinations; here to the webhook endpoints that name the event type itself
(`*` covers the snapshot events only, as a v1 endpoint does).
"""

from __future__ import annotations

from typing import Any

from sandbox import clock
from sandbox.core import new_id
from sandbox.store import Tx
from sandbox.stripe import SYSTEM
from sandbox.stripe.accounts import current_account
from sandbox.stripe.errors import no_such

TYPE = "v2_event"


def _takes(endpoint: dict[str, Any], event_type: str) -> bool:
    enabled = endpoint.get("enabled_events") or []
    return endpoint.get("status", "enabled") == "enabled" and (
        event_type in enabled or f"{event_type.rsplit('.', 1)[0]}.*" in enabled
    )


def thin(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "data"}


def emit_thin(tx: Tx, type_: str, data: dict[str, Any], related_object: dict[str, Any] | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": new_id("evt"),
        "object": "v2.core.event",
        "type": type_,
        "created": clock.rfc3339(clock.now(tx)),
        "livemode": False,
        "context": current_account.get(),
        "reason": None,
        "data": data,
    }
    if related_object is not None:
        event["related_object"] = related_object
    tx.put(SYSTEM, TYPE, event["id"], event)
    endpoints = [e for e in tx.list(SYSTEM, "webhook_endpoint") if _takes(e, type_)]
    dispatcher = tx.store.webhooks if tx.store is not None else None
    if endpoints and dispatcher is not None:
        delivered = thin(event)
        tx.after_commit.append(lambda: dispatcher.schedule(delivered, endpoints))
    return event


def get_v2_event(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    event = tx.get(SYSTEM, TYPE, id)
    if event is None:
        raise no_such("event", id)
    return 200, event
