"""Credits, refunds and disputes: one call each to billing's payments, the tax engine's
returns and the ERP's receivables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.errors import classified, idempotency_key
from activities.inputs import FindReceivable, IssueCreditNote, IssueRefund, ReadDispute, VoidCreditNote
from adapters.ports import PaymentsPort, ReceivablesPort, TaxReturnsPort
from canonical.credits import CreditNote, Dispute, Refund, TaxReturnRequest
from canonical.models import TaxDocument
from canonical.receivables import CreditMemoPosting


class PaymentsActivities:
    def __init__(self, payments: PaymentsPort):
        self.payments = payments

    @activity.defn(name="payments.preview_credit_note")
    @classified
    async def preview_credit_note(self, request: IssueCreditNote) -> CreditNote:
        return await self.payments.preview_credit_note(request.order, billing_account=request.billing_account)

    @activity.defn(name="payments.create_credit_note")
    @classified
    async def create_credit_note(self, request: IssueCreditNote) -> CreditNote:
        return await self.payments.create_credit_note(
            request.order, idempotency_key=idempotency_key(request.step), billing_account=request.billing_account
        )

    @activity.defn(name="payments.void_credit_note")
    @classified
    async def void_credit_note(self, request: VoidCreditNote) -> CreditNote:
        return await self.payments.void_credit_note(
            request.credit_note_id,
            idempotency_key=idempotency_key(request.step),
            billing_account=request.billing_account,
        )

    @activity.defn(name="payments.create_refund")
    @classified
    async def create_refund(self, request: IssueRefund) -> Refund:
        return await self.payments.create_refund(
            charge_id=request.charge_id,
            amount=request.amount,
            reason=request.reason,
            metadata=request.metadata,
            idempotency_key=idempotency_key(request.step),
            billing_account=request.billing_account,
        )

    @activity.defn(name="payments.get_dispute")
    @classified
    async def get_dispute(self, request: ReadDispute) -> Dispute | None:
        return await self.payments.get_dispute(request.dispute_id, billing_account=request.billing_account)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.preview_credit_note,
            self.create_credit_note,
            self.void_credit_note,
            self.create_refund,
            self.get_dispute,
        ]


class TaxReturnActivities:
    def __init__(self, returns: TaxReturnsPort):
        self.returns = returns

    @activity.defn(name="tax.return_invoice")
    @classified
    async def return_invoice(self, request: TaxReturnRequest) -> TaxDocument:
        # The document code is the idempotency key: AvaTax returns the same document for it.
        return await self.returns.return_invoice(request)

    @activity.defn(name="tax.void_return")
    @classified
    async def void_return(self, code: str) -> TaxDocument | None:
        return await self.returns.void_return(code=code)

    def all(self) -> list[Callable[..., Any]]:
        return [self.return_invoice, self.void_return]


class ReceivablesActivities:
    def __init__(self, receivables: ReceivablesPort):
        self.receivables = receivables

    @activity.defn(name="receivables.receivable_document")
    @classified
    async def receivable_document(self, request: FindReceivable) -> str | None:
        return await self.receivables.receivable_document(request.invoice_id, subsidiary=request.subsidiary)

    @activity.defn(name="receivables.post_credit_memo")
    @classified
    async def post_credit_memo(self, memo: CreditMemoPosting) -> str:
        # Upserted by the memo's external id (credit-<id>-memo): posting twice leaves one.
        return await self.receivables.post_credit_memo(memo)

    @activity.defn(name="receivables.reverse_credit_memo")
    @classified
    async def reverse_credit_memo(self, external_id: str) -> None:
        await self.receivables.reverse_credit_memo(external_id)

    def all(self) -> list[Callable[..., Any]]:
        return [self.receivable_document, self.post_credit_memo, self.reverse_credit_memo]
