"""Usage to invoice: billing's meters and drafts, and o2c's own usage store.

The creates on billing (a line on a draft, the finalisation) carry an idempotency key from
the workflow and the step; the meter reports carry their own identifiers, derived by the
workflow from the aggregate, so sending them again counts nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.errors import classified, idempotency_key
from activities.inputs import (
    AddInvoiceLine,
    FinalizeInvoice,
    FindUsageDraft,
    HoldInvoice,
    MeteredQuantities,
    RemoveInvoiceLine,
    ReportUsage,
    UsageCustomers,
    UsageHistory,
    UsagePeriod,
)
from adapters.ports import MeteringPort, UsageStorePort
from canonical.models import Invoice
from canonical.usage.models import UsageCustomer, UsageRelease, UsageTotal


class UsageActivities:
    def __init__(self, metering: MeteringPort, usage: UsageStorePort):
        self.metering = metering
        self.usage = usage

    # -- o2c's usage store ------------------------------------------------------------------

    @activity.defn(name="usage.close_period")
    @classified
    async def close_period(self, request: UsagePeriod) -> None:
        await self.usage.close_period(request.customer, request.period)

    @activity.defn(name="usage.totals")
    @classified
    async def totals(self, request: UsagePeriod) -> list[UsageTotal]:
        return await self.usage.totals(request.customer, request.period)

    @activity.defn(name="usage.history")
    @classified
    async def history(self, request: UsageHistory) -> dict[str, list[int]]:
        return {
            meter: await self.usage.history(request.customer, meter, before=request.before, periods=request.periods)
            for meter in request.meters
        }

    @activity.defn(name="usage.previous_release")
    @classified
    async def previous_release(self, request: UsagePeriod) -> UsageRelease | None:
        return await self.usage.previous_release(request.customer, before=request.period)

    @activity.defn(name="usage.record_release")
    @classified
    async def record_release(self, release: UsageRelease) -> None:
        await self.usage.record_release(release)

    @activity.defn(name="usage.delete_release")
    @classified
    async def delete_release(self, workflow_id: str) -> None:
        await self.usage.delete_release(workflow_id)

    # -- billing's meters and drafts --------------------------------------------------------

    @activity.defn(name="usage.customers")
    @classified
    async def customers(self, request: UsageCustomers) -> list[UsageCustomer]:
        return await self.metering.usage_customers(
            billing_account=request.billing_account, after=request.after, limit=request.limit
        )

    @activity.defn(name="usage.report")
    @classified
    async def report(self, request: ReportUsage) -> None:
        await self.metering.report_usage(request.reports, billing_account=request.billing_account)

    @activity.defn(name="usage.metered_quantities")
    @classified
    async def metered_quantities(self, request: MeteredQuantities) -> dict[str, int]:
        """Per meter, what billing has counted for the customer in the window."""
        return {
            meter: await self.metering.metered_quantity(
                meter,
                customer=request.customer,
                start=request.start,
                end=request.end,
                billing_account=request.billing_account,
            )
            for meter in request.meters
        }

    @activity.defn(name="usage.find_draft")
    @classified
    async def find_draft(self, request: FindUsageDraft) -> Invoice | None:
        return await self.metering.find_usage_draft(
            request.subscription_id,
            period_start=request.period_start,
            period_end=request.period_end,
            billing_account=request.billing_account,
        )

    @activity.defn(name="usage.hold_invoice")
    @classified
    async def hold_invoice(self, request: HoldInvoice) -> Invoice:
        return await self.metering.hold_invoice(request.invoice_id, billing_account=request.billing_account)

    @activity.defn(name="usage.add_invoice_line")
    @classified
    async def add_invoice_line(self, request: AddInvoiceLine) -> Invoice:
        return await self.metering.add_invoice_line(
            request.invoice_id,
            customer=request.customer,
            amount=request.amount,
            description=request.description,
            metadata=request.metadata,
            idempotency_key=idempotency_key(request.step),
            billing_account=request.billing_account,
        )

    @activity.defn(name="usage.remove_invoice_line")
    @classified
    async def remove_invoice_line(self, request: RemoveInvoiceLine) -> None:
        await self.metering.remove_invoice_line(
            request.line_id, idempotency_key=idempotency_key(request.step), billing_account=request.billing_account
        )

    @activity.defn(name="usage.finalize_invoice")
    @classified
    async def finalize_invoice(self, request: FinalizeInvoice) -> Invoice:
        return await self.metering.finalize_invoice(
            request.invoice_id, idempotency_key=idempotency_key(request.step), billing_account=request.billing_account
        )

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.close_period,
            self.totals,
            self.history,
            self.previous_release,
            self.record_release,
            self.delete_release,
            self.customers,
            self.report,
            self.metered_quantities,
            self.find_draft,
            self.hold_invoice,
            self.add_invoice_line,
            self.remove_invoice_line,
            self.finalize_invoice,
        ]
