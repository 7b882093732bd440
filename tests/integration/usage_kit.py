"""A metered customer on the real stack, for the usage end-to-end and chaos runs: seeded in the
sandbox's Stripe with a meter of its own, synced into o2c's master data, with six earlier
months of released usage in o2c's store, sending its events over HTTP to the ingress."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from adapters.storage.usage import SqlUsageStore, UsageLedger, sync
from adapters.stripe import StripeBilling
from canonical.money import Money
from canonical.usage.models import (
    Meter,
    UsageCustomer,
    UsagePolicy,
    UsageRelease,
    next_period,
    period_end,
    period_of,
    period_start,
    previous_period,
)
from sandbox import SandboxControl
from settings import Settings
from starter.usage_ingress import USAGE_PATH
from workflows.usage import UsageReleaseInput

# Usage of the month just ended, as at a real period end: o2c reports it with a timestamp in
# that month, which Stripe takes for 35 days.
PERIOD = period_of(datetime.now(tz=UTC).replace(day=1) - timedelta(days=1))
UNIT_PRICE = "0.25"  # cents per API call: 1,000 calls are 2.50 USD


class MeteredCustomer:
    def __init__(self, control: SandboxControl, settings: Settings, name: str = "usage", key: str = ""):
        self.control, self.settings = control, settings
        self.key = key or uuid.uuid4().hex[:8]
        self.customer = f"cus_{name}_{self.key}"
        self.subscription_id = f"sub_{name}_{self.key}"
        self.meter = f"api_calls_{self.key}"  # a meter of its own: event names are unique per account
        self.sent = 0

    def seed(self, *, subscribed: bool = True) -> MeteredCustomer:
        """The customer, and (unless `subscribed` is false) its subscription billing the meter
        for PERIOD; a customer without one cannot send usage yet."""
        self.control.seed(
            meters=[{"event_name": self.meter, "display_name": "API calls", "formula": "sum"}],
            customer={
                "id": self.customer,
                "name": f"Usage {self.key}",
                "email": f"ap@{self.key}.test",
                "currency": "USD",
                "address": {
                    "line1": "1 Market St",
                    "city": "San Francisco",
                    "region": "CA",
                    "postal_code": "94105",
                    "country": "US",
                },
            },
        )
        if subscribed:
            self.subscribe()
        return self

    def subscribe(self) -> None:
        start, end = period_start(PERIOD).date(), period_end(PERIOD).date()
        self.control.seed(
            subscription={
                "id": self.subscription_id,
                "customer": self.customer,
                "contract_id": f"C-{self.key}",
                "currency": "USD",
                "items": [
                    {"id": f"si_{self.key}", "product": "api", "meter": self.meter, "unit_amount_decimal": UNIT_PRICE}
                ],
                "current_period_start": start.isoformat(),
                "current_period_end": end.isoformat(),
                "term_start": start.isoformat(),
                "term_end": start.replace(year=start.year + 1).isoformat(),
            },
        )

    def event(self, n: int, value: int, **changes: Any) -> dict[str, Any]:
        at = period_end(PERIOD) - timedelta(hours=1) + timedelta(seconds=n % 3000)
        return {
            "identifier": f"{self.key}-{n}",
            "meter": self.meter,
            "customer": self.customer,
            "value": value,
            "timestamp": at.isoformat(),
            **changes,
        }


async def synced(settings: Settings, policy: UsagePolicy | None = None) -> UsageLedger:
    """o2c's usage master data, pulled from billing as `o2c usage sync` does."""
    ledger = UsageLedger(settings.database_url, policy=policy or settings.usage_policy)
    billing = StripeBilling(settings.stripe_base_url, settings.stripe_api_key, timeout=10)
    try:
        await sync(billing, policy or settings.usage_policy, ledger)
    except BaseException:
        await ledger.aclose()
        raise
    finally:
        await billing.aclose()
    return ledger


async def seed_history(settings: Settings, who: MeteredCustomer, quantities: list[int]) -> None:
    """Released usage of the months before PERIOD, oldest first: the review's baseline."""
    store = SqlUsageStore(settings.database_url)
    try:
        period = PERIOD
        for quantity in reversed(quantities):
            period = previous_period(period)
            amount = Money.of(Decimal(quantity) * Decimal(UNIT_PRICE) / 100, "USD", rounded=True)
            await store.record_release(
                UsageRelease(
                    workflow_id=f"usage-{who.subscription_id}-{period}",
                    subscription_id=who.subscription_id,
                    customer=who.customer,
                    legal_entity="US01",
                    period=period,
                    invoice_id=f"in_earlier_{who.key}_{period}",
                    currency="USD",
                    quantities={who.meter: quantity},
                    subtotal=amount,
                    credit=Money.zero("USD"),
                    tax=Money.zero("USD"),
                    total=amount,
                    released_at=period_start(next_period(period)),
                )
            )
    finally:
        await store.aclose()


async def send(ingress_url: str, api_key: str, events: list[dict[str, Any]]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(
            ingress_url + USAGE_PATH, json={"events": events}, headers={"Authorization": f"Bearer {api_key}"}
        )


async def release_input(settings: Settings, who: MeteredCustomer, **changes: Any) -> UsageReleaseInput:
    """What the period close starts for the customer's subscription, from billing's own view of it."""
    billing = StripeBilling(settings.stripe_base_url, settings.stripe_api_key, timeout=10)
    try:
        [customer] = [c for c in await billing.usage_customers() if c.subscription_id == who.subscription_id]
    finally:
        await billing.aclose()
    return input_for(customer, who.meter, settings, **changes)


def input_for(customer: UsageCustomer, meter: str, settings: Settings, **changes: Any) -> UsageReleaseInput:
    return UsageReleaseInput(
        subscription_id=customer.subscription_id,
        customer=customer.customer,
        period=PERIOD,
        legal_entity=customer.legal_entity,
        currency=customer.currency,
        meters=[Meter(event_name=meter, display_name="API calls", unit="API calls")],
        prices=customer.prices,
        segment=customer.segment,
        policy=settings.usage_policy,
        approvals=settings.approval_policy,
        legal_entities=settings.legal_entities,
        **changes,
    )
