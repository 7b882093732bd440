"""Credit notes (`/v1/credit_notes`): issue, preview, read, list and void.

A credit note first lowers what the invoice still asks for (`amount_remaining`, never
below zero): its `pre_payment_amount`. The rest, `post_payment_amount`, was already paid
and must be settled exactly by `refund_amount` (or linked `refunds`), `credit_amount` (the
customer's balance) and `out_of_band_amount` together; anything else is refused, as
Stripe refuses it (since 2019-12-03). `type` is pre_payment, post_payment or mixed.

Versions: the split into pre- and post-payment amounts, `mixed` and `refunds[]` are from
2025-05-28.basil; under 2024-06-20 (the version this stand-in otherwise speaks) a note's
type follows the invoice's status and `refund` links one refund. The sandbox takes both
`refund` and `refunds[]` and always splits, which is what a partly paid invoice needs.

Tax: the sandbox's invoices carry tax as lines of their own (see invoices.py), so a note
credits tax by crediting those lines, as any line. A line that carries Stripe's own
`tax_amounts` has them credited in proportion to the amount credited (half up).
Simplifications: no `shipping_cost`, no discounts; `effective_at` and `email_type` are
accepted and kept.
"""

from __future__ import annotations

import time
from typing import Any

from sandbox.core import new_id
from sandbox.store import Tx
from sandbox.stripe import SYSTEM
from sandbox.stripe.errors import invalid, missing, no_such
from sandbox.stripe.events import emit
from sandbox.stripe.params import integer, list_object, merge_metadata
from sandbox.stripe.refunds import refund_charge, unrefunded

REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory")
CREATE_PARAMS = frozenset(
    {
        "invoice",
        "amount",
        "lines",
        "credit_amount",
        "refund_amount",
        "refund",
        "refunds",
        "out_of_band_amount",
        "reason",
        "memo",
        "metadata",
        "effective_at",
        "email_type",
        "expand",
    }
)
LINE_PARAMS = frozenset(
    {"type", "invoice_line_item", "amount", "quantity", "description", "unit_amount", "unit_amount_decimal", "metadata"}
)


def _unknown(params: dict[str, Any], allowed: frozenset[str], prefix: str = "") -> None:
    for name in params:
        if name not in allowed:
            full = f"{prefix}[{name}]" if prefix else name
            raise invalid(f"Received unknown parameter: {full}", param=full, code="parameter_unknown")


def _amount(params: dict[str, Any], name: str) -> int:
    if params.get(name) in (None, ""):
        return 0
    value = integer(params[name], name)
    if value < 0:
        raise invalid(f"{name} must be zero or more", param=name)
    return value


def _issued(tx: Tx, invoice_id: str) -> list[dict[str, Any]]:
    return [n for n in tx.list(SYSTEM, "credit_note") if n["invoice"] == invoice_id and n["status"] == "issued"]


def _credited_on_line(notes: list[dict[str, Any]], line_id: str) -> int:
    return sum(
        int(line["amount"])
        for note in notes
        for line in note["lines"]["data"]
        if line.get("invoice_line_item") == line_id
    )


def _proportional_tax(line: dict[str, Any], credited: int) -> list[dict[str, Any]]:
    amounts = line.get("tax_amounts") or []
    base = int(line["amount"])
    if not amounts or base == 0:
        return []
    # Half up on whole minor units, exactly (integers only).
    return [
        {**tax, "amount": (2 * int(tax["amount"]) * credited + base) // (2 * base)}
        for tax in amounts
        if isinstance(tax, dict)
    ]


def _note_lines(tx: Tx, invoice: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    """The credit note's lines from `lines[]` or `amount` (exactly one of them)."""
    has_lines, has_amount = params.get("lines") not in (None, ""), params.get("amount") not in (None, "")
    if has_lines == has_amount:
        raise invalid("You must pass exactly one of amount, lines or shipping_cost.", param="lines")
    currency = invoice["currency"]
    if has_amount:
        amount = _amount(params, "amount")
        if amount <= 0:
            raise invalid("amount must be positive", param="amount")
        return [_line(currency, "custom_line_item", amount, description="Credit", quantity=1)]
    raw = params["lines"]
    if not isinstance(raw, list) or not raw:
        raise invalid("Invalid array", param="lines")
    by_id = {line["id"]: line for line in invoice["lines"]["data"]}
    notes = _issued(tx, invoice["id"])
    out: list[dict[str, Any]] = []
    for i, spec in enumerate(raw):
        prefix = f"lines[{i}]"
        if not isinstance(spec, dict):
            raise invalid("Invalid hash", param=prefix)
        _unknown(spec, LINE_PARAMS, prefix)
        kind = spec.get("type")
        if kind == "invoice_line_item":
            line_id = spec.get("invoice_line_item")
            if not line_id:
                raise missing(f"{prefix}[invoice_line_item]")
            line = by_id.get(str(line_id))
            if line is None:
                raise invalid(
                    f"Invoice line item {line_id} is not on invoice {invoice['id']}.",
                    param=f"{prefix}[invoice_line_item]",
                )
            billed, line_qty = int(line["amount"]), int(line.get("quantity") or 1)
            if spec.get("amount") not in (None, ""):
                amount = integer(spec["amount"], f"{prefix}[amount]")
                quantity = None
            elif spec.get("quantity") not in (None, ""):
                quantity = integer(spec["quantity"], f"{prefix}[quantity]")
                if not 0 < quantity <= line_qty:
                    raise invalid(f"quantity must be between 1 and {line_qty}", param=f"{prefix}[quantity]")
                amount = billed * quantity // line_qty
            else:
                raise invalid("Pass amount or quantity for an invoice line item.", param=f"{prefix}[amount]")
            left = (
                billed
                - _credited_on_line(notes, line["id"])
                - sum(int(x["amount"]) for x in out if x.get("invoice_line_item") == line["id"])
            )
            if amount <= 0 or amount > left:
                raise invalid(
                    f"The credit amount for invoice line item {line['id']} ({amount}) must be positive and at "
                    f"most what is left to credit on it ({left}).",  # wording unverified
                    param=f"{prefix}[amount]",
                )
            note_line = _line(currency, kind, amount, description=line.get("description"), quantity=quantity)
            note_line["invoice_line_item"] = line["id"]
            note_line["tax_amounts"] = _proportional_tax(line, amount)
            out.append(note_line)
        elif kind == "custom_line_item":
            if not spec.get("description"):
                raise missing(f"{prefix}[description]")
            quantity = integer(spec.get("quantity") or 1, f"{prefix}[quantity]")
            raw_unit = spec.get("unit_amount", spec.get("unit_amount_decimal"))
            if raw_unit in (None, ""):
                raise missing(f"{prefix}[unit_amount]")
            unit = integer(raw_unit, f"{prefix}[unit_amount]")
            if unit <= 0 or quantity <= 0:
                raise invalid("unit_amount and quantity must be positive", param=f"{prefix}[unit_amount]")
            out.append(_line(currency, kind, unit * quantity, description=spec["description"], quantity=quantity))
        else:
            raise invalid("Invalid type: must be one of invoice_line_item or custom_line_item", param=f"{prefix}[type]")
    return out


def _line(currency: str, kind: str, amount: int, *, description: Any, quantity: int | None) -> dict[str, Any]:
    return {
        "id": new_id("cnli"),
        "object": "credit_note_line_item",
        "type": kind,
        "amount": amount,
        "currency": currency,
        "description": description,
        "quantity": quantity,
        "invoice_line_item": None,
        "tax_amounts": [],
        "livemode": False,
    }


def _linked_refunds(tx: Tx, params: dict[str, Any], charge: dict[str, Any] | None) -> list[dict[str, Any]]:
    """`refunds[i][refund|amount_refunded]` (basil) or `refund` (2024-06-20): refunds
    already made on the invoice's charge that this note accounts for."""
    specs: list[dict[str, Any]] = []
    if params.get("refund"):
        specs.append({"refund": params["refund"]})
    raw = params.get("refunds")
    if raw not in (None, ""):
        if not isinstance(raw, list):
            raise invalid("Invalid array", param="refunds")
        specs.extend(raw)
    linked = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or not spec.get("refund"):
            raise missing(f"refunds[{i}][refund]")
        refund = tx.get(SYSTEM, "refund", str(spec["refund"]))
        if refund is None:
            raise no_such("refund", str(spec["refund"]), status=400, param=f"refunds[{i}][refund]")
        if charge is None or refund["charge"] != charge["id"]:
            raise invalid(f"Refund {refund['id']} is not a refund of this invoice's charge.", param="refunds")
        amount = integer(spec.get("amount_refunded", refund["amount"]), f"refunds[{i}][amount_refunded]")
        if not 0 < amount <= int(refund["amount"]):
            raise invalid(f"amount_refunded must be between 1 and {refund['amount']}", param="refunds")
        linked.append({"refund": refund["id"], "amount_refunded": amount})
    return linked


def _build(tx: Tx, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Validate and compute a credit note without writing anything: (note, invoice, what
    to do: refund_amount, credit_amount, the charge)."""
    _unknown(params, CREATE_PARAMS)
    invoice_id = params.get("invoice")
    if not invoice_id:
        raise missing("invoice")
    invoice = tx.get(SYSTEM, "invoice", str(invoice_id))
    if invoice is None:
        raise no_such("invoice", str(invoice_id), status=400, param="invoice")
    if invoice["status"] not in ("open", "paid", "uncollectible"):
        raise invalid(
            f"Credit notes can only be issued on finalized invoices that are not void. This invoice is "
            f"{invoice['status']}.",
            param="invoice",
            code="invoice_not_editable" if invoice["status"] == "draft" else "invoice_not_open",
        )  # wording unverified
    reason = params.get("reason") or None
    if reason is not None and reason not in REASONS:
        raise invalid(f"Invalid reason: must be one of {', '.join(REASONS)}", param="reason")
    lines = _note_lines(tx, invoice, params)
    subtotal = sum(int(line["amount"]) for line in lines)
    tax = sum(int(t["amount"]) for line in lines for t in line["tax_amounts"])
    total = subtotal + tax
    credited_before = sum(int(n["total"]) for n in _issued(tx, invoice["id"]))
    if credited_before + total > int(invoice["total"]):
        raise invalid(
            f"The credit note total ({total}) exceeds what is left to credit on invoice {invoice['id']} "
            f"({int(invoice['total']) - credited_before}).",  # wording unverified
            param="amount" if params.get("amount") not in (None, "") else "lines",
        )
    remaining = int(invoice["amount_remaining"]) if invoice["status"] in ("open", "uncollectible") else 0
    pre = min(total, remaining)
    post = total - pre
    credit = _amount(params, "credit_amount")
    refund_amount = _amount(params, "refund_amount")
    out_of_band = _amount(params, "out_of_band_amount")
    charge = tx.get(SYSTEM, "charge", invoice.get("charge") or "")
    linked = _linked_refunds(tx, params, charge)
    settled = credit + refund_amount + out_of_band + sum(r["amount_refunded"] for r in linked)
    if settled != post:
        # Stripe's rule since 2019-12-03; the wording is unverified.
        raise invalid(
            f"The sum of credit_amount, refund_amount, refunds and out_of_band_amount ({settled}) must equal the "
            f"credit note's post-payment amount ({post}).",
            param="out_of_band_amount" if settled < post else "credit_amount",
        )
    if refund_amount:
        if charge is None or charge["status"] != "succeeded":
            raise invalid(
                f"Invoice {invoice['id']} was not paid by a charge; nothing can be refunded.", param="refund_amount"
            )
        if refund_amount > unrefunded(charge):
            raise invalid(
                f"refund_amount ({refund_amount}) is greater than unrefunded amount on charge ({unrefunded(charge)})",
                param="refund_amount",
            )
    number = f"{invoice.get('number') or invoice['id']}-CN-{len(_issued_any(tx, invoice['id'])) + 1:02d}"
    now = int(time.time())
    note: dict[str, Any] = {
        "id": new_id("cn"),
        "object": "credit_note",
        "amount": total,
        "amount_shipping": 0,
        "created": now,
        "currency": invoice["currency"],
        "customer": invoice["customer"],
        "customer_balance_transaction": None,
        "discount_amount": 0,
        "discount_amounts": [],
        "effective_at": integer(params["effective_at"], "effective_at") if params.get("effective_at") else now,
        "invoice": invoice["id"],
        "lines": {
            "object": "list",
            "data": lines,
            "has_more": False,
            "total_count": len(lines),
            "url": "/v1/credit_notes/preview/lines",
        },
        "livemode": False,
        "memo": params.get("memo") or None,
        "metadata": merge_metadata({}, params.get("metadata")),
        "number": number,
        "out_of_band_amount": out_of_band or None,
        "pdf": f"https://pay.stripe.com/credit_notes/sandbox/{number}/pdf",
        "pre_payment_amount": pre,
        "post_payment_amount": post,
        "reason": reason,
        "refund": linked[0]["refund"] if linked else None,
        "refunds": linked,
        "status": "issued",
        "subtotal": subtotal,
        "subtotal_excluding_tax": subtotal,
        "tax_amounts": [t for line in lines for t in line["tax_amounts"]],
        "total": total,
        "total_excluding_tax": subtotal,
        "type": "mixed" if pre and post else ("post_payment" if post else "pre_payment"),
        "voided_at": None,
    }
    return note, invoice, {"refund_amount": refund_amount, "credit_amount": credit, "charge": charge}


def _issued_any(tx: Tx, invoice_id: str) -> list[dict[str, Any]]:
    return [n for n in tx.list(SYSTEM, "credit_note") if n["invoice"] == invoice_id]


def _balance_credit(tx: Tx, note: dict[str, Any], amount: int, description: str) -> dict[str, Any]:
    """A customer balance transaction of type credit_note (negative amount = credit)."""
    customer = tx.get(SYSTEM, "customer", note["customer"])
    if customer is None:
        raise no_such("customer", note["customer"], status=400, param="invoice")
    customer["balance"] = int(customer.get("balance") or 0) + amount
    customer["currency"] = customer.get("currency") or note["currency"]
    txn = {
        "id": new_id("cbtxn"),
        "object": "customer_balance_transaction",
        "amount": amount,
        "currency": note["currency"],
        "customer": note["customer"],
        "credit_note": note["id"],
        "invoice": note["invoice"],
        "description": description,
        "ending_balance": customer["balance"],
        "type": "credit_note",
        "created": int(time.time()),
        "metadata": {},
    }
    tx.put(SYSTEM, "customer", customer["id"], customer)
    tx.put(SYSTEM, "customer_balance_transaction", txn["id"], txn)
    return txn


def create_credit_note(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    note, invoice, effects = _build(tx, params)
    if effects["refund_amount"]:
        refund = refund_charge(
            tx,
            effects["charge"],
            effects["refund_amount"],
            reason="requested_by_customer",
            metadata={"credit_note": note["id"]},
        )
        note["refunds"].append({"refund": refund["id"], "amount_refunded": refund["amount"]})
        note["refund"] = note["refund"] or refund["id"]
    if effects["credit_amount"]:
        txn = _balance_credit(tx, note, -effects["credit_amount"], f"Credit note {note['number']}")
        note["customer_balance_transaction"] = txn["id"]
    pre, post = int(note["pre_payment_amount"]), int(note["post_payment_amount"])
    previous: dict[str, Any] = {
        "amount_remaining": invoice["amount_remaining"],
        "pre_payment_credit_notes_amount": int(invoice.get("pre_payment_credit_notes_amount") or 0),
        "post_payment_credit_notes_amount": int(invoice.get("post_payment_credit_notes_amount") or 0),
    }
    invoice["pre_payment_credit_notes_amount"] = previous["pre_payment_credit_notes_amount"] + pre
    invoice["post_payment_credit_notes_amount"] = previous["post_payment_credit_notes_amount"] + post
    if pre:
        invoice["amount_due"] = int(invoice["amount_due"]) - pre
        invoice["amount_remaining"] = int(invoice["amount_remaining"]) - pre
        if invoice["amount_remaining"] == 0 and invoice["status"] in ("open", "uncollectible"):
            # Credited in full: nothing is due any more, and Stripe marks it paid.
            previous["status"] = invoice["status"]
            invoice["status"] = "paid"
            invoice["paid"] = True
            invoice["next_payment_attempt"] = None
            invoice["status_transitions"]["paid_at"] = int(time.time())
            note["_sandbox_settled_invoice"] = True
    tx.put(SYSTEM, "credit_note", note["id"], note)
    tx.put(SYSTEM, "invoice", invoice["id"], invoice)
    emit(tx, "credit_note.created", _public(note))  # the event names credit_note.* are unverified
    emit(tx, "invoice.updated", invoice, previous_attributes=previous)
    if previous.get("status"):
        emit(tx, "invoice.paid", invoice)
    return 200, _public(note)


def _public(note: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in note.items() if not k.startswith("_sandbox")}


def preview_credit_note(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    note, _invoice, _effects = _build(tx, params)
    # The refund a real note would create is part of what it settles, so the preview
    # shows the amounts, without a refund id.
    return 200, _public(note)


def preview_credit_note_lines(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    paging = {k: params.pop(k) for k in ("limit", "starting_after") if k in params}
    note, _invoice, _effects = _build(tx, params)
    lines = note["lines"]["data"]
    limit = integer(paging.get("limit", 10), "limit")
    if not 1 <= limit <= 100:
        raise invalid("limit must be between 1 and 100", param="limit")
    return 200, list_object("/v1/credit_notes/preview/lines", lines[:limit], has_more=len(lines) > limit)


def get_credit_note(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    note = tx.get(SYSTEM, "credit_note", id)
    if note is None:
        raise no_such("credit_note", id)
    return 200, _public(note)


def list_credit_notes(tx: Tx, params: dict[str, Any]) -> tuple[int, Any]:
    limit = integer(params.get("limit", 10), "limit")
    if not 1 <= limit <= 100:
        raise invalid("limit must be between 1 and 100", param="limit")
    notes = list(reversed(tx.list(SYSTEM, "credit_note")))
    for name in ("invoice", "customer"):
        if params.get(name):
            notes = [n for n in notes if n[name] == params[name]]
    after = params.get("starting_after")
    if after:
        ids = [n["id"] for n in notes]
        if after not in ids:
            raise no_such("credit_note", str(after), status=400, param="starting_after")
        notes = notes[ids.index(after) + 1 :]
    page = [_public(n) for n in notes[:limit]]
    return 200, list_object("/v1/credit_notes", page, has_more=len(notes) > limit)


def void_credit_note(tx: Tx, params: dict[str, Any], id: str) -> tuple[int, Any]:
    """Undo what the note did to the invoice and the customer's balance. A refund it made
    cannot be taken back: such a note is refused (Stripe's exact rule is unverified)."""
    note = tx.get(SYSTEM, "credit_note", id)
    if note is None:
        raise no_such("credit_note", id)
    if note["status"] == "void":
        raise invalid(f"Credit note {id} has already been voided.", code="credit_note_already_voided")  # unverified
    if note.get("refunds"):
        raise invalid(
            f"Credit note {id} refunded money on the charge; a refund cannot be undone, so the note cannot be voided.",
            code="credit_note_has_refund",
        )  # unverified
    invoice = tx.get(SYSTEM, "invoice", note["invoice"])
    if invoice is None:
        raise no_such("invoice", note["invoice"])
    if note.get("customer_balance_transaction"):
        txn = tx.get(SYSTEM, "customer_balance_transaction", note["customer_balance_transaction"])
        if txn is not None:
            _balance_credit(tx, note, -int(txn["amount"]), f"Void of credit note {note['number']}")
    pre, post = int(note["pre_payment_amount"]), int(note["post_payment_amount"])
    previous: dict[str, Any] = {
        "amount_remaining": invoice["amount_remaining"],
        "pre_payment_credit_notes_amount": int(invoice.get("pre_payment_credit_notes_amount") or 0),
        "post_payment_credit_notes_amount": int(invoice.get("post_payment_credit_notes_amount") or 0),
    }
    invoice["pre_payment_credit_notes_amount"] = previous["pre_payment_credit_notes_amount"] - pre
    invoice["post_payment_credit_notes_amount"] = previous["post_payment_credit_notes_amount"] - post
    if pre and invoice["status"] != "void":
        invoice["amount_due"] = int(invoice["amount_due"]) + pre
        invoice["amount_remaining"] = int(invoice["amount_remaining"]) + pre
        if invoice["status"] == "paid":
            # What the note had settled is due again (the sandbox reopens the invoice).
            previous["status"] = "paid"
            invoice["status"] = "open"
            invoice["paid"] = False
            invoice["status_transitions"]["paid_at"] = None
    note["status"] = "void"
    note["voided_at"] = int(time.time())
    tx.put(SYSTEM, "credit_note", id, note)
    tx.put(SYSTEM, "invoice", invoice["id"], invoice)
    emit(tx, "credit_note.voided", _public(note))
    emit(tx, "invoice.updated", invoice, previous_attributes=previous)
    return 200, _public(note)
