"""Subscriptions (`/v1/subscriptions`): create, update, cancel, read and list."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sandbox.core import new_id
from sandbox.currency import minor_unit
from sandbox.store import Tx
from sandbox.stripe import SYSTEM
from sandbox.stripe.accounts import current_account, customer_here
from sandbox.stripe.errors import invalid, missing, no_such
from sandbox.stripe.events import emit
from sandbox.stripe.metered_lines import is_metered
from sandbox.stripe.params import add_month, boolean, integer, list_object, merge_metadata, timestamp
from sandbox.stripe.prices import price_from


def new_item(
    subscription_id: str, price: dict[str, Any], quantity: int | None, metadata: dict[str, str]
) -> dict[str, Any]:
    """A subscription item; one on a metered price carries no quantity (its usage is billed)."""
    item: dict[str, Any] = {
        "id": new_id("si"),
        "object": "subscription_item",
        "subscription": subscription_id,
        "quantity": quantity,
        "price": price,
        "metadata": metadata,
        "created": int(time.time()),
    }
    if is_metered(price):
        del item["quantity"]
    return item


def _no_quantity_on_metered(price: dict[str, Any], spec: dict[str, Any], param: str) -> None:
    if is_metered(price) and "quantity" in spec:
        # Wording unverified.
        raise invalid("You cannot set the quantity for metered prices.", param=f"{param}[quantity]")


def get_subscription(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    subscription = tx.get(SYSTEM, "subscription", id)
    if subscription is None:
        raise no_such("subscription", id)
    return 200, subscription


def _cancel_at(params: dict[str, Any]) -> tuple[bool, int | None]:
    """`cancel_at`: a unix timestamp, or an empty string to clear it (Stripe unsets a
    field sent empty). Returns (given, value)."""
    if "cancel_at" not in params:
        return False, None
    raw = params["cancel_at"]
    if raw == "":
        return True, None
    value = integer(raw, "cancel_at")
    if value <= 0:
        raise invalid(f"Invalid timestamp: {raw}", param="cancel_at")
    return True, value


def create_subscription(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    """`POST /v1/subscriptions`.

    The first period starts at `backdate_start_date` when given (it must be in the
    past, as Stripe requires), else - a sandbox convention, Stripe has none - at
    `metadata[term_start]` (YYYY-MM-DD) when given, else now. It ends at
    `billing_cycle_anchor` when given (which must lie after the start), else a month
    later. Deviation: Stripe invoices the first period at creation (a zero-amount
    invoice when `proration_behavior=none` makes the period before the anchor free -
    unverified); the sandbox creates no invoice at all, since o2c bills that period
    itself. Later periods are billed through the control plane's renewal charge."""
    customer_id = params.get("customer")
    if not customer_id:
        raise missing("customer")
    customer = customer_here(tx, customer_id)
    specs = params.get("items")
    if not specs:
        raise missing("items")
    if not isinstance(specs, list):
        raise invalid("Invalid array", param="items")
    behavior = params.get("proration_behavior", "create_prorations")
    if behavior not in ("create_prorations", "always_invoice", "none"):
        raise invalid(f"Invalid proration_behavior: {behavior}", param="proration_behavior")
    first = specs[0] if isinstance(specs[0], dict) else {}
    currency = str(
        params.get("currency") or (first.get("price_data") or {}).get("currency") or (customer.get("currency") or "usd")
    ).lower()
    try:
        minor_unit(currency.upper())
    except ValueError:
        raise invalid(f"Invalid currency: {currency}", param="currency") from None
    sub_id = new_id("sub")
    items = []
    for index, spec in enumerate(specs):
        param = f"items[{index}]"
        if not isinstance(spec, dict):
            raise invalid("Invalid hash", param=param)
        if "price_data" in spec:
            price = price_from(spec["price_data"], f"{param}[price_data]", currency, "month")
        elif "price" in spec:
            stored = tx.get(SYSTEM, "price", spec["price"])
            if stored is None:
                raise no_such("price", spec["price"], status=400, param=f"{param}[price]")
            price = stored
            if price["currency"] != currency:
                raise invalid(
                    f"The price currency {price['currency']} does not match the subscription currency {currency}",
                    param=f"{param}[price]",
                )
        else:
            raise missing(f"{param}[price]")
        _no_quantity_on_metered(price, spec, param)
        quantity = integer(spec.get("quantity", 1), f"{param}[quantity]")
        if quantity < 0:
            raise invalid("Quantity must be at least 0", param=f"{param}[quantity]")
        items.append(new_item(sub_id, price, quantity, merge_metadata({}, spec.get("metadata"), f"{param}[metadata]")))
    metadata = merge_metadata({}, params.get("metadata"))
    now = int(time.time())
    if "backdate_start_date" in params:
        start = integer(params["backdate_start_date"], "backdate_start_date")
        if start > now:
            raise invalid("backdate_start_date must be in the past", param="backdate_start_date")
    elif metadata.get("term_start"):
        try:
            start = timestamp(metadata["term_start"])
        except ValueError:
            raise invalid(
                f"Invalid date in metadata[term_start]: {metadata['term_start']}", param="metadata[term_start]"
            ) from None
    else:
        start = now
    if "billing_cycle_anchor" in params:
        anchor = integer(params["billing_cycle_anchor"], "billing_cycle_anchor")
        if anchor <= start:
            raise invalid(
                "billing_cycle_anchor must be after the start of the subscription", param="billing_cycle_anchor"
            )
        period_end = anchor
    else:
        anchor = start
        period_end = timestamp(add_month(datetime.fromtimestamp(start, tz=UTC).date()))
    _, cancel_at = _cancel_at(params)
    subscription = {
        "id": sub_id,
        "object": "subscription",
        "customer": customer_id,
        "status": "active",
        "currency": currency,
        "items": list_object(f"/v1/subscription_items?subscription={sub_id}", items),
        "metadata": metadata,
        "billing_cycle_anchor": anchor,
        "start_date": start,
        "current_period_start": start,
        "current_period_end": period_end,
        "cancel_at": cancel_at,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "ended_at": None,
        "collection_method": "charge_automatically",
        "latest_invoice": None,
        "created": now,
        "livemode": False,
    }
    if not customer.get("currency"):
        customer["currency"] = currency  # Stripe fixes a customer's currency with its first subscription
        tx.put(SYSTEM, "customer", customer_id, customer)
    tx.put(SYSTEM, "subscription", sub_id, subscription)
    tx.put(
        SYSTEM,
        "subscription_creation",
        sub_id,
        {"id": sub_id, "proration_behavior": behavior, "params": params, "created": now},
    )
    emit(tx, "customer.subscription.created", subscription)
    return 200, subscription


def cancel_subscription(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    """`DELETE /v1/subscriptions/{id}`: cancel at once. Cancelling a canceled subscription
    is refused (the exact error Stripe answers is unverified)."""
    subscription = tx.get(SYSTEM, "subscription", id)
    if subscription is None:
        raise no_such("subscription", id)
    if subscription["status"] == "canceled":
        raise invalid(f"This subscription is already canceled: {id}", code="subscription_canceled")
    subscription["status"]
    now = int(time.time())
    subscription.update(
        {
            "status": "canceled",
            "canceled_at": now,
            "ended_at": now,
            "cancellation_details": {
                "reason": "cancellation_requested",
                "comment": params.get("cancellation_details", {}).get("comment")
                if isinstance(params.get("cancellation_details"), dict)
                else None,
            },
        }
    )
    tx.put(SYSTEM, "subscription", id, subscription)
    emit(tx, "customer.subscription.deleted", subscription)
    return 200, subscription


def update_subscription(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    subscription = tx.get(SYSTEM, "subscription", id)
    if subscription is None:
        raise no_such("subscription", id)
    if subscription["status"] == "canceled":
        raise invalid(f"This subscription is canceled: {id}", param="items")
    behavior = params.get("proration_behavior", "create_prorations")
    if behavior not in ("create_prorations", "always_invoice", "none"):
        raise invalid(f"Invalid proration_behavior: {behavior}", param="proration_behavior")
    cancel_given, cancel_at = _cancel_at(params)
    currency = subscription["currency"]
    items: list[dict[str, Any]] = [dict(i) for i in subscription["items"]["data"]]
    by_id = {item["id"]: item for item in items}
    wanted = params.get("items", [])
    if wanted and not isinstance(wanted, list):
        raise invalid("Invalid array", param="items")
    # Validate everything before changing anything. A change is (action, spec); the spec
    # of an updated or deleted item holds its id.
    changes: list[tuple[str, dict[str, Any]]] = []
    for index, spec in enumerate(wanted):
        param = f"items[{index}]"
        if not isinstance(spec, dict):
            raise invalid("Invalid hash", param=param)
        item_id = spec.get("id")
        if item_id and item_id not in by_id:
            raise invalid(f"No such subscription item: '{item_id}'", param=f"{param}[id]")
        if item_id and "deleted" in spec and boolean(spec["deleted"], f"{param}[deleted]"):
            changes.append(("delete", spec))
            continue
        if not item_id and "price_data" not in spec and "price" not in spec:
            raise missing(f"{param}[price_data]")
        if "quantity" in spec and integer(spec["quantity"], f"{param}[quantity]") < 0:
            raise invalid("Quantity must be at least 0", param=f"{param}[quantity]")
        changes.append(("update" if item_id else "add", spec))
    interval = (items[0]["price"].get("recurring") or {}).get("interval", "month") if items else "month"
    for index, (action, spec) in enumerate(changes):
        param = f"items[{index}]"
        if action == "delete":
            items = [i for i in items if i["id"] != spec["id"]]
            continue
        price = None
        if "price_data" in spec:
            price = price_from(spec["price_data"], f"{param}[price_data]", currency, interval)
        elif "price" in spec:
            stored = tx.get(SYSTEM, "price", spec["price"])
            if stored is None:
                raise no_such("price", spec["price"], status=400, param=f"{param}[price]")
            price = stored
        target_price = (
            price if price is not None else next((i["price"] for i in items if i["id"] == spec.get("id")), {})
        )
        _no_quantity_on_metered(target_price, spec, param)
        quantity = integer(spec["quantity"], f"{param}[quantity]") if "quantity" in spec else None
        if action == "add":
            assert price is not None  # an added item's price_data or price was checked above
            items.append(
                new_item(
                    id,
                    price,
                    1 if quantity is None else quantity,
                    merge_metadata({}, spec.get("metadata"), f"{param}[metadata]"),
                )
            )
        else:
            target = next(i for i in items if i["id"] == spec["id"])
            if price is not None:
                target["price"] = price
            if quantity is not None:
                target["quantity"] = quantity
            target["metadata"] = merge_metadata(target.get("metadata", {}), spec.get("metadata"), f"{param}[metadata]")
    subscription["items"] = list_object(f"/v1/subscription_items?subscription={id}", items)
    subscription["metadata"] = merge_metadata(subscription.get("metadata", {}), params.get("metadata"))
    previous: dict[str, Any] = {}
    if cancel_given and subscription.get("cancel_at") != cancel_at:
        previous["cancel_at"] = subscription.get("cancel_at")
        subscription["cancel_at"] = cancel_at
        subscription["cancel_at_period_end"] = False
    tx.put(SYSTEM, "subscription", id, subscription)
    if previous:
        emit(tx, "customer.subscription.updated", subscription, previous_attributes=previous)
    update = {
        "id": new_id("subupd"),
        "object": "subscription_update",
        "subscription": id,
        "proration_behavior": behavior,
        "params": params,
        "created": int(time.time()),
    }
    tx.put(SYSTEM, "subscription_update", update["id"], update)
    return 200, subscription


def list_subscriptions(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    """GET /v1/subscriptions: the account's own (a connected account's are not the platform's),
    newest first, filtered by customer and status, with cursors."""
    limit = integer(params.get("limit", 10), "limit")
    if not 1 <= limit <= 100:
        raise invalid("limit must be between 1 and 100", param="limit")
    account = current_account.get()
    subscriptions = [
        s for s in reversed(tx.list(SYSTEM, "subscription")) if (s.get("_stripe_account") or None) == account
    ]
    for name in ("customer", "status"):
        if params.get(name):
            subscriptions = [s for s in subscriptions if s.get(name) == params[name]]
    after = params.get("starting_after")
    if after:
        ids = [s["id"] for s in subscriptions]
        if after not in ids:
            raise no_such("subscription", after, status=400, param="starting_after")
        subscriptions = subscriptions[ids.index(after) + 1 :]
    return 200, list_object("/v1/subscriptions", subscriptions[:limit], has_more=len(subscriptions) > limit)
