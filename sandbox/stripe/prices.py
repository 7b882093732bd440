"""Prices: the recurring price objects subscriptions carry, from `price_data` or stored."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from sandbox.core import new_id
from sandbox.currency import minor_unit
from sandbox.store import Tx
from sandbox.stripe import SYSTEM
from sandbox.stripe.accounts import current_account
from sandbox.stripe.errors import invalid, missing, no_such
from sandbox.stripe.params import decimal_amount, integer, merge_metadata


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


def price_from(data: Any, param: str, currency: str, interval: str) -> dict[str, Any]:
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
        amount = decimal_amount(data["unit_amount_decimal"], f"{param}[unit_amount_decimal]")
    elif "unit_amount" in data:
        amount = Decimal(integer(data["unit_amount"], f"{param}[unit_amount]"))
    else:
        raise missing(f"{param}[unit_amount]")
    if amount < 0:
        raise invalid("unit_amount must not be negative", param=f"{param}[unit_amount_decimal]")
    recurring = data.get("recurring") or {}
    return make_price(currency, data["product"], amount, (recurring or {}).get("interval", interval))


PRICE_PARAMS = frozenset(
    {"currency", "product", "unit_amount", "unit_amount_decimal", "recurring", "metadata", "nickname", "active"}
)
RECURRING_PARAMS = frozenset({"interval", "interval_count", "usage_type", "meter"})


def metered_price(
    currency: str, product: str, unit_amount_decimal: Decimal, meter_id: str, interval: str = "month"
) -> dict[str, Any]:
    price = make_price(currency, product, unit_amount_decimal, interval)
    price["recurring"].update({"usage_type": "metered", "meter": meter_id, "aggregate_usage": None})
    return price


def create_price(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    """`POST /v1/prices`: a recurring price, licensed or metered (`recurring[usage_type]=
    metered` with `recurring[meter]`, the meter whose usage it bills; the sandbox knows no
    legacy usage records, so a metered price needs its meter). Products are named, not
    stored: any product id is taken."""
    for name in params:
        if name not in PRICE_PARAMS:
            raise invalid(f"Received unknown parameter: {name}", param=name, code="parameter_unknown")
    for name in ("currency", "product"):
        if not params.get(name):
            raise missing(name)
    currency = str(params["currency"]).lower()
    try:
        minor_unit(currency.upper())
    except ValueError:
        raise invalid(f"Invalid currency: {currency}", param="currency") from None
    if "unit_amount_decimal" in params:
        amount = decimal_amount(params["unit_amount_decimal"], "unit_amount_decimal")
    elif "unit_amount" in params:
        amount = Decimal(integer(params["unit_amount"], "unit_amount"))
    else:
        raise missing("unit_amount")
    if amount < 0:
        raise invalid("unit_amount must not be negative", param="unit_amount")
    recurring = params.get("recurring")
    if not isinstance(recurring, dict) or not recurring.get("interval"):
        raise missing("recurring[interval]")  # the sandbox keeps recurring prices only
    for name in recurring:
        if name not in RECURRING_PARAMS:
            raise invalid(f"Received unknown parameter: recurring[{name}]", param=f"recurring[{name}]")
    interval = recurring["interval"]
    if interval not in ("day", "week", "month", "year"):
        raise invalid(f"Invalid recurring[interval]: {interval}", param="recurring[interval]")
    usage_type = recurring.get("usage_type", "licensed")
    if usage_type == "metered":
        meter_id = str(recurring.get("meter") or "")
        if not meter_id:
            raise missing("recurring[meter]")
        meter = tx.get(SYSTEM, "meter", meter_id)
        if meter is None or (meter.get("_stripe_account") or None) != current_account.get():
            raise no_such("billing.meter", meter_id, status=400, param="recurring[meter]")
        price = metered_price(currency, str(params["product"]), amount, meter_id, interval)
    elif usage_type == "licensed":
        price = make_price(currency, str(params["product"]), amount, interval)
    else:
        raise invalid(f"Invalid recurring[usage_type]: {usage_type}", param="recurring[usage_type]")
    price["recurring"]["interval_count"] = integer(recurring.get("interval_count", 1), "recurring[interval_count]")
    price["metadata"] = merge_metadata({}, params.get("metadata"))
    price["nickname"] = params.get("nickname") or None
    price["created"] = int(time.time())
    price["livemode"] = False
    tx.put(SYSTEM, "price", price["id"], price)
    return 200, price


def get_price(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    price = tx.get(SYSTEM, "price", id)
    if price is None:
        raise no_such("price", id)
    return 200, price
