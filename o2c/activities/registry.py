"""Every activity the worker runs, built from the ports it is given."""

from __future__ import annotations

from typing import Any, Callable

from o2c.activities.billing import BillingActivities
from o2c.activities.customer import CustomerActivities
from o2c.activities.erp import ErpActivities
from o2c.activities.tax import TaxActivities
from o2c.adapters.ports import BillingPort, EntitlementPort, ErpPort, NotificationPort, TaxPort


def all_activities(
    *,
    billing: BillingPort,
    tax: TaxPort,
    erp: ErpPort,
    entitlements: EntitlementPort,
    notifications: NotificationPort,
) -> list[Callable[..., Any]]:
    b = BillingActivities(billing)
    t = TaxActivities(tax)
    e = ErpActivities(erp)
    c = CustomerActivities(entitlements, notifications)
    return [
        b.get_account, b.get_subscription, b.update_subscription, b.create_invoice, b.void_invoice,
        t.quote, t.commit, t.void,
        e.post_journal_entry, e.get_journal_entry,
        c.set_seats, c.send,
    ]
