"""Invoice lines that bill a meter: one per metered subscription item, its quantity the
meter's aggregate of the customer's events with timestamps in the line's period [start,
end), its amount quantity x the price's unit amount (`unit_amount_decimal`, exact, rounded
half up to the minor unit only at the end; Stripe's rounding here is unverified). A
negative total bills as quantity 0, as Stripe does."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sandbox.core import new_id
from sandbox.store import Tx
from sandbox.stripe import SYSTEM
from sandbox.stripe.meter_store import aggregate


def is_metered(price: dict[str, Any]) -> bool:
    return (price.get("recurring") or {}).get("usage_type") == "metered"


def unit_amount(price: dict[str, Any]) -> Decimal:
    return Decimal(str(price.get("unit_amount_decimal") or price.get("unit_amount") or 0))


def _quantity(tx: Tx, account: str, customer: str, price: dict[str, Any], start: int, end: int) -> int:
    meter = tx.get(SYSTEM, "meter", str((price.get("recurring") or {}).get("meter") or ""))
    if meter is None:
        return 0
    value, _ = aggregate(
        tx, account, meter["event_name"], customer, start, end, meter["default_aggregation"]["formula"]
    )
    return max(value, 0)


def _price_line(line: dict[str, Any], quantity: int) -> None:
    unit = unit_amount(line["price"])
    line["quantity"] = quantity
    line["amount"] = int((unit * quantity).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    line["unit_amount_excluding_tax"] = format(unit.normalize(), "f")


def metered_line(
    tx: Tx, invoice: dict[str, Any], item: dict[str, Any], start: int, end: int, account: str
) -> dict[str, Any]:
    price = item["price"]
    line: dict[str, Any] = {
        "id": new_id("il"),
        "object": "line_item",
        "type": "subscription",
        "subscription": invoice.get("subscription"),
        "subscription_item": item["id"],
        "currency": invoice["currency"],
        "description": (item.get("metadata") or {}).get("description") or price.get("nickname") or price["product"],
        "metadata": dict(item.get("metadata") or {}),
        "period": {"start": start, "end": end},
        "price": price,
        "proration": False,
    }
    _price_line(line, _quantity(tx, account, invoice["customer"], price, start, end))
    return line


def requantify(tx: Tx, invoice: dict[str, Any]) -> bool:
    """Measure the invoice's metered lines again (usage sent during the grace counts).
    Returns whether the invoice has any."""
    account = invoice.get("_stripe_account") or ""
    found = False
    for line in invoice["lines"]["data"]:
        price = line.get("price") or {}
        if line.get("type") == "subscription" and is_metered(price):
            found = True
            period = line["period"]
            quantity = _quantity(tx, account, invoice["customer"], price, int(period["start"]), int(period["end"]))
            _price_line(line, quantity)
    return found
