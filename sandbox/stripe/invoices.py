"""Invoices and invoice items: drafts, finalizing, voiding, paying and marking uncollectible."""

from __future__ import annotations

import time
from typing import Any

from sandbox.core import new_id
from sandbox.store import Tx
from sandbox.stripe import SYSTEM
from sandbox.stripe.accounts import customer_here
from sandbox.stripe.collection import charge_invoice, pay_out_of_band
from sandbox.stripe.customers import new_customer
from sandbox.stripe.errors import invalid, missing, no_such
from sandbox.stripe.events import emit
from sandbox.stripe.metered_lines import requantify
from sandbox.stripe.params import boolean, integer, merge_metadata

# Stripe's limit of invoice items on one invoice.
MAX_INVOICE_ITEMS = 250


def recompute_totals(invoice: dict[str, Any]) -> None:
    total = sum(int(line["amount"]) for line in invoice["lines"]["data"])
    invoice["subtotal"] = total
    invoice["total"] = total
    invoice["lines"]["total_count"] = len(invoice["lines"]["data"])
    if invoice["status"] == "draft":
        invoice["amount_due"] = max(total, 0)
        invoice["amount_remaining"] = max(total, 0)


def line_from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": new_id("il"),
        "object": "line_item",
        "type": "invoiceitem",
        "invoice_item": item["id"],
        "amount": item["amount"],
        "currency": item["currency"],
        "description": item.get("description"),
        "subscription": item.get("subscription"),
        "metadata": item.get("metadata", {}),
        "period": item.get("period"),
    }


def create_invoice(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    customer_id = params.get("customer")
    if not customer_id:
        raise missing("customer")
    customer = customer_here(tx, customer_id)
    subscription_id = params.get("subscription") or None
    if subscription_id:
        subscription = tx.get(SYSTEM, "subscription", subscription_id)
        if subscription is None:
            raise no_such("subscription", subscription_id, status=400, param="subscription")
        default_currency = subscription["currency"]
    else:
        default_currency = customer.get("currency") or "usd"
    behavior = params.get("pending_invoice_items_behavior", "exclude")
    if behavior not in ("exclude", "include"):
        raise invalid(f"Invalid pending_invoice_items_behavior: {behavior}", param="pending_invoice_items_behavior")
    collection = params.get("collection_method", "charge_automatically")
    if collection not in ("charge_automatically", "send_invoice"):
        raise invalid(f"Invalid collection_method: {collection}", param="collection_method")
    invoice = {
        "id": new_id("in"),
        "object": "invoice",
        "customer": customer_id,
        "subscription": subscription_id,
        "status": "draft",
        "number": None,
        "currency": (params.get("currency") or default_currency).lower(),
        "description": params.get("description"),
        "auto_advance": boolean(params.get("auto_advance", "false"), "auto_advance"),
        "collection_method": collection,
        "metadata": merge_metadata({}, params.get("metadata")),
        "lines": {"object": "list", "data": [], "has_more": False, "total_count": 0},
        "subtotal": 0,
        "tax": None,  # Stripe Tax's amount; null without it (o2c bills tax as a line of its own)
        "total": 0,
        "amount_due": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "starting_balance": 0,
        "ending_balance": None,
        "created": int(time.time()),
        "status_transitions": {
            "finalized_at": None,
            "paid_at": None,
            "voided_at": None,
            "marked_uncollectible_at": None,
        },
        "attempt_count": 0,
        "attempted": False,
        "paid": False,
        "paid_out_of_band": False,
        "charge": None,
        "payment_intent": None,
        "default_payment_method": None,  # charged instead of the customer's default when set
        "next_payment_attempt": None,
        "billing_reason": "subscription_update" if subscription_id else "manual",
        "livemode": False,
    }
    if behavior == "include":
        for item in tx.list(SYSTEM, "invoiceitem"):
            if (
                item["customer"] == customer_id
                and not item.get("invoice")
                and (not subscription_id or item.get("subscription") in (None, subscription_id))
            ):
                item["invoice"] = invoice["id"]
                tx.put(SYSTEM, "invoiceitem", item["id"], item)
                invoice["lines"]["data"].append(line_from_item(item))
    recompute_totals(invoice)
    tx.put(SYSTEM, "invoice", invoice["id"], invoice)
    return 200, invoice


def get_invoice(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    invoice = tx.get(SYSTEM, "invoice", id)
    if invoice is None:
        raise no_such("invoice", id)
    return 200, invoice


def _finalization_failure(tx: Tx, invoice: dict[str, Any]) -> dict[str, Any] | None:
    """The error an injected finalisation failure (control plane) answers, counting it."""
    fault = tx.get(SYSTEM, "finalization_failure", invoice["id"])
    if fault is None:
        return None
    if fault.get("times") is not None:
        if int(fault["times"]) <= 0:
            tx.delete(SYSTEM, "finalization_failure", invoice["id"])
            return None
        fault["times"] = int(fault["times"]) - 1
        tx.put(SYSTEM, "finalization_failure", invoice["id"], fault)
    err = {"type": "invalid_request_error", "code": fault["code"], "message": fault["message"]}
    if fault["code"] == "failed_tax_calculation":
        err["doc_url"] = "https://stripe.com/docs/error-codes/failed-tax-calculation"
    return err


def finalize_invoice(tx: Tx, params: dict[str, Any], id: str) -> tuple[Any, ...]:
    """`POST /v1/invoices/{id}/finalize`. A draft with metered lines is measured again
    first. When billing cannot finalise it (an injected failure), the draft stays a draft
    with `last_finalization_error`, `invoice.finalization_failed` is sent, and the call
    answers the error; that answer is not stored for the idempotency key, so a retry after
    the cause is fixed finalises (whether Stripe stores it is unverified)."""
    invoice = tx.get(SYSTEM, "invoice", id)
    if invoice is None:
        raise no_such("invoice", id)
    if invoice["status"] != "draft":
        raise invalid(
            "This invoice is already finalized, you can't re-finalize a non-draft invoice.", code="invoice_not_editable"
        )
    if "auto_advance" in params:
        invoice["auto_advance"] = boolean(params["auto_advance"], "auto_advance")
    metered = requantify(tx, invoice)
    if metered:
        recompute_totals(invoice)
    failure = _finalization_failure(tx, invoice)
    if failure is not None:
        invoice["last_finalization_error"] = failure
        tx.put(SYSTEM, "invoice", id, invoice)
        emit(tx, "invoice.finalization_failed", invoice)
        return 400, {"error": failure}, {"store": False}
    invoice["last_finalization_error"] = None
    now = int(time.time())
    number = f"SBX-{tx.count(SYSTEM, 'invoice_number') + 1:06d}"
    tx.put(SYSTEM, "invoice_number", number, {"id": number, "invoice": id})
    invoice["number"] = number
    invoice["status_transitions"]["finalized_at"] = now
    total = int(invoice["total"])
    customer = tx.get(SYSTEM, "customer", invoice["customer"]) or new_customer(invoice["customer"])
    invoice["starting_balance"] = int(customer.get("balance") or 0)
    if total <= 0:
        # A zero or net-credit invoice is paid at once; a credit goes to the customer's
        # balance (negative balance = credit), as Stripe does.
        customer["balance"] = int(customer.get("balance") or 0) + total
        tx.put(SYSTEM, "customer", customer["id"], customer)
        invoice["status"] = "paid"
        invoice["amount_due"] = 0
        invoice["amount_remaining"] = 0
        invoice["status_transitions"]["paid_at"] = now
    else:
        # Simplification: an existing customer credit balance is not applied to
        # positive invoices here.
        invoice["status"] = "open"
        invoice["amount_due"] = total
        invoice["amount_remaining"] = total
    invoice["ending_balance"] = int(customer.get("balance") or 0)
    tx.put(SYSTEM, "invoice", id, invoice)
    # Stripe announces every finalisation, whoever asked for it.
    emit(tx, "invoice.finalized", invoice)
    return 200, invoice


UPDATABLE = frozenset({"auto_advance", "description", "metadata"})


def update_invoice(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    """`POST /v1/invoices/{id}`: `auto_advance` (draft or open only: Stripe keeps it false
    on paid, void and uncollectible invoices), `description` (draft only), `metadata`."""
    invoice = tx.get(SYSTEM, "invoice", id)
    if invoice is None:
        raise no_such("invoice", id)
    for name in params:
        if name not in UPDATABLE:
            raise invalid(f"Received unknown parameter: {name}", param=name, code="parameter_unknown")
    previous: dict[str, Any] = {}
    if "auto_advance" in params:
        wanted = boolean(params["auto_advance"], "auto_advance")
        if invoice["status"] not in ("draft", "open"):
            raise invalid(
                f"auto_advance can only be set on draft or open invoices. This invoice is {invoice['status']}.",
                param="auto_advance",
                code="invoice_not_editable",
            )  # wording unverified
        if wanted != invoice["auto_advance"]:
            previous["auto_advance"] = invoice["auto_advance"]
            invoice["auto_advance"] = wanted
    if "description" in params:
        if invoice["status"] != "draft":
            raise invalid("Only a draft's description can change.", param="description", code="invoice_not_editable")
        previous["description"] = invoice.get("description")
        invoice["description"] = params["description"] or None
    if "metadata" in params:
        previous["metadata"] = invoice.get("metadata", {})
        invoice["metadata"] = merge_metadata(invoice.get("metadata", {}), params["metadata"])
    tx.put(SYSTEM, "invoice", id, invoice)
    if previous:
        emit(tx, "invoice.updated", invoice, previous_attributes=previous)
    return 200, invoice


def void_invoice(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    invoice = tx.get(SYSTEM, "invoice", id)
    if invoice is None:
        raise no_such("invoice", id)
    if invoice["status"] not in ("open", "uncollectible"):
        raise invalid(
            f"You can only pass in open invoices. This invoice is {invoice['status']}.",
            code="invoice_not_open" if invoice["status"] != "void" else "invoice_already_voided",
        )
    invoice["status"] = "void"
    invoice["amount_remaining"] = 0
    invoice["status_transitions"]["voided_at"] = int(time.time())
    tx.put(SYSTEM, "invoice", id, invoice)
    emit(tx, "invoice.voided", invoice)
    return 200, invoice


def create_invoiceitem(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    for name in ("customer", "currency"):
        if not params.get(name):
            raise missing(name)
    if "amount" not in params:
        raise missing("amount")
    amount = integer(params["amount"], "amount")
    customer_id = params["customer"]
    customer_here(tx, customer_id)
    invoice = None
    if params.get("invoice"):
        invoice = tx.get(SYSTEM, "invoice", params["invoice"])
        if invoice is None:
            raise no_such("invoice", params["invoice"], status=400, param="invoice")
        if invoice["status"] != "draft":
            raise invalid(
                f"Invoice {invoice['id']} is not a draft; items can only be added to drafts.",
                param="invoice",
                code="invoice_not_editable",
            )
        if invoice["customer"] != customer_id:
            raise invalid("The invoice belongs to another customer.", param="invoice")
        if invoice["currency"] != params["currency"].lower():
            raise invalid("The currency differs from the invoice's currency.", param="currency")
        items = sum(1 for line in invoice["lines"]["data"] if line.get("type") == "invoiceitem")
        if items >= MAX_INVOICE_ITEMS:
            raise invalid(
                f"An invoice can hold at most {MAX_INVOICE_ITEMS} invoice items.",
                param="invoice",
                code="invoice_too_many_items",
            )  # code unverified
    item = {
        "id": new_id("ii"),
        "object": "invoiceitem",
        "customer": customer_id,
        "invoice": invoice["id"] if invoice else None,
        "subscription": params.get("subscription") or None,
        "amount": amount,
        "currency": params["currency"].lower(),
        "description": params.get("description"),
        "metadata": merge_metadata({}, params.get("metadata")),
        "period": params.get("period"),
        "date": int(time.time()),
    }
    tx.put(SYSTEM, "invoiceitem", item["id"], item)
    if invoice is not None:
        invoice["lines"]["data"].append(line_from_item(item))
        recompute_totals(invoice)
        tx.put(SYSTEM, "invoice", invoice["id"], invoice)
    return 200, item


def delete_invoiceitem(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    """`DELETE /v1/invoiceitems/{id}`: an item not yet on an invoice, or on a draft (its line
    goes with it). Wording of the refusal unverified."""
    item = tx.get(SYSTEM, "invoiceitem", id)
    if item is None:
        raise no_such("invoiceitem", id)
    if item.get("invoice"):
        invoice = tx.get(SYSTEM, "invoice", item["invoice"])
        if invoice is not None:
            if invoice["status"] != "draft":
                raise invalid(
                    f"Invoice item {id} is on invoice {invoice['id']}, which is no longer a draft.",
                    code="invoice_not_editable",
                )
            invoice["lines"]["data"] = [line for line in invoice["lines"]["data"] if line.get("invoice_item") != id]
            recompute_totals(invoice)
            tx.put(SYSTEM, "invoice", invoice["id"], invoice)
    tx.delete(SYSTEM, "invoiceitem", id)
    return 200, {"id": id, "object": "invoiceitem", "deleted": True}


def get_invoiceitem(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    item = tx.get(SYSTEM, "invoiceitem", id)
    if item is None:
        raise no_such("invoiceitem", id)
    return 200, item


def pay_invoice(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    invoice = tx.get(SYSTEM, "invoice", id)
    if invoice is None:
        raise no_such("invoice", id)
    if "paid_out_of_band" in params and boolean(params["paid_out_of_band"], "paid_out_of_band"):
        return 200, pay_out_of_band(tx, id)
    return charge_invoice(tx, invoice, params.get("payment_method") or None)


def mark_uncollectible(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    invoice = tx.get(SYSTEM, "invoice", id)
    if invoice is None:
        raise no_such("invoice", id)
    if invoice["status"] != "open":
        raise invalid(
            f"You can only mark open invoices as uncollectible. This invoice is {invoice['status']}.",
            code="invoice_not_open",
        )  # wording unverified
    invoice["status"] = "uncollectible"
    invoice["status_transitions"]["marked_uncollectible_at"] = int(time.time())
    tx.put(SYSTEM, "invoice", id, invoice)
    emit(tx, "invoice.marked_uncollectible", invoice)
    return 200, invoice
