"""In-memory payments (credit notes, refunds, disputes), tax returns and ERP receivables.

They sit beside tests/fakes.py and share its call log and its billing invoices and tax
documents, so a credit lowers the invoice billing reports and a voided return is the tax
document the tax fake voids. Like the real systems they keep idempotency (same key, same
result) and refuse what the real ones refuse (over-crediting, over-refunding).
"""

from __future__ import annotations

from datetime import date
from fractions import Fraction

from adapters.errors import BusinessError
from canonical.credits import (
    CreditNote,
    CreditNoteOrder,
    CreditSettlement,
    Dispute,
    Refund,
    TaxReturnRequest,
)
from canonical.models import TAX_PRODUCT, Invoice, TaxDocument, TaxLine
from canonical.money import Money, total
from canonical.receivables import CreditMemoPosting
from tests.fakes import FakeBilling, FakeSystems, FakeTax, Ledger


def _rounded(minor: Fraction) -> int:
    return int(abs(minor) + Fraction(1, 2)) * (-1 if minor < 0 else 1)


class FakePayments:
    """Stripe's credit notes: the tax follows the invoice's rate; what is still due is
    lowered first (pre-payment), the rest is credit balance or refund (post-payment)."""

    def __init__(self, ledger: Ledger, billing: FakeBilling):
        self.ledger = ledger
        self.billing = billing
        self.credit_notes: dict[str, CreditNote] = {}
        self._by_key: dict[str, str] = {}
        self.orders: dict[str, CreditNoteOrder] = {}
        self.refunds: dict[str, Refund] = {}
        self.customer_balance: dict[str, Money] = {}
        self.disputes: dict[str, Dispute] = {}
        self.charges: dict[str, Money] = {}  # charge -> what it collected

    def _note(self, order: CreditNoteOrder, credit_note_id: str) -> CreditNote:
        invoice = self.billing.invoices.get(order.invoice_id)
        if invoice is None:
            raise BusinessError("stripe", f"No such invoice: '{order.invoice_id}'", code="resource_missing")
        currency = invoice.currency
        priced = [x for x in invoice.lines if x.product != TAX_PRODUCT]
        subtotal = total((x.amount for x in priced), currency)
        tax_total = invoice.tax or total((x.amount for x in invoice.lines if x.product == TAX_PRODUCT), currency)
        net = total((x.amount for x in order.lines), currency) if order.lines else order.amount
        assert net is not None
        credited = invoice.credited or Money.zero(currency)
        if net + credited > subtotal:
            raise BusinessError(
                "stripe",
                "The sum of credit amount, refund amount and out of band amount can't exceed the invoice total",
                code="parameter_invalid_integer",
            )
        rate = Fraction(tax_total.minor, subtotal.minor) if subtotal.minor else Fraction(0)
        tax = Money.from_minor(_rounded(net.minor * rate), currency)
        gross = net + tax
        due = invoice.amount_remaining or Money.zero(currency)
        pre = gross if gross <= due else due
        post = gross - pre
        return CreditNote(
            credit_note_id=credit_note_id,
            invoice_id=invoice.id,
            status="issued",
            type="pre_payment" if post.is_zero else ("post_payment" if pre.is_zero else "mixed"),
            total=gross,
            subtotal=net,
            tax=tax,
            pre_payment_amount=pre,
            post_payment_amount=post,
        )

    async def preview_credit_note(self, order: CreditNoteOrder, *, billing_account: str = "") -> CreditNote:
        self.ledger.record("payments.preview_credit_note")
        return self._note(order, "cn_preview")

    async def create_credit_note(self, order: CreditNoteOrder, *, idempotency_key: str, billing_account: str = ""):
        self.ledger.record("payments.create_credit_note")
        if idempotency_key in self._by_key:
            return self.credit_notes[self._by_key[idempotency_key]]
        note = self._note(order, f"cn_{len(self.credit_notes) + 1}")
        invoice = self.billing.invoices[order.invoice_id]
        post = note.post_payment_amount or Money.zero(invoice.currency)
        if not post.is_zero and order.settlement == CreditSettlement.REFUND:
            refund = Refund(refund_id=f"re_cn_{len(self.refunds) + 1}", charge_id="", amount=post, status="succeeded")
            self.refunds[refund.refund_id] = refund
            note = note.model_copy(update={"refund_id": refund.refund_id})
        elif not post.is_zero:
            balance = self.customer_balance.get(invoice.account_id, Money.zero(invoice.currency))
            self.customer_balance[invoice.account_id] = balance + post
            note = note.model_copy(update={"customer_balance_transaction": f"cbtxn_{note.credit_note_id}"})
        self._apply(invoice, note, +1)
        self.credit_notes[note.credit_note_id] = note
        self.orders[note.credit_note_id] = order
        self._by_key[idempotency_key] = note.credit_note_id
        return note

    def _apply(self, invoice: Invoice, note: CreditNote, sign: int) -> None:
        zero = Money.zero(invoice.currency)
        pre = note.pre_payment_amount or zero
        net = note.subtotal or zero
        credited = (invoice.credited or zero) + (net if sign > 0 else -net)
        remaining = (invoice.amount_remaining or zero) + (-pre if sign > 0 else pre)
        status = invoice.status
        if invoice.status == "open" and remaining.is_zero:
            status = "paid"
        self.billing.invoices[invoice.id] = invoice.model_copy(
            update={"credited": credited, "amount_remaining": remaining, "status": status}
        )

    async def void_credit_note(self, credit_note_id: str, *, idempotency_key: str, billing_account: str = ""):
        self.ledger.record("payments.void_credit_note")
        note = self.credit_notes[credit_note_id]
        if note.status == "void":
            return note
        invoice = self.billing.invoices[note.invoice_id]
        if note.customer_balance_transaction:
            self.customer_balance[invoice.account_id] = self.customer_balance[invoice.account_id] - (
                note.post_payment_amount or Money.zero(invoice.currency)
            )
        self._apply(invoice, note, -1)
        self.credit_notes[credit_note_id] = note.model_copy(update={"status": "void"})
        return self.credit_notes[credit_note_id]

    async def create_refund(self, *, charge_id, amount, reason, metadata, idempotency_key, billing_account=""):
        self.ledger.record("payments.create_refund")
        if idempotency_key in self.refunds:
            return self.refunds[idempotency_key]
        collected = self.charges.get(charge_id)
        if collected is None:
            raise BusinessError("stripe", f"No such charge: '{charge_id}'", code="resource_missing")
        refunded = total((r.amount for r in self.refunds.values() if r.charge_id == charge_id), amount.currency)
        if refunded + amount > collected:
            raise BusinessError(
                "stripe",
                f"Refund amount ({amount}) is greater than unrefunded amount on charge",
                code="amount_too_large",
            )
        refund = Refund(
            refund_id=idempotency_key, charge_id=charge_id, amount=amount, status="succeeded", reason=reason
        )
        self.refunds[idempotency_key] = refund
        return refund

    async def get_dispute(self, dispute_id: str, *, billing_account: str = "") -> Dispute | None:
        self.ledger.record("payments.get_dispute")
        return self.disputes.get(dispute_id)

    async def mark_paid_out_of_band(self, invoice_id: str, *, idempotency_key: str, billing_account: str = ""):
        self.ledger.record("payments.mark_paid_out_of_band")
        return self.billing.invoices[invoice_id]

    async def open_invoices_page(self, *, billing_account: str = "", cursor: str = "", limit: int = 100):
        raise NotImplementedError


class FakeTaxReturns:
    """AvaTax ReturnInvoice into the tax fake's documents: negative amounts at the 10 % rate."""

    def __init__(self, ledger: Ledger, tax: FakeTax):
        self.ledger = ledger
        self.tax = tax
        self.requests: dict[str, TaxReturnRequest] = {}

    async def return_invoice(self, request: TaxReturnRequest) -> TaxDocument:
        self.ledger.record("tax.return_invoice")
        if request.original_code not in self.tax.documents:
            raise BusinessError("avatax", f"document {request.original_code} not found", code="EntityNotFoundError")
        if request.code not in self.tax.documents:
            lines = [
                TaxLine(number=x.number, amount=-x.amount, tax=-x.amount.times(FakeTax.RATE)) for x in request.lines
            ]
            self.tax.documents[request.code] = TaxDocument(
                code=request.code,
                type="ReturnInvoice",
                status="Committed",
                lines=lines,
                total_amount=total((x.amount for x in lines), request.currency),
                total_tax=total((x.tax for x in lines), request.currency),
                document_date=request.return_date,
                customer_code=request.customer_code,
            )
            self.requests[request.code] = request
        return self.tax.documents[request.code]

    async def void_return(self, *, code: str) -> TaxDocument | None:
        """As AvaTax voids by code and document type: only a ReturnInvoice is found here."""
        self.ledger.record("tax.void_return")
        document = self.tax.documents.get(code)
        if document is None or document.type != "ReturnInvoice":
            return None
        self.tax.documents[code] = document.model_copy(update={"status": "Cancelled"})
        return self.tax.documents[code]


class FakeReceivables:
    """NetSuite's receivables: a memo applied to an invoice's receivable lowers its open amount."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.documents: dict[str, str] = {}  # invoice id -> the receivable's internal id
        self.open: dict[str, Money] = {}  # receivable internal id -> open amount
        self.memos: dict[str, CreditMemoPosting] = {}
        self.reversed: list[str] = []

    def book(self, invoice_id: str, amount: Money) -> str:
        internal = f"{len(self.documents) + 100}"
        self.documents[invoice_id] = internal
        self.open[internal] = amount
        return internal

    async def receivable_document(self, invoice_id: str, *, subsidiary: str) -> str | None:
        self.ledger.record("receivables.receivable_document")
        return self.documents.get(invoice_id)

    async def post_credit_memo(self, memo: CreditMemoPosting) -> str:
        self.ledger.record("receivables.post_credit_memo")
        if memo.external_id in self.memos:
            return memo.external_id
        if memo.apply_to and memo.apply_amount is not None:
            left = self.open[memo.apply_to]
            if memo.apply_amount > left:
                raise BusinessError(
                    "netsuite", f"applying {memo.apply_amount} exceeds the open {left}", code="USER_ERROR"
                )
            self.open[memo.apply_to] = left - memo.apply_amount
        self.memos[memo.external_id] = memo
        return memo.external_id

    async def reverse_credit_memo(self, external_id: str) -> None:
        self.ledger.record("receivables.reverse_credit_memo")
        memo = self.memos.pop(external_id, None)
        if memo is None:
            return
        if memo.apply_to and memo.apply_amount is not None:
            self.open[memo.apply_to] = self.open[memo.apply_to] + memo.apply_amount
        self.reversed.append(external_id)

    async def post_customer_payment(self, payment):
        raise NotImplementedError

    async def get_customer_payment(self, external_id: str):
        return None

    async def post_customer_refund(self, refund):
        raise NotImplementedError

    async def open_amount(self, erp_document: str) -> Money | None:
        return self.open.get(erp_document)


class CreditSystems:
    """FakeSystems and the credit fakes over the same log and the same billing and tax."""

    def __init__(self, systems: FakeSystems):
        self.systems = systems
        self.payments = FakePayments(systems.ledger, systems.billing)
        self.tax_returns = FakeTaxReturns(systems.ledger, systems.tax)
        self.receivables = FakeReceivables(systems.ledger)

    def ports(self) -> dict:
        return {
            **self.systems.ports(),
            "payments": self.payments,
            "receivables": self.receivables,
            "tax_returns": self.tax_returns,
        }


def booked_invoice(
    systems: FakeSystems,
    credits: CreditSystems,
    *,
    invoice_id: str = "in_credit",
    status: str = "open",
    paid: str = "0.00",
    created: date = date(2026, 11, 1),
) -> Invoice:
    """An invoice o2c booked: seats 300.00 and support 100.00 at 10 % tax, its committed tax
    document under the invoice id, its receivable in the ERP."""
    from canonical.models import InvoiceLine, TaxDocument

    usd = lambda a: Money.of(a, "USD")  # noqa: E731
    lines = [
        InvoiceLine(product="seats", description="Platform seats", amount=usd("300.00"), line_id="il_seats"),
        InvoiceLine(product="support", description="Premium support", amount=usd("100.00"), line_id="il_support"),
        InvoiceLine(product=TAX_PRODUCT, description="Sales tax", amount=usd("40.00"), line_id="il_tax"),
    ]
    invoice = Invoice(
        id=invoice_id,
        account_id="cus_acme",
        subscription_id="sub_acme",
        status=status,
        currency="USD",
        total=usd("440.00"),
        lines=lines,
        amount_paid=usd(paid),
        amount_remaining=usd("440.00") - usd(paid),
        tax=usd("40.00"),
        created=created,
        metadata={"contract_id": "C-100"},
    )
    systems.billing.invoices[invoice_id] = invoice
    systems.tax.documents[invoice_id] = TaxDocument(
        code=invoice_id,
        type="SalesInvoice",
        status="Committed",
        total_amount=usd("400.00"),
        total_tax=usd("40.00"),
        document_date=created,
    )
    credits.receivables.book(invoice_id, usd("440.00") - usd(paid))
    return invoice
