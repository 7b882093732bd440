"""Stripe as o2c's payments system: credit notes, refunds, disputes, invoices paid outside
Stripe, and the open invoices cash application matches against (PaymentsPort).

Tax: o2c bills sales tax as invoice lines of their own (metadata product = TAX_PRODUCT,
see canonical.models), so Stripe computes no tax on a credit note. The adapter credits it
itself: the tax of a credit is the invoice's tax in proportion to the pre-tax amount
credited (half up), spread over the invoice's tax lines by largest remainder, and
credited on those lines. A credit's pre-tax part is the invoice lines it names, or one
custom line for an amount.

Settlement of the part that was already paid (`post_payment_amount`): Stripe wants it
named exactly. `CUSTOMER_BALANCE` sends it as `credit_amount`; `REFUND` as
`refund_amount`, which refunds the invoice's charge, or, when the invoice was paid outside
Stripe (no charge), as `out_of_band_amount`: the money goes back the way it came, outside
Stripe, and the note records it. The split is computed from the invoice as read just
before and confirmed by Stripe's preview, which refuses a split that no longer holds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from adapters.errors import BusinessError, IntegrationBug
from adapters.stripe_api import SYSTEM
from adapters.stripe_metering import StripeMetering
from canonical.credits import (
    CreditedLine,
    CreditNote,
    CreditNoteOrder,
    CreditSettlement,
    Dispute,
    DisputeStatus,
    Refund,
)
from canonical.models import TAX_PRODUCT, Invoice, InvoicePage
from canonical.money import Money

STRIPE_REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})
CREDIT_NOTE_REASONS = frozenset({"duplicate", "fraudulent", "order_change", "product_unsatisfactory"})
# The credit note metadata that names the idempotency key it was issued with (o2c's own).
KEY_METADATA = "o2c_idempotency_key"


def _when(ts: Any) -> datetime | None:
    if isinstance(ts, bool) or not isinstance(ts, int):
        return None
    return datetime.fromtimestamp(ts, tz=UTC)


def _id(value: Any) -> str:
    """An expandable field: the id string or the expanded object's id."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else ""


def is_tax_line(line: dict[str, Any]) -> bool:
    return (line.get("metadata") or {}).get("product") == TAX_PRODUCT


def to_credit_note(note: dict[str, Any], tax_lines: set[str]) -> CreditNote:
    """The canonical note; `tax_lines` are the ids of the invoice's tax lines."""
    currency = str(note["currency"]).upper()
    tax = sum(
        int(line["amount"]) for line in note["lines"]["data"] if (line.get("invoice_line_item") or "") in tax_lines
    ) + sum(int(t.get("amount") or 0) for t in note.get("tax_amounts") or [])
    total = int(note["total"])
    refunds = note.get("refunds") or []
    refund_id = _id(note.get("refund")) or (_id(refunds[0].get("refund")) if refunds else "")
    return CreditNote(
        credit_note_id=note["id"],
        invoice_id=_id(note["invoice"]),
        number=note.get("number") or "",
        status=note["status"],
        type=note.get("type") or "",
        total=Money.from_minor(total, currency),
        subtotal=Money.from_minor(total - tax, currency),
        tax=Money.from_minor(tax, currency),
        pre_payment_amount=Money.from_minor(int(note.get("pre_payment_amount") or 0), currency),
        post_payment_amount=Money.from_minor(int(note.get("post_payment_amount") or 0), currency),
        refund_id=refund_id,
        customer_balance_transaction=_id(note.get("customer_balance_transaction")),
    )


def to_refund(refund: dict[str, Any]) -> Refund:
    return Refund(
        refund_id=refund["id"],
        charge_id=_id(refund.get("charge")),
        amount=Money.from_minor(int(refund["amount"]), str(refund["currency"]).upper()),
        status=refund.get("status") or "",
        reason=(refund.get("metadata") or {}).get("reason") or refund.get("reason") or "",
    )


def dispute_fee(dispute: dict[str, Any]) -> Money | None:
    """The fee Stripe withdrew with the disputed funds: the fees of its balance transactions."""
    txns = [t for t in dispute.get("balance_transactions") or [] if isinstance(t, dict)]
    if not txns:
        return None
    currency = str(txns[0].get("currency") or dispute["currency"]).upper()
    return Money.from_minor(sum(int(t.get("fee") or 0) for t in txns), currency)


def to_dispute(dispute: dict[str, Any], *, invoice_id: str = "", customer: str = "") -> Dispute:
    """The canonical dispute; the invoice and customer come from its charge (expanded, or
    as the caller found them)."""
    charge = dispute.get("charge")
    if isinstance(charge, dict):
        invoice_id = invoice_id or _id(charge.get("invoice"))
        customer = customer or _id(charge.get("customer"))
    try:
        status = DisputeStatus(str(dispute.get("status")))
    except ValueError:
        raise IntegrationBug(
            SYSTEM, f"dispute {dispute.get('id')} has an unknown status {dispute.get('status')!r}"
        ) from None
    details = dispute.get("evidence_details") or {}
    return Dispute(
        dispute_id=dispute["id"],
        charge_id=_id(charge),
        amount=Money.from_minor(int(dispute["amount"]), str(dispute["currency"]).upper()),
        reason=dispute.get("reason") or "",
        status=status,
        invoice_id=invoice_id,
        customer=customer,
        evidence_due_by=_when(details.get("due_by")),
        fee=dispute_fee(dispute),
        created=_when(dispute.get("created")),
    )


def credited_tax(invoice: dict[str, Any], pretax_minor: int) -> list[tuple[str, int]]:
    """The tax to credit with `pretax_minor` of the invoice's untaxed lines: the invoice's
    tax in proportion (half up), spread over its tax lines by largest remainder."""
    lines = invoice["lines"]["data"]
    tax_lines = [line for line in lines if is_tax_line(line) and int(line["amount"]) > 0]
    base = sum(int(line["amount"]) for line in lines if not is_tax_line(line))
    tax = sum(int(line["amount"]) for line in tax_lines)
    if not tax_lines or base <= 0 or pretax_minor <= 0:
        return []
    share = (Decimal(tax) * pretax_minor / base).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    currency = str(invoice["currency"]).upper()
    parts = Money.from_minor(int(share), currency).allocate([int(line["amount"]) for line in tax_lines])
    return [(line["id"], part.minor) for line, part in zip(tax_lines, parts, strict=True) if part.minor]


class StripePayments(StripeMetering):
    """PaymentsPort over the Stripe API; StripeBilling (adapters/stripe.py) is built on it."""

    async def _raw_invoice(self, invoice_id: str, billing_account: str) -> dict[str, Any]:
        invoice = await self._call(
            "GET", f"/invoices/{invoice_id}", not_found_none=True, stripe_account=billing_account
        )
        if invoice is None:
            raise BusinessError(
                SYSTEM, f"invoice {invoice_id} does not exist in billing", code="resource_missing", status=404
            )
        return invoice

    # -- paid outside Stripe ------------------------------------------------------------------

    async def mark_paid_out_of_band(
        self, invoice_id: str, *, idempotency_key: str, billing_account: str = ""
    ) -> Invoice:
        # Paid first, read only when Stripe refuses: a cash batch marks hundreds of invoices,
        # and nearly all of them are open (one call each instead of two).
        try:
            paid = await self._call(
                "POST",
                f"/invoices/{invoice_id}/pay",
                {"paid_out_of_band": True},
                idempotency_key=idempotency_key,
                stripe_account=billing_account,
            )
        except BusinessError:
            again = await self._raw_invoice(invoice_id, billing_account)
            if again["status"] == "paid":  # paid before, meanwhile, or by this call, its answer lost
                return await self._read_invoice(again, billing_account=billing_account)
            if again["status"] not in ("open", "uncollectible"):
                raise BusinessError(
                    SYSTEM,
                    f"invoice {again.get('number') or invoice_id} is {again['status']}; only an open invoice "
                    "can be marked paid",
                    code="invoice_not_open",
                ) from None
            raise
        return await self._read_invoice(paid, billing_account=billing_account)

    # -- credit notes -------------------------------------------------------------------------

    def _note_lines(self, invoice: dict[str, Any], order: CreditNoteOrder) -> tuple[list[dict[str, Any]], int]:
        """The note's `lines[]` (the pre-tax credit, then the tax on it) and its total."""
        currency = str(invoice["currency"]).upper()
        if bool(order.lines) == (order.amount is not None):
            raise BusinessError(
                SYSTEM,
                "a credit names either invoice lines or an amount, not both or neither",
                code="parameter_invalid",
            )
        out: list[dict[str, Any]] = []
        if order.amount is not None:
            amount = self._minor_of(order.amount, currency, "the credit")
            out.append(
                {
                    "type": "custom_line_item",
                    "description": order.memo or "Credit",
                    "quantity": 1,
                    "unit_amount": amount,
                }
            )
            pretax = amount
        else:
            pretax = 0
            for credited in order.lines:
                line = self._invoice_line(invoice, credited)
                amount = self._minor_of(credited.amount, currency, f"the credit of line {credited.line_id}")
                out.append({"type": "invoice_line_item", "invoice_line_item": line["id"], "amount": amount})
                pretax += amount
        tax = credited_tax(invoice, pretax)
        out.extend({"type": "invoice_line_item", "invoice_line_item": lid, "amount": amt} for lid, amt in tax)
        return out, pretax + sum(amt for _, amt in tax)

    @staticmethod
    def _minor_of(amount: Money, currency: str, what: str) -> int:
        if amount.currency != currency:
            raise BusinessError(
                SYSTEM, f"{what} is in {amount.currency}, the invoice in {currency}", code="currency_mismatch"
            )
        if amount.minor <= 0:
            raise BusinessError(SYSTEM, f"{what} must be positive, not {amount}", code="parameter_invalid")
        return amount.minor

    @staticmethod
    def _invoice_line(invoice: dict[str, Any], credited: CreditedLine) -> dict[str, Any]:
        """The invoice line a credit names: by its line id, or by its invoice item's id (the
        id canonical invoices carry for the lines of usage invoices)."""
        lines: list[dict[str, Any]] = invoice["lines"]["data"]
        for line in lines:
            if credited.line_id in (line.get("id"), line.get("invoice_item")):
                if is_tax_line(line):
                    raise BusinessError(
                        SYSTEM,
                        f"line {credited.line_id} is the invoice's tax; tax is credited with the lines it was charged on",
                        code="parameter_invalid",
                    )
                return line
        raise BusinessError(
            SYSTEM,
            f"invoice {invoice.get('number') or invoice['id']} has no line {credited.line_id}",
            code="resource_missing",
        )

    async def _note_params(self, order: CreditNoteOrder, billing_account: str) -> tuple[dict[str, Any], set[str]]:
        if order.stripe_reason not in CREDIT_NOTE_REASONS:
            raise BusinessError(
                SYSTEM, f"{order.stripe_reason!r} is not a Stripe credit note reason", code="parameter_invalid"
            )
        invoice = await self._raw_invoice(order.invoice_id, billing_account)
        if invoice["status"] not in ("open", "paid", "uncollectible"):
            raise BusinessError(
                SYSTEM,
                f"invoice {invoice.get('number') or invoice['id']} is {invoice['status']}; only a finalised invoice "
                "that is not void can be credited",
                code="invoice_not_open",
            )
        lines, total = self._note_lines(invoice, order)
        remaining = int(invoice.get("amount_remaining") or 0) if invoice["status"] != "paid" else 0
        post = total - min(total, remaining)
        params: dict[str, Any] = {
            "invoice": invoice["id"],
            "lines": lines,
            "reason": order.stripe_reason,
            "memo": order.memo or None,
            "metadata": order.metadata or None,
        }
        if post:
            if order.settlement == CreditSettlement.CUSTOMER_BALANCE:
                params["credit_amount"] = post
            elif await self._refundable_charge(invoice, billing_account):
                params["refund_amount"] = post
            else:
                params["out_of_band_amount"] = post  # paid outside Stripe: refunded outside it too
        tax_lines = {line["id"] for line in invoice["lines"]["data"] if is_tax_line(line)}
        return params, tax_lines

    async def _refundable_charge(self, invoice: dict[str, Any], billing_account: str) -> bool:
        charge_id = _id(invoice.get("charge"))
        if not charge_id or invoice.get("paid_out_of_band"):
            return False
        charge = await self._call("GET", f"/charges/{charge_id}", not_found_none=True, stripe_account=billing_account)
        return charge is not None and charge.get("status") == "succeeded"

    async def preview_credit_note(self, order: CreditNoteOrder, *, billing_account: str = "") -> CreditNote:
        params, tax_lines = await self._note_params(order, billing_account)
        preview = await self._call("GET", "/credit_notes/preview", params, stripe_account=billing_account)
        return to_credit_note(preview, tax_lines)

    async def create_credit_note(
        self, order: CreditNoteOrder, *, idempotency_key: str, billing_account: str = ""
    ) -> CreditNote:
        """Preview first (it creates nothing and refuses what the note would be refused for),
        then issue with the same parameters.

        Converges by state: the note carries the key in `metadata[o2c_idempotency_key]`,
        and a note of the invoice that already carries it is returned as it is. A retry
        after a lost answer must not compute the note again: the first note changed the
        invoice, so the parameters would differ and Stripe would refuse the key."""
        issued = await self._note_with_key(order.invoice_id, idempotency_key, billing_account)
        if issued is not None:
            return to_credit_note(issued, await self._tax_lines_of(order.invoice_id, billing_account))
        params, tax_lines = await self._note_params(order, billing_account)
        await self._call("GET", "/credit_notes/preview", params, stripe_account=billing_account)
        params["metadata"] = {**order.metadata, KEY_METADATA: idempotency_key}
        note = await self._call(
            "POST", "/credit_notes", params, idempotency_key=idempotency_key, stripe_account=billing_account
        )
        return to_credit_note(note, tax_lines)

    async def _note_with_key(self, invoice_id: str, key: str, billing_account: str) -> dict[str, Any] | None:
        after: str | None = None
        while True:
            page = await self._call(
                "GET",
                "/credit_notes",
                {"invoice": invoice_id, "limit": 100, "starting_after": after},
                stripe_account=billing_account,
            )
            for note in page["data"]:
                if (note.get("metadata") or {}).get(KEY_METADATA) == key:
                    found: dict[str, Any] = note
                    return found
            if not page.get("has_more") or not page["data"]:
                return None
            after = page["data"][-1]["id"]

    async def _tax_lines_of(self, invoice_id: str, billing_account: str) -> set[str]:
        invoice = await self._raw_invoice(invoice_id, billing_account)
        return {line["id"] for line in invoice["lines"]["data"] if is_tax_line(line)}

    async def void_credit_note(
        self, credit_note_id: str, *, idempotency_key: str, billing_account: str = ""
    ) -> CreditNote:
        note = await self._call(
            "GET", f"/credit_notes/{credit_note_id}", not_found_none=True, stripe_account=billing_account
        )
        if note is None:
            raise BusinessError(
                SYSTEM, f"credit note {credit_note_id} does not exist in billing", code="resource_missing", status=404
            )
        tax_lines = await self._tax_lines_of(_id(note["invoice"]), billing_account)
        if note["status"] == "void":
            return to_credit_note(note, tax_lines)
        try:
            voided = await self._call(
                "POST",
                f"/credit_notes/{credit_note_id}/void",
                {},
                idempotency_key=idempotency_key,
                stripe_account=billing_account,
            )
        except BusinessError:
            again = await self._call("GET", f"/credit_notes/{credit_note_id}", stripe_account=billing_account)
            if again["status"] != "void":
                raise
            voided = again
        return to_credit_note(voided, tax_lines)

    # -- refunds -----------------------------------------------------------------------------

    async def create_refund(
        self,
        *,
        charge_id: str,
        amount: Money,
        reason: str,
        metadata: dict[str, str],
        idempotency_key: str,
        billing_account: str = "",
    ) -> Refund:
        """Stripe takes three reasons; any other (o2c's own) goes as requested_by_customer
        with the reason in `metadata[reason]`."""
        charge = await self._call("GET", f"/charges/{charge_id}", not_found_none=True, stripe_account=billing_account)
        if charge is None:
            raise BusinessError(
                SYSTEM, f"charge {charge_id} does not exist in billing", code="resource_missing", status=404
            )
        currency = str(charge["currency"]).upper()
        minor = self._minor_of(amount, currency, "the refund")
        stripe_reason = reason if reason in STRIPE_REFUND_REASONS else "requested_by_customer"
        refund = await self._call(
            "POST",
            "/refunds",
            {
                "charge": charge_id,
                "amount": minor,
                "reason": stripe_reason,
                "metadata": {**metadata, **({"reason": reason} if reason and reason != stripe_reason else {})},
            },
            idempotency_key=idempotency_key,
            stripe_account=billing_account,
        )
        return to_refund(refund)

    # -- disputes ----------------------------------------------------------------------------

    async def get_dispute(self, dispute_id: str, *, billing_account: str = "") -> Dispute | None:
        dispute = await self._call(
            "GET", f"/disputes/{dispute_id}", not_found_none=True, stripe_account=billing_account
        )
        if dispute is None:
            return None
        charge = dispute.get("charge")
        if not isinstance(charge, dict) and _id(charge):
            charge = await self._call(
                "GET", f"/charges/{_id(charge)}", not_found_none=True, stripe_account=billing_account
            )
        charge = charge if isinstance(charge, dict) else {}
        return to_dispute(dispute, invoice_id=_id(charge.get("invoice")), customer=_id(charge.get("customer")))

    # -- cash application --------------------------------------------------------------------

    async def open_invoices_page(self, *, billing_account: str = "", cursor: str = "", limit: int = 100) -> InvoicePage:
        page = await self._call(
            "GET",
            "/invoices",
            {"status": "open", "limit": max(1, min(limit, 100)), "starting_after": cursor or None},
            stripe_account=billing_account,
        )
        data = page["data"]
        return InvoicePage(
            items=[await self._read_invoice(i, billing_account=billing_account) for i in data],
            next_cursor=data[-1]["id"] if page.get("has_more") and data else "",
        )
