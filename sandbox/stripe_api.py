"""A subset of the Stripe API (version 2024-06-20): customers, subscriptions,
invoices, invoice items, customer balance transactions.

Idempotency as Stripe documents it: the first response for an `Idempotency-Key`
(status and body, 500s included once execution began) is stored and replayed with
`Idempotent-Replayed: true`; the same key with other parameters answers 400
`idempotency_error`; requests refused before execution (auth, validation 400s, 429)
store nothing. Simplification: 4xx answers are never stored (Stripe stores some
4xx raised after execution began).

Connect: a request with `Stripe-Account: acct_...` acts for that connected account.
Idempotency keys are scoped per account (the same key in two accounts is two
requests), every object the request creates carries the sandbox-only field
`_stripe_account` (Stripe keeps this implicitly; it is not part of its objects), and
its events carry Stripe's `account` field. Creating a subscription, an invoice or an
invoice item needs the customer in the same account (else 400 "No such customer", as
in Stripe). Listing invoices is scoped to the account too. Simplification: reads of
single objects and other updates are not scoped, so an object of a connected account
can be read or changed without the header (Stripe answers 404).
"""

from __future__ import annotations

import base64
import calendar
import contextvars
import json
import secrets
import time
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from sandbox import webhooks
from sandbox.core import ApiError, dumps, json_response, new_id, parse_nested, request_hash
from sandbox.currency import minor_unit
from sandbox.store import Condition, Tx, documents, utc_day

SYSTEM = "stripe"


# -- errors -------------------------------------------------------------------------------


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


def fault_response(status: int) -> Response:
    if status == 429:
        err = error(429, "invalid_request_error", "Too many requests hit the API too quickly.", code="rate_limit")
    else:
        err = error(status, "api_error", "Something went wrong on Stripe's end (injected fault).")
    return json_response(err.status, err.body, err.headers)


def authenticate(request: Request) -> Response | None:
    header = request.headers.get("authorization", "")
    key = ""
    if header.lower().startswith("bearer "):
        key = header[7:].strip()
    elif header.lower().startswith("basic "):
        try:
            key = base64.b64decode(header[6:].strip()).decode().split(":", 1)[0]
        except Exception:
            key = ""
    if key.startswith("sk_test_"):
        return None
    shown = (key[:8] + "*" * 4) if key else ""
    message = (
        f"Invalid API Key provided: {shown}"
        if key
        else "You did not provide an API key. Provide it in the Authorization header."
    )
    err = error(401, "invalid_request_error", message)
    return json_response(401, err.body, err.headers)


# -- helpers ------------------------------------------------------------------------------


def _ts(d: date | str) -> int:
    if isinstance(d, str):
        d = date.fromisoformat(d)
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def add_month(d: date) -> date:
    """The same day next month, clamped to the month's last day (Jan 31 -> Feb 28)."""
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def _bool(value: Any, param: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise invalid(f"Invalid boolean: {value}", param=param)


def _int(value: Any, param: str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(str(value))
    except (TypeError, ValueError):
        raise invalid(f"Invalid integer: {value}", param=param) from None


def _decimal(value: Any, param: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise invalid(f"Invalid decimal: {value}", param=param) from None
    if not result.is_finite():
        raise invalid(f"Invalid decimal: {value}", param=param)
    return result


def _metadata(current: dict[str, str], update: Any, param: str = "metadata") -> dict[str, str]:
    """Stripe merges metadata; an empty value unsets a key; an empty string unsets all."""
    if update is None:
        return current
    if update == "":
        return {}
    if not isinstance(update, dict):
        raise invalid("Invalid metadata: must be a hash", param=param)
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return merged


def _list(url: str, data: list[dict[str, Any]], has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "url": url, "has_more": has_more, "data": data}


def _fmt_decimal(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def make_price(currency: str, product: str, unit_amount_decimal: Decimal, interval: str = "month") -> dict[str, Any]:
    unit_amount = int(unit_amount_decimal) if unit_amount_decimal == unit_amount_decimal.to_integral_value() else None
    return {
        "id": new_id("price"),
        "object": "price",
        "active": True,
        "currency": currency.lower(),
        "product": product,
        "type": "recurring",
        "unit_amount": unit_amount,
        "unit_amount_decimal": _fmt_decimal(unit_amount_decimal),
        "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"},
    }


# -- customers ----------------------------------------------------------------------------


def _customer_fields(customer: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    for name in ("name", "email", "description", "currency"):
        if name in params:
            customer[name] = params[name] or None
    if "address" in params:
        address = params["address"]
        if address == "":
            customer["address"] = None
        elif isinstance(address, dict):
            current = dict(customer.get("address") or {})
            for name in ("line1", "line2", "city", "state", "postal_code", "country"):
                if name in address:
                    current[name] = address[name] or None
            customer["address"] = current
        else:
            raise invalid("Invalid address: must be a hash", param="address")
    customer["metadata"] = _metadata(customer.get("metadata", {}), params.get("metadata"))
    return customer


def new_customer(id_: str | None = None) -> dict[str, Any]:
    return {
        "id": id_ or new_id("cus"),
        "object": "customer",
        "name": None,
        "email": None,
        "description": None,
        "address": None,
        "balance": 0,
        "currency": None,
        "created": int(time.time()),
        "livemode": False,
        "metadata": {},
        "invoice_settings": {"default_payment_method": None},
    }


def create_customer(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    customer = _customer_fields(new_customer(params.get("id")), params)
    if tx.get(SYSTEM, "customer", customer["id"]):
        raise invalid(f"Customer already exists: {customer['id']}", param="id", code="resource_already_exists")
    tx.put(SYSTEM, "customer", customer["id"], customer)
    return 200, customer


def get_customer(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    customer = tx.get(SYSTEM, "customer", id)
    if customer is None:
        raise no_such("customer", id)
    return 200, customer


def update_customer(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    customer = tx.get(SYSTEM, "customer", id)
    if customer is None:
        raise no_such("customer", id)
    settings = params.get("invoice_settings")
    pm_id = None
    if settings is not None:
        if not isinstance(settings, dict):
            raise invalid("Invalid invoice_settings: must be a hash", param="invoice_settings")
        pm_id = settings.get("default_payment_method")
    before = (customer.get("invoice_settings") or {}).get("default_payment_method")
    customer = _customer_fields(customer, params)
    if pm_id is not None:
        customer["invoice_settings"] = {**(customer.get("invoice_settings") or {}), "default_payment_method": None}
        if pm_id:
            pm = _attach(tx, pm_id, id, param="invoice_settings[default_payment_method]")
            customer["invoice_settings"]["default_payment_method"] = pm["id"]
    tx.put(SYSTEM, "customer", id, customer)
    if pm_id is not None and customer["invoice_settings"]["default_payment_method"] != before:
        emit(
            tx,
            "customer.updated",
            customer,
            previous_attributes={"invoice_settings": {"default_payment_method": before}},
        )
    return 200, customer


def create_balance_transaction(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    customer = tx.get(SYSTEM, "customer", id)
    if customer is None:
        raise no_such("customer", id)
    if "amount" not in params:
        raise missing("amount")
    if "currency" not in params:
        raise missing("currency")
    amount = _int(params["amount"], "amount")
    customer["balance"] = int(customer.get("balance") or 0) + amount
    customer["currency"] = customer.get("currency") or params["currency"].lower()
    txn = {
        "id": new_id("cbtxn"),
        "object": "customer_balance_transaction",
        "amount": amount,
        "currency": params["currency"].lower(),
        "customer": id,
        "description": params.get("description"),
        "ending_balance": customer["balance"],
        "type": "adjustment",
        "created": int(time.time()),
        "metadata": _metadata({}, params.get("metadata")),
    }
    tx.put(SYSTEM, "customer", id, customer)
    tx.put(SYSTEM, "customer_balance_transaction", txn["id"], txn)
    return 200, txn


def list_balance_transactions(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    if tx.get(SYSTEM, "customer", id) is None:
        raise no_such("customer", id)
    data = [t for t in tx.list(SYSTEM, "customer_balance_transaction") if t["customer"] == id]
    return 200, _list(f"/v1/customers/{id}/balance_transactions", list(reversed(data)))


# -- subscriptions --------------------------------------------------------------------------


def new_item(subscription_id: str, price: dict[str, Any], quantity: int, metadata: dict[str, str]) -> dict[str, Any]:
    return {
        "id": new_id("si"),
        "object": "subscription_item",
        "subscription": subscription_id,
        "quantity": quantity,
        "price": price,
        "metadata": metadata,
        "created": int(time.time()),
    }


def get_subscription(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    subscription = tx.get(SYSTEM, "subscription", id)
    if subscription is None:
        raise no_such("subscription", id)
    return 200, subscription


def _price_from(data: Any, param: str, currency: str, interval: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise invalid("Invalid price_data: must be a hash", param=param)
    for name in ("currency", "product"):
        if not data.get(name):
            raise missing(f"{param}[{name}]")
    if data["currency"].lower() != currency:
        raise invalid(
            f"The price currency {data['currency']} does not match the subscription currency {currency}",
            param=f"{param}[currency]",
        )
    if "unit_amount_decimal" in data:
        amount = _decimal(data["unit_amount_decimal"], f"{param}[unit_amount_decimal]")
    elif "unit_amount" in data:
        amount = Decimal(_int(data["unit_amount"], f"{param}[unit_amount]"))
    else:
        raise missing(f"{param}[unit_amount]")
    if amount < 0:
        raise invalid("unit_amount must not be negative", param=f"{param}[unit_amount_decimal]")
    recurring = data.get("recurring") or {}
    return make_price(currency, data["product"], amount, (recurring or {}).get("interval", interval))


def _cancel_at(params: dict[str, Any]) -> tuple[bool, int | None]:
    """`cancel_at`: a unix timestamp, or an empty string to clear it (Stripe unsets a
    field sent empty). Returns (given, value)."""
    if "cancel_at" not in params:
        return False, None
    raw = params["cancel_at"]
    if raw == "":
        return True, None
    value = _int(raw, "cancel_at")
    if value <= 0:
        raise invalid(f"Invalid timestamp: {raw}", param="cancel_at")
    return True, value


def _customer_here(tx: Tx, customer_id: str, param: str = "customer") -> dict[str, Any]:
    """The customer, which must belong to the account this request acts for: a customer
    of another (connected) account does not exist for it, as in Stripe."""
    customer = tx.get(SYSTEM, "customer", customer_id)
    if customer is None or (customer.get("_stripe_account") or None) != _current_account.get():
        raise no_such("customer", customer_id, status=400, param=param)
    return customer


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
    customer = _customer_here(tx, customer_id)
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
            price = _price_from(spec["price_data"], f"{param}[price_data]", currency, "month")
        elif "price" in spec:
            price = tx.get(SYSTEM, "price", spec["price"])
            if price is None:
                raise no_such("price", spec["price"], status=400, param=f"{param}[price]")
            if price["currency"] != currency:
                raise invalid(
                    f"The price currency {price['currency']} does not match the subscription currency {currency}",
                    param=f"{param}[price]",
                )
        else:
            raise missing(f"{param}[price]")
        quantity = _int(spec.get("quantity", 1), f"{param}[quantity]")
        if quantity < 0:
            raise invalid("Quantity must be at least 0", param=f"{param}[quantity]")
        items.append(new_item(sub_id, price, quantity, _metadata({}, spec.get("metadata"), f"{param}[metadata]")))
    metadata = _metadata({}, params.get("metadata"))
    now = int(time.time())
    if "backdate_start_date" in params:
        start = _int(params["backdate_start_date"], "backdate_start_date")
        if start > now:
            raise invalid("backdate_start_date must be in the past", param="backdate_start_date")
    elif metadata.get("term_start"):
        try:
            start = _ts(metadata["term_start"])
        except ValueError:
            raise invalid(
                f"Invalid date in metadata[term_start]: {metadata['term_start']}", param="metadata[term_start]"
            ) from None
    else:
        start = now
    if "billing_cycle_anchor" in params:
        anchor = _int(params["billing_cycle_anchor"], "billing_cycle_anchor")
        if anchor <= start:
            raise invalid(
                "billing_cycle_anchor must be after the start of the subscription", param="billing_cycle_anchor"
            )
        period_end = anchor
    else:
        anchor = start
        period_end = _ts(add_month(datetime.fromtimestamp(start, tz=UTC).date()))
    _, cancel_at = _cancel_at(params)
    subscription = {
        "id": sub_id,
        "object": "subscription",
        "customer": customer_id,
        "status": "active",
        "currency": currency,
        "items": _list(f"/v1/subscription_items?subscription={sub_id}", items),
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
    # Validate everything before changing anything.
    changes: list[tuple[str, dict[str, Any] | None, dict[str, Any]]] = []
    for index, spec in enumerate(wanted):
        param = f"items[{index}]"
        if not isinstance(spec, dict):
            raise invalid("Invalid hash", param=param)
        item_id = spec.get("id")
        if item_id and item_id not in by_id:
            raise invalid(f"No such subscription item: '{item_id}'", param=f"{param}[id]")
        if item_id and "deleted" in spec and _bool(spec["deleted"], f"{param}[deleted]"):
            changes.append(("delete", by_id[item_id], spec))
            continue
        if not item_id and "price_data" not in spec and "price" not in spec:
            raise missing(f"{param}[price_data]")
        if "quantity" in spec and _int(spec["quantity"], f"{param}[quantity]") < 0:
            raise invalid("Quantity must be at least 0", param=f"{param}[quantity]")
        changes.append(("update" if item_id else "add", by_id.get(item_id) if item_id else None, spec))
    interval = (items[0]["price"].get("recurring") or {}).get("interval", "month") if items else "month"
    for index, (action, item, spec) in enumerate(changes):
        param = f"items[{index}]"
        if action == "delete":
            items = [i for i in items if i["id"] != item["id"]]
            continue
        price = None
        if "price_data" in spec:
            price = _price_from(spec["price_data"], f"{param}[price_data]", currency, interval)
        elif "price" in spec:
            stored = tx.get(SYSTEM, "price", spec["price"])
            if stored is None:
                raise no_such("price", spec["price"], status=400, param=f"{param}[price]")
            price = stored
        quantity = _int(spec["quantity"], f"{param}[quantity]") if "quantity" in spec else None
        if action == "add":
            items.append(
                new_item(
                    id,
                    price,
                    1 if quantity is None else quantity,
                    _metadata({}, spec.get("metadata"), f"{param}[metadata]"),
                )
            )
        else:
            target = next(i for i in items if i["id"] == item["id"])
            if price is not None:
                target["price"] = price
            if quantity is not None:
                target["quantity"] = quantity
            target["metadata"] = _metadata(target.get("metadata", {}), spec.get("metadata"), f"{param}[metadata]")
    subscription["items"] = _list(f"/v1/subscription_items?subscription={id}", items)
    subscription["metadata"] = _metadata(subscription.get("metadata", {}), params.get("metadata"))
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


# -- invoices -----------------------------------------------------------------------------


def _recompute(invoice: dict[str, Any]) -> None:
    total = sum(int(line["amount"]) for line in invoice["lines"]["data"])
    invoice["subtotal"] = total
    invoice["total"] = total
    invoice["lines"]["total_count"] = len(invoice["lines"]["data"])
    if invoice["status"] == "draft":
        invoice["amount_due"] = max(total, 0)
        invoice["amount_remaining"] = max(total, 0)


def _line_from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": new_id("il"),
        "object": "line_item",
        "type": "invoiceitem",
        "invoice_item": item["id"],
        "amount": item["amount"],
        "currency": item["currency"],
        "description": item.get("description"),
        "subscription": item.get("subscription"),
        "metadata": item.get("metadata", {}),
        "period": item.get("period"),
    }


def create_invoice(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    customer_id = params.get("customer")
    if not customer_id:
        raise missing("customer")
    customer = _customer_here(tx, customer_id)
    subscription_id = params.get("subscription") or None
    if subscription_id:
        subscription = tx.get(SYSTEM, "subscription", subscription_id)
        if subscription is None:
            raise no_such("subscription", subscription_id, status=400, param="subscription")
        default_currency = subscription["currency"]
    else:
        default_currency = customer.get("currency") or "usd"
    behavior = params.get("pending_invoice_items_behavior", "exclude")
    if behavior not in ("exclude", "include"):
        raise invalid(f"Invalid pending_invoice_items_behavior: {behavior}", param="pending_invoice_items_behavior")
    collection = params.get("collection_method", "charge_automatically")
    if collection not in ("charge_automatically", "send_invoice"):
        raise invalid(f"Invalid collection_method: {collection}", param="collection_method")
    invoice = {
        "id": new_id("in"),
        "object": "invoice",
        "customer": customer_id,
        "subscription": subscription_id,
        "status": "draft",
        "number": None,
        "currency": (params.get("currency") or default_currency).lower(),
        "description": params.get("description"),
        "auto_advance": _bool(params.get("auto_advance", "false"), "auto_advance"),
        "collection_method": collection,
        "metadata": _metadata({}, params.get("metadata")),
        "lines": {"object": "list", "data": [], "has_more": False, "total_count": 0},
        "subtotal": 0,
        "tax": None,  # Stripe Tax's amount; null without it (o2c bills tax as a line of its own)
        "total": 0,
        "amount_due": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "starting_balance": 0,
        "ending_balance": None,
        "created": int(time.time()),
        "status_transitions": {
            "finalized_at": None,
            "paid_at": None,
            "voided_at": None,
            "marked_uncollectible_at": None,
        },
        "attempt_count": 0,
        "attempted": False,
        "paid": False,
        "paid_out_of_band": False,
        "charge": None,
        "payment_intent": None,
        "next_payment_attempt": None,
        "billing_reason": "subscription_update" if subscription_id else "manual",
        "livemode": False,
    }
    if behavior == "include":
        for item in tx.list(SYSTEM, "invoiceitem"):
            if (
                item["customer"] == customer_id
                and not item.get("invoice")
                and (not subscription_id or item.get("subscription") in (None, subscription_id))
            ):
                item["invoice"] = invoice["id"]
                tx.put(SYSTEM, "invoiceitem", item["id"], item)
                invoice["lines"]["data"].append(_line_from_item(item))
    _recompute(invoice)
    tx.put(SYSTEM, "invoice", invoice["id"], invoice)
    return 200, invoice


def get_invoice(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    invoice = tx.get(SYSTEM, "invoice", id)
    if invoice is None:
        raise no_such("invoice", id)
    return 200, invoice


def _created_range(params: dict[str, Any]) -> tuple[int | None, int | None]:
    """`created` as Stripe takes it on lists: an exact unix timestamp, or a hash of
    gt/gte/lt/lte bounds. Returns inclusive (low, high) bounds, None when open."""
    created = params.get("created")
    if created is None:
        return None, None
    if not isinstance(created, dict):
        exact = _int(created, "created")
        return exact, exact
    low = high = None
    for op, raw in created.items():
        value = _int(raw, f"created[{op}]")
        if op == "gte":
            low = value if low is None else max(low, value)
        elif op == "gt":
            low = value + 1 if low is None else max(low, value + 1)
        elif op == "lte":
            high = value if high is None else min(high, value)
        elif op == "lt":
            high = value - 1 if high is None else min(high, value - 1)
        else:
            raise invalid(
                f"Received unknown parameter: created[{op}]", param=f"created[{op}]", code="parameter_unknown"
            )
    return low, high


def list_invoices(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    """`GET /v1/invoices`: the invoices of the account the request acts for (its
    `Stripe-Account`, else the platform's), newest first, filtered by `created` bounds,
    customer, subscription and status, a page of `limit` after `starting_after`.

    The account and the UTC days the `created` bounds cover are pushed down to the
    indexed columns (store.INDEXERS), and `starting_after` becomes a keyset on (day,
    insertion order): the rest of its day, then the days before. `created` itself is
    checked here, which only ever skips invoices of the two boundary days, so a page
    costs O(limit) however many invoices there are. Order: by day, then by insertion,
    newest first, which is `created` order whenever invoices are inserted as they are
    created (the API does; so does the period seeder)."""
    limit = _int(params.get("limit", 10), "limit")
    if not 1 <= limit <= 100:
        raise invalid("limit must be between 1 and 100", param="limit")
    account = _current_account.get() or ""
    low, high = _created_range(params)
    where: list[Condition] = [("scope", "=", account)]
    if low is not None:
        where.append(("day", ">=", utc_day(low)))
    for name in ("customer", "subscription", "status"):
        if params.get(name):
            where.append((f"data.{name}", "=", str(params[name])))
    newest_first = (("day", True), ("seq", True))
    after = params.get("starting_after")
    if after:
        row = tx.row(SYSTEM, "invoice", str(after))
        if row is None or row.scope != account or row.day is None:
            raise no_such("invoice", str(after), status=400, param="starting_after")
        segments = [[*where, ("day", "=", row.day), ("seq", "<", row.seq)], [*where, ("day", "<", row.day)]]
        if high is not None and utc_day(high) < row.day:
            segments = [[*where, ("day", "<=", utc_day(high))]]
    else:
        segments = [[*where, *([("day", "<=", utc_day(high))] if high is not None else [])]]
    invoices: list[dict[str, Any]] = []
    for segment in segments:
        rows = tx.page(SYSTEM, "invoice", segment, order_by=newest_first, batch=limit + 1)
        try:
            for found in rows:
                created = int(found.data.get("created") or 0)
                if (low is None or created >= low) and (high is None or created <= high):
                    invoices.append(found.data)
                    if len(invoices) > limit:
                        break
        finally:
            rows.close()
        if len(invoices) > limit:
            break
    return 200, _list("/v1/invoices", invoices[:limit], has_more=len(invoices) > limit)


def list_subscriptions(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    """GET /v1/subscriptions: newest first, filtered by customer and status, with cursors."""
    limit = _int(params.get("limit", 10), "limit")
    if not 1 <= limit <= 100:
        raise invalid("limit must be between 1 and 100", param="limit")
    subscriptions = list(reversed(tx.list(SYSTEM, "subscription")))
    for name in ("customer", "status"):
        if params.get(name):
            subscriptions = [s for s in subscriptions if s.get(name) == params[name]]
    after = params.get("starting_after")
    if after:
        ids = [s["id"] for s in subscriptions]
        if after not in ids:
            raise no_such("subscription", after, status=400, param="starting_after")
        subscriptions = subscriptions[ids.index(after) + 1 :]
    return 200, _list("/v1/subscriptions", subscriptions[:limit], has_more=len(subscriptions) > limit)


def finalize_invoice(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    invoice = tx.get(SYSTEM, "invoice", id)
    if invoice is None:
        raise no_such("invoice", id)
    if invoice["status"] != "draft":
        raise invalid(
            "This invoice is already finalized, you can't re-finalize a non-draft invoice.", code="invoice_not_editable"
        )
    now = int(time.time())
    number = f"SBX-{tx.count(SYSTEM, 'invoice_number') + 1:06d}"
    tx.put(SYSTEM, "invoice_number", number, {"id": number, "invoice": id})
    invoice["number"] = number
    invoice["status_transitions"]["finalized_at"] = now
    total = int(invoice["total"])
    customer = tx.get(SYSTEM, "customer", invoice["customer"]) or new_customer(invoice["customer"])
    invoice["starting_balance"] = int(customer.get("balance") or 0)
    if total <= 0:
        # A zero or net-credit invoice is paid at once; a credit goes to the customer's
        # balance (negative balance = credit), as Stripe does.
        customer["balance"] = int(customer.get("balance") or 0) + total
        tx.put(SYSTEM, "customer", customer["id"], customer)
        invoice["status"] = "paid"
        invoice["amount_due"] = 0
        invoice["amount_remaining"] = 0
        invoice["status_transitions"]["paid_at"] = now
    else:
        # Simplification: an existing customer credit balance is not applied to
        # positive invoices here.
        invoice["status"] = "open"
        invoice["amount_due"] = total
        invoice["amount_remaining"] = total
    invoice["ending_balance"] = int(customer.get("balance") or 0)
    tx.put(SYSTEM, "invoice", id, invoice)
    return 200, invoice


def void_invoice(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    invoice = tx.get(SYSTEM, "invoice", id)
    if invoice is None:
        raise no_such("invoice", id)
    if invoice["status"] not in ("open", "uncollectible"):
        raise invalid(
            f"You can only pass in open invoices. This invoice is {invoice['status']}.",
            code="invoice_not_open" if invoice["status"] != "void" else "invoice_already_voided",
        )
    invoice["status"] = "void"
    invoice["amount_remaining"] = 0
    invoice["status_transitions"]["voided_at"] = int(time.time())
    tx.put(SYSTEM, "invoice", id, invoice)
    return 200, invoice


def create_invoiceitem(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    for name in ("customer", "currency"):
        if not params.get(name):
            raise missing(name)
    if "amount" not in params:
        raise missing("amount")
    amount = _int(params["amount"], "amount")
    customer_id = params["customer"]
    _customer_here(tx, customer_id)
    invoice = None
    if params.get("invoice"):
        invoice = tx.get(SYSTEM, "invoice", params["invoice"])
        if invoice is None:
            raise no_such("invoice", params["invoice"], status=400, param="invoice")
        if invoice["status"] != "draft":
            raise invalid(
                f"Invoice {invoice['id']} is not a draft; items can only be added to drafts.",
                param="invoice",
                code="invoice_not_editable",
            )
        if invoice["customer"] != customer_id:
            raise invalid("The invoice belongs to another customer.", param="invoice")
        if invoice["currency"] != params["currency"].lower():
            raise invalid("The currency differs from the invoice's currency.", param="currency")
    item = {
        "id": new_id("ii"),
        "object": "invoiceitem",
        "customer": customer_id,
        "invoice": invoice["id"] if invoice else None,
        "subscription": params.get("subscription") or None,
        "amount": amount,
        "currency": params["currency"].lower(),
        "description": params.get("description"),
        "metadata": _metadata({}, params.get("metadata")),
        "period": params.get("period"),
        "date": int(time.time()),
    }
    tx.put(SYSTEM, "invoiceitem", item["id"], item)
    if invoice is not None:
        invoice["lines"]["data"].append(_line_from_item(item))
        _recompute(invoice)
        tx.put(SYSTEM, "invoice", invoice["id"], invoice)
    return 200, item


def get_invoiceitem(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    item = tx.get(SYSTEM, "invoiceitem", id)
    if item is None:
        raise no_such("invoiceitem", id)
    return 200, item


# -- events and webhook endpoints -------------------------------------------------------------

API_VERSION = "2024-06-20"
# The request that caused the events being emitted (None for automatic events such as a
# renewal charge), as Stripe records it in `event.request`.
_current_request: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("stripe_request", default=None)
# The connected account a request acts for (its `Stripe-Account` header), None for the
# platform account.
_current_account: contextvars.ContextVar[str | None] = contextvars.ContextVar("stripe_account", default=None)


def _snapshot(obj: dict[str, Any]) -> dict[str, Any]:
    return json.loads(dumps(obj), parse_float=Decimal)


def emit(
    tx: Tx, type_: str, obj: dict[str, Any], *, previous_attributes: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Store an event as Stripe shapes it and, once the unit of work commits, deliver it
    to every enabled endpoint whose `enabled_events` match (endpoints as of now)."""
    endpoints = [e for e in tx.list(SYSTEM, "webhook_endpoint") if webhooks.matches(e, type_)]
    data: dict[str, Any] = {"object": _snapshot(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = _snapshot(previous_attributes)
    event = {
        "id": new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()),
        "data": data,
        "livemode": False,
        "pending_webhooks": len(endpoints),
        "request": _current_request.get() or {"id": None, "idempotency_key": None},
        "type": type_,
    }
    account = _current_account.get()
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
    limit = _int(params.get("limit", 10), "limit")
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
    return 200, _list("/v1/events", events[:limit], has_more=len(events) > limit)


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
        "metadata": _metadata({}, params.get("metadata")),
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
    return 200, _list("/v1/webhook_endpoints", endpoints)


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


# -- payment methods --------------------------------------------------------------------------

# Stripe's test payment methods and how a charge on them ends: None succeeds, else
# (error code, decline code, message), as Stripe's testing page lists them.
TEST_PAYMENT_METHODS: dict[str, tuple[str, str, tuple[str, str, str] | None]] = {
    "pm_card_visa": ("visa", "4242", None),
    "pm_card_mastercard": ("mastercard", "4444", None),
    "pm_card_chargeDeclined": ("visa", "0002", ("card_declined", "generic_decline", "Your card was declined.")),
    "pm_card_chargeDeclinedInsufficientFunds": (
        "visa",
        "9995",
        ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    ),
    "pm_card_chargeDeclinedLostCard": ("visa", "9987", ("card_declined", "lost_card", "Your card was declined.")),
    "pm_card_chargeDeclinedStolenCard": ("visa", "9979", ("card_declined", "stolen_card", "Your card was declined.")),
    "pm_card_chargeDeclinedExpiredCard": ("visa", "0069", ("expired_card", "expired_card", "Your card has expired.")),
}


def _new_payment_method(token: str) -> dict[str, Any]:
    brand, last4, _ = TEST_PAYMENT_METHODS[token]
    return {
        "id": new_id("pm"),
        "object": "payment_method",
        "type": "card",
        "card": {
            "brand": brand,
            "last4": last4,
            "exp_month": 12,
            "exp_year": date.today().year + 3,
            "funding": "credit",
            "country": "US",
        },
        "billing_details": {"address": None, "email": None, "name": None, "phone": None},
        "customer": None,
        "created": int(time.time()),
        "livemode": False,
        "metadata": {},
        # Sandbox-only: which test card this is (decides how charges on it end).
        "sandbox_test_card": token,
    }


def _attach(tx: Tx, pm_id: str, customer_id: str, *, param: str = "payment_method") -> dict[str, Any]:
    """Attach a payment method (or, as Stripe's test tokens do, a fresh one made from a
    test token such as `pm_card_visa`) to a customer. Emits `payment_method.attached`."""
    if pm_id in TEST_PAYMENT_METHODS:
        pm = _new_payment_method(pm_id)
    else:
        pm = tx.get(SYSTEM, "payment_method", pm_id)
        if pm is None:
            raise no_such("PaymentMethod", pm_id, status=400 if param != "id" else 404, param=param)
        if pm.get("customer") == customer_id:
            return pm
        if pm.get("customer"):
            raise invalid(
                "The payment method you provided has already been attached to a customer.",
                param=param,
                code="payment_method_unexpected_state",
            )
    pm["customer"] = customer_id
    tx.put(SYSTEM, "payment_method", pm["id"], pm)
    emit(tx, "payment_method.attached", pm)
    return pm


def attach_payment_method(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    customer_id = params.get("customer")
    if not customer_id:
        raise missing("customer")
    if tx.get(SYSTEM, "customer", customer_id) is None:
        raise no_such("customer", customer_id, status=400, param="customer")
    return 200, _attach(tx, id, customer_id, param="id")


def get_payment_method(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    pm = tx.get(SYSTEM, "payment_method", id)
    if pm is None:
        raise no_such("PaymentMethod", id)
    return 200, pm


def get_charge(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    charge = tx.get(SYSTEM, "charge", id)
    if charge is None:
        raise no_such("charge", id)
    return 200, charge


def get_payment_intent(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    intent = tx.get(SYSTEM, "payment_intent", id)
    if intent is None:
        raise no_such("payment_intent", id)
    return 200, intent


# -- collecting invoices ------------------------------------------------------------------------


def _payment_intent_of(tx: Tx, invoice: dict[str, Any]) -> dict[str, Any]:
    intent = tx.get(SYSTEM, "payment_intent", invoice.get("payment_intent") or "")
    if intent is None:
        intent = {
            "id": new_id("pi"),
            "object": "payment_intent",
            "amount": int(invoice["amount_remaining"]),
            "amount_received": 0,
            "currency": invoice["currency"],
            "customer": invoice["customer"],
            "invoice": invoice["id"],
            "status": "requires_payment_method",
            "last_payment_error": None,
            "latest_charge": None,
            "payment_method": None,
            "created": int(time.time()),
            "livemode": False,
            "metadata": {},
        }
        invoice["payment_intent"] = intent["id"]
    return intent


def _mark_paid(tx: Tx, invoice: dict[str, Any]) -> None:
    invoice["amount_paid"] = int(invoice["amount_paid"]) + int(invoice["amount_remaining"])
    invoice["amount_remaining"] = 0
    invoice["status"] = "paid"
    invoice["paid"] = True
    invoice["next_payment_attempt"] = None
    invoice["status_transitions"]["paid_at"] = int(time.time())
    _subscription_recovers(tx, invoice)


def _subscription_recovers(tx: Tx, invoice: dict[str, Any]) -> None:
    subscription = tx.get(SYSTEM, "subscription", invoice.get("subscription") or "")
    if subscription is not None and subscription["status"] == "past_due":
        subscription["status"] = "active"
        tx.put(SYSTEM, "subscription", subscription["id"], subscription)
        emit(tx, "customer.subscription.updated", subscription, previous_attributes={"status": "past_due"})


def _charge_invoice(tx: Tx, invoice: dict[str, Any], pm_id: str | None = None) -> tuple[int, Any]:
    """One payment attempt on an open (or uncollectible) invoice for what remains due,
    with `pm_id` or the customer's default payment method. A decline answers 402 and
    still commits: the failed charge, the attempt count and the events are real."""
    if invoice["status"] == "paid":
        raise invalid("Invoice is already paid", code="invoice_already_paid")  # code unverified
    if invoice["status"] not in ("open", "uncollectible"):
        raise invalid(
            f"You can only pay open invoices. This invoice is {invoice['status']}.", code="invoice_not_open"
        )  # wording unverified
    customer = tx.get(SYSTEM, "customer", invoice["customer"]) or {}
    pm_id = pm_id or (customer.get("invoice_settings") or {}).get("default_payment_method")
    pm = tx.get(SYSTEM, "payment_method", pm_id) if pm_id else None
    if pm is None:
        raise invalid(
            "This customer has no attached payment source or default payment method.",
            code="invoice_no_customer_payment_method",
        )  # code unverified
    amount = int(invoice["amount_remaining"])
    behaviour = TEST_PAYMENT_METHODS.get(pm.get("sandbox_test_card") or "", ("", "", None))[2]
    intent = _payment_intent_of(tx, invoice)
    now = int(time.time())
    charge = {
        "id": new_id("ch"),
        "object": "charge",
        "amount": amount,
        "amount_captured": 0 if behaviour else amount,
        "amount_refunded": 0,
        "currency": invoice["currency"],
        "customer": invoice["customer"],
        "invoice": invoice["id"],
        "payment_intent": intent["id"],
        "payment_method": pm["id"],
        "payment_method_details": {
            "type": "card",
            "card": {k: pm["card"][k] for k in ("brand", "last4", "exp_month", "exp_year")},
        },
        "paid": behaviour is None,
        "captured": behaviour is None,
        "status": "failed" if behaviour else "succeeded",
        "failure_code": behaviour[0] if behaviour else None,
        "failure_message": behaviour[2] if behaviour else None,
        "outcome": {
            "network_status": "declined_by_network" if behaviour else "approved_by_network",
            "reason": behaviour[1] if behaviour else None,
            "risk_level": "normal",
            "seller_message": "The bank did not return any further details with this decline."
            if behaviour
            else "Payment complete.",
            "type": "issuer_declined" if behaviour else "authorized",
        },
        "disputed": False,
        "refunded": False,
        "created": now,
        "livemode": False,
        "metadata": {},
    }
    tx.put(SYSTEM, "charge", charge["id"], charge)
    invoice["attempt_count"] = int(invoice.get("attempt_count") or 0) + 1
    invoice["attempted"] = True
    invoice["charge"] = charge["id"]
    invoice["next_payment_attempt"] = None  # o2c runs its own retries: no Smart Retries
    intent.update({"payment_method": pm["id"], "latest_charge": charge["id"], "amount": amount})
    if behaviour is None:
        intent.update({"status": "succeeded", "amount_received": amount, "last_payment_error": None})
        _mark_paid(tx, invoice)
        tx.put(SYSTEM, "payment_intent", intent["id"], intent)
        tx.put(SYSTEM, "invoice", invoice["id"], invoice)
        emit(tx, "charge.succeeded", charge)
        emit(tx, "payment_intent.succeeded", intent)
        emit(tx, "invoice.paid", invoice)
        emit(tx, "invoice.payment_succeeded", invoice)
        return 200, invoice
    code, decline_code, message = behaviour
    error_body: dict[str, Any] = {
        "type": "card_error",
        "code": code,
        "decline_code": decline_code,
        "message": message,
        "charge": charge["id"],
        "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
    }
    intent.update(
        {
            "status": "requires_payment_method",
            "last_payment_error": {
                **{k: v for k, v in error_body.items() if k != "charge"},
                "payment_method": {"id": pm["id"], "type": "card"},
            },
        }
    )
    tx.put(SYSTEM, "payment_intent", intent["id"], intent)
    tx.put(SYSTEM, "invoice", invoice["id"], invoice)
    subscription = tx.get(SYSTEM, "subscription", invoice.get("subscription") or "")
    emit(tx, "charge.failed", charge)
    emit(tx, "payment_intent.payment_failed", intent)
    emit(tx, "invoice.payment_failed", invoice)
    if subscription is not None and subscription["status"] == "active":
        subscription["status"] = "past_due"
        tx.put(SYSTEM, "subscription", subscription["id"], subscription)
        emit(tx, "customer.subscription.updated", subscription, previous_attributes={"status": "active"})
    return 402, {"error": error_body}


def pay_invoice(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    invoice = tx.get(SYSTEM, "invoice", id)
    if invoice is None:
        raise no_such("invoice", id)
    if "paid_out_of_band" in params and _bool(params["paid_out_of_band"], "paid_out_of_band"):
        return 200, pay_out_of_band(tx, id)
    return _charge_invoice(tx, invoice, params.get("payment_method") or None)


def mark_uncollectible(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    invoice = tx.get(SYSTEM, "invoice", id)
    if invoice is None:
        raise no_such("invoice", id)
    if invoice["status"] != "open":
        raise invalid(
            f"You can only mark open invoices as uncollectible. This invoice is {invoice['status']}.",
            code="invoice_not_open",
        )  # wording unverified
    invoice["status"] = "uncollectible"
    invoice["status_transitions"]["marked_uncollectible_at"] = int(time.time())
    tx.put(SYSTEM, "invoice", id, invoice)
    emit(tx, "invoice.marked_uncollectible", invoice)
    return 200, invoice


# -- control-plane actions (not Stripe API; see control.py) --------------------------------------


def _monthly_minor(subscription: dict[str, Any]) -> int:
    total = Decimal(0)
    for item in subscription["items"]["data"]:
        price = item.get("price") or {}
        unit = Decimal(str(price.get("unit_amount_decimal") or price.get("unit_amount") or 0))
        total += unit * int(item.get("quantity") or 0)
    return int(total.quantize(Decimal(1)))


def renewal_charge(tx: Tx, body: dict[str, Any]) -> dict[str, Any]:
    """What Stripe does when a subscription renews: a `subscription_cycle` invoice,
    finalized, then charged to the default payment method."""
    sub_id = body.get("subscription")
    subscription = tx.get(SYSTEM, "subscription", sub_id or "")
    if subscription is None:
        raise no_such("subscription", str(sub_id))
    amount = _int(body["amount"], "amount") if body.get("amount") is not None else _monthly_minor(subscription)
    _, invoice = create_invoice(
        tx,
        {"customer": subscription["customer"], "subscription": sub_id, "description": body.get("description") or None},
    )
    _, _item = create_invoiceitem(
        tx,
        {
            "customer": subscription["customer"],
            "invoice": invoice["id"],
            "currency": subscription["currency"],
            "amount": amount,
            "subscription": sub_id,
            "description": body.get("description") or "Subscription renewal",
        },
    )
    _, invoice = finalize_invoice(tx, {}, invoice["id"])
    invoice["billing_reason"] = "subscription_cycle"
    tx.put(SYSTEM, "invoice", invoice["id"], invoice)
    emit(tx, "invoice.finalized", invoice)
    try:
        _charge_invoice(tx, invoice)
    except ApiError:
        pass  # no payment method: the invoice stays open, as with a customer who has none
    return tx.get(SYSTEM, "invoice", invoice["id"])


def partial_payment(tx: Tx, id: str, body: dict[str, Any]) -> dict[str, Any]:
    invoice = tx.get(SYSTEM, "invoice", id)
    if invoice is None:
        raise no_such("invoice", id)
    if invoice["status"] not in ("open", "uncollectible"):
        raise invalid(f"invoice {id} is {invoice['status']}; only open invoices take payments")
    amount = _int(body.get("amount"), "amount")
    if not 0 < amount <= int(invoice["amount_remaining"]):
        raise invalid(f"amount must be between 1 and {invoice['amount_remaining']}", param="amount")
    previous = {"amount_paid": invoice["amount_paid"], "amount_remaining": invoice["amount_remaining"]}
    invoice["amount_paid"] = int(invoice["amount_paid"]) + amount
    invoice["amount_remaining"] = int(invoice["amount_remaining"]) - amount
    if invoice["amount_remaining"] == 0:
        previous["status"] = invoice["status"]
        previous["paid"] = False
        invoice["status"] = "paid"
        invoice["paid"] = True
        invoice["status_transitions"]["paid_at"] = int(time.time())
    tx.put(SYSTEM, "invoice", id, invoice)
    emit(tx, "invoice.updated", invoice, previous_attributes=previous)
    if invoice["status"] == "paid":
        _subscription_recovers(tx, invoice)
        emit(tx, "invoice.paid", invoice)
    return invoice


def pay_out_of_band(tx: Tx, id: str) -> dict[str, Any]:
    invoice = tx.get(SYSTEM, "invoice", id)
    if invoice is None:
        raise no_such("invoice", id)
    if invoice["status"] not in ("open", "uncollectible"):
        raise invalid(
            f"invoice {id} is {invoice['status']}; only open invoices can be paid",
            code="invoice_already_paid" if invoice["status"] == "paid" else "invoice_not_open",
        )
    invoice["paid_out_of_band"] = True
    _mark_paid(tx, invoice)
    tx.put(SYSTEM, "invoice", id, invoice)
    emit(tx, "invoice.paid", invoice)
    return invoice


def open_dispute(tx: Tx, body: dict[str, Any]) -> dict[str, Any]:
    charge = tx.get(SYSTEM, "charge", str(body.get("charge") or ""))
    if charge is None:
        raise no_such("charge", str(body.get("charge")))
    if charge["status"] != "succeeded":
        raise invalid(f"charge {charge['id']} did not succeed; there is nothing to dispute")
    dispute = {
        "id": new_id("dp"),
        "object": "dispute",
        "amount": charge["amount"],
        "currency": charge["currency"],
        "charge": charge["id"],
        "payment_intent": charge.get("payment_intent"),
        "reason": body.get("reason") or "general",
        "status": "needs_response",
        "is_charge_refundable": False,
        "created": int(time.time()),
        "livemode": False,
        "metadata": {},
    }
    charge["disputed"] = True
    tx.put(SYSTEM, "charge", charge["id"], charge)
    tx.put(SYSTEM, "dispute", dispute["id"], dispute)
    emit(tx, "charge.dispute.created", dispute)
    return dispute


def close_dispute(tx: Tx, id: str, body: dict[str, Any]) -> dict[str, Any]:
    dispute = tx.get(SYSTEM, "dispute", id)
    if dispute is None:
        raise no_such("dispute", id)
    status = body.get("status")
    if status not in ("won", "lost"):
        raise invalid("status must be won or lost", param="status")
    if dispute["status"] in ("won", "lost"):
        raise invalid(f"dispute {id} is already closed ({dispute['status']})")
    previous = {"status": dispute["status"]}
    dispute["status"] = status
    tx.put(SYSTEM, "dispute", id, dispute)
    emit(tx, "charge.dispute.closed", dispute, previous_attributes=previous)
    return dispute


def redeliver(tx: Tx, id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Deliver a stored event again, `times` times, to the endpoints that take it now."""
    event = tx.get(SYSTEM, "event", id)
    if event is None:
        raise no_such("event", id)
    times = _int(body.get("times", 1), "times")
    if not 1 <= times <= 100:
        raise invalid("times must be between 1 and 100", param="times")
    endpoints = [e for e in tx.list(SYSTEM, "webhook_endpoint") if webhooks.matches(e, event["type"])]
    dispatcher = tx.store.webhooks if tx.store is not None else None
    if dispatcher is not None:
        for _ in range(times):
            tx.after_commit.append(lambda: dispatcher.schedule(event, endpoints, reason="redeliver"))
    return {"event": id, "endpoints": [e["id"] for e in endpoints], "deliveries_scheduled": times * len(endpoints)}


ROUTES: list[tuple[str, str, Any]] = [
    ("POST", r"/v1/customers", create_customer),
    ("GET", r"/v1/customers/(?P<id>[^/]+)", get_customer),
    ("POST", r"/v1/customers/(?P<id>[^/]+)", update_customer),
    ("POST", r"/v1/customers/(?P<id>[^/]+)/balance_transactions", create_balance_transaction),
    ("GET", r"/v1/customers/(?P<id>[^/]+)/balance_transactions", list_balance_transactions),
    ("POST", r"/v1/subscriptions", create_subscription),
    ("GET", r"/v1/subscriptions", list_subscriptions),
    ("GET", r"/v1/subscriptions/(?P<id>[^/]+)", get_subscription),
    ("POST", r"/v1/subscriptions/(?P<id>[^/]+)", update_subscription),
    ("POST", r"/v1/invoices", create_invoice),
    ("GET", r"/v1/invoices", list_invoices),
    ("GET", r"/v1/invoices/(?P<id>[^/]+)", get_invoice),
    ("POST", r"/v1/invoices/(?P<id>[^/]+)/finalize", finalize_invoice),
    ("POST", r"/v1/invoices/(?P<id>[^/]+)/void", void_invoice),
    ("POST", r"/v1/invoices/(?P<id>[^/]+)/pay", pay_invoice),
    ("POST", r"/v1/invoices/(?P<id>[^/]+)/mark_uncollectible", mark_uncollectible),
    ("DELETE", r"/v1/subscriptions/(?P<id>[^/]+)", cancel_subscription),
    ("POST", r"/v1/payment_methods/(?P<id>[^/]+)/attach", attach_payment_method),
    ("GET", r"/v1/payment_methods/(?P<id>[^/]+)", get_payment_method),
    ("GET", r"/v1/charges/(?P<id>[^/]+)", get_charge),
    ("GET", r"/v1/payment_intents/(?P<id>[^/]+)", get_payment_intent),
    ("GET", r"/v1/events", list_events),
    ("GET", r"/v1/events/(?P<id>[^/]+)", get_event),
    ("POST", r"/v1/webhook_endpoints", create_webhook_endpoint),
    ("GET", r"/v1/webhook_endpoints", list_webhook_endpoints),
    ("GET", r"/v1/webhook_endpoints/(?P<id>[^/]+)", get_webhook_endpoint),
    ("DELETE", r"/v1/webhook_endpoints/(?P<id>[^/]+)", delete_webhook_endpoint),
    ("POST", r"/v1/invoiceitems", create_invoiceitem),
    ("GET", r"/v1/invoiceitems/(?P<id>[^/]+)", get_invoiceitem),
]


def params_of(method: str, raw: bytes, query: str) -> dict[str, Any]:
    pairs = parse_qsl(query, keep_blank_values=True)
    if method == "POST" and raw:
        pairs += parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    return parse_nested(pairs)


def run(store, handler, method: str, path: str, request: Request, raw: bytes, groups: dict[str, str]) -> Response:
    try:
        params = params_of(method, raw, request.url.query)
    except (UnicodeDecodeError, ValueError):
        err = invalid("Invalid request body: expected application/x-www-form-urlencoded")
        return json_response(err.status, err.body, err.headers)
    key = request.headers.get("idempotency-key") if method == "POST" else None
    if key is not None and len(key) > 255:
        err = invalid("Idempotency-Key must be at most 255 characters", code="idempotency_key_too_long")
        return json_response(err.status, err.body, err.headers)
    account = request.headers.get("stripe-account") or None
    if account is not None and (not account.startswith("acct_") or len(account) > 40):
        # Stripe's exact status and wording for an unknown account are unverified.
        err = error(
            403,
            "invalid_request_error",
            f"The provided key does not have access to account '{account}' (or that account does not exist).",
            code="account_invalid",
        )
        return json_response(err.status, err.body, err.headers)
    # Keys are scoped per account; a header value cannot hold a newline, so the scoped
    # form never collides with a platform key.
    stored_key = f"{account}\n{key}" if key and account else key
    fingerprint = request_hash(method, path, params)
    try:
        with store.tx() as tx:
            if key:
                stored = tx.stored_response(SYSTEM, stored_key)
                if stored is not None:
                    if stored.request_hash != fingerprint:
                        raise error(
                            400,
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with the same parameters they "
                            f"were first used with. Try using a key other than '{key}' if you meant to "
                            "execute a different request.",
                        )
                    headers = {**stored.headers, "Idempotent-Replayed": "true", "Idempotency-Key": key}
                    return Response(stored.body.encode(), stored.status, headers, media_type="application/json")
            request_id = new_id("req")
            token = _current_request.set({"id": request_id, "idempotency_key": key})
            account_token = _current_account.set(account)
            if account:
                tx.insert_fields[SYSTEM] = {"_stripe_account": account}
            try:
                status, body = handler(tx, params, **groups)
            finally:
                _current_request.reset(token)
                _current_account.reset(account_token)
            # A handler answers an error itself (402 card declines) when what it did
            # must be kept: the failed charge is real, and the answer is replayed.
            stored_headers = {"Stripe-Should-Retry": "false"} if status >= 400 else {}
            headers = {"Request-Id": request_id, **stored_headers}
            if key:
                headers["Idempotency-Key"] = key
                tx.store_response(SYSTEM, stored_key, fingerprint, status, body, stored_headers)
        return Response(dumps(body).encode(), status, headers, media_type="application/json")
    except ApiError as exc:
        if key and exc.store:
            with store.tx() as tx:
                if tx.stored_response(SYSTEM, stored_key) is None:
                    tx.store_response(SYSTEM, stored_key, fingerprint, exc.status, exc.body, exc.headers)
        return json_response(exc.status, exc.body, exc.headers)
    except Exception as exc:
        err = error(500, "api_error", f"An unexpected error occurred: {type(exc).__name__}")
        if key:
            with store.tx() as tx:
                if tx.stored_response(SYSTEM, stored_key) is None:
                    tx.store_response(SYSTEM, stored_key, fingerprint, err.status, err.body, err.headers)
        return json_response(err.status, err.body, err.headers)
