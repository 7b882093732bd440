"""Prices: the recurring price objects subscriptions carry, from `price_data` or stored."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sandbox.core import new_id
from sandbox.stripe.errors import invalid, missing
from sandbox.stripe.params import decimal_amount, integer


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
