"""The sandbox's control plane under `/_sandbox/`: reset, seed (a customer and a
subscription, or a whole reconciliation period: period_seed.py), accounting periods,
faults, summary and raw records. Not part of any real system's protocol."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox import netsuite_api, period_seed, stripe_api
from sandbox.core import SYSTEMS, ApiError, Faults, dumps, json_response
from sandbox.currency import minor_unit
from sandbox.store import Store


class BadRequest(Exception):
    pass


def stripe_control(store: Store, method: str, path: str, body: dict[str, Any], query: Any) -> Any:
    """Control actions on the Stripe stand-in (what a customer, a bank or a card network
    would do); their effects and events are exactly those of the real flows."""
    parts = path.strip("/").split("/")  # e.g. ["stripe", "invoices", "in_1", "partial_payment"]
    if method == "GET" and parts == ["stripe", "deliveries"]:
        with store.tx() as tx:
            deliveries = tx.list("stripe", "webhook_delivery")
        for name in ("event", "type", "endpoint"):
            if query.get(name):
                deliveries = [d for d in deliveries if d.get(name) == query[name]]
        return {"data": deliveries}
    if method != "POST":
        return None
    with store.tx() as tx:
        if parts == ["stripe", "renewal_charge"]:
            return stripe_api.renewal_charge(tx, body)
        if len(parts) == 4 and parts[1] == "invoices" and parts[3] == "partial_payment":
            return stripe_api.partial_payment(tx, parts[2], body)
        if len(parts) == 4 and parts[1] == "invoices" and parts[3] == "pay_out_of_band":
            return stripe_api.pay_out_of_band(tx, parts[2])
        if parts == ["stripe", "disputes"]:
            return stripe_api.open_dispute(tx, body)
        if len(parts) == 4 and parts[1] == "disputes" and parts[3] == "close":
            return stripe_api.close_dispute(tx, parts[2], body)
        if len(parts) == 4 and parts[1] == "events" and parts[3] == "redeliver":
            return stripe_api.redeliver(tx, parts[2], body)
    return None


def seed(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with store.tx() as tx:
        spec = body.get("customer")
        if spec:
            if not spec.get("id"):
                raise BadRequest("customer.id is required")
            customer = tx.get("stripe", "customer", spec["id"]) or stripe_api.new_customer(spec["id"])
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
                pm = stripe_api._attach(tx, str(spec["payment_method"]), customer["id"])
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
            sub_id = spec.get("id") or stripe_api.new_id("sub")
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
                price = stripe_api.make_price(currency, item["product"], unit)
                tx.put("stripe", "price", price["id"], price)
                si = stripe_api.new_item(sub_id, price, int(item.get("quantity", 1)), metadata)
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
                "current_period_start": stripe_api._ts(spec["current_period_start"]),
                "current_period_end": stripe_api._ts(spec["current_period_end"]),
                "created": stripe_api._ts(spec.get("term_start") or spec["current_period_start"]),
                "livemode": False,
            }
            tx.put("stripe", "subscription", sub_id, subscription)
            result["subscription_id"] = sub_id
            result["item_ids"] = [i["id"] for i in items]
            result["subscription"] = subscription
    return result


def summary(store: Store, faults: Faults) -> dict[str, Any]:
    out: dict[str, Any] = {system: {} for system in SYSTEMS}
    with store.tx() as tx:
        rows = tx.types()
    for system, type_, data in rows:
        if system == "stripe" and type_ in ("price", "invoice_number"):
            continue
        if system == "netsuite" and type_ in ("externalId", "collectionCaseHistory"):
            continue
        if system == "salesforce" and type_ == "taskKey":
            continue
        entry = out.setdefault(system, {}).setdefault(type_, {"total": 0, "by_status": Counter()})
        entry["total"] += 1
        status = data.get("status")
        if system == "avatax" and type_ == "transaction":
            status = f"{data.get('type')}/{data.get('status')}"
        if system == "netsuite" and type_ == "accountingPeriod":
            status = "closed" if data.get("closed") else "open"
        if system == "netsuite" and type_ == netsuite_api.CASE_TYPE:
            status = data.get("custrecord_o2c_status")
        if system == "stripe" and type_ == "event":
            status = data.get("type")  # events counted by type
        if system == "stripe" and type_ == "webhook_delivery":
            status = "succeeded" if data.get("succeeded") else "failed"
        if system == "entitlements" and type_ == "restriction":
            status = "restricted" if data.get("restricted") else "unrestricted"
        if system == "salesforce" and type_ == "Account":
            status = "flagged" if data.get("O2c_Dunning_Flag__c") else "unflagged"
        if status is not None:
            entry["by_status"][str(status)] += 1
    for types in out.values():
        for entry in types.values():
            entry["by_status"] = dict(entry["by_status"])
    out["faults"] = faults.list()
    return out


async def handle(request: Request, store: Store, faults: Faults) -> Response:
    path = request.url.path[len("/_sandbox") :].rstrip("/")
    method = request.method
    try:
        body = {}
        if method in ("POST", "PUT"):
            raw = await request.body()
            body = json.loads(raw) if raw else {}
            if not isinstance(body, dict):
                raise BadRequest("JSON object expected")
        if path == "/health" and method == "GET":
            return json_response(200, {"ok": True})
        if path == "/reset" and method == "POST":
            store.reset()
            faults.clear()
            return json_response(200, {"reset": True})
        if path == "/seed" and method == "POST":
            return json_response(200, seed(store, body))
        if path == "/seed/period" and method == "POST":
            return json_response(200, period_seed.seed_period(store, body))
        if path == "/netsuite/periods":
            if method == "POST":
                subsidiary = str(body.get("subsidiary") or "")
                period = str(body.get("period") or "")
                if not subsidiary or len(period) != 7 or period[4] != "-":
                    raise BadRequest("subsidiary and period (YYYY-MM) are required")
                record = {"subsidiary": subsidiary, "period": period, "closed": bool(body.get("closed", True))}
                with store.tx() as tx:
                    tx.put("netsuite", "accountingPeriod", netsuite_api.period_key(subsidiary, period), record)
                return json_response(200, record)
            if method == "GET":
                with store.tx() as tx:
                    return json_response(200, {"data": tx.list("netsuite", "accountingPeriod")})
        if path == "/faults":
            if method == "POST":
                return json_response(200, faults.add(body).to_json())
            if method == "GET":
                return json_response(200, {"data": faults.list()})
            if method == "DELETE":
                faults.clear()
                return json_response(200, {"deleted": True})
        if path.startswith("/faults/") and method == "DELETE":
            found = faults.remove(path[len("/faults/") :])
            return json_response(200 if found else 404, {"deleted": found})
        if path == "/summary" and method == "GET":
            return Response(dumps(summary(store, faults)), 200, media_type="application/json")
        if path.startswith("/stripe/"):
            out = stripe_control(store, method, path, body, request.query_params)
            if out is not None:
                return Response(dumps(out), 200, media_type="application/json")
        if path.startswith("/records/") and method == "GET":
            parts = path[len("/records/") :].split("/")
            if len(parts) != 2:
                raise BadRequest("use /_sandbox/records/{system}/{type}")
            with store.tx() as tx:
                return Response(dumps({"data": tx.list(parts[0], parts[1])}), 200, media_type="application/json")
    except ApiError as exc:
        return json_response(exc.status, exc.body, exc.headers)
    except (BadRequest, ValueError, KeyError, json.JSONDecodeError) as exc:
        return json_response(400, {"error": str(exc)})
    return json_response(404, {"error": f"no control endpoint {method} {request.url.path}"})
