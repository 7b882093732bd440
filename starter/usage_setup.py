"""Setting up a usage month on the sandbox, as the demo and the end-to-end tests do it: a metered
customer in billing, o2c's master data synced from it, earlier months of history, usage sent
over the real HTTP ingress with an API key, and the release started and carried to the draft.

Plain functions, each one step, in the order a month happens:

    period = usage_period(date.today())                 # the month that has just ended
    seed_metered_customer(control, customer, subscription, period)
    await sync_master_data(settings, policy)            # billing's meters and customers -> o2c
    await seed_history(settings, customer=..., subscription_id=..., quantities=[...])
    key = await create_api_key(settings, "demo-abc123")
    answer = await send_events(ingress_url(settings), key, month_of_usage(...))
    handle = await start_release(client, settings, control, await release_input(settings, customer, period))

The sandbox subscription's current period is the usage period (the previous calendar month),
so its events are timestamped inside that month and o2c reports the month's totals with a
timestamp in it, which Stripe accepts for 35 days: this works on any day of the month.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from adapters.storage.usage import SqlUsageStore, SyncResult, UsageLedger, sync
from adapters.stripe import StripeBilling
from canonical.money import Money
from canonical.usage.models import (
    MAX_BATCH,
    Meter,
    UsageCustomer,
    UsageEvent,
    UsagePolicy,
    UsageRelease,
    period_end,
    period_of,
    period_start,
    previous_period,
)
from sandbox import SandboxControl
from settings import Settings
from starter import client as o2c
from starter.usage_ingress import USAGE_PATH
from workflows.usage import UsageReleaseInput, UsageReleaseWorkflow, UsageResult
from workflows.usage_close import UsageCloseInput
from workflows.usage_close import release_input as close_release_input

API_CALLS = "api_calls"
# o2c's rule for the demo's meter: how the review speaks of its quantities.
API_CALLS_RULE = Meter(event_name=API_CALLS, display_name="API calls", unit="API calls")
# A cent an API call.
API_CALL_PRICE = Decimal("0.01")


def usage_period(today: date) -> str:
    """The usage period a release bills today: the calendar month that has just ended."""
    return previous_period(period_of(datetime(today.year, today.month, today.day, tzinfo=UTC)))


def demo_policy(settings: Settings) -> UsagePolicy:
    """The configured usage policy with o2c's rule for the API calls meter (unless it has one)."""
    policy = settings.usage_policy
    if any(m.event_name == API_CALLS for m in policy.meters):
        return policy
    return policy.model_copy(update={"meters": [*policy.meters, API_CALLS_RULE]})


def seed_metered_customer(
    control: SandboxControl,
    customer: str,
    subscription: str,
    period: str,
    *,
    name: str = "",
    with_subscription: bool = True,
) -> dict[str, Any]:
    """A customer in billing (San Francisco, so tax has a jurisdiction) and, unless told not
    to, its subscription: ten seats and API calls at a cent each on the `api_calls` meter,
    whose current period is `period` and which began a year before it."""
    start = period_start(period).date()
    term_start = date(start.year - 1, start.month, 1)
    body: dict[str, Any] = {
        "meters": [{"event_name": API_CALLS, "display_name": "API calls", "formula": "sum"}],
        "customer": {
            "id": customer,
            "name": name or f"{customer} Inc",
            "email": f"billing@{customer}.example",
            "currency": "USD",
            "legal_entity": "US01",
            "address": {
                "line1": "1 Market St",
                "city": "San Francisco",
                "region": "CA",
                "postal_code": "94105",
                "country": "US",
            },
        },
    }
    if with_subscription:
        body["subscription"] = {
            "id": subscription,
            "contract_id": f"C-{subscription}",
            "currency": "USD",
            "items": [
                {"product": "seats", "description": "Platform seat", "quantity": 10, "unit_price": "50.00"},
                {
                    "id": f"si_{subscription}_api",
                    "product": "api-calls",
                    "description": "API calls",
                    "meter": API_CALLS,
                    "unit_price": str(API_CALL_PRICE),
                },
            ],
            "current_period_start": start.isoformat(),
            "current_period_end": period_end(period).date().isoformat(),
            "term_start": term_start.isoformat(),
            "term_end": date(term_start.year + 2, term_start.month, 1).isoformat(),
        }
    return control.seed(**body)


def billing_of(settings: Settings) -> StripeBilling:
    return StripeBilling(
        settings.stripe_base_url,
        settings.stripe_api_key,
        timeout=settings.http_timeout_seconds,
        meter_events_url=settings.stripe_meter_events_url,
    )


async def sync_master_data(settings: Settings, policy: UsagePolicy) -> SyncResult:
    """`o2c usage sync`: billing's meters and metered customers become o2c's master data.
    The ingress re-reads master data every few seconds; sync before the events are sent."""
    billing, ledger = billing_of(settings), UsageLedger(settings.database_url, policy=policy)
    try:
        accounts = [entity.billing_account for entity in settings.legal_entities]
        return await sync(billing, policy, ledger, billing_accounts=accounts)
    finally:
        await ledger.aclose()
        await billing.aclose()


async def metered_customer(settings: Settings, customer: str) -> UsageCustomer:
    """The customer as o2c's master data holds it after a sync."""
    ledger = UsageLedger(settings.database_url)
    try:
        found = (await asyncio.to_thread(ledger.refresh)).customers.get(customer)
    finally:
        await ledger.aclose()
    if found is None:
        raise LookupError(f"{customer} is not a metered customer in o2c's master data; seed it and sync")
    return found


async def seed_history(
    settings: Settings,
    *,
    customer: str,
    subscription_id: str,
    period: str,
    quantities: list[int],
    meter: str = API_CALLS,
    price: Decimal = API_CALL_PRICE,
) -> list[UsageRelease]:
    """Releases of the months before `period` (oldest first, one per quantity), as o2c would
    have recorded them: the history the review compares the month with."""
    months = [period]
    for _ in quantities:
        months.insert(0, previous_period(months[0]))
    store = SqlUsageStore(settings.database_url)
    releases = []
    try:
        for month, quantity in zip(months, quantities, strict=False):
            subtotal = Money.of(price * quantity, "USD")
            release = UsageRelease(
                workflow_id=f"earlier-usage-{subscription_id}-{month}",
                subscription_id=subscription_id,
                customer=customer,
                legal_entity="US01",
                period=month,
                invoice_id=f"in_earlier_{subscription_id}_{month}",
                currency="USD",
                quantities={meter: quantity},
                subtotal=subtotal,
                credit=Money.zero("USD"),
                tax=Money.zero("USD"),
                total=subtotal,
                released_at=period_end(month) + timedelta(days=1),
            )
            await store.record_release(release)
            releases.append(release)
    finally:
        await store.aclose()
    return releases


async def create_api_key(settings: Settings, name: str) -> str:
    """`o2c usage keys create NAME`: the key a sending system authenticates with."""
    ledger = UsageLedger(settings.database_url)
    try:
        return await ledger.create_key(name)
    finally:
        await ledger.aclose()


def ingress_url(settings: Settings) -> str:
    return f"http://{settings.webhook_host}:{settings.webhook_port}{USAGE_PATH}"


def month_of_usage(
    customer: str, period: str, quantity: int, *, events: int = 20, prefix: str = "", meter: str = API_CALLS
) -> list[UsageEvent]:
    """`events` events adding up to `quantity`, spread evenly over the period, with identifiers
    `<prefix>-<n>` (the producer's own, so a resend is recognised)."""
    start, end = period_start(period), period_end(period)
    step = (end - start) / (events + 1)
    share, rest = divmod(quantity, events)
    return [
        UsageEvent(
            identifier=f"{prefix or customer}-{n}",
            meter=meter,
            customer=customer,
            value=share + (1 if n < rest else 0),
            timestamp=start + step * (n + 1),
        )
        for n in range(events)
    ]


async def send_events(url: str, api_key: str, events: list[UsageEvent]) -> dict[str, Any]:
    """POST the events to the usage ingress in batches; the answers added up:
    `accepted`, `duplicates`, `refused` and every event's `results`."""
    total: dict[str, Any] = {"accepted": 0, "duplicates": 0, "refused": 0, "results": []}
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {api_key}"}) as http:
        for at in range(0, len(events), MAX_BATCH):
            batch = [e.model_dump(mode="json", exclude_defaults=True) for e in events[at : at + MAX_BATCH]]
            response = await http.post(url, json={"events": batch})
            response.raise_for_status()
            answer = response.json()
            for name in ("accepted", "duplicates", "refused"):
                total[name] += answer[name]
            total["results"] += answer["results"]
    return total


async def release_input(settings: Settings, customer: str, period: str, policy: UsagePolicy) -> UsageReleaseInput:
    """What the period close would start for the customer's subscription (o2c's master data)."""
    usage_customer = await metered_customer(settings, customer)
    entities = settings.legal_entities
    entity = next((e for e in entities if e.code == usage_customer.legal_entity), entities[0])
    close = UsageCloseInput(policy=policy, approvals=settings.approval_policy, legal_entities=entities)
    return close_release_input(usage_customer, period, entity, close)


async def reported(client: Client, workflow_id: str, timeout: float = 120) -> dict[str, Any]:
    """The release's state once it has reported every total to billing's meters."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        with contextlib.suppress(RPCError):  # just started: its first task may not have run
            state = await o2c.process_state(client, workflow_id)
            totals = state.get("totals") or []
            if totals and all(state["reported"].get(t["meter"]) == t["quantity"] for t in totals):
                return state
            if state.get("status") not in ("running", None):
                raise RuntimeError(f"{workflow_id} stopped before reporting: {state['status']}: {state['stage']}")
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{workflow_id} did not report its totals in {timeout} s")
        await asyncio.sleep(0.1)


async def start_release(
    client: Client, settings: Settings, control: SandboxControl, input: UsageReleaseInput
) -> WorkflowHandle[UsageReleaseWorkflow, UsageResult]:
    """Start the release, and once it has reported the month to billing's meters, end the
    subscription's period in the sandbox as Stripe does at month end: the draft invoice
    (`invoice.created`, which the webhook ingress hands to the release)."""
    handle = await o2c.start_usage_release(client, input, task_queue=settings.task_queue)
    await reported(client, handle.id)
    await asyncio.to_thread(control.end_period, input.subscription_id)
    return handle
