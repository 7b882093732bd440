"""A subset of the Stripe API (version 2024-06-20): customers, subscriptions,
invoices, invoice items, customer balance transactions.

Idempotency as Stripe documents it: the first response for an `Idempotency-Key`
(status and body, 500s included once execution began) is stored and replayed with
`Idempotent-Replayed: true`; the same key with other parameters answers 400
`idempotency_error`; requests refused before execution (auth, validation 400s, 429)
store nothing. Simplification: 4xx answers are never stored (Stripe stores some
4xx raised after execution began).
"""

from __future__ import annotations

import base64
import time
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from o2c.adapters.sandbox.core import ApiError, json_response, new_id, parse_nested, request_hash, dumps
from o2c.adapters.sandbox.store import Tx
from o2c.canonical.money import minor_unit

SYSTEM = "stripe"


# -- errors -------------------------------------------------------------------------------


def error(status: int, type_: str, message: str, *, code: str | None = None, param: str | None = None,
          decline_code: str | None = None, store: bool = False) -> ApiError:
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
        except Exception:  # noqa: BLE001 - malformed header is just unauthenticated
            key = ""
    if key.startswith("sk_test_"):
        return None
    shown = (key[:8] + "*" * 4) if key else ""
    message = (f"Invalid API Key provided: {shown}" if key else
               "You did not provide an API key. Provide it in the Authorization header.")
    err = error(401, "invalid_request_error", message)
    return json_response(401, err.body, err.headers)


# -- helpers ------------------------------------------------------------------------------


def _ts(d: date | str) -> int:
    if isinstance(d, str):
        d = date.fromisoformat(d)
    return int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp())


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
    customer = _customer_fields(customer, params)
    tx.put(SYSTEM, "customer", id, customer)
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
        raise invalid(f"The price currency {data['currency']} does not match the subscription currency {currency}",
                      param=f"{param}[currency]")
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


def update_subscription(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    subscription = tx.get(SYSTEM, "subscription", id)
    if subscription is None:
        raise no_such("subscription", id)
    if subscription["status"] == "canceled":
        raise invalid(f"This subscription is canceled: {id}", param="items")
    behavior = params.get("proration_behavior", "create_prorations")
    if behavior not in ("create_prorations", "always_invoice", "none"):
        raise invalid(f"Invalid proration_behavior: {behavior}", param="proration_behavior")
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
            items.append(new_item(id, price, 1 if quantity is None else quantity,
                                  _metadata({}, spec.get("metadata"), f"{param}[metadata]")))
        else:
            target = next(i for i in items if i["id"] == item["id"])
            if price is not None:
                target["price"] = price
            if quantity is not None:
                target["quantity"] = quantity
            target["metadata"] = _metadata(target.get("metadata", {}), spec.get("metadata"), f"{param}[metadata]")
    subscription["items"] = _list(f"/v1/subscription_items?subscription={id}", items)
    subscription["metadata"] = _metadata(subscription.get("metadata", {}), params.get("metadata"))
    tx.put(SYSTEM, "subscription", id, subscription)
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
    customer = tx.get(SYSTEM, "customer", customer_id)
    if customer is None:
        raise no_such("customer", customer_id, status=400, param="customer")
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
        "total": 0,
        "amount_due": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "starting_balance": 0,
        "ending_balance": None,
        "created": int(time.time()),
        "status_transitions": {"finalized_at": None, "paid_at": None, "voided_at": None},
        "livemode": False,
    }
    if behavior == "include":
        for item in tx.list(SYSTEM, "invoiceitem"):
            if item["customer"] == customer_id and not item.get("invoice") and \
                    (not subscription_id or item.get("subscription") in (None, subscription_id)):
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


def list_invoices(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    limit = _int(params.get("limit", 10), "limit")
    if not 1 <= limit <= 100:
        raise invalid("limit must be between 1 and 100", param="limit")
    invoices = list(reversed(tx.list(SYSTEM, "invoice")))  # newest first, as Stripe lists
    for name in ("customer", "subscription", "status"):
        if params.get(name):
            invoices = [i for i in invoices if i.get(name) == params[name]]
    after = params.get("starting_after")
    if after:
        ids = [i["id"] for i in invoices]
        if after not in ids:
            raise no_such("invoice", after, status=400, param="starting_after")
        invoices = invoices[ids.index(after) + 1:]
    return 200, _list("/v1/invoices", invoices[:limit], has_more=len(invoices) > limit)


def finalize_invoice(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    invoice = tx.get(SYSTEM, "invoice", id)
    if invoice is None:
        raise no_such("invoice", id)
    if invoice["status"] != "draft":
        raise invalid(f"This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                      code="invoice_not_editable")
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
        raise invalid(f"You can only pass in open invoices. This invoice is {invoice['status']}.",
                      code="invoice_not_open" if invoice["status"] != "void" else "invoice_already_voided")
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
    if tx.get(SYSTEM, "customer", customer_id) is None:
        raise no_such("customer", customer_id, status=400, param="customer")
    invoice = None
    if params.get("invoice"):
        invoice = tx.get(SYSTEM, "invoice", params["invoice"])
        if invoice is None:
            raise no_such("invoice", params["invoice"], status=400, param="invoice")
        if invoice["status"] != "draft":
            raise invalid(f"Invoice {invoice['id']} is not a draft; items can only be added to drafts.",
                          param="invoice", code="invoice_not_editable")
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


ROUTES: list[tuple[str, str, Any]] = [
    ("POST", r"/v1/customers", create_customer),
    ("GET", r"/v1/customers/(?P<id>[^/]+)", get_customer),
    ("POST", r"/v1/customers/(?P<id>[^/]+)", update_customer),
    ("POST", r"/v1/customers/(?P<id>[^/]+)/balance_transactions", create_balance_transaction),
    ("GET", r"/v1/customers/(?P<id>[^/]+)/balance_transactions", list_balance_transactions),
    ("GET", r"/v1/subscriptions/(?P<id>[^/]+)", get_subscription),
    ("POST", r"/v1/subscriptions/(?P<id>[^/]+)", update_subscription),
    ("POST", r"/v1/invoices", create_invoice),
    ("GET", r"/v1/invoices", list_invoices),
    ("GET", r"/v1/invoices/(?P<id>[^/]+)", get_invoice),
    ("POST", r"/v1/invoices/(?P<id>[^/]+)/finalize", finalize_invoice),
    ("POST", r"/v1/invoices/(?P<id>[^/]+)/void", void_invoice),
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
    fingerprint = request_hash(method, path, params)
    try:
        with store.tx() as tx:
            if key:
                stored = tx.stored_response(SYSTEM, key)
                if stored is not None:
                    if stored.request_hash != fingerprint:
                        raise error(
                            400, "idempotency_error",
                            "Keys for idempotent requests can only be used with the same parameters they "
                            f"were first used with. Try using a key other than '{key}' if you meant to "
                            "execute a different request.",
                        )
                    headers = {**stored.headers, "Idempotent-Replayed": "true", "Idempotency-Key": key}
                    return Response(stored.body.encode(), stored.status, headers, media_type="application/json")
            status, body = handler(tx, params, **groups)
            headers = {"Request-Id": new_id("req")}
            if key:
                headers["Idempotency-Key"] = key
                tx.store_response(SYSTEM, key, fingerprint, status, body, {})
            return Response(dumps(body).encode(), status, headers, media_type="application/json")
    except ApiError as exc:
        if key and exc.store:
            with store.tx() as tx:
                if tx.stored_response(SYSTEM, key) is None:
                    tx.store_response(SYSTEM, key, fingerprint, exc.status, exc.body, exc.headers)
        return json_response(exc.status, exc.body, exc.headers)
    except Exception as exc:  # noqa: BLE001 - an internal failure after execution began
        err = error(500, "api_error", f"An unexpected error occurred: {type(exc).__name__}")
        if key:
            with store.tx() as tx:
                if tx.stored_response(SYSTEM, key) is None:
                    tx.store_response(SYSTEM, key, fingerprint, err.status, err.body, err.headers)
        return json_response(err.status, err.body, err.headers)
