"""Activity inputs: one model per call so that fields can be added without breaking history."""

from __future__ import annotations

from datetime import date

from o2c.canonical.models import (
    Account,
    Address,
    CrmTask,
    InvoiceLine,
    Model,
    Notification,
    SubscriptionLine,
    SubscriptionTerm,
)


class UpdateSubscription(Model):
    subscription_id: str
    lines: list[SubscriptionLine]
    step: str


class CreateInvoice(Model):
    account_id: str
    subscription_id: str
    currency: str
    lines: list[InvoiceLine]
    description: str
    metadata: dict[str, str] = {}
    step: str = "invoice"
    billing_account: str = ""  # the legal entity's Stripe account; empty for the platform's


class VoidInvoice(Model):
    invoice_id: str
    step: str = "invoice-void"
    billing_account: str = ""


class TaxRequest(Model):
    code: str
    customer_code: str
    document_date: date
    currency: str
    address: Address
    lines: list[InvoiceLine]


class SetSeats(Model):
    account_id: str
    product: str
    seats: int
    step: str


class SendNotification(Model):
    notification: Notification
    step: str


class InvoiceStep(Model):
    """A keyed change to one invoice (pay, mark uncollectible)."""

    invoice_id: str
    step: str


class CancelSubscription(Model):
    subscription_id: str
    step: str


class SetRestriction(Model):
    account_id: str
    restricted: bool
    step: str


class FlagAccount(Model):
    account_id: str
    flag: str
    on: bool


class CreateTask(Model):
    task: CrmTask
    step: str


class CreateCustomer(Model):
    account: Account
    billing_account: str
    step: str


class CreateSubscription(Model):
    term: SubscriptionTerm
    billing_account: str = ""
    step: str


class EndSubscription(Model):
    subscription_id: str
    at: date | None  # None: let it run on (undo an earlier end date)
    step: str


class UpsertErpCustomer(Model):
    account: Account
    subsidiary: str


class TermsEnding(Model):
    start: date
    end: date
