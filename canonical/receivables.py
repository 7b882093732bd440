"""The ERP's receivables documents o2c posts: customer payments, credit memos, refunds.

o2c books an invoice in the ERP as a journal entry whose receivable line names the
customer; those are the documents a payment or a credit memo is applied to (NetSuite
applies payments to A/R journal entries as to invoices). A payment posts Dr cash /
Cr receivable by itself; what it does not apply stays unapplied on the customer.
"""

from __future__ import annotations

from datetime import date

from pydantic import model_validator

from canonical.models import Model
from canonical.money import Money, total


class AppliedDocument(Model):
    erp_document: str  # the ERP's internal id of the receivable (or of a memo, on a refund)
    invoice_id: str  # the billing invoice it books (for people and reconciliation)
    amount: Money


class CustomerPayment(Model):
    external_id: str  # cash-<receipt id>: upserted, so posting twice leaves one payment
    customer: str  # the billing customer id (the ERP customer's external id)
    subsidiary: str
    amount: Money
    tran_date: date
    account: str  # the GL account the money is in (bank, or the Stripe clearing account)
    applications: list[AppliedDocument] = []
    memo: str = ""
    receipt_id: str = ""

    @model_validator(mode="after")
    def _not_over_applied(self) -> CustomerPayment:
        applied = total((a.amount for a in self.applications), self.amount.currency)
        if applied > self.amount:
            raise ValueError(f"payment {self.external_id} applies {applied}, more than its {self.amount}")
        return self

    @property
    def applied(self) -> Money:
        return total((a.amount for a in self.applications), self.amount.currency)

    @property
    def unapplied(self) -> Money:
        return self.amount - self.applied


class CreditMemoLine(Model):
    account: str  # the GL account the credited amount goes to (see credit_entry)
    amount: Money
    memo: str = ""


class CreditMemoPosting(Model):
    external_id: str  # credit-<credit id>-memo
    customer: str
    subsidiary: str
    currency: str
    tran_date: date
    invoice_id: str
    lines: list[CreditMemoLine]
    tax: Money
    apply_to: str = ""  # the original's receivable; empty when it is settled already
    apply_amount: Money | None = None  # how much of the memo is applied to it
    memo: str = ""

    @property
    def total(self) -> Money:
        return total((x.amount for x in self.lines), self.currency) + self.tax


class CustomerRefundPosting(Model):
    external_id: str
    customer: str
    subsidiary: str
    amount: Money
    tran_date: date
    account: str  # the GL account the money leaves from
    applications: list[AppliedDocument]  # the payments or credit memos it refunds
    memo: str = ""
