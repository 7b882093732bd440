"""`POST /_sandbox/seed`: Stripe meters, a customer (with address, dunning metadata and a
payment method) and a subscription on it, written as the Stripe stand-in keeps them.

`meters`: a list of `{event_name, display_name?, formula? (sum|count|last), customer_key?,
value_key?}`, created as `POST /v1/billing/meters` would (an event name already metered is
kept as it is). A subscription item with `meter` (a seeded or existing meter's event name)
is metered: its price is `recurring[usage_type]=metered` on that meter, priced per unit by
`unit_amount_decimal` (minor units, sub-cent allowed) or `unit_price` (major units), and it
has no quantity. The answer adds `meter_ids` (event name -> mtr_...) and `price_ids`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sandbox.control import BadRequest
from sandbox.core import ApiError, new_id
from sandbox.currency import minor_unit
from sandbox.store import Store, Tx
from sandbox.stripe.accounts import current_account
from sandbox.stripe.customers import new_customer
from sandbox.stripe.meters import create_meter, meter_by_event_name
from sandbox.stripe.params import timestamp
from sandbox.stripe.payments import attach
from sandbox.stripe.prices import make_price, metered_price
from sandbox.stripe.subscriptions import new_item


def _seed_meters(tx: Tx, specs: Any) -> dict[str, str]:
    if not isinstance(specs, list):
        raise BadRequest("meters is a list of {event_name, display_name, formula, customer_key, value_key}")
    ids = {}
    for index, spec in enumerate(specs):
        if not isinstance(spec, dict) or not spec.get("event_name"):
            raise BadRequest(f"meters[{index}].event_name is required")
        known = set(spec) - {"event_name", "display_name", "formula", "customer_key", "value_key"}
        if known:
            raise BadRequest(f"meters[{index}] has unknown field(s): {', '.join(sorted(known))}")
        existing = meter_by_event_name(tx, str(spec["event_name"]))
        if existing is None:
            params: dict[str, Any] = {
                "event_name": str(spec["event_name"]),
                "display_name": str(spec.get("display_name") or spec["event_name"]),
                "default_aggregation": {"formula": str(spec.get("formula") or "sum")},
            }
            if spec.get("customer_key"):
                params["customer_mapping"] = {"type": "by_id", "event_payload_key": str(spec["customer_key"])}
            if spec.get("value_key"):
                params["value_settings"] = {"event_payload_key": str(spec["value_key"])}
            try:
                _, existing = create_meter(tx, params)
            except ApiError as exc:
                raise BadRequest(f"meters[{index}]: {exc.body['error']['message']}") from None
        ids[existing["event_name"]] = existing["id"]
    return ids


def seed(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    """With `stripe_account` (acct_...), everything is seeded in that connected account."""
    account = str(body.get("stripe_account") or "") or None
    if account is not None and (not account.startswith("acct_") or len(account) > 40):
        raise BadRequest("stripe_account is empty (the platform) or a Connect account id acct_...")
    token = current_account.set(account)
    try:
        return _seed(store, body, account)
    finally:
        current_account.reset(token)


def _seed(store: Store, body: dict[str, Any], account: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with store.tx() as tx:
        if account:
            tx.insert_fields["stripe"] = {"_stripe_account": account}
        if "meters" in body:
            result["meter_ids"] = _seed_meters(tx, body["meters"])
        spec = body.get("customer")
        if spec:
            if not spec.get("id"):
                raise BadRequest("customer.id is required")
            customer = tx.get("stripe", "customer", spec["id"]) or new_customer(spec["id"])
            address = spec.get("address") or {}
            customer.update(
                {
                    "name": spec.get("name"),
                    "email": spec.get("email"),
                    "address": {
                        "line1": address.get("line1") or None,
                        "line2": address.get("line2") or None,
                        "city": address.get("city") or None,
                        "state": address.get("region") or address.get("state") or None,
                        "postal_code": address.get("postal_code") or None,
                        "country": address.get("country") or None,
                    },
                    "metadata": {
                        **customer.get("metadata", {}),
                        **(spec.get("metadata") or {}),
                        **({"legal_entity": spec["legal_entity"]} if spec.get("legal_entity") else {}),
                    },
                }
            )
            # Dunning: segment, ARR (decimal string, major units of the customer's currency)
            # and success owner live in the customer's metadata.
            for name in ("segment", "arr", "success_owner"):
                if spec.get(name) not in (None, ""):
                    customer["metadata"][name] = str(spec[name])
            if spec.get("currency"):
                customer["currency"] = spec["currency"].lower()
            tx.put("stripe", "customer", customer["id"], customer)
            if spec.get("payment_method"):
                pm = attach(tx, str(spec["payment_method"]), customer["id"])
                customer["invoice_settings"] = {
                    **(customer.get("invoice_settings") or {}),
                    "default_payment_method": pm["id"],
                }
                tx.put("stripe", "customer", customer["id"], customer)
                result["payment_method_id"] = pm["id"]
            result["customer_id"] = customer["id"]
            result["customer"] = customer
        spec = body.get("subscription")
        if spec:
            customer_id = spec.get("customer") or result.get("customer_id")
            if not customer_id or tx.get("stripe", "customer", customer_id) is None:
                raise BadRequest("subscription needs an existing customer (seed one with it)")
            for name in ("currency", "current_period_start", "current_period_end"):
                if not spec.get(name):
                    raise BadRequest(f"subscription.{name} is required")
            currency = spec["currency"].upper()
            sub_id = spec.get("id") or new_id("sub")
            items = []
            for index, item in enumerate(spec.get("items") or []):
                if not item.get("product"):
                    raise BadRequest(f"subscription.items[{index}].product is required")
                if item.get("unit_amount_decimal") is not None:
                    unit = Decimal(str(item["unit_amount_decimal"]))
                elif item.get("unit_price") is not None:
                    unit = Decimal(str(item["unit_price"])).scaleb(minor_unit(currency))
                else:
                    raise BadRequest(f"subscription.items[{index}] needs unit_amount_decimal or unit_price")
                metadata = {"description": item.get("description") or item["product"]}
                if item.get("discount_percent") not in (None, "", 0, "0"):
                    metadata["discount_percent"] = str(item["discount_percent"])
                if item.get("meter"):
                    meter = meter_by_event_name(tx, str(item["meter"]))
                    if meter is None:
                        raise BadRequest(f"subscription.items[{index}].meter names no meter: {item['meter']}")
                    if item.get("quantity") is not None:
                        raise BadRequest(f"subscription.items[{index}] is metered: it has no quantity")
                    price = metered_price(currency, item["product"], unit, meter["id"])
                else:
                    price = make_price(currency, item["product"], unit)
                tx.put("stripe", "price", price["id"], price)
                result.setdefault("price_ids", []).append(price["id"])
                si = new_item(sub_id, price, int(item.get("quantity", 1)), metadata)
                if item.get("id"):
                    si["id"] = item["id"]
                items.append(si)
            metadata = {k: str(v) for k, v in (spec.get("metadata") or {}).items()}
            for name in ("contract_id", "term_start", "term_end"):
                if spec.get(name):
                    metadata[name] = str(spec[name])
            subscription = {
                "id": sub_id,
                "object": "subscription",
                "customer": customer_id,
                "status": spec.get("status", "active"),
                "currency": currency.lower(),
                "items": {
                    "object": "list",
                    "url": f"/v1/subscription_items?subscription={sub_id}",
                    "has_more": False,
                    "data": items,
                },
                "metadata": metadata,
                "current_period_start": timestamp(spec["current_period_start"]),
                "current_period_end": timestamp(spec["current_period_end"]),
                "created": timestamp(spec.get("term_start") or spec["current_period_start"]),
                "livemode": False,
            }
            tx.put("stripe", "subscription", sub_id, subscription)
            result["subscription_id"] = sub_id
            result["item_ids"] = [i["id"] for i in items]
            result["subscription"] = subscription
    return result
