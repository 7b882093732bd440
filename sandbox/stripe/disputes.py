"""Disputes: what a card network does (opened, closed won or lost: control plane actions),
and what Stripe's API lets the merchant do (`/v1/disputes`: read, list, submit evidence,
accept). Every change sends the `charge.dispute.*` event Stripe sends, with the dispute.

When a dispute opens, Stripe withdraws the disputed amount and a dispute fee from the
balance (a balance transaction of type adjustment: amount -amount, fee, net -amount-fee,
in `balance_transactions`; `charge.dispute.funds_withdrawn`). Won: the amount comes back
(`charge.dispute.funds_reinstated`; the fee is kept, unverified). The fee is 1500 minor
units of the charge's currency by default: USD 15.00 as in Stripe's US pricing; other
countries' fees are unverified (the control plane takes `fee`).
"""

from __future__ import annotations

import time
from typing import Any

from sandbox.core import new_id
from sandbox.store import Tx
from sandbox.stripe import SYSTEM
from sandbox.stripe.errors import invalid, no_such
from sandbox.stripe.events import emit
from sandbox.stripe.params import boolean, integer, list_object, merge_metadata
from sandbox.stripe.refunds import balance_transaction

DISPUTE_FEE = 1500  # minor units; USD 15.00 (per-country amounts unverified)
EVIDENCE_DAYS = 7  # how long the merchant has to respond by default (varies by network; unverified)
REASONS = (
    "bank_cannot_process",
    "check_returned",
    "credit_not_processed",
    "customer_initiated",
    "debit_not_authorized",
    "duplicate",
    "fraudulent",
    "general",
    "incorrect_account_details",
    "insufficient_funds",
    "product_not_received",
    "product_unacceptable",
    "subscription_canceled",
    "unrecognized",
)
CLOSED = ("won", "lost", "warning_closed", "prevented")
EVIDENCE_FIELDS = frozenset(
    {
        "access_activity_log",
        "billing_address",
        "cancellation_policy_disclosure",
        "cancellation_rebuttal",
        "customer_communication",
        "customer_email_address",
        "customer_name",
        "customer_purchase_ip",
        "duplicate_charge_explanation",
        "product_description",
        "receipt",
        "refund_policy",
        "refund_refusal_explanation",
        "service_date",
        "service_documentation",
        "uncategorized_file",
        "uncategorized_text",
    }
)


def _dispute_or_missing(tx: Tx, id: str) -> dict[str, Any]:
    dispute = tx.get(SYSTEM, "dispute", id)
    if dispute is None:
        raise no_such("dispute", id)
    return dispute


# -- the card network's side (control plane) ---------------------------------------------------


def open_dispute(tx: Tx, body: dict[str, Any]) -> dict[str, Any]:
    """The cardholder disputes a succeeded charge: `charge`, and optionally `reason`,
    `amount` (default the charge's), `evidence_due_days`, `fee`."""
    charge = tx.get(SYSTEM, "charge", str(body.get("charge") or ""))
    if charge is None:
        raise no_such("charge", str(body.get("charge")))
    if charge["status"] != "succeeded":
        raise invalid(f"charge {charge['id']} did not succeed; there is nothing to dispute")
    if charge.get("disputed"):
        raise invalid(f"charge {charge['id']} is already disputed")
    reason = body.get("reason") or "general"
    if reason not in REASONS:
        raise invalid(f"reason must be one of {', '.join(REASONS)}", param="reason")
    amount = integer(body["amount"], "amount") if body.get("amount") is not None else int(charge["amount"])
    if not 0 < amount <= int(charge["amount"]):
        raise invalid(f"amount must be between 1 and {charge['amount']}", param="amount")
    days = integer(body.get("evidence_due_days", EVIDENCE_DAYS), "evidence_due_days")
    fee = integer(body.get("fee", DISPUTE_FEE), "fee")
    if days < 1 or fee < 0:
        raise invalid("evidence_due_days must be 1 or more and fee 0 or more")
    now = int(time.time())
    dispute: dict[str, Any] = {
        "id": new_id("dp"),
        "object": "dispute",
        "amount": amount,
        "currency": charge["currency"],
        "charge": charge["id"],
        "payment_intent": charge.get("payment_intent"),
        "reason": reason,
        "status": "needs_response",
        "is_charge_refundable": False,
        "balance_transactions": [],
        "evidence": {name: None for name in sorted(EVIDENCE_FIELDS)},
        "evidence_details": {
            "due_by": now + days * 86400,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "payment_method_details": {
            "type": "card",
            "card": {
                "brand": ((charge.get("payment_method_details") or {}).get("card") or {}).get("brand"),
                "case_type": "chargeback",
            },
        },
        "created": now,
        "livemode": False,
        "metadata": {},
    }
    withdrawal = balance_transaction(
        tx,
        amount=-amount,
        currency=charge["currency"],
        type_="adjustment",
        source=dispute["id"],
        fee=fee,
        fee_description="Dispute fee",
        reporting_category="dispute",
    )
    dispute["balance_transactions"].append(withdrawal)
    charge["disputed"] = True
    tx.put(SYSTEM, "charge", charge["id"], charge)
    tx.put(SYSTEM, "dispute", dispute["id"], dispute)
    emit(tx, "charge.dispute.created", dispute)
    emit(tx, "charge.dispute.funds_withdrawn", dispute)
    return dispute


def _close(tx: Tx, dispute: dict[str, Any], status: str) -> dict[str, Any]:
    previous = {"status": dispute["status"]}
    dispute["status"] = status
    if status == "won":
        reinstated = balance_transaction(
            tx,
            amount=int(dispute["amount"]),
            currency=dispute["currency"],
            type_="adjustment",
            source=dispute["id"],
            reporting_category="dispute_reversal",
        )
        dispute["balance_transactions"].append(reinstated)
    dispute["is_charge_refundable"] = False
    tx.put(SYSTEM, "dispute", dispute["id"], dispute)
    emit(tx, "charge.dispute.closed", dispute, previous_attributes=previous)
    if status == "won":
        emit(tx, "charge.dispute.funds_reinstated", dispute)
    return dispute


def close_dispute(tx: Tx, id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The network decides: `status` won or lost."""
    dispute = _dispute_or_missing(tx, id)
    status = body.get("status")
    if status not in ("won", "lost"):
        raise invalid("status must be won or lost", param="status")
    if dispute["status"] in CLOSED:
        raise invalid(f"dispute {id} is already closed ({dispute['status']})")
    return _close(tx, dispute, status)


# -- the merchant's side (the API) -------------------------------------------------------------


def get_dispute(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    return 200, _dispute_or_missing(tx, id)


def list_disputes(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    limit = integer(params.get("limit", 10), "limit")
    if not 1 <= limit <= 100:
        raise invalid("limit must be between 1 and 100", param="limit")
    disputes = list(reversed(tx.list(SYSTEM, "dispute")))
    for name in ("charge", "payment_intent"):
        if params.get(name):
            disputes = [d for d in disputes if d.get(name) == params[name]]
    after = params.get("starting_after")
    if after:
        ids = [d["id"] for d in disputes]
        if after not in ids:
            raise no_such("dispute", str(after), status=400, param="starting_after")
        disputes = disputes[ids.index(after) + 1 :]
    return 200, list_object("/v1/disputes", disputes[:limit], has_more=len(disputes) > limit)


def update_dispute(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    """`POST /v1/disputes/{id}`: `evidence[...]` (merged), `metadata`, `submit` (default
    true: the evidence goes to the bank and the dispute is under review)."""
    dispute = _dispute_or_missing(tx, id)
    for name in params:
        if name not in ("evidence", "metadata", "submit", "expand"):
            raise invalid(f"Received unknown parameter: {name}", param=name, code="parameter_unknown")
    if dispute["status"] in CLOSED:
        raise invalid(f"This dispute is already closed ({dispute['status']}).", code="dispute_already_closed")
    evidence = params.get("evidence")
    previous: dict[str, Any] = {}
    if evidence is not None:
        if not isinstance(evidence, dict):
            raise invalid("Invalid evidence: must be a hash", param="evidence")
        for name, value in evidence.items():
            if name not in EVIDENCE_FIELDS:
                raise invalid(
                    f"Received unknown parameter: evidence[{name}]", param=f"evidence[{name}]", code="parameter_unknown"
                )
            dispute["evidence"][name] = value or None
        dispute["evidence_details"]["has_evidence"] = any(v for v in dispute["evidence"].values())
    if "metadata" in params:
        dispute["metadata"] = merge_metadata(dispute.get("metadata", {}), params["metadata"])
    if boolean(params.get("submit", "true"), "submit"):
        if dispute["status"] in ("needs_response", "warning_needs_response"):
            previous["status"] = dispute["status"]
            dispute["status"] = "under_review" if dispute["status"] == "needs_response" else "warning_under_review"
        dispute["evidence_details"]["submission_count"] = int(dispute["evidence_details"]["submission_count"]) + 1
    tx.put(SYSTEM, "dispute", id, dispute)
    emit(tx, "charge.dispute.updated", dispute, previous_attributes=previous or None)
    return 200, dispute


def accept_dispute(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    """`POST /v1/disputes/{id}/close`: the merchant accepts the dispute, which is lost."""
    dispute = _dispute_or_missing(tx, id)
    if dispute["status"] in CLOSED:
        raise invalid(f"This dispute is already closed ({dispute['status']}).", code="dispute_already_closed")
    return 200, _close(tx, dispute, "lost")
