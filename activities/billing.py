from __future__ import annotations

from temporalio import activity

from activities.errors import classified, idempotency_key
from activities.inputs import (
    CancelSubscription,
    CreateCustomer,
    CreateInvoice,
    CreateSubscription,
    EndSubscription,
    InvoiceStep,
    TermsEnding,
    UpdateSubscription,
    VoidInvoice,
)
from adapters.ports import BillingPort
from canonical.models import Account, Invoice, PaymentAttempt, Subscription


class BillingActivities:
    def __init__(self, billing: BillingPort):
        self.billing = billing

    @activity.defn(name="billing.get_account")
    @classified
    async def get_account(self, account_id: str) -> Account | None:
        return await self.billing.get_account(account_id)

    @activity.defn(name="billing.get_subscription")
    @classified
    async def get_subscription(self, subscription_id: str) -> Subscription | None:
        return await self.billing.get_subscription(subscription_id)

    @activity.defn(name="billing.update_subscription")
    @classified
    async def update_subscription(self, request: UpdateSubscription) -> Subscription:
        return await self.billing.update_subscription_lines(
            request.subscription_id, request.lines, idempotency_key=idempotency_key(request.step)
        )

    @activity.defn(name="billing.create_invoice")
    @classified
    async def create_invoice(self, request: CreateInvoice) -> Invoice:
        return await self.billing.create_proration_invoice(
            account_id=request.account_id,
            subscription_id=request.subscription_id,
            currency=request.currency,
            lines=request.lines,
            description=request.description,
            metadata=request.metadata,
            idempotency_key=idempotency_key(request.step),
            billing_account=request.billing_account,
        )

    @activity.defn(name="billing.void_invoice")
    @classified
    async def void_invoice(self, request: VoidInvoice) -> Invoice:
        return await self.billing.void_invoice(
            request.invoice_id, idempotency_key=idempotency_key(request.step), billing_account=request.billing_account
        )

    @activity.defn(name="billing.get_invoice")
    @classified
    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        return await self.billing.get_invoice(invoice_id)

    @activity.defn(name="billing.retry_payment")
    @classified
    async def retry_payment(self, request: InvoiceStep) -> PaymentAttempt:
        return await self.billing.retry_payment(request.invoice_id, idempotency_key=idempotency_key(request.step))

    @activity.defn(name="billing.cancel_subscription")
    @classified
    async def cancel_subscription(self, request: CancelSubscription) -> Subscription:
        return await self.billing.cancel_subscription(
            request.subscription_id, idempotency_key=idempotency_key(request.step)
        )

    @activity.defn(name="billing.mark_uncollectible")
    @classified
    async def mark_uncollectible(self, request: InvoiceStep) -> Invoice:
        return await self.billing.mark_uncollectible(request.invoice_id, idempotency_key=idempotency_key(request.step))

    @activity.defn(name="billing.create_customer")
    @classified
    async def create_customer(self, request: CreateCustomer) -> Account:
        return await self.billing.create_customer(
            request.account, billing_account=request.billing_account, idempotency_key=idempotency_key(request.step)
        )

    @activity.defn(name="billing.create_subscription")
    @classified
    async def create_subscription(self, request: CreateSubscription) -> Subscription:
        return await self.billing.create_subscription(
            request.term, billing_account=request.billing_account, idempotency_key=idempotency_key(request.step)
        )

    @activity.defn(name="billing.end_subscription")
    @classified
    async def end_subscription(self, request: EndSubscription) -> Subscription:
        key = idempotency_key(request.step)
        if request.at is None:
            return await self.billing.cancel_subscription_end(request.subscription_id, idempotency_key=key)
        return await self.billing.end_subscription_at(request.subscription_id, request.at, idempotency_key=key)

    @activity.defn(name="billing.subscriptions_ending")
    @classified
    async def subscriptions_ending(self, window: TermsEnding) -> list[Subscription]:
        return await self.billing.subscriptions_ending(window.start, window.end)
