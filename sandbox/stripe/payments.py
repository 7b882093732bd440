"""Payment methods (Stripe's test cards), charges and payment intents."""

from __future__ import annotations

import hashlib
import time
from datetime import date
from typing import Any

from sandbox.core import new_id
from sandbox.store import Tx
from sandbox.stripe import SYSTEM
from sandbox.stripe.errors import invalid, missing, no_such
from sandbox.stripe.events import emit

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


def card_fingerprint(token: str, customer_id: str) -> str:
    """Stripe's card.fingerprint: the same for one card number wherever it is attached. Here
    a test token attached to a customer stands for that customer's own card: in Stripe every
    customer given `pm_card_visa` shares one fingerprint, which would make the card networks'
    per-card retry limit count every test customer's retries together, across runs. The same
    customer's cards from one token share a fingerprint, as one card number does."""
    return hashlib.sha256(f"sandbox-card:{token}:{customer_id}".encode()).hexdigest()[:16]


def _new_payment_method(token: str, customer_id: str) -> dict[str, Any]:
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
            "fingerprint": card_fingerprint(token, customer_id),
        },
        "billing_details": {"address": None, "email": None, "name": None, "phone": None},
        "customer": None,
        "created": int(time.time()),
        "livemode": False,
        "metadata": {},
        # Sandbox-only: which test card this is (decides how charges on it end).
        "sandbox_test_card": token,
    }


def attach(tx: Tx, pm_id: str, customer_id: str, *, param: str = "payment_method") -> dict[str, Any]:
    """Attach a payment method (or, as Stripe's test tokens do, a fresh one made from a
    test token such as `pm_card_visa`) to a customer. Emits `payment_method.attached`."""
    pm: dict[str, Any] | None
    if pm_id in TEST_PAYMENT_METHODS:
        pm = _new_payment_method(pm_id, customer_id)
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
    return 200, attach(tx, id, customer_id, param="id")


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
