"""Collecting an invoice: one payment attempt on a card, or a payment outside Stripe."""

from __future__ import annotations

import time
from typing import Any

from sandbox.core import new_id
from sandbox.store import Tx
from sandbox.stripe import SYSTEM
from sandbox.stripe.errors import invalid, no_such
from sandbox.stripe.events import emit
from sandbox.stripe.payments import TEST_PAYMENT_METHODS
from sandbox.stripe.refunds import balance_transaction


def payment_intent_of(tx: Tx, invoice: dict[str, Any]) -> dict[str, Any]:
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


def mark_paid(tx: Tx, invoice: dict[str, Any]) -> None:
    invoice["amount_paid"] = int(invoice["amount_paid"]) + int(invoice["amount_remaining"])
    invoice["amount_remaining"] = 0
    invoice["status"] = "paid"
    invoice["paid"] = True
    invoice["next_payment_attempt"] = None
    invoice["status_transitions"]["paid_at"] = int(time.time())
    subscription_recovers(tx, invoice)


def subscription_recovers(tx: Tx, invoice: dict[str, Any]) -> None:
    subscription = tx.get(SYSTEM, "subscription", invoice.get("subscription") or "")
    if subscription is not None and subscription["status"] == "past_due":
        subscription["status"] = "active"
        tx.put(SYSTEM, "subscription", subscription["id"], subscription)
        emit(tx, "customer.subscription.updated", subscription, previous_attributes={"status": "past_due"})


def charge_invoice(tx: Tx, invoice: dict[str, Any], pm_id: str | None = None) -> tuple[int, Any]:
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
    intent = payment_intent_of(tx, invoice)
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
        "balance_transaction": None,
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
        # The money reaches the balance (fees not modelled); charge.succeeded names it.
        charge["balance_transaction"] = balance_transaction(
            tx, amount=amount, currency=charge["currency"], type_="charge", source=charge["id"]
        )["id"]
        tx.put(SYSTEM, "charge", charge["id"], charge)
        intent.update({"status": "succeeded", "amount_received": amount, "last_payment_error": None})
        mark_paid(tx, invoice)
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
    mark_paid(tx, invoice)
    tx.put(SYSTEM, "invoice", id, invoice)
    emit(tx, "invoice.paid", invoice)
    return invoice
