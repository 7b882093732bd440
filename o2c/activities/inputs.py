"""Activity inputs: one model per call so that fields can be added without breaking history."""

from __future__ import annotations

from datetime import date

from o2c.canonical.models import Address, CrmTask, InvoiceLine, Model, Notification, SubscriptionLine


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


class VoidInvoice(Model):
    invoice_id: str
    step: str = "invoice-void"


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
