"""What happens outside Stripe's API and shows in it (the control plane calls these):
renewal charges, bank payments, disputes (sandbox/stripe/disputes.py), and redelivering
events."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from sandbox import webhooks
from sandbox.core import ApiError
from sandbox.store import Tx
from sandbox.stripe import SYSTEM
from sandbox.stripe.collection import charge_invoice, subscription_recovers
from sandbox.stripe.disputes import close_dispute, open_dispute
from sandbox.stripe.errors import invalid, no_such
from sandbox.stripe.events import emit
from sandbox.stripe.invoices import create_invoice, create_invoiceitem, finalize_invoice
from sandbox.stripe.params import integer


def _monthly_minor(subscription: dict[str, Any]) -> int:
    total = Decimal(0)
    for item in subscription["items"]["data"]:
        price = item.get("price") or {}
        unit = Decimal(str(price.get("unit_amount_decimal") or price.get("unit_amount") or 0))
        total += unit * int(item.get("quantity") or 0)
    return int(total.quantize(Decimal(1)))


__all__ = ["close_dispute", "open_dispute", "partial_payment", "redeliver", "renewal_charge"]


def renewal_charge(tx: Tx, body: dict[str, Any]) -> dict[str, Any]:
    """What Stripe does when a subscription renews: a `subscription_cycle` invoice,
    finalized, then charged to the default payment method."""
    sub_id = body.get("subscription")
    subscription = tx.get(SYSTEM, "subscription", sub_id or "")
    if subscription is None:
        raise no_such("subscription", str(sub_id))
    amount = integer(body["amount"], "amount") if body.get("amount") is not None else _monthly_minor(subscription)
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
    drafted = tx.get(SYSTEM, "invoice", invoice["id"]) or invoice  # with the item on it
    tx.put(SYSTEM, "invoice", invoice["id"], {**drafted, "billing_reason": "subscription_cycle"})
    invoice = finalize_invoice(tx, {}, invoice["id"])[1]  # announces it: invoice.finalized
    try:
        charge_invoice(tx, invoice)
    except ApiError:
        pass  # no payment method: the invoice stays open, as with a customer who has none
    charged = tx.get(SYSTEM, "invoice", invoice["id"])
    assert charged is not None  # stored above, in this unit of work
    return charged


def partial_payment(tx: Tx, id: str, body: dict[str, Any]) -> dict[str, Any]:
    invoice = tx.get(SYSTEM, "invoice", id)
    if invoice is None:
        raise no_such("invoice", id)
    if invoice["status"] not in ("open", "uncollectible"):
        raise invalid(f"invoice {id} is {invoice['status']}; only open invoices take payments")
    amount = integer(body.get("amount"), "amount")
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
        subscription_recovers(tx, invoice)
        emit(tx, "invoice.paid", invoice)
    return invoice


def redeliver(tx: Tx, id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Deliver a stored event again, `times` times, to the endpoints that take it now."""
    event = tx.get(SYSTEM, "event", id)
    if event is None:
        raise no_such("event", id)
    times = integer(body.get("times", 1), "times")
    if not 1 <= times <= 100:
        raise invalid("times must be between 1 and 100", param="times")
    endpoints = [e for e in tx.list(SYSTEM, "webhook_endpoint") if webhooks.matches(e, event["type"])]
    dispatcher = tx.store.webhooks if tx.store is not None else None
    if dispatcher is not None:
        for _ in range(times):
            tx.after_commit.append(lambda: dispatcher.schedule(event, endpoints, reason="redeliver"))
    return {"event": id, "endpoints": [e["id"] for e in endpoints], "deliveries_scheduled": times * len(endpoints)}
