"""Usage to invoice on the real stack: events over HTTP to the ingress, o2c's database, the
release on the dev server with the real worker, Stripe's meters and draft in the sandbox (its
`invoice.created` signed to the webhook ingress), AvaTax and NetSuite, then reconciled."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from adapters.storage.usage import SqlUsageStore
from canonical.models import ApproverRole
from canonical.money import Money
from canonical.usage.models import ReviewAction, UsageDecision, last_day, period_end, period_start
from starter import client as o2c
from tests.integration.usage_kit import PERIOD, MeteredCustomer, release_input, seed_history, send, synced
from workflows.kit.status import Status
from workflows.usage import UsageOutcome

pytestmark = pytest.mark.integration


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


def stripe_invoice(control, invoice_id: str) -> dict:
    [invoice] = [i for i in control.records("stripe", "invoice") if i["id"] == invoice_id]
    return invoice


def entries_of(control, workflow_id: str) -> dict[str, dict]:
    return {
        e["externalId"]: e
        for e in control.records("netsuite", "journalEntry")
        if str(e.get("externalId", "")).startswith(workflow_id)
    }


def balanced(entry: dict) -> bool:
    lines = entry["line"]["items"]
    debits = sum(Decimal(str(x["debit"])) for x in lines if x.get("debit") is not None)
    credits = sum(Decimal(str(x["credit"])) for x in lines if x.get("credit") is not None)
    return debits == credits > 0


async def test_a_normal_month_is_counted_once_released_and_booked(
    dev_server, settings, worker, webhooks, control, billing
):
    who = MeteredCustomer(control, settings).seed()
    ledger = await synced(settings)
    try:
        key = await ledger.create_key(f"platform-{who.key}")
        ingress = webhooks.removesuffix("/webhooks/stripe")
        first = await send(ingress, key, [who.event(n, 100) for n in range(40)])
        # A producer's retry, one event of a meter nobody defined and one from the future.
        retry = [who.event(n, 100) for n in range(30, 50)] + [
            who.event(900, 5, meter="no_such_meter"),
            who.event(901, 5, timestamp="2999-01-01T00:00:00+00:00"),
        ]
        second = await send(ingress, key, retry)
    finally:
        await ledger.aclose()
    assert first.status_code == 200 and first.json()["accepted"] == 40
    answer = second.json()
    assert (answer["accepted"], answer["duplicates"], answer["refused"]) == (10, 10, 2)
    reasons = {r["identifier"]: r.get("reason") for r in answer["results"] if r["outcome"] == "refused"}
    assert reasons == {f"{who.key}-900": "unknown_meter", f"{who.key}-901": "future_timestamp"}

    await seed_history(settings, who, [4_900, 5_100, 5_000, 4_800, 5_200, 5_000])
    handle = await o2c.start_usage_release(
        dev_server.client, await release_input(settings, who), task_queue=settings.task_queue
    )
    # The period ends in billing: Stripe's draft, signed to the webhook ingress.
    await o2c.wait_for_status(dev_server.client, handle.id, Status.RUNNING)
    control.end_period(who.subscription_id)
    result = await handle.result()
    assert result.outcome == UsageOutcome.RELEASED, result.message

    state = await o2c.process_state(dev_server.client, handle.id)
    assert state["findings"] == [] and state["approval"]["request"] is None  # nobody was asked
    invoice = stripe_invoice(control, result.invoice_id)
    assert invoice["status"] == "open" and invoice["auto_advance"] is False
    [usage_line] = [x for x in invoice["lines"]["data"] if (x.get("price") or {}).get("recurring")]
    assert usage_line["quantity"] == 5_000 and usage_line["amount"] == 1250  # 5,000 calls at 0.25 cents
    counted = await billing.metered_quantity(
        who.meter, customer=who.customer, start=period_start(PERIOD), end=period_end(PERIOD)
    )
    assert counted == 5_000  # reported once, however often the activities ran

    [tax] = [t for t in control.records("avatax", "transaction") if t["code"] == result.invoice_id]
    assert tax["status"] == "Committed" and tax["type"] == "SalesInvoice"
    entries = entries_of(control, handle.id)
    assert set(entries) == {f"{handle.id}-accrual", f"{handle.id}-invoice"}
    assert all(balanced(e) for e in entries.values())
    assert entries[f"{handle.id}-accrual"]["tranDate"] == last_day(PERIOD).isoformat()  # revenue in the month of use
    store = SqlUsageStore(settings.database_url)
    try:
        released = await store.previous_release(who.customer, before=f"{date.today():%Y-%m}")
    finally:
        await store.aclose()
    assert released is not None and released.invoice_id == result.invoice_id
    assert released.quantities == {who.meter: 5_000} and released.subtotal == usd("12.50")

    # A second start (the next day's period close) lands on the same workflow: nothing twice.
    again = await o2c.start_usage_release(
        dev_server.client, await release_input(settings, who), task_queue=settings.task_queue
    )
    assert again.id == handle.id and (await again.result()).invoice_id == result.invoice_id
    assert len(entries_of(control, handle.id)) == 2


async def test_a_spike_waits_for_a_person_who_adjusts_it_with_a_credit(dev_server, settings, worker, webhooks, control):
    who = MeteredCustomer(control, settings, "spike").seed()
    ledger = await synced(settings)
    try:
        key = await ledger.create_key(f"platform-{who.key}")
        answer = await send(webhooks.removesuffix("/webhooks/stripe"), key, [who.event(n, 200) for n in range(50)])
    finally:
        await ledger.aclose()
    assert answer.json()["accepted"] == 50
    await seed_history(settings, who, [5_900, 6_100, 6_000, 6_200, 5_800, 6_000])  # 10,000 is 1.7x the median

    handle = await o2c.start_usage_release(
        dev_server.client, await release_input(settings, who), task_queue=settings.task_queue
    )
    await o2c.wait_for_status(dev_server.client, handle.id, Status.RUNNING)
    control.end_period(who.subscription_id)
    state = await o2c.wait_for_status(dev_server.client, handle.id, Status.AWAITING_APPROVAL, timeout=120)
    [finding] = state["findings"]
    assert finding["rule"] == "spike" and "10,000 API calls is 1.7× the median" in finding["text"]
    invoice = stripe_invoice(control, state["draft_id"])
    assert invoice["status"] == "draft" and invoice["auto_advance"] is False  # held: nothing finalises behind o2c

    credit = UsageDecision(
        approver="fiona.finance",
        role=ApproverRole.FINANCE,
        action=ReviewAction.ADJUST,
        credit=usd("5.00"),
        reason="incident 4411: retries counted twice",
    )
    await o2c.adjust_usage(dev_server.client, handle.id, credit)
    result = await handle.result()
    assert result.outcome == UsageOutcome.RELEASED, result.message
    invoice = stripe_invoice(control, result.invoice_id)
    amounts = sorted(x["amount"] for x in invoice["lines"]["data"] if "tax" not in x.get("description", "").lower())
    assert invoice["status"] == "open" and amounts == [-500, 2500]  # 10,000 calls, less the credit
    accrual = entries_of(control, handle.id)[f"{handle.id}-accrual"]
    assert {Decimal(str(x.get("credit") or 0)) for x in accrual["line"]["items"]} >= {Decimal("20.00")}
    state = await o2c.process_state(dev_server.client, handle.id)
    assert state["decisions"][-1]["approver"] == "fiona.finance"
