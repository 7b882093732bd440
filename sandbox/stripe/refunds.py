"""Refunds (`/v1/refunds`) and the balance transactions money movements leave behind."""

from __future__ import annotations

import time
from typing import Any

from sandbox.core import new_id
from sandbox.store import Tx
from sandbox.stripe import SYSTEM
from sandbox.stripe.errors import invalid, missing, no_such
from sandbox.stripe.events import emit
from sandbox.stripe.params import integer, merge_metadata

REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
REFUND_PARAMS = frozenset({"charge", "payment_intent", "amount", "reason", "metadata", "expand"})


def balance_transaction(
    tx: Tx,
    *,
    amount: int,
    currency: str,
    type_: str,
    source: str,
    fee: int = 0,
    fee_description: str = "",
    reporting_category: str = "",
) -> dict[str, Any]:
    """A movement of the account's Stripe balance: `amount` gross (negative = out),
    `fee` what Stripe kept on top, `net` = amount - fee."""
    txn: dict[str, Any] = {
        "id": new_id("txn"),
        "object": "balance_transaction",
        "amount": amount,
        "currency": currency,
        "fee": fee,
        "fee_details": (
            [{"amount": fee, "currency": currency, "description": fee_description, "type": "stripe_fee"}] if fee else []
        ),
        "net": amount - fee,
        "type": type_,
        "reporting_category": reporting_category or type_,
        "source": source,
        "status": "available",
        "created": int(time.time()),
    }
    tx.put(SYSTEM, "balance_transaction", txn["id"], txn)
    return txn


def unrefunded(charge: dict[str, Any]) -> int:
    return int(charge["amount"]) - int(charge.get("amount_refunded") or 0)


def refund_charge(
    tx: Tx, charge: dict[str, Any], amount: int | None, *, reason: str | None = None, metadata: Any = None
) -> dict[str, Any]:
    """Give back `amount` (default: all that is unrefunded) of a succeeded charge, as
    `POST /v1/refunds` and a credit note's `refund_amount` both do."""
    if charge["status"] != "succeeded":
        raise invalid(f"Charge {charge['id']} has not succeeded; there is nothing to refund.", param="charge")
    if charge.get("disputed"):
        # Stripe's answer for a charge under a chargeback.
        raise invalid(f"Charge {charge['id']} has been charged back; cannot issue a refund.", code="charge_disputed")
    left = unrefunded(charge)
    if left <= 0:
        raise invalid(f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
    amount = left if amount is None else amount
    if amount <= 0:
        raise invalid("Refund amount must be positive.", param="amount")
    if amount > left:
        # Wording after Stripe's; the code is unverified.
        raise invalid(
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
            param="amount",
            code="amount_too_large",
        )
    if reason is not None and reason not in REFUND_REASONS:
        raise invalid(f"Invalid reason: must be one of {', '.join(REFUND_REASONS)}", param="reason")
    refund: dict[str, Any] = {
        "id": new_id("re"),
        "object": "refund",
        "amount": amount,
        "charge": charge["id"],
        "currency": charge["currency"],
        "payment_intent": charge.get("payment_intent"),
        "reason": reason,
        "status": "succeeded",
        "metadata": merge_metadata({}, metadata),
        "created": int(time.time()),
    }
    txn = balance_transaction(tx, amount=-amount, currency=charge["currency"], type_="refund", source=refund["id"])
    refund["balance_transaction"] = txn["id"]
    tx.put(SYSTEM, "refund", refund["id"], refund)
    previous = {"amount_refunded": charge.get("amount_refunded") or 0, "refunded": bool(charge.get("refunded"))}
    charge["amount_refunded"] = int(charge.get("amount_refunded") or 0) + amount
    charge["refunded"] = charge["amount_refunded"] == int(charge["amount"])
    tx.put(SYSTEM, "charge", charge["id"], charge)
    emit(tx, "refund.created", refund)
    emit(tx, "charge.refunded", charge, previous_attributes=previous)
    return refund


def _charge_of_intent(tx: Tx, intent_id: str) -> dict[str, Any]:
    intent = tx.get(SYSTEM, "payment_intent", intent_id)
    if intent is None:
        raise no_such("payment_intent", intent_id, status=400, param="payment_intent")
    charge = tx.get(SYSTEM, "charge", intent.get("latest_charge") or "")
    if charge is None or charge["status"] != "succeeded":
        raise invalid(f"PaymentIntent {intent_id} has no succeeded charge to refund.", param="payment_intent")
    return charge


def create_refund(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    for name in params:
        if name not in REFUND_PARAMS:
            raise invalid(f"Received unknown parameter: {name}", param=name, code="parameter_unknown")
    charge_id, intent_id = params.get("charge"), params.get("payment_intent")
    if not charge_id and not intent_id:
        raise missing("charge")
    if charge_id and intent_id:
        raise invalid("You can pass either charge or payment_intent, not both.", param="payment_intent")
    if charge_id:
        charge = tx.get(SYSTEM, "charge", charge_id)
        if charge is None:
            raise no_such("charge", charge_id, status=400, param="charge")
    else:
        charge = _charge_of_intent(tx, str(intent_id))
    amount = integer(params["amount"], "amount") if params.get("amount") not in (None, "") else None
    refund = refund_charge(tx, charge, amount, reason=params.get("reason") or None, metadata=params.get("metadata"))
    return 200, refund


def get_refund(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    refund = tx.get(SYSTEM, "refund", id)
    if refund is None:
        raise no_such("refund", id)
    return 200, refund


def get_balance_transaction(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    txn = tx.get(SYSTEM, "balance_transaction", id)
    if txn is None:
        raise no_such("balance_transaction", id)
    return 200, txn
