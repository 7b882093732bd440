"""Every activity the worker runs, built from the ports it is given."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.billing import BillingActivities
from activities.cash import CashActivities
from activities.credits import PaymentsActivities, ReceivablesActivities, TaxReturnActivities
from activities.crm import CrmActivities
from activities.dunning import CardAttemptActivities
from activities.entitlements import EntitlementActivities
from activities.erp import ErpActivities
from activities.notifications import NotificationActivities
from activities.reconciliation import ReconciliationActivities
from activities.revenue import RevenueActivities
from activities.schedules import ScheduleActivities
from activities.tax import TaxActivities
from activities.usage import UsageActivities
from adapters.ports import (
    BillingPort,
    CashStorePort,
    CrmPort,
    EntitlementPort,
    ErpPort,
    MeteringPort,
    NotificationPort,
    PaymentsPort,
    ReceivablesPort,
    ReconciliationStorePort,
    RevenuePostingStorePort,
    RevenueSchedulePort,
    TaxPort,
    TaxReturnsPort,
    UsageStorePort,
)


def all_activities(
    *,
    billing: BillingPort,
    tax: TaxPort,
    erp: ErpPort,
    entitlements: EntitlementPort,
    notifications: NotificationPort,
    crm: CrmPort,
    schedules: RevenueSchedulePort,
    reconciliations: ReconciliationStorePort,
    metering: MeteringPort,
    usage: UsageStorePort,
    cash: CashStorePort | None = None,
    payments: PaymentsPort | None = None,
    receivables: ReceivablesPort | None = None,
    tax_returns: TaxReturnsPort | None = None,
    revenue_postings: RevenuePostingStorePort | None = None,
) -> list[Callable[..., Any]]:
    """The cash, credit and dispute activities are registered with the ports they call; a
    worker given none of those (a test of other processes) runs without them. The worker's
    build_ports always gives them. The revenue posting activities need the store of what was
    posted (`revenue_postings`)."""
    b = BillingActivities(billing)
    t = TaxActivities(tax)
    e = ErpActivities(erp)
    n = NotificationActivities(notifications)
    g = EntitlementActivities(entitlements)
    r = CrmActivities(crm)
    s = ScheduleActivities(schedules)
    return [
        b.get_account,
        b.get_subscription,
        b.update_subscription,
        b.create_invoice,
        b.void_invoice,
        b.get_invoice,
        b.retry_payment,
        b.cancel_subscription,
        b.mark_uncollectible,
        b.create_customer,
        b.create_subscription,
        b.end_subscription,
        b.subscriptions_ending,
        t.quote,
        t.commit,
        t.void,
        e.post_journal_entry,
        e.get_journal_entry,
        e.upsert_collection_case,
        e.upsert_customer,
        g.set_seats,
        g.set_restriction,
        n.send,
        r.flag_account,
        r.create_task,
        s.save,
        s.delete,
        s.of_contract,
        s.replace,
        *ReconciliationActivities(billing, tax, erp, schedules, reconciliations, usage, revenue_postings).all(),
        *UsageActivities(metering, usage).all(),
        # The dunning's card attempt ledger lives in the cash store (o2c's database).
        *(CardAttemptActivities(cash).all() if cash is not None else []),
        *(PaymentsActivities(payments).all() if payments is not None else []),
        *(ReceivablesActivities(receivables).all() if receivables is not None else []),
        *(TaxReturnActivities(tax_returns).all() if tax_returns is not None else []),
        *(RevenueActivities(schedules, revenue_postings).all() if revenue_postings is not None else []),
        *(
            CashActivities(cash, payments, receivables, erp, crm).all()
            if cash is not None and payments is not None and receivables is not None
            else []
        ),
    ]
